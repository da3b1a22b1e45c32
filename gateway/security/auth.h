// Authentication and authorization: who is calling (a bearer token, a client certificate, or the
// development principal) and whether that caller may do what it asks.
//
//   FHIRGW_ASSIGN_OR_RETURN(std::unique_ptr<Authenticator> auth, Authenticator::Create(config,
//   flags)); absl::StatusOr<Principal> who = auth->FromGrpc(*context);        // Unauthenticated on
//   failure FHIRGW_RETURN_IF_ERROR(Authorize(*who, Action::kPush, record.clinic_id()));  //
//   PermissionDenied
//
// Tokens are configured only as SHA-256 digests. Roles: CLINIC (push, read its clinics'
// transactions and inbound stream), HOSPITAL (inbound FHIR push, read its destinations' traffic),
// AUDITOR (read-only audit, all clinics or the listed ones), ADMIN (everything, including Replay).
//
// Without any `security.credentials` the gateway runs in development mode: every caller is the
// development principal (ADMIN). Create allows that only on loopback addresses, or with --insecure.
// The deprecated `inbound.bearer_token_sha256` digests are HOSPITAL credentials for every
// destination; in development mode they still guard the inbound FHIR endpoint (inbound.h).
#ifndef FHIRGW_GATEWAY_SECURITY_AUTH_H_
#define FHIRGW_GATEWAY_SECURITY_AUTH_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "fhirgw/v1/config.pb.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/server_callback.h"
#include "httplib.h"

namespace fhirgw::gateway {

struct Principal {
  std::string name;  // the credential's name ("dev" in development mode)
  v1::Credential::Role role = v1::Credential::ROLE_UNSPECIFIED;
  std::vector<std::string> clinic_ids;    // scope of CLINIC and AUDITOR (AUDITOR: empty = all)
  std::vector<std::string> destinations;  // scope of HOSPITAL (empty = all)
  bool development = false;               // unauthenticated loopback development mode: ADMIN
};

enum class Action {
  kPush,             // ClinicGateway.Push, PushStream, Translate: the record's clinic
  kReadTransaction,  // ClinicGateway.GetTransaction: the transaction's clinic and destination
  kWatchInbound,     // ClinicGateway.WatchInbound: the clinic
  kReplay,           // ClinicGateway.Replay
  kAudit,            // AuditService.*: the clinic filter (empty: all clinics)
  kInboundFhir,      // POST /fhir, /fhir/{Type}
  kMetrics,          // GET /metrics
};

// Decides whether `who` may do `action` on `clinic_id` (and, for hospitals, `destination`):
// OK, or PermissionDenied naming what is missing.
//
// kAudit with an empty `clinic_id` is allowed for every auditor: a scoped auditor's results must
// then be restricted with InScope, one transaction at a time.
absl::Status Authorize(const Principal& who, Action action, absl::string_view clinic_id,
                       absl::string_view destination = {});

// True when `who` covers `clinic_id`: ADMIN and development always, CLINIC its listed clinics,
// AUDITOR its listed clinics or all when none are listed, HOSPITAL never (hospitals are scoped by
// destination, see InDestinationScope).
bool InScope(const Principal& who, absl::string_view clinic_id);

// True when `who` covers `destination`: ADMIN and development always, HOSPITAL its listed
// destinations or all when none are listed, other roles never.
bool InDestinationScope(const Principal& who, absl::string_view destination);

// "CLINIC", "HOSPITAL", "AUDITOR", "ADMIN" (or "ROLE_UNSPECIFIED").
std::string RoleName(v1::Credential::Role role);

// True for 127.0.0.0/8, ::1 and "localhost": addresses only this host can reach.
bool IsLoopbackHost(absl::string_view host);

// Checks `config.security` (and the deprecated inbound.bearer_token_sha256) and names every bad
// field, e.g. "security.credentials[2].token_sha256: must be 64 hex digits ...".
absl::Status ValidateSecurityConfig(const v1::GatewayConfig& config);

struct SecurityFlags {
  // Serve without TLS and credentials on a non-loopback address anyway.
  bool insecure = false;
};

class Authenticator {
 public:
  // Checks the security settings against the listen addresses: serving on a non-loopback address
  // without TLS and credentials fails (unless `flags.insecure`); with no credentials on loopback it
  // enters development mode with a loud warning on stderr.
  static absl::StatusOr<std::unique_ptr<Authenticator>> Create(const v1::GatewayConfig& config,
                                                               const SecurityFlags& flags);
  virtual ~Authenticator() = default;

  // The caller of a gRPC call: "authorization: Bearer <token>" metadata, or the verified client
  // certificate's CN (mTLS), or the development principal. Unauthenticated otherwise.
  virtual absl::StatusOr<Principal> FromGrpc(const grpc::CallbackServerContext& context) const = 0;
  // The caller of an HTTP request ("Authorization: Bearer <token>", or the client certificate).
  virtual absl::StatusOr<Principal> FromHttp(const httplib::Request& request) const = 0;

  // The transport-independent part of FromGrpc and FromHttp: `authorization` is the value of the
  // Authorization header or metadata ("" when absent), `client_cert_cn` the subject CN of a
  // client certificate the TLS layer has verified ("" when none). A bearer token, when present,
  // takes precedence over the certificate.
  virtual absl::StatusOr<Principal> Authenticate(absl::string_view authorization,
                                                 absl::string_view client_cert_cn) const = 0;

  virtual bool development_mode() const = 0;
};

// Authenticates `request` and authorizes `action` on `clinic_id`/`destination`: the principal,
// Unauthenticated or PermissionDenied (see SetHttpAuthError).
absl::StatusOr<Principal> AuthorizeHttp(const Authenticator& auth, const httplib::Request& request,
                                        Action action, absl::string_view clinic_id = {},
                                        absl::string_view destination = {});

// Answers a failed AuthorizeHttp: 401 with "WWW-Authenticate: Bearer" for Unauthenticated, 403
// for PermissionDenied, with the reason as a text body (callers may replace the body).
void SetHttpAuthError(const absl::Status& status, httplib::Response& response);

// TLS server credentials for gRPC from `config.security.tls` (insecure credentials without it).
// With `tls.client_ca_file`, clients must present a certificate signed by that CA.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> GrpcServerCredentials(
    const v1::GatewayConfig& config);

}  // namespace fhirgw::gateway

#endif  // FHIRGW_GATEWAY_SECURITY_AUTH_H_
