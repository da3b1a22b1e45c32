#include "gateway/cli/watch_command.h"

#include <memory>

#include "absl/flags/flag.h"
#include "fhirgw/v1/gateway.grpc.pb.h"
#include "gateway/cli/client_channel.h"
#include "gateway/cli/command.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/grpcpp.h"

ABSL_FLAG(std::string, cursor, "", "resume after this cursor (from a previous event)");
ABSL_FLAG(int, max_events, 0, "stop after this many events (0: follow until interrupted)");

namespace fhirgw::gateway {

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
    std::fprintf(err, "fhirgw watch: %s %s\n", StatusCodeName(status.error_code()),
                 status.error_message().c_str());
    return status.error_code() == grpc::StatusCode::UNAVAILABLE ? 1 : 2;
  }
  return 0;
}

namespace {

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

const Command kWatchCommand = {
    "watch",
    "watch",
    "follow the hospital records for --clinic=ID from --target=HOST:PORT (WatchInbound),\n"
    "one JSON line per event; --cursor resumes",
    {"gateway/cli/watch_command.cc"},
    {"target", "token", "tls_ca_file", "clinic"},
    WatchMain};

}  // namespace fhirgw::gateway
