#include "gateway/cli/push_command.h"

#include <chrono>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "fhirgw/v1/gateway.grpc.pb.h"
#include "gateway/cli/client_channel.h"
#include "gateway/cli/command.h"
#include "gateway/cli/record_input.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/create_channel.h"
#include "mappers/record_json.h"

ABSL_FLAG(bool, wait, false, "push: wait until the EHR has answered (up to --timeout_ms)");

namespace fhirgw::gateway {

int RunPush(const PushFlags& flags, const std::vector<std::string>& files, std::FILE* in,
            std::FILE* out, std::FILE* err) {
  if (flags.target.empty() || files.empty()) {
    std::fprintf(err, "usage: fhirgw push --target=HOST:PORT [--wait] FILE...\n");
    return 1;
  }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      OpenClientChannel(flags.target, flags.tls_ca_file);
  if (!channel.ok()) {
    std::fprintf(err, "fhirgw push: %s\n", std::string(channel.status().message()).c_str());
    return 1;
  }
  auto stub = v1::ClinicGateway::NewStub(*channel);
  const std::string token = TokenFromFlagOrEnv(flags.token);
  bool refused = false;
  bool unreachable = false;
  for (const std::string& file : files) {
    absl::Status read = ForEachRecordText(file, in, [&](absl::string_view json, int line) {
      const std::string where = line == 0 ? file : absl::StrCat(file, ":", line);
      absl::StatusOr<v1::ClinicRecord> record = mappers::ParseRecordJson(json);
      if (!record.ok()) {
        std::fprintf(out, "%s - INVALID_ARGUMENT %s\n", where.c_str(),
                     std::string(record.status().message()).c_str());
        refused = true;
        return;
      }
      v1::PushRequest request;
      *request.mutable_record() = *std::move(record);
      request.set_wait_for_delivery(flags.wait_for_delivery);
      v1::PushResponse response;
      grpc::ClientContext context;
      AddBearerToken(context, token);
      context.set_deadline(std::chrono::system_clock::now() +
                           std::chrono::milliseconds(flags.timeout_ms));
      grpc::Status status = stub->Push(&context, request, &response);
      const std::string& record_id = request.record().record_id();
      if (!status.ok()) {
        std::fprintf(out, "%s %s %s %s\n", where.c_str(),
                     record_id.empty() ? "-" : record_id.c_str(),
                     StatusCodeName(status.error_code()), status.error_message().c_str());
        if (status.error_code() == grpc::StatusCode::UNAVAILABLE ||
            status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED) {
          unreachable = true;
        } else {
          refused = true;
        }
        return;
      }
      std::fprintf(
          out, "%s %s %s %s v%lld%s\n", where.c_str(), record_id.c_str(),
          response.transaction_id().c_str(), v1::TransactionStatus_Name(response.status()).c_str(),
          static_cast<long long>(response.version()), response.duplicate() ? " duplicate" : "");
      for (const v1::Alert& alert : response.alerts()) {
        std::fprintf(out, "  alert %s: %s\n", v1::Alert::Kind_Name(alert.kind()).c_str(),
                     alert.message().c_str());
      }
    });
    if (!read.ok()) {
      std::fprintf(err, "fhirgw push: %s\n", std::string(read.message()).c_str());
      unreachable = unreachable || !absl::IsInvalidArgument(read);
      refused = refused || absl::IsInvalidArgument(read);
    }
  }
  std::fflush(out);
  if (unreachable) return 1;
  return refused ? 2 : 0;
}

namespace {

int PushMain(const std::vector<std::string>& args) {
  PushFlags flags;
  flags.target = TargetFlag();
  flags.token = TokenFlag();
  flags.tls_ca_file = TlsCaFileFlag();
  flags.wait_for_delivery = absl::GetFlag(FLAGS_wait);
  flags.timeout_ms = TimeoutMsFlag();
  return RunPush(flags, args, stdin, stdout, stderr);
}

}  // namespace

const Command kPushCommand = {
    "push",
    "push FILE...",
    "send records (JSON or NDJSON, '-' for stdin) to --target=HOST:PORT; one line per result",
    {"gateway/cli/push_command.cc"},
    {"target", "token", "tls_ca_file", "timeout_ms"},
    PushMain};

}  // namespace fhirgw::gateway
