#include "gateway/service/status.h"

#include <utility>
#include <vector>

#include "fhirgw/v1/gateway.pb.h"
#include "mappers/safety.h"

namespace fhirgw::gateway {

grpc::Status ToGrpcStatus(const absl::Status& status) {
  if (status.ok()) return grpc::Status::OK;
  const auto code = static_cast<grpc::StatusCode>(status.code());
  std::vector<v1::Alert> alerts = mappers::AlertsOf(status);
  if (alerts.empty()) return grpc::Status(code, std::string(status.message()));
  // A rejected record's safety alerts travel as an AlertList in the error details
  // (grpc-status-details-bin, a google.rpc.Status), so that no alert is lost with the rejection.
  v1::RpcStatus details;
  details.set_code(static_cast<int>(status.code()));
  details.set_message(std::string(status.message()));
  v1::AlertList list;
  for (v1::Alert& alert : alerts) *list.add_alerts() = std::move(alert);
  details.add_details()->PackFrom(list);
  return grpc::Status(code, std::string(status.message()), details.SerializeAsString());
}

std::string StatusCodeName(grpc::StatusCode code) {
  std::string name = absl::StatusCodeToString(static_cast<absl::StatusCode>(code));
  return name.empty() ? "UNKNOWN" : name;
}

}  // namespace fhirgw::gateway
