#include "gateway/cli/client_channel.h"

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"

// Flags of every command that talks to a running gateway (push, watch, audit).
ABSL_FLAG(std::string, target, "", "the gateway's gRPC address HOST:PORT");
ABSL_FLAG(std::string, token, "", "bearer token (default: $FHIRGW_TOKEN)");
ABSL_FLAG(std::string, tls_ca_file, "",
          "PEM CA bundle that verifies a TLS --target (without it: plaintext)");
ABSL_FLAG(int, timeout_ms, 10000, "deadline of each call, in milliseconds");
ABSL_FLAG(std::string, clinic, "",
          "watch: the clinic whose inbound records to follow; audit query: filter by clinic");

namespace fhirgw::gateway {

absl::StatusOr<std::shared_ptr<grpc::Channel>> OpenClientChannel(const std::string& target,
                                                                 const std::string& tls_ca_file) {
  std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
  if (!tls_ca_file.empty()) {
    std::ifstream in(tls_ca_file);
    std::stringstream pem;
    pem << in.rdbuf();
    if (!in || pem.str().empty()) {
      return absl::NotFoundError(absl::StrCat("--tls_ca_file: cannot read ", tls_ca_file));
    }
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = pem.str();
    credentials = grpc::SslCredentials(options);
  }
  std::shared_ptr<grpc::Channel> channel = grpc::CreateChannel(target, credentials);
  if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(5))) {
    return absl::UnavailableError(absl::StrCat("cannot connect to ", target));
  }
  return channel;
}

std::string TokenFromFlagOrEnv(const std::string& flag) {
  if (!flag.empty()) return flag;
  const char* env = std::getenv("FHIRGW_TOKEN");
  return env == nullptr ? "" : env;
}

void AddBearerToken(grpc::ClientContext& context, const std::string& token) {
  if (!token.empty()) context.AddMetadata("authorization", absl::StrCat("Bearer ", token));
}

std::string TargetFlag() { return absl::GetFlag(FLAGS_target); }
std::string TokenFlag() { return absl::GetFlag(FLAGS_token); }
std::string TlsCaFileFlag() { return absl::GetFlag(FLAGS_tls_ca_file); }
int TimeoutMsFlag() { return absl::GetFlag(FLAGS_timeout_ms); }
std::string ClinicFlag() { return absl::GetFlag(FLAGS_clinic); }

const char* StatusCodeName(grpc::StatusCode code) {
  static constexpr const char* kNames[] = {"OK",
                                           "CANCELLED",
                                           "UNKNOWN",
                                           "INVALID_ARGUMENT",
                                           "DEADLINE_EXCEEDED",
                                           "NOT_FOUND",
                                           "ALREADY_EXISTS",
                                           "PERMISSION_DENIED",
                                           "RESOURCE_EXHAUSTED",
                                           "FAILED_PRECONDITION",
                                           "ABORTED",
                                           "OUT_OF_RANGE",
                                           "UNIMPLEMENTED",
                                           "INTERNAL",
                                           "UNAVAILABLE",
                                           "DATA_LOSS",
                                           "UNAUTHENTICATED"};
  const int index = static_cast<int>(code);
  return index >= 0 && index < 17 ? kNames[index] : "UNKNOWN";
}

}  // namespace fhirgw::gateway
