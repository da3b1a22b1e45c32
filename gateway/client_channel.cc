#include "gateway/client_channel.h"

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"

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

}  // namespace fhirgw::gateway
