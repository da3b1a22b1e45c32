// Loading, defaulting and checking the gateway's configuration (fhirgw.v1.GatewayConfig,
// textproto).
//
//   FHIRGW_ASSIGN_OR_RETURN(v1::GatewayConfig config, LoadConfigFile("fhirgw.textproto"));
//   ApplyDefaults(config);
//   FHIRGW_RETURN_IF_ERROR(ValidateConfig(config));
//   Routing routing(config);
//   routing.DestinationFor("lakeside-ketamine");  // "st-olaf-ehr"
#ifndef FHIRGW_GATEWAY_CONFIG_CONFIG_H_
#define FHIRGW_GATEWAY_CONFIG_CONFIG_H_

#include <string>
#include <unordered_map>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "fhirgw/v1/config.pb.h"
#include "mappers/common.h"

namespace fhirgw::gateway {

inline constexpr char kDefaultListen[] = "127.0.0.1:50051";
inline constexpr char kDefaultHttpListen[] = "127.0.0.1:8080";
inline constexpr char kDefaultDataDir[] = "var";
inline constexpr char kOutboxDestination[] = "outbox";

// Parses a textproto GatewayConfig; errors carry the file's line and column.
absl::StatusOr<v1::GatewayConfig> LoadConfigFile(const std::string& path);
absl::StatusOr<v1::GatewayConfig> ParseConfig(absl::string_view text, absl::string_view name);

// Fills every unset field with its documented default; with no destination at all, adds the file
// outbox "outbox" (file:<data_dir>/outbox).
void ApplyDefaults(v1::GatewayConfig& config);

// Checks the whole configuration and names every bad field, e.g.
// "destinations[0].base_url: 'ftp://x' must start with http://, https:// or file:".
absl::Status ValidateConfig(const v1::GatewayConfig& config);

// Splits "HOST:PORT" ("[::1]:50051" for IPv6); InvalidArgument naming `field` on error.
absl::Status SplitHostPort(absl::string_view address, absl::string_view field, std::string& host,
                           int& port);

// Returns the contents of the file at `path`, which the config field `field` names; on failure
// InvalidArgument "<field>: cannot read '<path>': <reason>" (a bad setting, whatever errno said).
absl::StatusOr<std::string> ReadConfiguredFile(const std::string& path, absl::string_view field);

// Which destination a clinic's records go to, and how they are mapped.
class Routing {
 public:
  explicit Routing(const v1::GatewayConfig& config);

  const std::string& DestinationFor(absl::string_view clinic_id) const;
  // The mapping context of a tenant: its identifier systems and options.
  mappers::MapContext ContextFor(absl::string_view clinic_id) const;

 private:
  const v1::GatewayConfig& config_;
  std::unordered_map<std::string, const v1::Tenant*> tenants_;
};

}  // namespace fhirgw::gateway

#endif  // FHIRGW_GATEWAY_CONFIG_CONFIG_H_
