// `fhirgw-bench load` and `fhirgw-bench server`: the push load generator and its do-nothing
// baseline.
//
//   fhirgw-bench server --listen=127.0.0.1:0      # prints "listening on 127.0.0.1:PORT"
//   fhirgw-bench load --target=127.0.0.1:PORT --mode=closed --concurrency=64 --duration_s=10
//   fhirgw-bench load --target=127.0.0.1:PORT --mode=open --rate=2000 --duration_s=10
//
// The client is asynchronous (one gRPC CompletionQueue per driver thread) and sends
// ClinicGateway.Push requests built from the examples: mostly infusions with vital signs and
// questionnaires, some medication statements and encounters, every record id unique.
//
//   open loop    sends are scheduled by the clock at --rate; a request's latency runs from its
//                scheduled send time, so a slow server is charged for the requests it delayed
//                (no coordinated omission)
//   closed loop  --concurrency requests outstanding at any time; the achieved rate is the maximum
//                the target sustains with that many in flight
//
// The report gives the achieved rate (OK answers in the measured window), errors by status code
// and p50/p90/p99/p99.9/max latency from the sorted samples of the window, then the same as one
// JSON line for scripts. `bench-server` answers Push at once with a PushResponse of the gateway's
// size (a fresh transaction id, status, record id, version and the alerts the gateway would
// raise), doing nothing else: the same client against it gives the baseline that gateway figures
// are divided by.
#ifndef FHIRGW_TOOLS_BENCH_LOAD_GENERATOR_H_
#define FHIRGW_TOOLS_BENCH_LOAD_GENERATOR_H_

#include <cstdint>
#include <cstdio>
#include <string>

namespace fhirgw::bench {

struct BenchFlags {
  std::string target;         // HOST:PORT of a gateway or bench-server
  std::string mode = "open";  // "open" (fixed rate) or "closed" (fixed concurrency)
  double rate = 1000;         // open: requests per second, over all threads
  int concurrency = 64;       // closed: requests outstanding, over all threads
  double duration_s = 10;     // measured window
  double warmup_s = 1;        // sent before the window, not measured
  int64_t count = 0;          // > 0: send exactly this many records (no warmup), then stop
  // "realistic", or one kind: infusion, questionnaire, medication_statement, encounter.
  std::string mix = "realistic";
  // Sent as "authorization: Bearer <token>"; empty: $FHIRGW_TOKEN, if set.
  std::string token;
  std::string examples_dir = "examples";
  int threads = 1;         // driver threads, each with its own connection
  std::string run_id;      // record id prefix; empty picks one from the clock
  int patients = 1000;     // distinct patients the records are spread over
  int timeout_ms = 30000;  // deadline of each Push
};

// Runs the load generator; returns 0 when it ran and every request was answered OK, 1 when it
// could not run (bad flags, unreadable examples, target unreachable), 2 when some request failed.
int RunBench(const BenchFlags& flags, std::FILE* out, std::FILE* err);

struct BenchServerFlags {
  std::string listen = "127.0.0.1:0";
};

// Serves the do-nothing ClinicGateway.Push until SIGTERM or SIGINT; prints "listening on
// HOST:PORT" once ready. Returns the process exit status.
int RunBenchServer(const BenchServerFlags& flags, std::FILE* out, std::FILE* err);

}  // namespace fhirgw::bench

#endif  // FHIRGW_TOOLS_BENCH_LOAD_GENERATOR_H_
