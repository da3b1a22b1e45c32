// Authentication and authorization: who is calling (a bearer token, a client certificate, or the
// development principal) and whether that caller may do what it asks.
//
//   FHIRGW_ASSIGN_OR_RETURN(std::unique_ptr<Authenticator> auth, Authenticator::Create(config, flags));
//   absl::StatusOr<Principal> who = auth->FromGrpc(*context);        // Unauthenticated on failure
//   FHIRGW_RETURN_IF_ERROR(Authorize(*who, Action::kPush, record.clinic_id()));  // PermissionDenied
//
// Tokens are configured only as SHA-256 digests. Roles: CLINIC (push, read its clinics'
// transactions and inbound stream), HOSPITAL (inbound FHIR push, read its destinations' traffic),
// AUDITOR (read-only audit, all clinics or the listed ones), ADMIN (everything, including Replay).
#ifndef FHIRGW_GATEWAY_AUTH_H_
#define FHIRGW_GATEWAY_AUTH_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "fhirgw/v1/config.pb.h"
#include "grpcpp/server_context.h"
#include "grpcpp/support/server_callback.h"
#include "httplib.h"

namespace fhirgw::gateway {

struct Principal {
  std::string name;  // the credential's name ("dev" in development mode)
  v1::Credential::Role role = v1::Credential::ROLE_UNSPECIFIED;
  std::vector<std::string> clinic_ids;    // scope of CLINIC and AUDITOR (AUDITOR: empty = all)
  std::vector<std::string> destinations;  // scope of HOSPITAL
  bool development = false;               // unauthenticated loopback development mode: ADMIN
};

enum class Action {
  kPush,              // ClinicGateway.Push, PushStream, Translate: the record's clinic
  kReadTransaction,   // ClinicGateway.GetTransaction: the transaction's clinic and destination
  kWatchInbound,      // ClinicGateway.WatchInbound: the clinic
  kReplay,            // ClinicGateway.Replay
  kAudit,             // AuditService.*: the clinic filter (empty: all clinics)
  kInboundFhir,       // POST /fhir, /fhir/{Type}
  kMetrics,           // GET /metrics
};

// Decides whether `who` may do `action` on `clinic_id` (and, for hospitals, `destination`):
// OK, or PermissionDenied naming what is missing.
absl::Status Authorize(const Principal& who, Action action, absl::string_view clinic_id,
                       absl::string_view destination = {});

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

  virtual bool development_mode() const = 0;
};

// TLS server credentials for gRPC from `config.security.tls` (insecure credentials without it).
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> GrpcServerCredentials(
    const v1::GatewayConfig& config);

}  // namespace fhirgw::gateway

#endif  // FHIRGW_GATEWAY_AUTH_H_
