#include "gateway/delivery/oauth.h"

#include <openssl/bio.h>
#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ec.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>

#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/clock.h"
#include "base/file.h"
#include "base/openssl_error.h"
#include "fhir/json_parse.h"
#include "fhir/status_macros.h"
#include "gateway/delivery/fhir_client.h"
#include "rapidjson/document.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace fhirgw::gateway {
namespace {

constexpr int64_t kAssertionLifetimeSeconds = 300;
// Tokens are replaced this long before they expire, so that none expires in flight.
constexpr int64_t kRefreshMarginMs = 30'000;
// SMART asks servers for expires_in; a server that leaves it out gets this.
constexpr int64_t kDefaultExpiresInSeconds = 300;
// Longer-lived tokens are still renewed daily.
constexpr int64_t kMaxExpiresInSeconds = 24 * 3600;
constexpr size_t kSignatureComponentBytes = 48;  // P-384

absl::string_view AlgorithmOf(const v1::Auth::OAuth2& config) {
  return config.algorithm().empty() ? absl::string_view("RS384") : config.algorithm();
}

// Keeps PEM_read_bio_PrivateKey from prompting on the terminal for an encrypted key.
int NoPassphrase(char*, int, int, void*) { return -1; }

// Checks that `key` can sign with `algorithm`.
absl::Status CheckKey(EVP_PKEY* key, absl::string_view algorithm, absl::string_view field) {
  const char* type = EVP_PKEY_get0_type_name(key);
  const absl::string_view type_name = type != nullptr ? type : "unknown";
  if (algorithm == "RS384") {
    if (!EVP_PKEY_is_a(key, "RSA")) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": RS384 needs an RSA key, not ", type_name));
    }
    if (EVP_PKEY_get_bits(key) < 2048) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": the RSA key has ", EVP_PKEY_get_bits(key), " bits; at least 2048 are needed"));
    }
    return absl::OkStatus();
  }
  if (!EVP_PKEY_is_a(key, "EC")) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ES384 needs an EC P-384 key, not ", type_name));
  }
  char group[64] = {};
  size_t group_length = 0;
  if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, group, sizeof group,
                                     &group_length) != 1 ||
      absl::string_view(group, group_length) != "secp384r1") {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat(field, ": the EC key is on curve '",
                                                   absl::string_view(group, group_length),
                                                   "'; ES384 needs P-384 (secp384r1)"));
  }
  return absl::OkStatus();
}

// Returns `value` in application/x-www-form-urlencoded form.
std::string FormEncode(absl::string_view value) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  std::string out;
  out.reserve(value.size());
  for (unsigned char c : value) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '.' || c == '_' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      out.push_back('%');
      out.push_back(kHex[c >> 4]);
      out.push_back(kHex[c & 0xF]);
    }
  }
  return out;
}

absl::StatusOr<std::string> RandomHex(size_t bytes) {
  std::string random(bytes, '\0');
  if (RAND_bytes(reinterpret_cast<unsigned char*>(random.data()), static_cast<int>(bytes)) != 1) {
    return absl::InternalError(absl::StrCat("RAND_bytes failed: ", base::OpenSslErrors()));
  }
  return absl::BytesToHexString(random);
}

// Signs `input` with SHA-384 and returns the JWS signature bytes for `algorithm`.
absl::StatusOr<std::string> Sign(EVP_PKEY* key, absl::string_view algorithm,
                                 absl::string_view input) {
  std::unique_ptr<EVP_MD_CTX, decltype(&EVP_MD_CTX_free)> context(EVP_MD_CTX_new(),
                                                                  &EVP_MD_CTX_free);
  if (context == nullptr ||
      EVP_DigestSignInit(context.get(), nullptr, EVP_sha384(), nullptr, key) != 1) {
    return absl::InternalError(absl::StrCat("cannot sign with the key: ", base::OpenSslErrors()));
  }
  const auto* data = reinterpret_cast<const unsigned char*>(input.data());
  size_t length = 0;
  if (EVP_DigestSign(context.get(), nullptr, &length, data, input.size()) != 1) {
    return absl::InternalError(absl::StrCat("cannot sign with the key: ", base::OpenSslErrors()));
  }
  std::string signature(length, '\0');
  if (EVP_DigestSign(context.get(), reinterpret_cast<unsigned char*>(signature.data()), &length,
                     data, input.size()) != 1) {
    return absl::InternalError(absl::StrCat("cannot sign with the key: ", base::OpenSslErrors()));
  }
  signature.resize(length);
  if (algorithm != "ES384") return signature;

  // OpenSSL gives ECDSA signatures as DER; JWS (RFC 7518 section 3.4) wants R || S, each padded
  // to the curve size.
  const auto* der = reinterpret_cast<const unsigned char*>(signature.data());
  std::unique_ptr<ECDSA_SIG, decltype(&ECDSA_SIG_free)> ecdsa(
      d2i_ECDSA_SIG(nullptr, &der, static_cast<long>(signature.size())), &ECDSA_SIG_free);
  if (ecdsa == nullptr) {
    return absl::InternalError(
        absl::StrCat("cannot decode the ECDSA signature: ", base::OpenSslErrors()));
  }
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(ecdsa.get(), &r, &s);
  std::string raw(2 * kSignatureComponentBytes, '\0');
  auto* out = reinterpret_cast<unsigned char*>(raw.data());
  if (BN_bn2binpad(r, out, kSignatureComponentBytes) < 0 ||
      BN_bn2binpad(s, out + kSignatureComponentBytes, kSignatureComponentBytes) < 0) {
    return absl::InternalError("the ECDSA signature does not fit P-384");
  }
  return raw;
}

std::string Base64Url(absl::string_view bytes) { return absl::WebSafeBase64Escape(bytes); }

// Returns the member `key` of `doc` when it is a string, else "".
absl::string_view StringMember(const rapidjson::Document& doc, const char* key) {
  if (!doc.IsObject()) return {};
  auto it = doc.FindMember(key);
  if (it == doc.MemberEnd() || !it->value.IsString()) return {};
  return absl::string_view(it->value.GetString(), it->value.GetStringLength());
}

// Returns expires_in in seconds (a number, or a string of digits as some servers send), or -1.
int64_t ExpiresIn(const rapidjson::Document& doc) {
  auto it = doc.FindMember("expires_in");
  if (it == doc.MemberEnd()) return -1;
  if (it->value.IsInt64()) return it->value.GetInt64();
  if (it->value.IsNumber()) return static_cast<int64_t>(it->value.GetDouble());
  int64_t seconds = -1;
  if (it->value.IsString() && absl::SimpleAtoi(it->value.GetString(), &seconds)) return seconds;
  return -1;
}

// Returns a short printable excerpt of an unexpected answer `body`, for error messages.
std::string Excerpt(absl::string_view body) {
  constexpr size_t kMax = 200;
  std::string text(absl::StripAsciiWhitespace(body.substr(0, kMax)));
  for (char& c : text) {
    if (absl::ascii_iscntrl(static_cast<unsigned char>(c))) c = ' ';
  }
  if (text.empty()) return "(empty body)";
  if (body.size() > kMax) text += "...";
  return text;
}

}  // namespace

absl::StatusOr<PrivateKey> LoadPrivateKey(const std::string& path) {
  absl::StatusOr<std::string> pem = base::ReadFile(path);
  if (!pem.ok()) return absl::InvalidArgumentError(pem.status().message());
  ERR_clear_error();
  std::unique_ptr<BIO, decltype(&BIO_free)> bio(
      BIO_new_mem_buf(pem->data(), static_cast<int>(pem->size())), &BIO_free);
  if (bio == nullptr) {
    return absl::InternalError(absl::StrCat("cannot buffer '", path, "': ", base::OpenSslErrors()));
  }
  PrivateKey key(PEM_read_bio_PrivateKey(bio.get(), nullptr, &NoPassphrase, nullptr));
  if (key == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat(
        "'", path, "' holds no unencrypted PEM private key (", base::OpenSslErrors(), ")"));
  }
  return key;
}

absl::Status ValidateOAuth2Config(const v1::Auth::OAuth2& config, absl::string_view path_prefix) {
  const std::string url = config.token_url();
  if (url.empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path_prefix, ".token_url: required"));
  }
  if (!absl::StartsWith(url, "https://") && !absl::StartsWith(url, "http://")) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_prefix, ".token_url: '", url, "' must start with http:// or https://"));
  }
  if (config.client_id().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(path_prefix, ".client_id: required"));
  }
  if (config.key_id().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(
        path_prefix, ".key_id: required (the kid of the key in the client's registered JWKS)"));
  }
  if (config.scope().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(path_prefix, ".scope: required (e.g. \"system/*.write\")"));
  }
  const absl::string_view algorithm = AlgorithmOf(config);
  if (algorithm != "RS384" && algorithm != "ES384") {
    return absl::InvalidArgumentError(absl::StrCat(path_prefix, ".algorithm: '", algorithm,
                                                   "' is not supported; use RS384 or ES384"));
  }
  const std::string key_field = absl::StrCat(path_prefix, ".private_key_file");
  if (config.private_key_file().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(key_field, ": required"));
  }
  absl::StatusOr<PrivateKey> key = LoadPrivateKey(config.private_key_file());
  if (!key.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(key_field, ": ", key.status().message()));
  }
  return CheckKey(key->get(), algorithm, key_field);
}

absl::StatusOr<std::string> BuildClientAssertion(const v1::Auth::OAuth2& config, EVP_PKEY* key,
                                                 int64_t now_seconds) {
  const absl::string_view algorithm = AlgorithmOf(config);
  FHIRGW_RETURN_IF_ERROR(CheckKey(key, algorithm, "the client assertion key"));
  FHIRGW_ASSIGN_OR_RETURN(std::string jti, RandomHex(16));

  rapidjson::StringBuffer header;
  {
    rapidjson::Writer<rapidjson::StringBuffer> writer(header);
    writer.StartObject();
    writer.Key("alg");
    writer.String(algorithm.data(), static_cast<rapidjson::SizeType>(algorithm.size()));
    writer.Key("kid");
    writer.String(config.key_id());
    writer.Key("typ");
    writer.String("JWT");
    writer.EndObject();
  }
  rapidjson::StringBuffer claims;
  {
    rapidjson::Writer<rapidjson::StringBuffer> writer(claims);
    writer.StartObject();
    writer.Key("iss");
    writer.String(config.client_id());
    writer.Key("sub");
    writer.String(config.client_id());
    writer.Key("aud");
    writer.String(config.token_url());
    writer.Key("exp");
    writer.Int64(now_seconds + kAssertionLifetimeSeconds);
    writer.Key("jti");
    writer.String(jti);
    writer.EndObject();
  }
  std::string signing_input =
      absl::StrCat(Base64Url(absl::string_view(header.GetString(), header.GetSize())), ".",
                   Base64Url(absl::string_view(claims.GetString(), claims.GetSize())));
  FHIRGW_ASSIGN_OR_RETURN(std::string signature, Sign(key, algorithm, signing_input));
  return absl::StrCat(signing_input, ".", Base64Url(signature));
}

// ---------------------------------------------------------------------------------------------
// TokenSource

absl::StatusOr<std::shared_ptr<TokenSource>> TokenSource::Create(const v1::Auth::OAuth2& config,
                                                                 TokenSourceOptions options) {
  FHIRGW_RETURN_IF_ERROR(ValidateOAuth2Config(config, "auth.oauth2"));
  FHIRGW_ASSIGN_OR_RETURN(PrivateKey key, LoadPrivateKey(config.private_key_file()));
  FHIRGW_ASSIGN_OR_RETURN(std::unique_ptr<HttpConnection> connection,
                          HttpConnection::Create(options.ca_file));
  if (options.connect_timeout_ms <= 0) options.connect_timeout_ms = 5000;
  if (options.request_timeout_ms <= 0) options.request_timeout_ms = 30000;
  return std::shared_ptr<TokenSource>(
      new TokenSource(config, std::move(options), std::move(key), std::move(connection)));
}

TokenSource::TokenSource(const v1::Auth::OAuth2& config, TokenSourceOptions options, PrivateKey key,
                         std::unique_ptr<HttpConnection> connection)
    : config_(config),
      options_(std::move(options)),
      key_(std::move(key)),
      connection_(std::move(connection)) {}

TokenSource::~TokenSource() = default;

int64_t TokenSource::NowMs() const {
  return options_.now_ms ? options_.now_ms() : base::UnixMillis();
}

absl::StatusOr<std::string> TokenSource::AccessToken() {
  absl::MutexLock lock(&mu_);
  if (token_.empty() || NowMs() >= refresh_at_ms_) {
    FHIRGW_RETURN_IF_ERROR(FetchLocked());
  }
  return token_;
}

void TokenSource::Invalidate() {
  absl::MutexLock lock(&mu_);
  token_.clear();
  refresh_at_ms_ = 0;
}

void TokenSource::Invalidate(absl::string_view rejected_token) {
  absl::MutexLock lock(&mu_);
  if (token_ != rejected_token) return;
  token_.clear();
  refresh_at_ms_ = 0;
}

int64_t TokenSource::fetch_count() const {
  absl::MutexLock lock(&mu_);
  return fetch_count_;
}

absl::Status TokenSource::FetchLocked() {
  token_.clear();
  refresh_at_ms_ = 0;
  const int64_t now_ms = NowMs();
  FHIRGW_ASSIGN_OR_RETURN(std::string assertion,
                          BuildClientAssertion(config_, key_.get(), now_ms / 1000));
  const std::string body =
      absl::StrCat("grant_type=client_credentials&scope=", FormEncode(config_.scope()),
                   "&client_assertion_type=",
                   FormEncode("urn:ietf:params:oauth:client-assertion-type:jwt-bearer"),
                   "&client_assertion=", FormEncode(assertion));
  ++fetch_count_;
  const HttpResult result = connection_->Perform(
      "POST", config_.token_url(),
      {"Content-Type: application/x-www-form-urlencoded", "Accept: application/json", "Expect:"},
      body, options_.connect_timeout_ms, options_.request_timeout_ms);

  const std::string where = absl::StrCat("oauth2 token endpoint ", config_.token_url());
  if (result.http_status == 0) {
    return absl::UnavailableError(absl::StrCat(where, ": ", result.error));
  }
  rapidjson::Document doc;
  const bool is_json = fhir::ParseJson(result.body, doc).ok() && doc.IsObject();
  if (result.http_status != 200) {
    std::string detail = is_json ? std::string(StringMember(doc, "error")) : "";
    const absl::string_view description = is_json ? StringMember(doc, "error_description") : "";
    if (!description.empty()) {
      detail =
          detail.empty() ? std::string(description) : absl::StrCat(detail, " (", description, ")");
    }
    if (detail.empty()) detail = Excerpt(result.body);
    const std::string message = absl::StrCat(where, " answered ", result.http_status, ": ", detail);
    if (result.http_status >= 500 || result.http_status == 429) {
      return absl::UnavailableError(message);
    }
    return absl::PermissionDeniedError(message);
  }
  if (!is_json) {
    return absl::InternalError(
        absl::StrCat(where, " answered 200 with a body that is not JSON: ", Excerpt(result.body)));
  }
  const absl::string_view access_token = StringMember(doc, "access_token");
  if (access_token.empty()) {
    return absl::InternalError(absl::StrCat(where, " answered 200 without an access_token"));
  }
  const absl::string_view token_type = StringMember(doc, "token_type");
  if (!token_type.empty() && !absl::EqualsIgnoreCase(token_type, "bearer")) {
    return absl::InternalError(absl::StrCat(where, " gave a token of type '", token_type,
                                            "'; only bearer tokens are supported"));
  }
  int64_t expires_in = ExpiresIn(doc);
  if (expires_in <= 0) expires_in = kDefaultExpiresInSeconds;
  if (expires_in > kMaxExpiresInSeconds) expires_in = kMaxExpiresInSeconds;
  const int64_t lifetime_ms = expires_in * 1000;
  // Short-lived tokens are kept for at least half their life rather than not at all.
  const int64_t margin_ms = lifetime_ms / 2 < kRefreshMarginMs ? lifetime_ms / 2 : kRefreshMarginMs;
  token_ = std::string(access_token);
  refresh_at_ms_ = now_ms + lifetime_ms - margin_ms;
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<TokenSource>> TokenSourceForDestination(
    const v1::Destination& destination) {
  if (!destination.auth().has_oauth2()) return std::shared_ptr<TokenSource>();
  TokenSourceOptions options;
  options.ca_file = destination.ca_file();
  if (destination.connect_timeout_ms() > 0) {
    options.connect_timeout_ms = destination.connect_timeout_ms();
  }
  if (destination.request_timeout_ms() > 0) {
    options.request_timeout_ms = destination.request_timeout_ms();
  }
  return TokenSource::Create(destination.auth().oauth2(), std::move(options));
}

}  // namespace fhirgw::gateway
