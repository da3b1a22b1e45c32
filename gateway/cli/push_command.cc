#include "gateway/cli/push_command.h"

#include <chrono>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "base/clock.h"
#include "fhirgw/v1/gateway.grpc.pb.h"
#include "gateway/cli/client_channel.h"
#include "gateway/cli/command.h"
#include "gateway/cli/record_input.h"
#include "gateway/service/status.h"
#include "google/protobuf/util/json_util.h"
#include "mappers/record_json.h"

ABSL_FLAG(bool, wait, false, "push: wait until the EHR has answered (up to --timeout_ms)");
ABSL_FLAG(std::string, cursor, "", "watch: resume after this cursor (from a previous event)");
ABSL_FLAG(int, max_events, 0, "watch: stop after this many events (0: follow until interrupted)");

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
      context.set_deadline(base::DeadlineFromNow(std::chrono::milliseconds(flags.timeout_ms)));
      grpc::Status status = stub->Push(&context, request, &response);
      const std::string& record_id = request.record().record_id();
      if (!status.ok()) {
        std::fprintf(out, "%s %s %s %s\n", where.c_str(),
                     record_id.empty() ? "-" : record_id.c_str(),
                     StatusCodeName(status.error_code()).c_str(), status.error_message().c_str());
        if (IsUnreachable(status)) {
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

int RunWatch(const WatchFlags& flags, std::FILE* out, std::FILE* err) {
  if (flags.target.empty() || flags.clinic_id.empty()) {
    std::fprintf(err, "usage: fhirgw watch --target=HOST:PORT --clinic=ID [--cursor=C]\n");
    return 1;
  }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      OpenClientChannel(flags.target, flags.tls_ca_file);
  if (!channel.ok()) {
    std::fprintf(err, "fhirgw watch: %s\n", std::string(channel.status().message()).c_str());
    return 1;
  }
  auto stub = v1::ClinicGateway::NewStub(*channel);
  grpc::ClientContext context;
  AddBearerToken(context, TokenFromFlagOrEnv(flags.token));
  v1::WatchInboundRequest request;
  request.set_clinic_id(flags.clinic_id);
  request.set_cursor(flags.cursor);
  std::unique_ptr<grpc::ClientReader<v1::InboundEvent>> reader =
      stub->WatchInbound(&context, request);
  v1::InboundEvent event;
  int seen = 0;
  google::protobuf::util::JsonPrintOptions options;
  while (reader->Read(&event)) {
    std::string line;
    (void)google::protobuf::util::MessageToJsonString(event, &line, options);
    std::fprintf(out, "%s\n", line.c_str());
    std::fflush(out);
    if (flags.max_events > 0 && ++seen >= flags.max_events) {
      context.TryCancel();
      break;
    }
  }
  grpc::Status status = reader->Finish();
  if (!status.ok() && status.error_code() != grpc::StatusCode::CANCELLED) {
    std::fprintf(err, "fhirgw watch: %s %s\n", StatusCodeName(status.error_code()).c_str(),
                 status.error_message().c_str());
    return status.error_code() == grpc::StatusCode::UNAVAILABLE ? 1 : 2;
  }
  return 0;
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

int WatchMain(const std::vector<std::string>& args) {
  if (!args.empty()) {
    std::fprintf(stderr, "usage: fhirgw watch --target=HOST:PORT --clinic=ID (no arguments)\n");
    return 1;
  }
  WatchFlags flags;
  flags.target = TargetFlag();
  flags.token = TokenFlag();
  flags.tls_ca_file = TlsCaFileFlag();
  flags.clinic_id = ClinicFlag();
  flags.cursor = absl::GetFlag(FLAGS_cursor);
  flags.max_events = absl::GetFlag(FLAGS_max_events);
  return RunWatch(flags, stdout, stderr);
}

}  // namespace

const Command kPushCommand = {
    "push",
    "push FILE...",
    "send records (JSON or NDJSON, '-' for stdin) to --target=HOST:PORT; one line per result",
    {"gateway/cli/push_command.cc", "gateway/cli/client_flags.cc"},
    PushMain};

const Command kWatchCommand = {
    "watch",
    "watch",
    "follow the hospital records for --clinic=ID from --target=HOST:PORT (WatchInbound),\n"
    "one JSON line per event; --cursor resumes",
    {"gateway/cli/push_command.cc", "gateway/cli/client_flags.cc"},
    WatchMain};

}  // namespace fhirgw::gateway
