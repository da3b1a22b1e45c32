#include "gateway/security/auth.h"

#include <openssl/bio.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/ssl.h>
#include <openssl/x509.h>

#include <map>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/digest.h"
#include "base/openssl_error.h"
#include "fhir/status_macros.h"
#include "gateway/config/config.h"
#include "gateway/ops/log.h"
#include "grpcpp/security/auth_context.h"

namespace fhirgw::gateway {
namespace {

using Role = v1::Credential::Role;

constexpr char kDevelopmentName[] = "dev";
constexpr size_t kDigestBytes = base::kSha256Bytes;

// --- authorization ------------------------------------------------------------------------------

bool Contains(const std::vector<std::string>& list, absl::string_view value) {
  for (const std::string& item : list) {
    if (item == value) return true;
  }
  return false;
}

std::string ClinicText(absl::string_view clinic_id) {
  return clinic_id.empty() ? std::string("a record without clinic_id")
                           : absl::StrCat("clinic '", clinic_id, "'");
}

// What `who` covers, for messages: "its clinics: a, b", "all clinics", "its destinations: x".
std::string ScopeText(const Principal& who) {
  switch (who.role) {
    case v1::Credential::CLINIC:
      return absl::StrCat("its clinics: ", absl::StrJoin(who.clinic_ids, ", "));
    case v1::Credential::AUDITOR:
      return who.clinic_ids.empty()
                 ? "all clinics"
                 : absl::StrCat("its clinics: ", absl::StrJoin(who.clinic_ids, ", "));
    case v1::Credential::HOSPITAL:
      return who.destinations.empty()
                 ? "all destinations"
                 : absl::StrCat("its destinations: ", absl::StrJoin(who.destinations, ", "));
    default:
      return "no scope";
  }
}

absl::Status Denied(const Principal& who, absl::string_view what) {
  return absl::PermissionDeniedError(
      absl::StrCat("credential '", who.name, "' (", RoleName(who.role), ") may not ", what));
}

// --- authentication -----------------------------------------------------------------------------

bool IsHexDigest(absl::string_view text) {
  if (text.size() != 2 * kDigestBytes) return false;
  for (char c : text) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// The subject CN of the peer certificate of `ssl` once the handshake has verified it; "" when
// there is none.
std::string PeerCommonName(const SSL* ssl) {
  if (ssl == nullptr) return "";
  X509* cert = SSL_get0_peer_certificate(ssl);
  if (cert == nullptr || SSL_get_verify_result(ssl) != X509_V_OK) return "";
  X509_NAME* subject = X509_get_subject_name(cert);
  const int index = X509_NAME_get_index_by_NID(subject, NID_commonName, -1);
  if (index < 0) return "";
  ASN1_STRING* data = X509_NAME_ENTRY_get_data(X509_NAME_get_entry(subject, index));
  unsigned char* utf8 = nullptr;
  const int length = ASN1_STRING_to_UTF8(&utf8, data);
  if (length < 0) return "";
  std::string cn(reinterpret_cast<const char*>(utf8), static_cast<size_t>(length));
  OPENSSL_free(utf8);
  return cn;
}

// One configured caller.
struct Entry {
  Principal principal;
  std::string digest;  // SHA-256 of the token, 32 raw bytes; empty for certificate-only entries
  std::string client_cert_cn;
};

Principal DevelopmentPrincipal() {
  Principal dev;
  dev.name = kDevelopmentName;
  dev.role = v1::Credential::ADMIN;
  dev.development = true;
  return dev;
}

class AuthenticatorImpl final : public Authenticator {
 public:
  AuthenticatorImpl(std::vector<Entry> entries, bool development)
      : entries_(std::move(entries)), development_(development) {}

  absl::StatusOr<Principal> FromGrpc(const grpc::CallbackServerContext& context) const override {
    std::string authorization;
    const auto& metadata = context.client_metadata();
    if (auto it = metadata.find("authorization"); it != metadata.end()) {
      authorization.assign(it->second.data(), it->second.size());
    }
    std::string cn;
    std::shared_ptr<const grpc::AuthContext> auth_context = context.auth_context();
    if (auth_context != nullptr && auth_context->IsPeerAuthenticated()) {
      std::vector<grpc::string_ref> names = auth_context->FindPropertyValues("x509_common_name");
      if (!names.empty()) cn.assign(names.front().data(), names.front().size());
    }
    return Authenticate(authorization, cn);
  }

  absl::StatusOr<Principal> FromHttp(const httplib::Request& request) const override {
    return Authenticate(request.get_header_value("Authorization"), PeerCommonName(request.ssl));
  }

  absl::StatusOr<Principal> Authenticate(absl::string_view authorization,
                                         absl::string_view client_cert_cn) const override {
    authorization = absl::StripAsciiWhitespace(authorization);
    if (!authorization.empty()) {
      absl::string_view token = authorization;
      const bool bearer = token.size() > 7 && absl::StartsWithIgnoreCase(token, "Bearer ");
      if (bearer) token = absl::StripAsciiWhitespace(token.substr(7));
      if (bearer && !token.empty()) {
        const std::string digest = base::Sha256(token);
        // Every credential is compared, in constant time, so that timing tells nothing about which
        // digest (or how much of one) a guessed token matched.
        const Entry* match = nullptr;
        for (const Entry& entry : entries_) {
          if (entry.digest.size() != kDigestBytes) continue;
          const bool equal = CRYPTO_memcmp(entry.digest.data(), digest.data(), kDigestBytes) == 0;
          if (equal) match = &entry;
        }
        if (match != nullptr) return match->principal;
        if (development_) return DevelopmentPrincipal();
        return absl::UnauthenticatedError("the bearer token is not valid");
      }
      if (development_) return DevelopmentPrincipal();
      return absl::UnauthenticatedError(
          "authorization: expected 'Bearer <token>' (no other scheme is accepted)");
    }
    if (!client_cert_cn.empty()) {
      for (const Entry& entry : entries_) {
        if (!entry.client_cert_cn.empty() && entry.client_cert_cn == client_cert_cn) {
          return entry.principal;
        }
      }
      if (development_) return DevelopmentPrincipal();
      return absl::UnauthenticatedError(
          absl::StrCat("the client certificate (CN '", client_cert_cn,
                       "') is not mapped to a credential (security.credentials[].client_cert_cn)"));
    }
    if (development_) return DevelopmentPrincipal();
    return absl::UnauthenticatedError(
        "credentials required: send 'authorization: Bearer <token>' or a client certificate");
  }

  bool development_mode() const override { return development_; }

 private:
  const std::vector<Entry> entries_;
  const bool development_;
};

// --- TLS files ----------------------------------------------------------------------------------

// Checks that the configured PEM files parse and that the key belongs to the certificate.
absl::Status CheckTlsFiles(const v1::TlsConfig& tls) {
  if (tls.cert_file().empty()) return absl::OkStatus();
  FHIRGW_ASSIGN_OR_RETURN(std::string cert_pem,
                          ReadConfiguredFile(tls.cert_file(), "security.tls.cert_file"));
  FHIRGW_ASSIGN_OR_RETURN(std::string key_pem,
                          ReadConfiguredFile(tls.key_file(), "security.tls.key_file"));
  ERR_clear_error();
  std::unique_ptr<BIO, decltype(&BIO_free)> cert_bio(
      BIO_new_mem_buf(cert_pem.data(), static_cast<int>(cert_pem.size())), BIO_free);
  std::unique_ptr<X509, decltype(&X509_free)> cert(
      PEM_read_bio_X509(cert_bio.get(), nullptr, nullptr, nullptr), X509_free);
  if (cert == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("security.tls.cert_file: '", tls.cert_file(),
                     "' holds no PEM certificate: ", base::OpenSslErrors()));
  }
  std::unique_ptr<BIO, decltype(&BIO_free)> key_bio(
      BIO_new_mem_buf(key_pem.data(), static_cast<int>(key_pem.size())), BIO_free);
  std::unique_ptr<EVP_PKEY, decltype(&EVP_PKEY_free)> key(
      PEM_read_bio_PrivateKey(key_bio.get(), nullptr, nullptr, nullptr), EVP_PKEY_free);
  if (key == nullptr) {
    return absl::InvalidArgumentError(
        absl::StrCat("security.tls.key_file: '", tls.key_file(),
                     "' holds no PEM private key: ", base::OpenSslErrors()));
  }
  if (X509_check_private_key(cert.get(), key.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError(absl::StrCat("security.tls.key_file: '", tls.key_file(),
                                                   "' is not the key of security.tls.cert_file '",
                                                   tls.cert_file(), "'"));
  }
  if (!tls.client_ca_file().empty()) {
    FHIRGW_ASSIGN_OR_RETURN(std::string ca_pem, ReadConfiguredFile(tls.client_ca_file(),
                                                                   "security.tls.client_ca_file"));
    std::unique_ptr<BIO, decltype(&BIO_free)> ca_bio(
        BIO_new_mem_buf(ca_pem.data(), static_cast<int>(ca_pem.size())), BIO_free);
    std::unique_ptr<X509, decltype(&X509_free)> ca(
        PEM_read_bio_X509(ca_bio.get(), nullptr, nullptr, nullptr), X509_free);
    if (ca == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("security.tls.client_ca_file: '", tls.client_ca_file(),
                       "' holds no PEM certificate: ", base::OpenSslErrors()));
    }
  }
  return absl::OkStatus();
}

void WarnDevelopmentMode(const std::vector<std::string>& addresses, bool exposed) {
  const std::string rule(78, '*');
  LogWarning(rule);
  LogWarning("WARNING: fhirgw is running in development mode: no security.credentials are set.");
  LogWarning("WARNING: every caller is treated as ADMIN, without authentication, on");
  LogWarning(absl::StrCat("WARNING:   ", absl::StrJoin(addresses, " and ")));
  if (exposed) {
    LogWarning("WARNING: and --insecure makes that reachable from the network.");
  }
  LogWarning("WARNING: configure security.credentials and security.tls before handling real");
  LogWarning("WARNING: patient data (README.md, \"Security\").");
  LogWarning(rule);
}

}  // namespace

// --- public functions ---------------------------------------------------------------------------

std::string RoleName(v1::Credential::Role role) { return v1::Credential::Role_Name(role); }

bool IsLoopbackHost(absl::string_view host) {
  return host == "localhost" || host == "::1" || absl::StartsWith(host, "127.");
}

bool InScope(const Principal& who, absl::string_view clinic_id) {
  if (who.development || who.role == v1::Credential::ADMIN) return true;
  switch (who.role) {
    case v1::Credential::CLINIC:
      return !clinic_id.empty() && Contains(who.clinic_ids, clinic_id);
    case v1::Credential::AUDITOR:
      return who.clinic_ids.empty() || Contains(who.clinic_ids, clinic_id);
    default:
      return false;
  }
}

bool InDestinationScope(const Principal& who, absl::string_view destination) {
  if (who.development || who.role == v1::Credential::ADMIN) return true;
  if (who.role != v1::Credential::HOSPITAL) return false;
  return who.destinations.empty() || Contains(who.destinations, destination);
}

absl::Status Authorize(const Principal& who, Action action, absl::string_view clinic_id,
                       absl::string_view destination) {
  if (who.development || who.role == v1::Credential::ADMIN) return absl::OkStatus();
  const Role role = who.role;
  switch (action) {
    case Action::kPush:
      if (role != v1::Credential::CLINIC) {
        return Denied(who,
                      "push clinic records (Push, PushStream and Translate need a CLINIC "
                      "credential)");
      }
      if (InScope(who, clinic_id)) return absl::OkStatus();
      return Denied(who, absl::StrCat("push ", ClinicText(clinic_id), " (", ScopeText(who), ")"));
    case Action::kWatchInbound:
      if (role != v1::Credential::CLINIC) {
        return Denied(who,
                      "watch a clinic's inbound stream (WatchInbound needs a CLINIC credential)");
      }
      if (InScope(who, clinic_id)) return absl::OkStatus();
      return Denied(who, absl::StrCat("watch the inbound stream of ", ClinicText(clinic_id), " (",
                                      ScopeText(who), ")"));
    case Action::kReadTransaction:
      if ((role == v1::Credential::CLINIC || role == v1::Credential::AUDITOR) &&
          InScope(who, clinic_id)) {
        return absl::OkStatus();
      }
      if (role == v1::Credential::HOSPITAL && InDestinationScope(who, destination)) {
        return absl::OkStatus();
      }
      return Denied(who,
                    absl::StrCat("read a transaction of clinic '", clinic_id, "' and destination '",
                                 destination, "' (", ScopeText(who), ")"));
    case Action::kReplay:
      return Denied(who, "replay transactions (Replay needs an ADMIN credential)");
    case Action::kAudit:
      if (role != v1::Credential::AUDITOR) {
        return Denied(who, "use the audit service (it needs an AUDITOR or ADMIN credential)");
      }
      if (clinic_id.empty() || InScope(who, clinic_id)) return absl::OkStatus();
      return Denied(who, absl::StrCat("audit clinic '", clinic_id, "' (", ScopeText(who), ")"));
    case Action::kInboundFhir:
      if (role != v1::Credential::HOSPITAL) {
        return Denied(who, "post FHIR to the inbound endpoint (it needs a HOSPITAL credential)");
      }
      if (destination.empty() || InDestinationScope(who, destination)) return absl::OkStatus();
      return Denied(
          who, absl::StrCat("post FHIR as destination '", destination, "' (", ScopeText(who), ")"));
    case Action::kMetrics:
      if (role == v1::Credential::AUDITOR) return absl::OkStatus();
      return Denied(who, "read /metrics (it needs an ADMIN or AUDITOR credential)");
  }
  return Denied(who, "do this");
}

absl::Status ValidateSecurityConfig(const v1::GatewayConfig& config) {
  std::vector<std::string> errors;
  const v1::SecurityConfig& security = config.security();
  const v1::TlsConfig& tls = security.tls();
  if (!tls.cert_file().empty() && tls.key_file().empty()) {
    errors.push_back("security.tls.key_file: is required with cert_file");
  }
  if (tls.cert_file().empty() && !tls.key_file().empty()) {
    errors.push_back("security.tls.cert_file: is required with key_file");
  }
  if (tls.cert_file().empty() && !tls.client_ca_file().empty()) {
    errors.push_back(
        "security.tls.client_ca_file: needs cert_file and key_file (client certificates are "
        "verified only over TLS)");
  }
  std::map<std::string, std::string> names;    // name -> path of its first use
  std::map<std::string, std::string> digests;  // lower-case digest -> path
  std::map<std::string, std::string> cns;      // client_cert_cn -> path
  for (int i = 0; i < security.credentials_size(); ++i) {
    const v1::Credential& c = security.credentials(i);
    const std::string path = absl::StrCat("security.credentials[", i, "]");
    if (c.name().empty()) {
      errors.push_back(absl::StrCat(path, ".name: is required (it names the caller in the log)"));
    } else if (auto [it, inserted] = names.emplace(c.name(), path); !inserted) {
      errors.push_back(
          absl::StrCat(path, ".name: '", c.name(), "' is already the name of ", it->second));
    }
    if (c.role() == v1::Credential::ROLE_UNSPECIFIED) {
      errors.push_back(
          absl::StrCat(path, ".role: is required (CLINIC, HOSPITAL, AUDITOR or ADMIN)"));
    }
    if (c.token_sha256().empty() && c.client_cert_cn().empty()) {
      errors.push_back(absl::StrCat(path, ": needs token_sha256 or client_cert_cn"));
    }
    if (!c.token_sha256().empty()) {
      if (!IsHexDigest(c.token_sha256())) {
        // The value is not repeated: a mistaken configuration may hold the token itself.
        errors.push_back(absl::StrCat(
            path,
            ".token_sha256: must be 64 hex digits, the SHA-256 of the token (`printf %s "
            "\"$TOKEN\" | sha256sum`); got ",
            c.token_sha256().size(), " characters (not shown: it may be the token itself)"));
      } else if (auto [it, inserted] =
                     digests.emplace(absl::AsciiStrToLower(c.token_sha256()), path);
                 !inserted) {
        errors.push_back(absl::StrCat(path, ".token_sha256: is the same token as ", it->second));
      }
    }
    if (!c.client_cert_cn().empty()) {
      if (tls.client_ca_file().empty()) {
        errors.push_back(absl::StrCat(path,
                                      ".client_cert_cn: needs security.tls.client_ca_file (client "
                                      "certificates are accepted only with mTLS)"));
      }
      if (auto [it, inserted] = cns.emplace(c.client_cert_cn(), path); !inserted) {
        errors.push_back(absl::StrCat(path, ".client_cert_cn: '", c.client_cert_cn(),
                                      "' is already the certificate of ", it->second));
      }
    }
    const bool clinic_scoped =
        c.role() == v1::Credential::CLINIC || c.role() == v1::Credential::AUDITOR;
    if (c.role() == v1::Credential::CLINIC && c.clinic_ids().empty()) {
      errors.push_back(
          absl::StrCat(path, ".clinic_ids: a CLINIC credential needs at least one clinic id"));
    }
    if (!clinic_scoped && !c.clinic_ids().empty()) {
      errors.push_back(absl::StrCat(path,
                                    ".clinic_ids: only CLINIC and AUDITOR credentials have "
                                    "clinic ids (this one is ",
                                    RoleName(c.role()), ")"));
    }
    for (int k = 0; k < c.clinic_ids_size(); ++k) {
      if (c.clinic_ids(k).empty()) {
        errors.push_back(absl::StrCat(path, ".clinic_ids[", k, "]: is empty"));
      }
    }
    if (c.role() != v1::Credential::HOSPITAL && !c.destinations().empty()) {
      errors.push_back(absl::StrCat(path,
                                    ".destinations: only HOSPITAL credentials have "
                                    "destinations (this one is ",
                                    RoleName(c.role()), ")"));
    }
    for (int k = 0; k < c.destinations_size(); ++k) {
      if (c.destinations(k).empty()) {
        errors.push_back(absl::StrCat(path, ".destinations[", k, "]: is empty"));
      }
    }
  }
  for (int i = 0; i < config.inbound().bearer_token_sha256_size(); ++i) {
    const std::string& digest = config.inbound().bearer_token_sha256(i);
    const std::string path = absl::StrCat("inbound.bearer_token_sha256[", i, "]");
    if (!IsHexDigest(digest)) {
      errors.push_back(absl::StrCat(path, ": must be 64 hex digits, the SHA-256 of the token; got ",
                                    digest.size(),
                                    " characters (not shown: it may be the token "
                                    "itself)"));
    } else if (auto [it, inserted] = digests.emplace(absl::AsciiStrToLower(digest), path);
               !inserted) {
      errors.push_back(absl::StrCat(path, ": is the same token as ", it->second));
    }
  }
  if (errors.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("config: ", absl::StrJoin(errors, "; ")));
}

absl::StatusOr<std::unique_ptr<Authenticator>> Authenticator::Create(
    const v1::GatewayConfig& config, const SecurityFlags& flags) {
  FHIRGW_RETURN_IF_ERROR(ValidateSecurityConfig(config));
  const v1::SecurityConfig& security = config.security();
  FHIRGW_RETURN_IF_ERROR(CheckTlsFiles(security.tls()));
  const bool tls = !security.tls().cert_file().empty();
  const bool development = security.credentials().empty();

  std::vector<std::string> addresses;  // for the development-mode warning
  std::vector<std::string> exposed;    // non-loopback addresses allowed only by --insecure
  auto check = [&](const std::string& address, absl::string_view field) -> absl::Status {
    std::string host;
    int port = 0;
    FHIRGW_RETURN_IF_ERROR(SplitHostPort(address, field, host, port));
    addresses.push_back(absl::StrCat(address, field == "listen" ? " (gRPC)" : " (HTTP)"));
    if (IsLoopbackHost(host) || (tls && !development)) return absl::OkStatus();
    if (!flags.insecure) {
      std::vector<std::string> missing;
      if (!tls) missing.push_back("security.tls is not set");
      if (development) missing.push_back("security.credentials is empty");
      return absl::FailedPreconditionError(
          absl::StrCat("refusing to serve on ", address,
                       " without TLS and credentials; configure security.tls and "
                       "security.credentials, or pass --insecure (",
                       absl::StrJoin(missing, ", "), ")"));
    }
    exposed.push_back(address);
    return absl::OkStatus();
  };
  FHIRGW_RETURN_IF_ERROR(check(config.listen(), "listen"));
  if (config.http_listen() != "off")
    FHIRGW_RETURN_IF_ERROR(check(config.http_listen(), "http_listen"));

  std::vector<Entry> entries;
  for (const v1::Credential& c : security.credentials()) {
    Entry entry;
    entry.principal.name = c.name();
    entry.principal.role = c.role();
    entry.principal.clinic_ids.assign(c.clinic_ids().begin(), c.clinic_ids().end());
    entry.principal.destinations.assign(c.destinations().begin(), c.destinations().end());
    if (!c.token_sha256().empty()) {
      entry.digest = absl::HexStringToBytes(absl::AsciiStrToLower(c.token_sha256()));
    }
    entry.client_cert_cn = c.client_cert_cn();
    entries.push_back(std::move(entry));
  }
  for (int i = 0; i < config.inbound().bearer_token_sha256_size(); ++i) {
    Entry entry;
    entry.principal.name = absl::StrCat("inbound.bearer_token_sha256[", i, "]");
    entry.principal.role = v1::Credential::HOSPITAL;
    entry.digest =
        absl::HexStringToBytes(absl::AsciiStrToLower(config.inbound().bearer_token_sha256(i)));
    entries.push_back(std::move(entry));
  }

  if (development) {
    WarnDevelopmentMode(addresses, !exposed.empty());
  } else if (!exposed.empty()) {
    LogWarning(absl::StrCat("WARNING: --insecure: serving on ", absl::StrJoin(exposed, " and "),
                            " without TLS: bearer tokens and patient data cross the network in "
                            "plain text"));
  }
  return std::unique_ptr<Authenticator>(new AuthenticatorImpl(std::move(entries), development));
}

absl::StatusOr<Principal> AuthorizeHttp(const Authenticator& auth, const httplib::Request& request,
                                        Action action, absl::string_view clinic_id,
                                        absl::string_view destination) {
  FHIRGW_ASSIGN_OR_RETURN(Principal who, auth.FromHttp(request));
  FHIRGW_RETURN_IF_ERROR(Authorize(who, action, clinic_id, destination));
  return who;
}

void SetHttpAuthError(const absl::Status& status, httplib::Response& response) {
  if (absl::IsUnauthenticated(status)) {
    response.status = 401;
    response.set_header("WWW-Authenticate", "Bearer realm=\"fhirgw\"");
  } else if (absl::IsPermissionDenied(status)) {
    response.status = 403;
  } else {
    response.status = 500;
  }
  response.set_content(absl::StrCat(status.message(), "\n"), "text/plain; charset=utf-8");
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> GrpcServerCredentials(
    const v1::GatewayConfig& config) {
  const v1::TlsConfig& tls = config.security().tls();
  if (tls.cert_file().empty()) return grpc::InsecureServerCredentials();
  FHIRGW_RETURN_IF_ERROR(CheckTlsFiles(tls));
  FHIRGW_ASSIGN_OR_RETURN(std::string cert,
                          ReadConfiguredFile(tls.cert_file(), "security.tls.cert_file"));
  FHIRGW_ASSIGN_OR_RETURN(std::string key,
                          ReadConfiguredFile(tls.key_file(), "security.tls.key_file"));
  grpc::SslServerCredentialsOptions options(
      tls.client_ca_file().empty() ? GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE
                                   : GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  options.pem_key_cert_pairs.push_back({key, cert});
  if (!tls.client_ca_file().empty()) {
    FHIRGW_ASSIGN_OR_RETURN(
        options.pem_root_certs,
        ReadConfiguredFile(tls.client_ca_file(), "security.tls.client_ca_file"));
  }
  return grpc::SslServerCredentials(options);
}

}  // namespace fhirgw::gateway
