// The one mapping between absl::Status, which the gateway's code returns, and grpc::Status, which
// its gRPC services answer and its command-line clients receive. Both use the canonical codes of
// google.rpc.Code, so a code keeps its number and its name either way.
//
//   reactor->Finish(ToGrpcStatus(store_.Get(id).status()));
//   std::fprintf(err, "%s %s\n", StatusCodeName(status.error_code()),
//                status.error_message().c_str());  // "NOT_FOUND no transaction 'x'"
#ifndef FHIRGW_GATEWAY_SERVICE_STATUS_H_
#define FHIRGW_GATEWAY_SERVICE_STATUS_H_

#include <string>

#include "absl/status/status.h"
#include "grpcpp/support/status.h"

namespace fhirgw::gateway {

// Returns `status` as a grpc::Status with the same code and message.
grpc::Status ToGrpcStatus(const absl::Status& status);

// Returns the canonical name of `code`, "INVALID_ARGUMENT" for example; "UNKNOWN" for a number
// outside the canonical codes.
std::string StatusCodeName(grpc::StatusCode code);

}  // namespace fhirgw::gateway

#endif  // FHIRGW_GATEWAY_SERVICE_STATUS_H_
