// fhirgw: the HL7 FHIR integration gateway for ketamine and esketamine infusion clinics.
//
//   fhirgw serve [--config=FILE] [--listen=HOST:PORT] [--data_dir=DIR] [--ehr_url=URL]
//   fhirgw push --target=HOST:PORT FILE...
//   fhirgw translate FILE|-
//   fhirgw version
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "gateway/push_command.h"
#include "gateway/serve_command.h"
#include "gateway/translate_command.h"

ABSL_FLAG(std::string, config, "", "serve: textproto fhirgw.v1.GatewayConfig file");
ABSL_FLAG(std::string, listen, "",
          "serve: gRPC address HOST:PORT (default 127.0.0.1:50051; port 0 picks a free port)");
ABSL_FLAG(std::string, http_listen, "",
          "serve: HTTP address for /healthz, /readyz, /metrics (default 127.0.0.1:8080; 'off')");
ABSL_FLAG(std::string, data_dir, "",
          "serve: directory for the log and the file outbox (default var)");
ABSL_FLAG(std::string, ehr_url, "",
          "serve: one FHIR R4 base URL that receives every clinic's records");
ABSL_FLAG(std::string, target, "", "push: the gateway's gRPC address HOST:PORT");
ABSL_FLAG(bool, wait, false, "push: wait until the EHR has answered (up to --timeout_ms)");
ABSL_FLAG(int, timeout_ms, 10000, "push: deadline of each push");
ABSL_FLAG(std::string, clinic, "", "watch: the clinic whose inbound records to follow");
ABSL_FLAG(std::string, cursor, "", "watch: resume after this cursor (from a previous event)");
ABSL_FLAG(int, max_events, 0, "watch: stop after this many events (0: follow until interrupted)");
ABSL_FLAG(bool, item_observations, false,
          "translate: also write one Observation per questionnaire item (hasMember of the total)");
ABSL_FLAG(bool, compact, false, "translate: print a single Bundle on one line");
ABSL_FLAG(bool, reverse, false,
          "translate: map FHIR R4 JSON (a resource, a Bundle, or NDJSON) to clinic records, one "
          "protobuf-JSON record a line");

namespace {

constexpr char kUsage[] =
    "usage: fhirgw COMMAND [flags] [args]\n"
    "\n"
    "commands:\n"
    "  serve              run the gateway (gRPC push, transaction log, delivery to EHRs) until\n"
    "                     SIGTERM; flags --config, --listen, --http_listen, --data_dir, --ehr_url\n"
    "  push FILE...       send records (JSON or NDJSON, '-' for stdin) to --target=HOST:PORT;\n"
    "                     one line per result\n"
    "  watch              follow the hospital records for --clinic=ID from --target=HOST:PORT\n"
    "                     (WatchInbound), one JSON line per event; --cursor resumes\n"
    "  translate FILE|-   map clinic records (protobuf JSON, or NDJSON one a line) to FHIR R4\n"
    "                     transaction Bundles on stdout; problems on stderr as 'path: message'.\n"
    "                     Exit status 0 ok, 1 unreadable input, 2 invalid record(s).\n"
    "  version            print the version\n"
    "\n"
    "Run 'fhirgw --help' for every flag.";

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  std::vector<std::string> args(positional.begin() + 1, positional.end());
  if (args.empty()) {
    std::fprintf(stderr, "%s\n", kUsage);
    return 1;
  }
  const std::string& command = args[0];
  if (command == "serve") {
    if (args.size() != 1) {
      std::fprintf(stderr, "usage: fhirgw serve [flags] (no arguments)\n");
      return 1;
    }
    fhirgw::gateway::ServeFlags flags;
    flags.config = absl::GetFlag(FLAGS_config);
    flags.listen = absl::GetFlag(FLAGS_listen);
    flags.http_listen = absl::GetFlag(FLAGS_http_listen);
    flags.data_dir = absl::GetFlag(FLAGS_data_dir);
    flags.ehr_url = absl::GetFlag(FLAGS_ehr_url);
    return fhirgw::gateway::RunServe(flags);
  }
  if (command == "push") {
    fhirgw::gateway::PushFlags flags;
    flags.target = absl::GetFlag(FLAGS_target);
    flags.wait_for_delivery = absl::GetFlag(FLAGS_wait);
    flags.timeout_ms = absl::GetFlag(FLAGS_timeout_ms);
    return fhirgw::gateway::RunPush(flags, {args.begin() + 1, args.end()}, stdin, stdout, stderr);
  }
  if (command == "watch") {
    fhirgw::gateway::WatchFlags flags;
    flags.target = absl::GetFlag(FLAGS_target);
    flags.clinic_id = absl::GetFlag(FLAGS_clinic);
    flags.cursor = absl::GetFlag(FLAGS_cursor);
    flags.max_events = absl::GetFlag(FLAGS_max_events);
    return fhirgw::gateway::RunWatch(flags, stdout, stderr);
  }
  if (command == "translate") {
    if (args.size() != 2) {
      std::fprintf(stderr, "usage: fhirgw translate FILE|-\n");
      return 1;
    }
    fhirgw::gateway::TranslateOptions options;
    options.item_observations = absl::GetFlag(FLAGS_item_observations);
    options.compact = absl::GetFlag(FLAGS_compact);
    options.reverse = absl::GetFlag(FLAGS_reverse);
    return fhirgw::gateway::RunTranslate(args[1], options, stdin, stdout, stderr);
  }
  if (command == "version") {
    std::printf("fhirgw 0.1.0 (FHIR R4 4.0.1)\n");
    return 0;
  }
  std::fprintf(stderr, "fhirgw: unknown command '%s'\n\n%s\n", command.c_str(), kUsage);
  return 1;
}
