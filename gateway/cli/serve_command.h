// `fhirgw serve`: runs the gateway until SIGTERM or SIGINT, then drains.
//
// With no flags it uses the embedded defaults (gRPC 127.0.0.1:50051, HTTP 127.0.0.1:8080, SQLite
// log under ./var, file destination ./var/outbox). Flags override the config file.
#ifndef FHIRGW_GATEWAY_CLI_SERVE_COMMAND_H_
#define FHIRGW_GATEWAY_CLI_SERVE_COMMAND_H_

#include <string>

#include "absl/status/statusor.h"
#include "fhirgw/v1/config.pb.h"

namespace fhirgw::gateway {

struct ServeFlags {
  std::string config;       // textproto GatewayConfig file
  std::string listen;       // overrides config.listen
  std::string http_listen;  // overrides config.http_listen
  std::string data_dir;     // overrides config.data_dir
  std::string ehr_url;      // one FHIR R4 destination for every clinic
  // Serve on a non-loopback address without TLS and credentials anyway (see auth.h).
  bool insecure = false;
};

// Builds the effective configuration: the file (if any), then the flags, then the defaults;
// checked.
absl::StatusOr<v1::GatewayConfig> EffectiveConfig(const ServeFlags& flags);

// Runs the gateway; returns the process exit status.
int RunServe(const ServeFlags& flags);

}  // namespace fhirgw::gateway

#endif  // FHIRGW_GATEWAY_CLI_SERVE_COMMAND_H_
