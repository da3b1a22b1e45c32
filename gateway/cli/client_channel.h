// The gRPC channel the command-line clients (push, watch, audit) open to a gateway: plaintext, or
// TLS verified with --tls_ca_file, and the bearer token from --token or $FHIRGW_TOKEN.
//
//   FHIRGW_ASSIGN_OR_RETURN(auto channel, OpenClientChannel(target, tls_ca_file));
//   grpc::ClientContext context;
//   AddBearerToken(context, TokenFromFlagOrEnv(token_flag));
#ifndef FHIRGW_GATEWAY_CLI_CLIENT_CHANNEL_H_
#define FHIRGW_GATEWAY_CLI_CLIENT_CHANNEL_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/channel.h"
#include "grpcpp/client_context.h"
#include "grpcpp/support/status.h"

namespace fhirgw::gateway {

// Opens a channel to `target` and waits up to 5 s for it to connect; errors name the cause.
absl::StatusOr<std::shared_ptr<grpc::Channel>> OpenClientChannel(const std::string& target,
                                                                 const std::string& tls_ca_file);

// Returns `flag` when set, else $FHIRGW_TOKEN, else "".
std::string TokenFromFlagOrEnv(const std::string& flag);

// Adds "authorization: Bearer <token>" to `context` when `token` is set.
void AddBearerToken(grpc::ClientContext& context, const std::string& token);

// "INVALID_ARGUMENT" for grpc::StatusCode::INVALID_ARGUMENT (the names clients print).
const char* StatusCodeName(grpc::StatusCode code);

// The values of the flags every client command shares (defined in client_channel.cc): --target,
// --token, --tls_ca_file, --timeout_ms and --clinic.
std::string TargetFlag();
std::string TokenFlag();
std::string TlsCaFileFlag();
int TimeoutMsFlag();
std::string ClinicFlag();

}  // namespace fhirgw::gateway

#endif  // FHIRGW_GATEWAY_CLI_CLIENT_CHANNEL_H_
