// The running gateway: the transaction log, the delivery workers, the gRPC services (with health
// and reflection) and the HTTP endpoints, started and drained together.
//
//   FHIRGW_ASSIGN_OR_RETURN(std::unique_ptr<GatewayServer> server, GatewayServer::Start(config));
//   std::printf("listening on %s\n", server->grpc_address().c_str());
//   ...  // until SIGTERM
//   server->Drain();
#ifndef FHIRGW_GATEWAY_SERVER_H_
#define FHIRGW_GATEWAY_SERVER_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "fhirgw/v1/config.pb.h"
#include "gateway/security/auth.h"

namespace fhirgw::gateway {

class GatewayServer {
 public:
  // Checks the security settings (Authenticator::Create with `security`), opens the log, recovers
  // work left in flight by a crash, and starts serving. `config` must have passed ApplyDefaults
  // and ValidateConfig.
  static absl::StatusOr<std::unique_ptr<GatewayServer>> Start(const v1::GatewayConfig& config,
                                                              const SecurityFlags& security = {});

  virtual ~GatewayServer() = default;

  // The bound addresses, HOST:PORT (port 0 in the config is replaced by the chosen port).
  virtual std::string grpc_address() const = 0;
  virtual std::string http_address() const = 0;

  // Stops accepting, finishes in-flight pushes and delivery attempts (up to the drain timeout),
  // commits the log and stops every thread.
  virtual void Drain() = 0;
};

}  // namespace fhirgw::gateway

#endif  // FHIRGW_GATEWAY_SERVER_H_
