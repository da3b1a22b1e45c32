// fhirgw: the HL7 FHIR integration gateway for ketamine and esketamine infusion clinics.
//
//   fhirgw serve [--config=FILE] [--listen=HOST:PORT] [--data_dir=DIR] [--ehr_url=URL] [--insecure]
//   fhirgw push --target=HOST:PORT FILE...
//   fhirgw translate FILE|-
//   fhirgw audit query|show ID|export|verify --target=HOST:PORT
//   fhirgw version
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "gateway/audit_command.h"
#include "gateway/bench_command.h"
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
ABSL_FLAG(bool, insecure, false,
          "serve: allow a non-loopback listen address without TLS and credentials (testing only: "
          "tokens and patient data would cross the network in plain text)");
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
ABSL_FLAG(std::string, mode, "open",
          "bench: 'open' (sends scheduled at --rate) or 'closed' (--concurrency outstanding)");
ABSL_FLAG(double, rate, 1000, "bench: open loop, pushes per second");
ABSL_FLAG(int, concurrency, 64, "bench: closed loop, pushes outstanding");
ABSL_FLAG(double, duration_s, 10, "bench: seconds measured (after --warmup_s)");
ABSL_FLAG(double, warmup_s, 1, "bench: seconds sent before the measurement");
ABSL_FLAG(int64_t, count, 0, "bench: send exactly this many records, then stop (0: by duration)");
ABSL_FLAG(std::string, mix, "realistic",
          "bench: record mix: realistic, infusion, questionnaire, medication_statement, encounter");
ABSL_FLAG(std::string, token, "",
          "push, watch, audit, bench: bearer token (default: $FHIRGW_TOKEN)");
ABSL_FLAG(std::string, examples_dir, "examples", "bench: the folder of example records");
ABSL_FLAG(int, threads, 1, "bench: driver threads, each with its own connection");
ABSL_FLAG(std::string, run_id, "", "bench: record id prefix (default: from the clock)");
ABSL_FLAG(int, patients, 1000, "bench: distinct patients the records are spread over");

ABSL_FLAG(std::string, patient, "",
          "audit query: the clinic's patient id, or an identifier as system|value");
ABSL_FLAG(std::string, kind, "",
          "audit query: infusion, medication_statement, questionnaire, encounter or patient");
ABSL_FLAG(std::string, direction, "",
          "audit query: outbound (clinic_to_ehr) or inbound (ehr_to_clinic)");
ABSL_FLAG(
    std::string, status, "",
    "audit query: accepted, delivering, delivered, retrying, rejected, dead_letter, recorded");
ABSL_FLAG(std::string, destination, "", "audit query: the destination's name");
ABSL_FLAG(std::string, record_id, "", "audit query: the clinic's record id");
ABSL_FLAG(std::string, from, "",
          "audit query, export: from this time on (RFC 3339, or a date meaning midnight UTC)");
ABSL_FLAG(std::string, to, "", "audit query, export: before this time (exclusive)");
ABSL_FLAG(int, page_size, 50, "audit query: transactions per page (1..1000)");
ABSL_FLAG(std::string, page_token, "", "audit query: continue after a previous page");
ABSL_FLAG(bool, all, false, "audit query: follow page tokens to the last page");
ABSL_FLAG(std::string, tls_ca_file, "",
          "push, watch, audit: PEM CA bundle that verifies a TLS --target (without it: plaintext)");

namespace {

constexpr char kUsage[] =
    "usage: fhirgw COMMAND [flags] [args]\n"
    "\n"
    "commands:\n"
    "  serve              run the gateway (gRPC push, transaction log, delivery to EHRs) until\n"
    "                     SIGTERM; flags --config, --listen, --http_listen, --data_dir, "
    "--ehr_url,\n"
    "                     --insecure\n"
    "  push FILE...       send records (JSON or NDJSON, '-' for stdin) to --target=HOST:PORT;\n"
    "                     one line per result\n"
    "  watch              follow the hospital records for --clinic=ID from --target=HOST:PORT\n"
    "                     (WatchInbound), one JSON line per event; --cursor resumes\n"
    "  translate FILE|-   map clinic records (protobuf JSON, or NDJSON one a line) to FHIR R4\n"
    "                     transaction Bundles on stdout; problems on stderr as 'path: message'.\n"
    "                     Exit status 0 ok, 1 unreadable input, 2 invalid record(s).\n"
    "  bench              load generator: async Push to --target=HOST:PORT, --mode=open (--rate)\n"
    "                     or closed (--concurrency), --duration_s, --mix; reports the achieved\n"
    "                     rate and p50/p90/p99/p99.9 latency\n"
    "  bench-server       answer Push at once and do nothing else (the benchmark's baseline) on\n"
    "                     --listen=HOST:PORT\n"
    "  audit query|show ID|export|verify\n"
    "                     the auditors' view of --target=HOST:PORT (--token or $FHIRGW_TOKEN):\n"
    "                     query one line per transaction (--clinic --patient --kind --direction\n"
    "                     --status --destination --record_id --from --to --page_size --all),\n"
    "                     show a transaction as JSON, export AuditEvents as NDJSON, verify the\n"
    "                     hash chain (exit 3 when the log was altered)\n"
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
    flags.insecure = absl::GetFlag(FLAGS_insecure);
    return fhirgw::gateway::RunServe(flags);
  }
  if (command == "push") {
    fhirgw::gateway::PushFlags flags;
    flags.target = absl::GetFlag(FLAGS_target);
    flags.token = absl::GetFlag(FLAGS_token);
    flags.tls_ca_file = absl::GetFlag(FLAGS_tls_ca_file);
    flags.wait_for_delivery = absl::GetFlag(FLAGS_wait);
    flags.timeout_ms = absl::GetFlag(FLAGS_timeout_ms);
    return fhirgw::gateway::RunPush(flags, {args.begin() + 1, args.end()}, stdin, stdout, stderr);
  }
  if (command == "watch") {
    fhirgw::gateway::WatchFlags flags;
    flags.target = absl::GetFlag(FLAGS_target);
    flags.token = absl::GetFlag(FLAGS_token);
    flags.tls_ca_file = absl::GetFlag(FLAGS_tls_ca_file);
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
  if (command == "bench") {
    fhirgw::gateway::BenchFlags flags;
    flags.target = absl::GetFlag(FLAGS_target);
    flags.mode = absl::GetFlag(FLAGS_mode);
    flags.rate = absl::GetFlag(FLAGS_rate);
    flags.concurrency = absl::GetFlag(FLAGS_concurrency);
    flags.duration_s = absl::GetFlag(FLAGS_duration_s);
    flags.warmup_s = absl::GetFlag(FLAGS_warmup_s);
    flags.count = absl::GetFlag(FLAGS_count);
    flags.mix = absl::GetFlag(FLAGS_mix);
    flags.token = absl::GetFlag(FLAGS_token);
    flags.examples_dir = absl::GetFlag(FLAGS_examples_dir);
    flags.threads = absl::GetFlag(FLAGS_threads);
    flags.run_id = absl::GetFlag(FLAGS_run_id);
    flags.patients = absl::GetFlag(FLAGS_patients);
    flags.timeout_ms = absl::GetFlag(FLAGS_timeout_ms);
    return fhirgw::gateway::RunBench(flags, stdout, stderr);
  }
  if (command == "bench-server") {
    fhirgw::gateway::BenchServerFlags flags;
    if (!absl::GetFlag(FLAGS_listen).empty()) flags.listen = absl::GetFlag(FLAGS_listen);
    return fhirgw::gateway::RunBenchServer(flags, stdout, stderr);
  }
  if (command == "audit") {
    fhirgw::gateway::AuditFlags flags;
    flags.target = absl::GetFlag(FLAGS_target);
    flags.token = absl::GetFlag(FLAGS_token);
    flags.tls_ca_file = absl::GetFlag(FLAGS_tls_ca_file);
    flags.timeout_ms = absl::GetFlag(FLAGS_timeout_ms);
    flags.clinic = absl::GetFlag(FLAGS_clinic);
    flags.patient = absl::GetFlag(FLAGS_patient);
    flags.kind = absl::GetFlag(FLAGS_kind);
    flags.direction = absl::GetFlag(FLAGS_direction);
    flags.status = absl::GetFlag(FLAGS_status);
    flags.destination = absl::GetFlag(FLAGS_destination);
    flags.record_id = absl::GetFlag(FLAGS_record_id);
    flags.from = absl::GetFlag(FLAGS_from);
    flags.to = absl::GetFlag(FLAGS_to);
    flags.page_size = absl::GetFlag(FLAGS_page_size);
    flags.page_token = absl::GetFlag(FLAGS_page_token);
    flags.all = absl::GetFlag(FLAGS_all);
    return fhirgw::gateway::RunAudit(flags, {args.begin() + 1, args.end()}, stdout, stderr);
  }
  if (command == "version") {
    std::printf("fhirgw 0.1.0 (FHIR R4 4.0.1)\n");
    return 0;
  }
  std::fprintf(stderr, "fhirgw: unknown command '%s'\n\n%s\n", command.c_str(), kUsage);
  return 1;
}
