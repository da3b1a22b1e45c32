#include "tools/bench/load_generator.h"

#include <pthread.h>
#include <signal.h>
#include <sys/resource.h>
#include <time.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cmath>
#include <csignal>
#include <map>
#include <memory>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/clock.h"
#include "base/file.h"
#include "fhirgw/v1/gateway.grpc.pb.h"
#include "gateway/cli/client_channel.h"
#include "grpcpp/grpcpp.h"
#include "mappers/record_json.h"

namespace fhirgw::bench {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::nanoseconds;

// Requests outstanding at most in open-loop mode: past this the sender waits (the waiting still
// counts in the latency, which runs from the scheduled send time).
constexpr int64_t kMaxOutstandingPerThread = 20000;

// --- the record mix ---------------------------------------------------------------------------

// splitmix64: spreads consecutive record numbers over the mix and the patients, reproducibly.
uint64_t Mix64(uint64_t x) {
  x += 0x9e3779b97f4a7c15ULL;
  x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
  x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
  return x ^ (x >> 31);
}

const char* KindOf(const v1::ClinicRecord& record) {
  switch (record.body_case()) {
    case v1::ClinicRecord::kInfusion:
      return "infusion";
    case v1::ClinicRecord::kQuestionnaire:
      return "questionnaire";
    case v1::ClinicRecord::kMedicationStatement:
      return "medication_statement";
    case v1::ClinicRecord::kEncounter:
      return "encounter";
    default:
      return "other";
  }
}

absl::StatusOr<v1::ClinicRecord> LoadExample(const std::string& dir, const std::string& file) {
  const std::string path = absl::StrCat(dir, "/", file);
  absl::StatusOr<std::string> text = base::ReadFile(path);
  if (!text.ok()) {
    return absl::Status(
        text.status().code(),
        absl::StrCat(text.status().message(), " (--examples_dir names the examples/ folder)"));
  }
  absl::StatusOr<v1::ClinicRecord> record = mappers::ParseRecordJson(*text);
  if (!record.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", record.status().message()));
  }
  return record;
}

// The records a run sends: example templates with weights, each copy given a unique record id, a
// patient from a pool and encounter ids of its own (as tests/integration/harness.cc does), so that
// no two records collide at the EHR.
class RecordMix {
 public:
  static absl::StatusOr<RecordMix> Load(const std::string& dir, const std::string& mix) {
    struct Source {
      const char* file;
      int weight;  // per mille of the realistic mix
      bool item9_negative;
    };
    // Mostly infusions with vital signs and questionnaires; a PHQ-9 answered 0 on item 9 is the
    // common case, a positive one (an alert) and a stopped infusion (a severe adverse event) rare.
    constexpr Source kSources[] = {
        {"ketamine-infusion.json", 380, false},
        {"infusion-stopped-hypertension.json", 20, false},
        {"phq9-item9-positive.json", 200, true},
        {"phq9-item9-positive.json", 10, false},
        {"gad7.json", 170, false},
        {"sertraline-statement.json", 110, false},
        {"infusion-encounter.json", 110, false},
    };
    RecordMix result;
    for (const Source& source : kSources) {
      absl::StatusOr<v1::ClinicRecord> record = LoadExample(dir, source.file);
      if (!record.ok()) return record.status();
      if (mix != "realistic" && mix != KindOf(*record)) continue;
      if (source.item9_negative) {
        v1::QuestionnaireRecord& q = *record->mutable_questionnaire();
        for (v1::Answer& answer : *q.mutable_answers()) {
          if (answer.item() != 9) continue;
          if (q.has_reported_total()) q.set_reported_total(q.reported_total() - answer.value());
          answer.set_value(0);
        }
      }
      result.templates_.push_back(*std::move(record));
      result.total_ += source.weight;
      result.cumulative_.push_back(result.total_);
    }
    if (result.templates_.empty()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--mix=", mix,
          ": unknown (realistic, infusion, questionnaire, medication_statement or encounter)"));
    }
    return result;
  }

  // Fills `request` with record number `n` of the run `run_id`.
  void Make(uint64_t n, const std::string& run_id, int patients, v1::PushRequest& request) const {
    const uint64_t hash = Mix64(n);
    const int draw = static_cast<int>(hash % static_cast<uint64_t>(total_));
    const size_t index =
        std::upper_bound(cumulative_.begin(), cumulative_.end(), draw) - cumulative_.begin();
    v1::ClinicRecord& record = *request.mutable_record();
    record = templates_[index];
    const std::string record_id = absl::StrCat(run_id, "-", n);
    const std::string patient_id =
        absl::StrCat("BP-", (hash >> 32) % static_cast<uint64_t>(std::max(patients, 1)));
    record.set_record_id(record_id);
    record.mutable_patient()->set_clinic_patient_id(patient_id);
    for (v1::Identifier& identifier : *record.mutable_patient()->mutable_identifiers()) {
      identifier.set_value(absl::StrCat("MRN-", patient_id));
    }
    switch (record.body_case()) {
      case v1::ClinicRecord::kInfusion:
        record.mutable_infusion()->set_encounter_id(absl::StrCat("enc-", record_id));
        break;
      case v1::ClinicRecord::kQuestionnaire:
        record.mutable_questionnaire()->set_encounter_id(absl::StrCat("enc-", record_id));
        break;
      case v1::ClinicRecord::kEncounter:
        record.mutable_encounter()->set_encounter_id(record_id);
        break;
      default:
        break;
    }
  }

  // "infusion 40%, questionnaire 38%, ..." with the mean request size.
  std::string Describe() const {
    std::map<std::string, int> by_kind;
    double bytes = 0;
    int previous = 0;
    for (size_t i = 0; i < templates_.size(); ++i) {
      const int weight = cumulative_[i] - previous;
      previous = cumulative_[i];
      by_kind[KindOf(templates_[i])] += weight;
      bytes += static_cast<double>(weight) * static_cast<double>(templates_[i].ByteSizeLong());
    }
    std::vector<std::string> parts;
    for (const auto& [kind, weight] : by_kind) {
      parts.push_back(absl::StrFormat("%s %.0f%%", kind, 100.0 * weight / total_));
    }
    return absl::StrFormat("%s; mean record %.0f bytes", absl::StrJoin(parts, ", "),
                           bytes / total_);
  }

 private:
  std::vector<v1::ClinicRecord> templates_;
  std::vector<int> cumulative_;
  int total_ = 0;
};

// --- the client -------------------------------------------------------------------------------

// One Push in flight; deleted when its answer has been counted.
struct Call {
  grpc::ClientContext context;
  v1::PushResponse response;
  grpc::Status status;
  std::unique_ptr<grpc::ClientAsyncResponseReader<v1::PushResponse>> reader;
  Clock::time_point start;  // open loop: the scheduled send time; closed loop: the actual one
};

// What one driver thread saw.
struct DriverStats {
  std::vector<int64_t> latencies_ns;  // OK answers to requests started in the window
  int64_t sent = 0;
  int64_t ok = 0;
  int64_t ok_in_window = 0;  // OK answers received inside the window (the achieved rate)
  int64_t errors = 0;
  std::map<int, int64_t> errors_by_code;
  std::string first_error;
  int64_t max_send_lag_ns = 0;  // open loop: how late the sender was against its schedule
  int64_t max_outstanding = 0;
  Clock::time_point last_answer{};
};

struct RunPlan {
  bool open_loop = true;
  Clock::time_point start;         // the first send
  Clock::time_point window_start;  // measurement starts (after the warmup)
  Clock::time_point send_until;    // no send starts at or after this (duration mode)
  int64_t count = 0;               // > 0: this driver sends exactly this many
  double rate = 0;                 // open loop, this driver's share
  int concurrency = 0;             // closed loop, this driver's share
  uint64_t first_number = 0;       // record numbers are first_number + k * stride
  uint64_t stride = 1;
};

// Sleeps until `when` on the monotonic clock (the clock steady_clock reads on Linux).
void SleepUntil(Clock::time_point when) {
  const int64_t ns = std::chrono::duration_cast<nanoseconds>(when.time_since_epoch()).count();
  timespec ts;
  ts.tv_sec = static_cast<time_t>(ns / 1000000000);
  ts.tv_nsec = static_cast<long>(ns % 1000000000);
  while (clock_nanosleep(CLOCK_MONOTONIC, TIMER_ABSTIME, &ts, nullptr) == EINTR) {
  }
}

// One connection, one CompletionQueue, one thread reading answers (and, in the open loop, one
// thread sending by the clock).
class Driver {
 public:
  Driver(const BenchFlags& flags, const RecordMix& mix, const std::string& run_id, int index)
      : flags_(flags), mix_(mix), run_id_(run_id) {
    grpc::ChannelArguments args;
    // A channel of its own per driver: separate connections, as separate clinics would have.
    args.SetInt("fhirgw.bench.driver", index);
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    channel_ = grpc::CreateCustomChannel(flags.target, grpc::InsecureChannelCredentials(), args);
    stub_ = v1::ClinicGateway::NewStub(channel_);
  }

  bool Connect(std::chrono::seconds timeout) {
    return channel_->WaitForConnected(base::DeadlineFromNow(timeout));
  }

  void Run(const RunPlan& plan) {
    plan_ = plan;
    if (plan.open_loop) {
      std::thread sender([this] { SendByClock(); });
      Receive();
      sender.join();
    } else {
      SleepUntil(plan.start);
      for (int i = 0; i < plan.concurrency && MaySend(Clock::now()); ++i) Send(Clock::now());
      Receive();
    }
  }

  DriverStats& stats() { return stats_; }

 private:
  // True while the plan allows another send at `now` (sent_ counts the ones started).
  bool MaySend(Clock::time_point now) const {
    if (plan_.count > 0) return sent_.load(std::memory_order_relaxed) < plan_.count;
    return now < plan_.send_until;
  }

  // Starts record number `sent_` with its latency measured from `start`.
  void Send(Clock::time_point start) {
    const int64_t k = sent_.load(std::memory_order_relaxed);
    mix_.Make(plan_.first_number + static_cast<uint64_t>(k) * plan_.stride, run_id_,
              flags_.patients, request_);
    auto* call = new Call;
    call->start = start;
    call->context.set_deadline(base::DeadlineFromNow(std::chrono::milliseconds(flags_.timeout_ms)));
    gateway::AddBearerToken(call->context, flags_.token);
    // Counted before it starts, so that its answer can never make the count go below zero.
    outstanding_.fetch_add(1, std::memory_order_relaxed);
    sent_.store(k + 1, std::memory_order_release);
    call->reader = stub_->PrepareAsyncPush(&call->context, request_, &cq_);
    call->reader->StartCall();
    call->reader->Finish(&call->response, &call->status, call);
  }

  // Open loop: sends request k at start + k / rate, on time or as soon as possible after.
  void SendByClock() {
    const double interval_ns = 1e9 / plan_.rate;
    for (int64_t k = 0;; ++k) {
      const Clock::time_point scheduled =
          plan_.start + nanoseconds(static_cast<int64_t>(std::llround(interval_ns * k)));
      if (!MaySend(scheduled)) break;
      if (Clock::now() < scheduled) SleepUntil(scheduled);
      while (outstanding_.load(std::memory_order_relaxed) >= kMaxOutstandingPerThread) {
        std::this_thread::sleep_for(std::chrono::microseconds(100));
      }
      const int64_t lag = std::chrono::duration_cast<nanoseconds>(Clock::now() - scheduled).count();
      max_send_lag_ns_ = std::max(max_send_lag_ns_, lag);
      Send(scheduled);
    }
    sending_done_.store(true, std::memory_order_release);
  }

  // Counts answers until every request sent has been answered.
  void Receive() {
    while (true) {
      if (outstanding_.load(std::memory_order_acquire) == 0 && SendingDone()) break;
      void* tag = nullptr;
      bool ok = false;
      // A short deadline, so that the end of sending is noticed when nothing is outstanding.
      const grpc::CompletionQueue::NextStatus next =
          cq_.AsyncNext(&tag, &ok, base::DeadlineFromNow(std::chrono::milliseconds(20)));
      if (next == grpc::CompletionQueue::SHUTDOWN) break;
      if (next == grpc::CompletionQueue::TIMEOUT) continue;
      std::unique_ptr<Call> call(static_cast<Call*>(tag));
      const Clock::time_point now = Clock::now();
      Count(*call, now);
      outstanding_.fetch_sub(1, std::memory_order_acq_rel);
      if (!plan_.open_loop && MaySend(now)) Send(now);
    }
    stats_.sent = sent_.load();
    stats_.max_send_lag_ns = max_send_lag_ns_;
    cq_.Shutdown();
    void* tag;
    bool ok;
    while (cq_.Next(&tag, &ok)) delete static_cast<Call*>(tag);
  }

  bool SendingDone() const {
    if (plan_.open_loop) return sending_done_.load(std::memory_order_acquire);
    return !MaySend(Clock::now());
  }

  void Count(const Call& call, Clock::time_point now) {
    stats_.max_outstanding =
        std::max(stats_.max_outstanding, outstanding_.load(std::memory_order_relaxed));
    if (!call.status.ok()) {
      ++stats_.errors;
      ++stats_.errors_by_code[call.status.error_code()];
      if (stats_.first_error.empty()) {
        stats_.first_error =
            absl::StrCat("code ", call.status.error_code(), ": ", call.status.error_message());
      }
      return;
    }
    ++stats_.ok;
    stats_.last_answer = now;
    const bool window_open = plan_.count > 0 || now < plan_.send_until;
    if (now >= plan_.window_start && window_open) ++stats_.ok_in_window;
    if (call.start >= plan_.window_start) {
      stats_.latencies_ns.push_back(
          std::chrono::duration_cast<nanoseconds>(now - call.start).count());
    }
  }

  const BenchFlags& flags_;
  const RecordMix& mix_;
  const std::string& run_id_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::ClinicGateway::Stub> stub_;
  grpc::CompletionQueue cq_;
  RunPlan plan_;
  v1::PushRequest request_;  // only the sending thread touches it
  std::atomic<int64_t> sent_{0};
  std::atomic<int64_t> outstanding_{0};
  std::atomic<bool> sending_done_{false};
  int64_t max_send_lag_ns_ = 0;  // written by the sender, read after it is joined
  DriverStats stats_;            // only the receiving thread touches it
};

// The `q` quantile of sorted `samples` (nearest rank), in milliseconds.
double QuantileMs(const std::vector<int64_t>& samples, double q) {
  if (samples.empty()) return 0;
  const size_t rank = static_cast<size_t>(std::ceil(q * static_cast<double>(samples.size())));
  return static_cast<double>(samples[std::min(samples.size() - 1, rank == 0 ? 0 : rank - 1)]) / 1e6;
}

double CpuSeconds() {
  rusage usage;
  getrusage(RUSAGE_SELF, &usage);
  return static_cast<double>(usage.ru_utime.tv_sec + usage.ru_stime.tv_sec) +
         static_cast<double>(usage.ru_utime.tv_usec + usage.ru_stime.tv_usec) / 1e6;
}

std::string CheckFlags(const BenchFlags& flags) {
  if (flags.target.empty()) return "--target=HOST:PORT is required";
  if (flags.mode != "open" && flags.mode != "closed") {
    return absl::StrCat("--mode=", flags.mode, ": must be open or closed");
  }
  if (flags.mode == "open" && !(flags.rate > 0)) return "--rate: must be > 0";
  if (flags.mode == "closed" && flags.concurrency < 1) return "--concurrency: must be >= 1";
  if (flags.threads < 1 || flags.threads > 64) return "--threads: must be 1..64";
  if (flags.mode == "closed" && flags.concurrency < flags.threads) {
    return "--concurrency: must be at least --threads";
  }
  if (flags.count < 0) return "--count: must be >= 0";
  if (flags.count == 0 && !(flags.duration_s > 0)) return "--duration_s: must be > 0";
  if (flags.warmup_s < 0) return "--warmup_s: must be >= 0";
  if (flags.timeout_ms < 1) return "--timeout_ms: must be > 0";
  return "";
}

}  // namespace

int RunBench(const BenchFlags& given, std::FILE* out, std::FILE* err) {
  BenchFlags flags = given;
  flags.token = gateway::TokenFromFlagOrEnv(given.token);
  if (std::string problem = CheckFlags(flags); !problem.empty()) {
    std::fprintf(
        err,
        "fhirgw-bench load: %s\nusage: fhirgw-bench load --target=HOST:PORT --mode=open|closed "
        "[--rate=N] [--concurrency=C] [--duration_s=S] [--mix=realistic] [--token=T]\n",
        problem.c_str());
    return 1;
  }
  absl::StatusOr<RecordMix> mix = RecordMix::Load(flags.examples_dir, flags.mix);
  if (!mix.ok()) {
    std::fprintf(err, "fhirgw-bench load: %s\n", std::string(mix.status().message()).c_str());
    return 1;
  }
  const std::string run_id =
      flags.run_id.empty() ? absl::StrCat("bench-", base::UnixMillis()) : flags.run_id;

  std::vector<std::unique_ptr<Driver>> drivers;
  for (int i = 0; i < flags.threads; ++i) {
    drivers.push_back(std::make_unique<Driver>(flags, *mix, run_id, i));
    if (!drivers.back()->Connect(std::chrono::seconds(5))) {
      std::fprintf(err, "fhirgw-bench load: cannot connect to %s\n", flags.target.c_str());
      return 1;
    }
  }
  const bool open_loop = flags.mode == "open";
  const bool by_count = flags.count > 0;
  std::fprintf(out, "fhirgw-bench load: target %s, %s loop, %s, %d thread(s), run id %s\n",
               flags.target.c_str(), open_loop ? "open" : "closed",
               open_loop ? absl::StrFormat("rate %.0f/s", flags.rate).c_str()
                         : absl::StrFormat("concurrency %d", flags.concurrency).c_str(),
               flags.threads, run_id.c_str());
  std::fprintf(out, "mix %s: %s\n", flags.mix.c_str(), mix->Describe().c_str());
  if (by_count) {
    std::fprintf(out, "sending %lld records\n", static_cast<long long>(flags.count));
  } else {
    std::fprintf(out, "warmup %.1f s, measured %.1f s\n", flags.warmup_s, flags.duration_s);
  }
  std::fflush(out);

  RunPlan plan;
  plan.open_loop = open_loop;
  plan.start = Clock::now() + std::chrono::milliseconds(10);
  const double warmup_s = by_count ? 0 : flags.warmup_s;
  plan.window_start =
      plan.start + std::chrono::duration_cast<nanoseconds>(std::chrono::duration<double>(warmup_s));
  plan.send_until = plan.window_start + std::chrono::duration_cast<nanoseconds>(
                                            std::chrono::duration<double>(flags.duration_s));
  plan.stride = static_cast<uint64_t>(flags.threads);
  const double cpu_before = CpuSeconds();
  std::vector<std::thread> threads;
  for (int i = 0; i < flags.threads; ++i) {
    RunPlan mine = plan;
    mine.first_number = static_cast<uint64_t>(i);
    mine.rate = flags.rate / flags.threads;
    mine.concurrency = flags.concurrency / flags.threads + (i < flags.concurrency % flags.threads);
    if (by_count) mine.count = flags.count / flags.threads + (i < flags.count % flags.threads);
    Driver* driver = drivers[static_cast<size_t>(i)].get();
    threads.emplace_back([driver, mine] { driver->Run(mine); });
  }
  for (std::thread& t : threads) t.join();
  const double cpu_s = CpuSeconds() - cpu_before;

  DriverStats total;
  for (auto& driver : drivers) {
    DriverStats& s = driver->stats();
    total.latencies_ns.insert(total.latencies_ns.end(), s.latencies_ns.begin(),
                              s.latencies_ns.end());
    total.sent += s.sent;
    total.ok += s.ok;
    total.ok_in_window += s.ok_in_window;
    total.errors += s.errors;
    for (const auto& [code, n] : s.errors_by_code) total.errors_by_code[code] += n;
    if (total.first_error.empty()) total.first_error = s.first_error;
    total.max_send_lag_ns = std::max(total.max_send_lag_ns, s.max_send_lag_ns);
    total.max_outstanding += s.max_outstanding;
    total.last_answer = std::max(total.last_answer, s.last_answer);
  }
  std::sort(total.latencies_ns.begin(), total.latencies_ns.end());
  // The window: duration mode measures the fixed window; count mode from the first send to the
  // last answer.
  const double window_s =
      by_count
          ? std::max(1e-9, std::chrono::duration<double>(total.last_answer - plan.start).count())
          : flags.duration_s;
  const double achieved = static_cast<double>(total.ok_in_window) / window_s;
  const double p50 = QuantileMs(total.latencies_ns, 0.50);
  const double p90 = QuantileMs(total.latencies_ns, 0.90);
  const double p99 = QuantileMs(total.latencies_ns, 0.99);
  const double p999 = QuantileMs(total.latencies_ns, 0.999);
  const double max = QuantileMs(total.latencies_ns, 1.0);

  std::fprintf(out, "sent %lld, ok %lld, errors %lld\n", static_cast<long long>(total.sent),
               static_cast<long long>(total.ok), static_cast<long long>(total.errors));
  for (const auto& [code, n] : total.errors_by_code) {
    std::fprintf(out, "  status %d: %lld\n", code, static_cast<long long>(n));
  }
  if (!total.first_error.empty())
    std::fprintf(out, "  first error: %s\n", total.first_error.c_str());
  std::fprintf(out, "achieved %.1f/s (OK answers in the %.2f s window)\n", achieved, window_s);
  if (total.latencies_ns.empty()) {
    std::fprintf(out, "latency: no OK answer to a request started in the window\n");
  } else {
    std::fprintf(out,
                 "latency ms (from the %s send time, n=%zu): p50 %.3f  p90 %.3f  p99 %.3f  p99.9 "
                 "%.3f  max %.3f\n",
                 open_loop ? "scheduled" : "actual", total.latencies_ns.size(), p50, p90, p99, p999,
                 max);
  }
  std::fprintf(out, "client: cpu %.2f s, max outstanding %lld", cpu_s,
               static_cast<long long>(total.max_outstanding));
  if (open_loop) {
    std::fprintf(out, ", max send lag %.3f ms", static_cast<double>(total.max_send_lag_ns) / 1e6);
  }
  std::fprintf(out, "\n");
  std::fprintf(
      out,
      "{\"mode\":\"%s\",\"target_rate\":%.1f,\"concurrency\":%d,\"threads\":%d,\"window_s\":%.3f,"
      "\"sent\":%lld,\"ok\":%lld,\"errors\":%lld,\"achieved_rate\":%.1f,\"samples\":%zu,"
      "\"p50_ms\":%.3f,\"p90_ms\":%.3f,\"p99_ms\":%.3f,\"p999_ms\":%.3f,\"max_ms\":%.3f,"
      "\"client_cpu_s\":%.3f,\"max_send_lag_ms\":%.3f}\n",
      flags.mode.c_str(), open_loop ? flags.rate : 0.0, open_loop ? 0 : flags.concurrency,
      flags.threads, window_s, static_cast<long long>(total.sent), static_cast<long long>(total.ok),
      static_cast<long long>(total.errors), achieved, total.latencies_ns.size(), p50, p90, p99,
      p999, max, cpu_s, static_cast<double>(total.max_send_lag_ns) / 1e6);
  std::fflush(out);
  return total.errors > 0 ? 2 : 0;
}

// --- the baseline server ----------------------------------------------------------------------

namespace {

// Answers Push at once, with what the gateway would answer minus the work: a fresh transaction id
// (the gateway's UUID length), ACCEPTED, the record id, version 1 and the alerts the record raises.
class BaselineService final : public v1::ClinicGateway::CallbackService {
 public:
  grpc::ServerUnaryReactor* Push(grpc::CallbackServerContext* context,
                                 const v1::PushRequest* request,
                                 v1::PushResponse* response) override {
    const uint64_t n = next_.fetch_add(1, std::memory_order_relaxed);
    const uint64_t a = Mix64(n);
    const uint64_t b = Mix64(a);
    response->set_transaction_id(
        absl::StrFormat("%08x-%04x-4%03x-%04x-%012x", static_cast<uint32_t>(a >> 32),
                        static_cast<uint32_t>(a >> 16) & 0xffff, static_cast<uint32_t>(a) & 0xfff,
                        static_cast<uint32_t>(b >> 48) | 0x8000, b & 0xffffffffffffULL));
    response->set_status(v1::ACCEPTED);
    response->set_record_id(request->record().record_id());
    response->set_version(1);
    AddAlerts(request->record(), *response);
    grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
    reactor->Finish(grpc::Status::OK);
    return reactor;
  }

 private:
  // The alerts of mappers/questionnaire_mapper.cc and infusion_mapper.cc, with messages of the
  // same length, found without mapping.
  static void AddAlerts(const v1::ClinicRecord& record, v1::PushResponse& response) {
    static constexpr const char* kFrequency[] = {"Not at all", "Several days",
                                                 "More than half the days", "Nearly every day"};
    if (record.has_questionnaire() &&
        record.questionnaire().instrument() == v1::QuestionnaireRecord::PHQ9) {
      for (const v1::Answer& answer : record.questionnaire().answers()) {
        if (answer.item() != 9 || answer.value() <= 0 || answer.value() > 3) continue;
        v1::Alert& alert = *response.add_alerts();
        alert.set_kind(v1::Alert::SUICIDAL_IDEATION);
        alert.set_message(absl::StrCat(
            "PHQ-9 item 9 (thoughts of being better off dead or of self-harm) answered \"",
            kFrequency[answer.value()], "\" (", answer.value(),
            "): the patient needs a safety assessment today"));
      }
    }
    if (record.has_infusion()) {
      for (int i = 0; i < record.infusion().adverse_events_size(); ++i) {
        const v1::AdverseEvent& event = record.infusion().adverse_events(i);
        if (event.severity() != v1::AdverseEvent::SEVERE) continue;
        v1::Alert& alert = *response.add_alerts();
        alert.set_kind(v1::Alert::SEVERE_ADVERSE_EVENT);
        alert.set_message(absl::StrCat(
            "severe adverse event during the infusion: ", v1::AdverseEvent::Kind_Name(event.kind()),
            " (infusion.adverse_events[", i, "])"));
      }
    }
  }

  std::atomic<uint64_t> next_{0};
};

}  // namespace

int RunBenchServer(const BenchServerFlags& flags, std::FILE* out, std::FILE* err) {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);

  BaselineService service;
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(flags.listen, grpc::InsecureServerCredentials(), &port);
  builder.RegisterService(&service);
  builder.SetMaxReceiveMessageSize(16 * 1024 * 1024);
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    std::fprintf(err, "fhirgw-bench server: cannot listen on %s\n", flags.listen.c_str());
    return 1;
  }
  const size_t colon = flags.listen.rfind(':');
  const std::string host =
      colon == std::string::npos ? flags.listen : flags.listen.substr(0, colon);
  std::fprintf(out, "listening on %s:%d\n", host.c_str(), port);
  std::fflush(out);
  int signal_number = 0;
  sigwait(&signals, &signal_number);
  server->Shutdown(base::DeadlineFromNow(std::chrono::seconds(2)));
  server->Wait();
  return 0;
}

}  // namespace fhirgw::bench
