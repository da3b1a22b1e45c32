// `fhirgw-bench`: the push load generator and its do-nothing baseline server, a tool beside the
// product (the `fhirgw` binary has no benchmark flags). See load_generator.h and
// docs/PERFORMANCE.md.
//
//   fhirgw-bench server --listen=127.0.0.1:0
//   fhirgw-bench load --target=127.0.0.1:PORT --mode=closed --concurrency=64 --duration_s=10
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "gateway/cli/client_channel.h"
#include "tools/bench/load_generator.h"

// --target, --token and --timeout_ms are the client flags every fhirgw client shares
// (gateway/cli/client_channel.cc).

ABSL_FLAG(std::string, listen, "127.0.0.1:0", "server: gRPC address HOST:PORT");
ABSL_FLAG(std::string, mode, "open",
          "load: 'open' (sends scheduled at --rate) or 'closed' (--concurrency outstanding)");
ABSL_FLAG(double, rate, 1000, "load: open loop, pushes per second");
ABSL_FLAG(int, concurrency, 64, "load: closed loop, pushes outstanding");
ABSL_FLAG(double, duration_s, 10, "load: seconds measured (after --warmup_s)");
ABSL_FLAG(double, warmup_s, 1, "load: seconds sent before the measurement");
ABSL_FLAG(int64_t, count, 0, "load: send exactly this many records, then stop (0: by duration)");
ABSL_FLAG(std::string, mix, "realistic",
          "load: record mix: realistic, infusion, questionnaire, medication_statement, encounter");
ABSL_FLAG(std::string, examples_dir, "examples", "load: the folder of example records");
ABSL_FLAG(int, threads, 1, "load: driver threads, each with its own connection");
ABSL_FLAG(std::string, run_id, "", "load: record id prefix (default: from the clock)");
ABSL_FLAG(int, patients, 1000, "load: distinct patients the records are spread over");

namespace {

constexpr char kUsage[] =
    "usage: fhirgw-bench load|server [flags]\n"
    "  load    async Push to --target=HOST:PORT, --mode=open (--rate) or closed (--concurrency),\n"
    "          --duration_s, --mix; reports the achieved rate and p50/p90/p99/p99.9 latency\n"
    "  server  answer Push at once and do nothing else (the baseline) on --listen=HOST:PORT";

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  if (positional.size() != 2) {
    std::fprintf(stderr, "%s\n", kUsage);
    return 1;
  }
  const std::string command = positional[1];
  if (command == "load") {
    fhirgw::bench::BenchFlags flags;
    flags.target = fhirgw::gateway::TargetFlag();
    flags.mode = absl::GetFlag(FLAGS_mode);
    flags.rate = absl::GetFlag(FLAGS_rate);
    flags.concurrency = absl::GetFlag(FLAGS_concurrency);
    flags.duration_s = absl::GetFlag(FLAGS_duration_s);
    flags.warmup_s = absl::GetFlag(FLAGS_warmup_s);
    flags.count = absl::GetFlag(FLAGS_count);
    flags.mix = absl::GetFlag(FLAGS_mix);
    flags.token = fhirgw::gateway::TokenFlag();
    flags.examples_dir = absl::GetFlag(FLAGS_examples_dir);
    flags.threads = absl::GetFlag(FLAGS_threads);
    flags.run_id = absl::GetFlag(FLAGS_run_id);
    flags.patients = absl::GetFlag(FLAGS_patients);
    flags.timeout_ms = fhirgw::gateway::TimeoutMsFlag();
    return fhirgw::bench::RunBench(flags, stdout, stderr);
  }
  if (command == "server") {
    fhirgw::bench::BenchServerFlags flags;
    flags.listen = absl::GetFlag(FLAGS_listen);
    return fhirgw::bench::RunBenchServer(flags, stdout, stderr);
  }
  std::fprintf(stderr, "fhirgw-bench: unknown command '%s'\n%s\n", command.c_str(), kUsage);
  return 1;
}
