#include "gateway/delivery/oauth.h"

#include <openssl/bn.h>
#include <openssl/ec.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/x509.h>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <map>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "fhirgw/v1/config.pb.h"
#include "gateway/delivery/fhir_client.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "rapidjson/document.h"
#include "tests/testing/files.h"
#include "tests/testing/http_test_server.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fhirgw::gateway {
namespace {

using ::fhirgw::testing::HttpTestServer;
using ::fhirgw::testing::StatusIs;
using ::fhirgw::testing::TempDir;
using ::fhirgw::testing::WriteFile;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::MatchesRegex;
using ::testing::Not;

constexpr char kClientId[] = "fhirgw-test-client";
constexpr char kScope[] = "system/*.write";
constexpr char kJwtBearer[] = "urn:ietf:params:oauth:client-assertion-type:jwt-bearer";

// --- Keys --------------------------------------------------------------------------------------

PrivateKey PublicPart(EVP_PKEY* key) {
  unsigned char* der = nullptr;
  const int length = i2d_PUBKEY(key, &der);
  const unsigned char* p = der;
  PrivateKey public_key(d2i_PUBKEY(nullptr, &p, length));
  OPENSSL_free(der);
  return public_key;
}

void WritePem(EVP_PKEY* key, const std::string& path) {
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(BIO_new_file(path.c_str(), "w"), &BIO_free);
  ASSERT_NE(bio, nullptr) << path;
  ASSERT_EQ(PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr), 1);
}

// Test keys, in a private temporary directory.
struct Keys {
  TempDir dir{"oauth_test"};
  PrivateKey rsa;  // 3072 bits
  PrivateKey ec;   // P-384
  PrivateKey rsa_public;
  PrivateKey ec_public;
  std::string rsa_file;
  std::string ec_file;
  std::string small_rsa_file;  // 1024 bits
  std::string p256_file;
  std::string garbage_file;
};

// Fills `keys`; ASSERTs need a void function.
void MakeKeys(Keys& keys) {
  ASSERT_FALSE(keys.dir.path().empty());
  keys.rsa.reset(EVP_RSA_gen(3072));
  keys.ec.reset(EVP_EC_gen("P-384"));
  ASSERT_NE(keys.rsa, nullptr);
  ASSERT_NE(keys.ec, nullptr);
  keys.rsa_public = PublicPart(keys.rsa.get());
  keys.ec_public = PublicPart(keys.ec.get());
  keys.rsa_file = keys.dir.File("rsa3072.pem");
  keys.ec_file = keys.dir.File("p384.pem");
  keys.small_rsa_file = keys.dir.File("rsa1024.pem");
  keys.p256_file = keys.dir.File("p256.pem");
  keys.garbage_file = keys.dir.File("garbage.pem");
  WritePem(keys.rsa.get(), keys.rsa_file);
  WritePem(keys.ec.get(), keys.ec_file);
  PrivateKey small(EVP_RSA_gen(1024));
  WritePem(small.get(), keys.small_rsa_file);
  PrivateKey p256(EVP_EC_gen("P-256"));
  WritePem(p256.get(), keys.p256_file);
  ASSERT_TRUE(WriteFile(keys.garbage_file, "-----BEGIN PRIVATE KEY-----\nnot a key\n"));
}

Keys* made_keys = nullptr;

// Returns the test keys, made on first use: an RSA 3072 key takes a while, and ctest runs each
// test of this program (most of which need no key) in its own process.
Keys* TestKeys() {
  static Keys* const keys = [] {
    auto* made = new Keys;
    MakeKeys(*made);
    made_keys = made;
    return made;
  }();
  return keys;
}

// Removes the key files at the end of the program.
class KeysEnvironment : public ::testing::Environment {
 public:
  void TearDown() override {
    delete made_keys;
    made_keys = nullptr;
  }
};

const ::testing::Environment* const keys_environment =
    ::testing::AddGlobalTestEnvironment(new KeysEnvironment);

// --- JWT checking, as a token endpoint does it ---------------------------------------------------

std::string Unbase64Url(absl::string_view text) {
  std::string bytes;
  EXPECT_TRUE(absl::WebSafeBase64Unescape(text, &bytes)) << text;
  return bytes;
}

// Returns whether `signature` (JWS form) over `input` verifies with `public_key`.
bool VerifySignature(EVP_PKEY* public_key, absl::string_view algorithm, absl::string_view input,
                     std::string signature) {
  if (algorithm == "ES384") {
    if (signature.size() != 96) return false;
    const auto* raw = reinterpret_cast<const unsigned char*>(signature.data());
    ECDSA_SIG* ecdsa = ECDSA_SIG_new();
    ECDSA_SIG_set0(ecdsa, BN_bin2bn(raw, 48, nullptr), BN_bin2bn(raw + 48, 48, nullptr));
    unsigned char* der = nullptr;
    const int length = i2d_ECDSA_SIG(ecdsa, &der);
    signature.assign(reinterpret_cast<char*>(der), length);
    OPENSSL_free(der);
    ECDSA_SIG_free(ecdsa);
  }
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context(EVP_MD_CTX_new(),
                                                                  &EVP_MD_CTX_free);
  if (EVP_DigestVerifyInit(context.get(), nullptr, EVP_sha384(), nullptr, public_key) != 1) {
    return false;
  }
  return EVP_DigestVerify(context.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                          signature.size(), reinterpret_cast<const unsigned char*>(input.data()),
                          input.size()) == 1;
}

struct Jwt {
  rapidjson::Document header;
  rapidjson::Document claims;
  std::string signing_input;
  std::string signature;
};

// Splits and decodes `jwt`; false when it is not three base64url parts of JSON.
bool DecodeJwt(absl::string_view jwt, Jwt& out) {
  std::vector<absl::string_view> parts = absl::StrSplit(jwt, '.');
  if (parts.size() != 3) return false;
  for (absl::string_view part : parts) {
    if (part.find_first_of("=+/") != absl::string_view::npos) return false;
  }
  std::string header = Unbase64Url(parts[0]);
  std::string claims = Unbase64Url(parts[1]);
  out.header.Parse(header.c_str());
  out.claims.Parse(claims.c_str());
  out.signing_input = absl::StrCat(parts[0], ".", parts[1]);
  out.signature = Unbase64Url(parts[2]);
  return !out.header.HasParseError() && out.header.IsObject() && !out.claims.HasParseError() &&
         out.claims.IsObject();
}

std::string Str(const rapidjson::Value& value, const char* key) {
  auto it = value.FindMember(key);
  return it != value.MemberEnd() && it->value.IsString() ? it->value.GetString() : "";
}

int64_t Int(const rapidjson::Value& value, const char* key) {
  auto it = value.FindMember(key);
  return it != value.MemberEnd() && it->value.IsInt64() ? it->value.GetInt64() : -1;
}

std::map<std::string, std::string> ParseForm(absl::string_view body) {
  std::map<std::string, std::string> form;
  for (absl::string_view pair : absl::StrSplit(body, '&')) {
    std::vector<std::string> kv = absl::StrSplit(pair, absl::MaxSplits('=', 1));
    for (std::string& s : kv) {
      std::string decoded;
      for (size_t i = 0; i < s.size(); ++i) {
        int byte = 0;
        if (s[i] == '%' && i + 2 < s.size() &&
            absl::SimpleHexAtoi(absl::string_view(s).substr(i + 1, 2), &byte)) {
          decoded.push_back(static_cast<char>(byte));
          i += 2;
        } else {
          decoded.push_back(s[i] == '+' ? ' ' : s[i]);
        }
      }
      s = decoded;
    }
    if (kv.size() == 2) form[kv[0]] = kv[1];
  }
  return form;
}

// --- A token endpoint and a FHIR endpoint that wants its tokens ---------------------------------

class AuthServer {
 public:
  AuthServer() {
    server_.server().Post(
        "/token", [this](const httplib::Request& req, httplib::Response& res) { Token(req, res); });
    server_.server().Post(
        "/fhir", [this](const httplib::Request& req, httplib::Response& res) { Fhir(req, res); });
    server_.Start();
  }

  std::string Url(absl::string_view path) const { return server_.Url(path); }

  v1::Auth::OAuth2 Config(absl::string_view algorithm) const {
    v1::Auth::OAuth2 config;
    config.set_token_url(Url("/token"));
    config.set_client_id(kClientId);
    config.set_key_id(absl::StrCat("key-", algorithm));
    config.set_algorithm(std::string(algorithm));
    config.set_scope(kScope);
    config.set_private_key_file(algorithm == "ES384" ? TestKeys()->ec_file : TestKeys()->rsa_file);
    return config;
  }

  // Tokens issued from now on expire after `seconds`.
  void set_expires_in(int seconds) { expires_in_ = seconds; }
  // Accepts assertions whose exp is up to `seconds` ahead (tests with a fake clock run ahead).
  void set_max_exp_ahead(int64_t seconds) { max_exp_ahead_ = seconds; }
  // The FHIR endpoint answers 401 to every token.
  void set_refuse_all_tokens(bool refuse) { refuse_all_ = refuse; }
  void Revoke(const std::string& token) {
    std::lock_guard<std::mutex> lock(mu_);
    revoked_.insert(token);
  }

  int token_requests() const { return token_requests_; }
  int tokens_issued() const { return tokens_issued_; }
  std::vector<std::string> rejections() {
    std::lock_guard<std::mutex> lock(mu_);
    return rejections_;
  }
  // The Authorization header of each FHIR request, in order.
  std::vector<std::string> fhir_authorizations() {
    std::lock_guard<std::mutex> lock(mu_);
    return fhir_authorizations_;
  }

 private:
  // Returns why the token request `req` is refused, or "" when it is fine.
  std::string Check(const httplib::Request& req) {
    if (!absl::StartsWith(req.get_header_value("Content-Type"),
                          "application/x-www-form-urlencoded")) {
      return "not form-encoded";
    }
    std::map<std::string, std::string> form = ParseForm(req.body);
    if (form["grant_type"] != "client_credentials") return "bad grant_type";
    if (form["scope"] != kScope) return "bad scope: " + form["scope"];
    if (form["client_assertion_type"] != kJwtBearer) return "bad client_assertion_type";
    Jwt jwt;
    if (!DecodeJwt(form["client_assertion"], jwt)) return "client_assertion is not a JWT";
    const std::string algorithm = Str(jwt.header, "alg");
    if (Str(jwt.header, "typ") != "JWT") return "bad typ";
    if (Str(jwt.header, "kid") != absl::StrCat("key-", algorithm)) return "unknown kid";
    EVP_PKEY* public_key = algorithm == "RS384"   ? TestKeys()->rsa_public.get()
                           : algorithm == "ES384" ? TestKeys()->ec_public.get()
                                                  : nullptr;
    if (public_key == nullptr) return "bad alg " + algorithm;
    if (!VerifySignature(public_key, algorithm, jwt.signing_input, jwt.signature)) {
      return "bad signature";
    }
    if (Str(jwt.claims, "iss") != kClientId) return "unknown client " + Str(jwt.claims, "iss");
    if (Str(jwt.claims, "sub") != kClientId) return "bad sub";
    if (Str(jwt.claims, "aud") != Url("/token")) return "bad aud";
    const int64_t now = absl::ToUnixSeconds(absl::Now());
    const int64_t exp = Int(jwt.claims, "exp");
    if (exp <= now) return "expired assertion";
    if (exp > now + max_exp_ahead_) return "exp too far ahead";
    const std::string jti = Str(jwt.claims, "jti");
    if (jti.empty()) return "no jti";
    std::lock_guard<std::mutex> lock(mu_);
    if (!jtis_.insert(jti).second) return "replayed jti";
    return "";
  }

  void Token(const httplib::Request& req, httplib::Response& res) {
    ++token_requests_;
    const std::string problem = Check(req);
    if (!problem.empty()) {
      {
        std::lock_guard<std::mutex> lock(mu_);
        rejections_.push_back(problem);
      }
      res.status = 401;
      res.set_content(
          absl::StrCat(R"({"error":"invalid_client","error_description":")", problem, R"("})"),
          "application/json");
      return;
    }
    const int n = ++tokens_issued_;
    res.set_content(
        absl::StrCat(R"({"access_token":"token-)", n, R"(","token_type":"bearer","expires_in":)",
                     expires_in_.load(), R"(,"scope":")", kScope, R"("})"),
        "application/json");
  }

  void Fhir(const httplib::Request& req, httplib::Response& res) {
    const std::string authorization = req.get_header_value("Authorization");
    std::lock_guard<std::mutex> lock(mu_);
    fhir_authorizations_.push_back(authorization);
    const bool issued = absl::StartsWith(authorization, "Bearer token-");
    if (refuse_all_ || !issued || revoked_.count(authorization.substr(7)) > 0) {
      res.status = 401;
      res.set_content(
          R"({"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"login"}]})",
          "application/fhir+json");
      return;
    }
    res.set_content(R"({"resourceType":"Bundle","type":"transaction-response"})",
                    "application/fhir+json");
  }

  std::atomic<int> token_requests_{0};
  std::atomic<int> tokens_issued_{0};
  std::atomic<int> expires_in_{3600};
  std::atomic<int64_t> max_exp_ahead_{305};
  std::atomic<bool> refuse_all_{false};
  std::mutex mu_;
  std::set<std::string> jtis_;
  std::set<std::string> revoked_;
  std::vector<std::string> rejections_;
  std::vector<std::string> fhir_authorizations_;
  // Last, so that it stops serving before the state its handlers use is destroyed.
  HttpTestServer server_;
};

// --- BuildClientAssertion ------------------------------------------------------------------------

v1::Auth::OAuth2 AssertionConfig(absl::string_view algorithm) {
  v1::Auth::OAuth2 config;
  config.set_token_url("https://auth.example.org/token");
  config.set_client_id(kClientId);
  config.set_key_id("kid-1");
  config.set_algorithm(std::string(algorithm));
  return config;
}

constexpr int64_t kNow = 1700000000;

TEST(BuildClientAssertionTest, SignsTheSmartClaimsWithRs384) {
  absl::StatusOr<std::string> jwt_text =
      BuildClientAssertion(AssertionConfig(""), TestKeys()->rsa.get(), kNow);  // "" means RS384
  ASSERT_TRUE(jwt_text.ok()) << jwt_text.status();
  Jwt jwt;
  ASSERT_TRUE(DecodeJwt(*jwt_text, jwt)) << *jwt_text;

  EXPECT_EQ(Str(jwt.header, "alg"), "RS384");
  EXPECT_EQ(Str(jwt.header, "kid"), "kid-1");
  EXPECT_EQ(Str(jwt.header, "typ"), "JWT");
  EXPECT_EQ(Str(jwt.claims, "iss"), kClientId);
  EXPECT_EQ(Str(jwt.claims, "sub"), kClientId);
  EXPECT_EQ(Str(jwt.claims, "aud"), "https://auth.example.org/token");
  EXPECT_EQ(Int(jwt.claims, "exp"), kNow + 300);
  EXPECT_THAT(Str(jwt.claims, "jti"), MatchesRegex("[0-9a-f]{32}"));
  EXPECT_EQ(jwt.signature.size(), 384u);  // a 3072-bit RSA signature
  EXPECT_TRUE(
      VerifySignature(TestKeys()->rsa_public.get(), "RS384", jwt.signing_input, jwt.signature));
  // The check can fail: the signature does not cover other claims, nor verify with another key.
  EXPECT_FALSE(VerifySignature(TestKeys()->rsa_public.get(), "RS384", jwt.signing_input + "x",
                               jwt.signature));
}

TEST(BuildClientAssertionTest, SignsEs384AsRawRAndS) {
  absl::StatusOr<std::string> jwt_text =
      BuildClientAssertion(AssertionConfig("ES384"), TestKeys()->ec.get(), kNow);
  ASSERT_TRUE(jwt_text.ok()) << jwt_text.status();
  Jwt jwt;
  ASSERT_TRUE(DecodeJwt(*jwt_text, jwt)) << *jwt_text;

  EXPECT_EQ(Str(jwt.header, "alg"), "ES384");
  EXPECT_EQ(jwt.signature.size(), 96u);  // R || S, not DER
  EXPECT_TRUE(
      VerifySignature(TestKeys()->ec_public.get(), "ES384", jwt.signing_input, jwt.signature));
  std::string tampered = jwt.signature;
  tampered[10] ^= 1;
  EXPECT_FALSE(VerifySignature(TestKeys()->ec_public.get(), "ES384", jwt.signing_input, tampered));
}

TEST(BuildClientAssertionTest, UsesAFreshJtiEachTime) {
  std::set<std::string> jtis;
  for (int i = 0; i < 5; ++i) {
    absl::StatusOr<std::string> jwt_text =
        BuildClientAssertion(AssertionConfig("ES384"), TestKeys()->ec.get(), kNow);
    ASSERT_TRUE(jwt_text.ok()) << jwt_text.status();
    Jwt jwt;
    ASSERT_TRUE(DecodeJwt(*jwt_text, jwt));
    jtis.insert(Str(jwt.claims, "jti"));
  }
  EXPECT_EQ(jtis.size(), 5u);
}

TEST(BuildClientAssertionTest, RefusesAKeyOfTheWrongKind) {
  EXPECT_THAT(BuildClientAssertion(AssertionConfig("ES384"), TestKeys()->rsa.get(), kNow).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("ES384 needs an EC P-384 key, not RSA")));
  EXPECT_THAT(
      BuildClientAssertion(AssertionConfig("RS384"), TestKeys()->ec.get(), kNow).status(),
      StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("RS384 needs an RSA key, not EC")));
}

// --- ValidateOAuth2Config
// --------------------------------------------------------------------------

v1::Auth::OAuth2 ValidConfig() {
  v1::Auth::OAuth2 config = AssertionConfig("RS384");
  config.set_scope(kScope);
  config.set_private_key_file(TestKeys()->rsa_file);
  return config;
}

TEST(ValidateOAuth2ConfigTest, AcceptsBothAlgorithms) {
  EXPECT_TRUE(ValidateOAuth2Config(ValidConfig(), "p").ok());
  v1::Auth::OAuth2 ec = ValidConfig();
  ec.set_algorithm("ES384");
  ec.set_private_key_file(TestKeys()->ec_file);
  EXPECT_TRUE(ValidateOAuth2Config(ec, "p").ok());
}

TEST(ValidateOAuth2ConfigTest, NamesTheField) {
  const std::string prefix = "destinations[st-olaf].auth.oauth2";
  v1::Auth::OAuth2 config = ValidConfig();
  config.clear_client_id();
  EXPECT_THAT(ValidateOAuth2Config(config, prefix),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "destinations[st-olaf].auth.oauth2.client_id: required"));

  config = ValidConfig();
  config.set_token_url("ldap://x");
  EXPECT_THAT(ValidateOAuth2Config(config, prefix),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(".token_url: 'ldap://x' must start with http:// or https://")));

  config = ValidConfig();
  config.clear_key_id();
  EXPECT_THAT(ValidateOAuth2Config(config, prefix),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(".key_id: required")));

  config = ValidConfig();
  config.clear_scope();
  EXPECT_THAT(ValidateOAuth2Config(config, prefix),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(".scope: required")));

  config = ValidConfig();
  config.set_algorithm("HS256");
  EXPECT_THAT(ValidateOAuth2Config(config, prefix),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr(".algorithm: 'HS256' is not supported; use RS384 or ES384")));
}

TEST(ValidateOAuth2ConfigTest, ChecksTheKey) {
  v1::Auth::OAuth2 config = ValidConfig();
  config.set_private_key_file(TestKeys()->dir.File("missing.pem"));
  EXPECT_THAT(ValidateOAuth2Config(config, "p"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("p.private_key_file: cannot read"),
                             HasSubstr("No such file or directory"))));

  config.set_private_key_file(TestKeys()->garbage_file);
  EXPECT_THAT(ValidateOAuth2Config(config, "p"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("holds no unencrypted PEM private key")));

  config.set_private_key_file(TestKeys()->small_rsa_file);
  EXPECT_THAT(ValidateOAuth2Config(config, "p"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("the RSA key has 1024 bits; at least 2048 are needed")));

  config.set_private_key_file(TestKeys()->ec_file);
  EXPECT_THAT(ValidateOAuth2Config(config, "p"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("p.private_key_file: RS384 needs an RSA key, not EC")));

  config.set_algorithm("ES384");
  config.set_private_key_file(TestKeys()->p256_file);
  EXPECT_THAT(ValidateOAuth2Config(config, "p"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("'prime256v1'")));
}

// --- TokenSource ---------------------------------------------------------------------------------

class TokenSourceTest : public ::testing::TestWithParam<const char*> {
 protected:
  std::shared_ptr<TokenSource> Make(const v1::Auth::OAuth2& config,
                                    TokenSourceOptions options = {}) {
    absl::StatusOr<std::shared_ptr<TokenSource>> tokens =
        TokenSource::Create(config, std::move(options));
    EXPECT_TRUE(tokens.ok()) << tokens.status();
    return tokens.ok() ? *tokens : nullptr;
  }

  AuthServer server_;
};

INSTANTIATE_TEST_SUITE_P(Algorithms, TokenSourceTest, ::testing::Values("RS384", "ES384"));

TEST_P(TokenSourceTest, FetchesOnceAndCaches) {
  std::shared_ptr<TokenSource> tokens = Make(server_.Config(GetParam()));
  ASSERT_NE(tokens, nullptr);

  absl::StatusOr<std::string> first = tokens->AccessToken();
  absl::StatusOr<std::string> second = tokens->AccessToken();

  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_EQ(*first, "token-1");
  ASSERT_TRUE(second.ok()) << second.status();
  EXPECT_EQ(*second, "token-1");
  EXPECT_THAT(server_.rejections(), IsEmpty());
  EXPECT_EQ(server_.token_requests(), 1);
  EXPECT_EQ(tokens->fetch_count(), 1);
}

TEST_P(TokenSourceTest, RefreshesThirtySecondsBeforeExpiry) {
  const int64_t start_ms = absl::ToUnixMillis(absl::Now());
  auto now_ms = std::make_shared<std::atomic<int64_t>>(start_ms);
  TokenSourceOptions options;
  options.now_ms = [now_ms] { return now_ms->load(); };
  server_.set_expires_in(600);
  server_.set_max_exp_ahead(3600);
  std::shared_ptr<TokenSource> tokens = Make(server_.Config(GetParam()), std::move(options));
  ASSERT_NE(tokens, nullptr);

  absl::StatusOr<std::string> first = tokens->AccessToken();
  *now_ms = start_ms + (600 - 31) * 1000;
  absl::StatusOr<std::string> still_valid = tokens->AccessToken();
  *now_ms = start_ms + (600 - 30) * 1000;
  absl::StatusOr<std::string> renewed = tokens->AccessToken();

  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_TRUE(still_valid.ok()) << still_valid.status();
  ASSERT_TRUE(renewed.ok()) << renewed.status();
  EXPECT_EQ(*first, "token-1");
  EXPECT_EQ(*still_valid, "token-1");
  EXPECT_EQ(*renewed, "token-2");
  EXPECT_THAT(server_.rejections(), IsEmpty());
}

TEST_P(TokenSourceTest, InvalidateDropsOnlyTheRejectedToken) {
  std::shared_ptr<TokenSource> tokens = Make(server_.Config(GetParam()));
  ASSERT_NE(tokens, nullptr);

  ASSERT_TRUE(tokens->AccessToken().ok());
  tokens->Invalidate("token-0");  // an older token, already replaced
  absl::StatusOr<std::string> kept = tokens->AccessToken();
  tokens->Invalidate("token-1");
  absl::StatusOr<std::string> replaced = tokens->AccessToken();
  tokens->Invalidate();
  absl::StatusOr<std::string> replaced_again = tokens->AccessToken();

  EXPECT_EQ(kept.value_or(""), "token-1");
  EXPECT_EQ(replaced.value_or(""), "token-2");
  EXPECT_EQ(replaced_again.value_or(""), "token-3");
  EXPECT_EQ(server_.token_requests(), 3);
}

TEST_P(TokenSourceTest, ConcurrentCallersShareOneFetch) {
  std::shared_ptr<TokenSource> tokens = Make(server_.Config(GetParam()));
  ASSERT_NE(tokens, nullptr);

  std::vector<std::string> got(8);
  std::vector<std::thread> threads;
  for (int i = 0; i < 8; ++i) {
    threads.emplace_back([&, i] { got[i] = tokens->AccessToken().value_or("error"); });
  }
  for (std::thread& thread : threads) thread.join();

  for (const std::string& token : got) EXPECT_EQ(token, "token-1");
  EXPECT_EQ(server_.token_requests(), 1);
}

TEST_P(TokenSourceTest, ReportsTheEndpointsRefusal) {
  v1::Auth::OAuth2 config = server_.Config(GetParam());
  config.set_client_id("someone-else");
  std::shared_ptr<TokenSource> tokens = Make(config);
  ASSERT_NE(tokens, nullptr);

  absl::StatusOr<std::string> token = tokens->AccessToken();

  EXPECT_THAT(token.status(),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       AllOf(HasSubstr("oauth2 token endpoint"),
                             HasSubstr("answered 401: invalid_client (unknown client "
                                       "someone-else)"))));
  EXPECT_THAT(server_.rejections(), ElementsAre("unknown client someone-else"));
}

TEST(TokenSourceUnavailableTest, ReportsANetworkErrorAsUnavailable) {
  v1::Auth::OAuth2 config = ValidConfig();
  config.set_token_url("http://127.0.0.1:9/token");  // discard: nothing listens
  absl::StatusOr<std::shared_ptr<TokenSource>> tokens = TokenSource::Create(config);
  ASSERT_TRUE(tokens.ok()) << tokens.status();

  EXPECT_THAT((*tokens)->AccessToken().status(),
              StatusIs(absl::StatusCode::kUnavailable,
                       HasSubstr("oauth2 token endpoint http://127.0.0.1:9/token: ")));
}

TEST(TokenSourceCreateTest, ValidatesTheConfig) {
  v1::Auth::OAuth2 config = ValidConfig();
  config.set_algorithm("ES384");
  EXPECT_THAT(
      TokenSource::Create(config).status(),
      StatusIs(absl::StatusCode::kInvalidArgument,
               HasSubstr("auth.oauth2.private_key_file: ES384 needs an EC P-384 key, not RSA")));
}

// --- FhirClient with OAuth2 ----------------------------------------------------------------------

class FhirClientOAuthTest : public ::testing::TestWithParam<const char*> {
 protected:
  std::unique_ptr<FhirClient> MakeClient(std::shared_ptr<TokenSource> tokens = nullptr) {
    v1::Destination config;
    config.set_name("oauth-ehr");
    config.set_base_url(server_.Url("/fhir"));
    *config.mutable_auth()->mutable_oauth2() = server_.Config(GetParam());
    absl::StatusOr<std::unique_ptr<FhirClient>> client = FhirClient::Create(config, tokens);
    EXPECT_TRUE(client.ok()) << client.status();
    return client.ok() ? *std::move(client) : nullptr;
  }

  AuthServer server_;
};

INSTANTIATE_TEST_SUITE_P(Algorithms, FhirClientOAuthTest, ::testing::Values("RS384", "ES384"));

constexpr char kBundle[] = R"({"resourceType":"Bundle","type":"transaction"})";

TEST_P(FhirClientOAuthTest, SendsTheAccessTokenAndReusesIt) {
  std::unique_ptr<FhirClient> client = MakeClient();
  ASSERT_NE(client, nullptr);

  HttpResult first = client->PostTransaction(kBundle);
  HttpResult second = client->PostTransaction(kBundle);

  EXPECT_EQ(first.http_status, 200) << first.error;
  EXPECT_EQ(second.http_status, 200) << second.error;
  EXPECT_THAT(server_.fhir_authorizations(), ElementsAre("Bearer token-1", "Bearer token-1"));
  EXPECT_EQ(server_.token_requests(), 1);
  EXPECT_THAT(server_.rejections(), IsEmpty());
}

TEST_P(FhirClientOAuthTest, ClientsShareATokenSource) {
  absl::StatusOr<std::shared_ptr<TokenSource>> tokens =
      TokenSource::Create(server_.Config(GetParam()));
  ASSERT_TRUE(tokens.ok()) << tokens.status();
  std::unique_ptr<FhirClient> a = MakeClient(*tokens);
  std::unique_ptr<FhirClient> b = MakeClient(*tokens);
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);

  HttpResult from_a;
  HttpResult from_b;
  std::thread thread([&] { from_a = a->PostTransaction(kBundle); });
  from_b = b->PostTransaction(kBundle);
  thread.join();

  EXPECT_EQ(from_a.http_status, 200) << from_a.error;
  EXPECT_EQ(from_b.http_status, 200) << from_b.error;
  EXPECT_EQ(server_.token_requests(), 1);
}

TEST_P(FhirClientOAuthTest, RetriesOnceWithAFreshTokenAfterA401) {
  std::unique_ptr<FhirClient> client = MakeClient();
  ASSERT_NE(client, nullptr);

  HttpResult first = client->PostTransaction(kBundle);
  server_.Revoke("token-1");
  HttpResult second = client->PostTransaction(kBundle);

  EXPECT_EQ(first.http_status, 200) << first.error;
  EXPECT_EQ(second.http_status, 200) << second.error;
  EXPECT_THAT(server_.fhir_authorizations(),
              ElementsAre("Bearer token-1", "Bearer token-1", "Bearer token-2"));
  EXPECT_EQ(server_.token_requests(), 2);
}

TEST_P(FhirClientOAuthTest, GivesUpAfterASecond401) {
  server_.set_refuse_all_tokens(true);
  std::unique_ptr<FhirClient> client = MakeClient();
  ASSERT_NE(client, nullptr);

  HttpResult result = client->PostTransaction(kBundle);

  EXPECT_EQ(result.http_status, 401);
  EXPECT_THAT(result.body, HasSubstr("OperationOutcome"));
  EXPECT_THAT(server_.fhir_authorizations(), ElementsAre("Bearer token-1", "Bearer token-2"));
  EXPECT_EQ(server_.token_requests(), 2);
}

TEST_P(FhirClientOAuthTest, SendsNothingWithoutAnAccessToken) {
  v1::Destination config;
  config.set_base_url(server_.Url("/fhir"));
  *config.mutable_auth()->mutable_oauth2() = server_.Config(GetParam());
  config.mutable_auth()->mutable_oauth2()->set_client_id("someone-else");
  absl::StatusOr<std::unique_ptr<FhirClient>> client = FhirClient::Create(config);
  ASSERT_TRUE(client.ok()) << client.status();

  HttpResult result = (*client)->PostTransaction(kBundle);

  EXPECT_EQ(result.http_status, 0);
  EXPECT_THAT(result.error, HasSubstr("answered 401: invalid_client"));
  EXPECT_THAT(result.error, Not(HasSubstr("eyJ")));  // no JWT in errors
  EXPECT_THAT(server_.fhir_authorizations(), IsEmpty());
}

}  // namespace
}  // namespace fhirgw::gateway
