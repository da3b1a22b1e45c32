#include "gateway/delivery/delivery.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cmath>
#include <filesystem>
#include <random>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/clock.h"
#include "fhir/status_macros.h"
#include "gateway/delivery/fhir_response.h"
#include "gateway/delivery/oauth.h"
#include "gateway/ops/log.h"

namespace fhirgw::gateway {
namespace {

// Appends each Bundle as one NDJSON line to DIR/<name>.ndjson, fsync'd before it counts as
// delivered.
class FileSink {
 public:
  static absl::StatusOr<std::shared_ptr<FileSink>> Open(const std::string& dir,
                                                        const std::string& name) {
    std::error_code ec;
    std::filesystem::create_directories(dir, ec);
    if (ec) return absl::UnavailableError(absl::StrCat("cannot create ", dir, ": ", ec.message()));
    const std::string path = absl::StrCat(dir, "/", name, ".ndjson");
    const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0600);
    if (fd < 0) return absl::UnavailableError(absl::StrCat("cannot open ", path));
    return std::shared_ptr<FileSink>(new FileSink(fd, path));
  }
  ~FileSink() { ::close(fd_); }

  HttpResult Append(absl::string_view bundle_json) {
    HttpResult result;
    const base::Stopwatch watch;
    std::string line(bundle_json);
    line.push_back('\n');
    std::lock_guard<std::mutex> lock(mu_);
    size_t written = 0;
    while (written < line.size()) {
      const ssize_t n = ::write(fd_, line.data() + written, line.size() - written);
      if (n < 0) {
        result.error = absl::StrCat("write ", path_, " failed");
        return result;
      }
      written += static_cast<size_t>(n);
    }
    if (::fdatasync(fd_) != 0) {
      result.error = absl::StrCat("fsync ", path_, " failed");
      return result;
    }
    result.http_status = 200;
    result.duration_ms = watch.ElapsedMillis();
    return result;
  }
  const std::string& path() const { return path_; }

 private:
  FileSink(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  std::mutex mu_;
  int fd_;
  std::string path_;
};

class FileSender final : public Sender {
 public:
  explicit FileSender(std::shared_ptr<FileSink> sink) : sink_(std::move(sink)) {}
  HttpResult Send(absl::string_view bundle_json) override { return sink_->Append(bundle_json); }
  absl::Status Check() override { return absl::OkStatus(); }

 private:
  std::shared_ptr<FileSink> sink_;
};

class FhirSender final : public Sender {
 public:
  FhirSender(std::unique_ptr<FhirClient> client, const std::atomic<bool>* abort)
      : client_(std::move(client)) {
    client_->SetAbortFlag(abort);
  }
  HttpResult Send(absl::string_view bundle_json) override {
    return client_->PostTransaction(bundle_json);
  }
  absl::Status Check() override {
    HttpResult r = client_->Get("metadata", 2000);
    if (r.http_status >= 200 && r.http_status < 300) return absl::OkStatus();
    if (r.http_status == 0) return absl::UnavailableError(r.error);
    return absl::UnavailableError(absl::StrCat("GET metadata answered ", r.http_status));
  }

 private:
  std::unique_ptr<FhirClient> client_;
};

google::protobuf::Timestamp TimestampFromMs(int64_t ms) {
  google::protobuf::Timestamp t;
  t.set_seconds(ms / 1000);
  t.set_nanos(static_cast<int32_t>(ms % 1000) * 1000000);
  return t;
}

const char* OutcomeLabel(v1::DeliveryAttempt::Outcome outcome) {
  switch (outcome) {
    case v1::DeliveryAttempt::SUCCESS:
      return "success";
    case v1::DeliveryAttempt::REJECTED:
      return "rejected";
    default:
      return "retryable_error";
  }
}

}  // namespace

int64_t BackoffMs(const v1::RetryPolicy& policy, int retry) {
  const double base =
      policy.initial_backoff_ms() * std::pow(policy.multiplier(), std::max(0, retry - 1));
  return static_cast<int64_t>(std::min<double>(base, policy.max_backoff_ms()));
}

Decision Decide(const HttpResult& answer, bool has_operation_outcome, const v1::RetryPolicy& policy,
                int attempts_so_far, int64_t queued_at_ms, int64_t now_ms, double jitter_draw) {
  const int status = answer.http_status;
  if (status >= 200 && status < 300) return {v1::DELIVERED, v1::DeliveryAttempt::SUCCESS};
  const bool retryable = status == 0 || status == 408 || status == 429 || status >= 500 ||
                         (status >= 400 && !has_operation_outcome) || status < 200 ||
                         (status >= 300 && status < 400);
  if (!retryable) return {v1::REJECTED, v1::DeliveryAttempt::REJECTED};
  const int attempts = attempts_so_far + 1;
  const bool too_old = policy.max_age_ms() > 0 && now_ms - queued_at_ms >= policy.max_age_ms();
  if (attempts >= policy.max_attempts() || too_old) {
    return {v1::DEAD_LETTER, v1::DeliveryAttempt::RETRYABLE_ERROR};
  }
  // jitter_draw in [-1, 1) spreads retries of many transactions so they do not arrive together.
  int64_t delay = BackoffMs(policy, attempts);
  delay = static_cast<int64_t>(static_cast<double>(delay) * (1.0 + policy.jitter() * jitter_draw));
  delay = std::max(delay, answer.retry_after_ms);
  return {v1::RETRYING, v1::DeliveryAttempt::RETRYABLE_ERROR, now_ms + std::max<int64_t>(delay, 0)};
}

struct DeliveryService::Destination {
  const v1::Destination* config;
  std::vector<std::unique_ptr<Sender>> senders;  // one per worker thread
};

DeliveryService::DeliveryService(Store& store, const v1::GatewayConfig& config,
                                 MetricsRegistry& metrics)
    : store_(store), config_(config), metrics_(metrics) {}

DeliveryService::~DeliveryService() { Stop(); }

absl::Status DeliveryService::Start() {
  for (const v1::Destination& d : config_.destinations()) {
    if (absl::Status s = AddDestination(d); !s.ok()) {
      return absl::Status(s.code(), absl::StrCat("destination ", d.name(), ": ", s.message()));
    }
  }
  for (auto& destination : destinations_) {
    for (auto& sender : destination->senders) {
      Destination* dest = destination.get();
      Sender* s = sender.get();
      threads_.emplace_back([this, dest, s] { Work(*dest, *s); });
    }
  }
  return absl::OkStatus();
}

absl::Status DeliveryService::AddDestination(const v1::Destination& d) {
  {
    auto destination = std::make_unique<Destination>();
    destination->config = &d;
    if (absl::StartsWith(d.base_url(), "file:")) {
      FHIRGW_ASSIGN_OR_RETURN(std::shared_ptr<FileSink> sink,
                              FileSink::Open(d.base_url().substr(5), d.name()));
      for (int i = 0; i < d.concurrency(); ++i) {
        destination->senders.push_back(std::make_unique<FileSender>(sink));
      }
    } else {
      FHIRGW_ASSIGN_OR_RETURN(std::shared_ptr<TokenSource> tokens, TokenSourceForDestination(d));
      for (int i = 0; i < d.concurrency(); ++i) {
        FHIRGW_ASSIGN_OR_RETURN(std::unique_ptr<FhirClient> client, FhirClient::Create(d, tokens));
        destination->senders.push_back(std::make_unique<FhirSender>(std::move(client), &abort_));
      }
    }
    destinations_.push_back(std::move(destination));
  }
  return absl::OkStatus();
}

void DeliveryService::Wake() {
  std::lock_guard<std::mutex> lock(mu_);
  ++generation_;
  cv_.notify_all();
}

void DeliveryService::Stop(std::chrono::milliseconds grace) {
  {
    std::unique_lock<std::mutex> lock(mu_);
    stopping_ = true;
    cv_.notify_all();
    // Attempts in flight may finish within the grace period; then they are aborted (and recorded
    // as failed attempts, retried after the next start).
    if (!cv_.wait_for(lock, grace, [this] { return in_flight_ == 0; })) {
      LogWarning(absl::StrCat("aborting ", in_flight_, " delivery attempts still in flight"));
      abort_ = true;
    }
  }
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

absl::Status DeliveryService::CheckDestinations() {
  for (auto& destination : destinations_) {
    // A worker's sender is not thread-safe; readiness checks use a client of their own.
    if (absl::StartsWith(destination->config->base_url(), "file:")) continue;
    absl::StatusOr<std::unique_ptr<FhirClient>> client =
        FhirClient::Create(*destination->config, nullptr);
    if (!client.ok()) return client.status();
    HttpResult r = (*client)->Get("metadata", 2000);
    if (r.http_status == 0) {
      return absl::UnavailableError(
          absl::StrCat("destination ", destination->config->name(), ": ", r.error));
    }
    if (r.http_status >= 500) {
      return absl::UnavailableError(absl::StrCat("destination ", destination->config->name(),
                                                 ": GET metadata answered ", r.http_status));
    }
  }
  return absl::OkStatus();
}

void DeliveryService::Work(Destination& destination, Sender& sender) {
  const std::string& name = destination.config->name();
  const auto poll = std::chrono::milliseconds(config_.delivery().poll_interval_ms());
  while (!stopping_) {
    uint64_t seen;
    {
      std::lock_guard<std::mutex> lock(mu_);
      seen = generation_;
    }
    absl::StatusOr<std::optional<DeliveryTask>> task = store_.ClaimNext(name, base::UnixMillis());
    if (!task.ok()) {
      LogError(
          absl::StrCat("delivery to ", name, ": cannot claim work: ", task.status().message()));
    } else if (task->has_value()) {
      Deliver(destination, sender, **task);
      continue;
    }
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, poll, [&] { return stopping_ || generation_ != seen; });
  }
}

void DeliveryService::Deliver(Destination& destination, Sender& sender, const DeliveryTask& task) {
  const v1::Destination& config = *destination.config;
  const int64_t started = base::UnixMillis();
  {
    std::lock_guard<std::mutex> lock(mu_);
    ++in_flight_;
  }
  HttpResult answer = sender.Send(task.fhir_json);
  {
    std::lock_guard<std::mutex> lock(mu_);
    --in_flight_;
    cv_.notify_all();
  }
  const int64_t now = base::UnixMillis();
  int attempt_number = task.attempt_number;
  int attempts_so_far = task.attempts_so_far;
  if (answer.requests_sent > 1) {
    // libcurl resent the request on a new connection after the kept-alive one died unanswered:
    // that first exchange is an attempt of its own in the log.
    AttemptResult lost;
    lost.transaction_id = task.transaction_id;
    lost.attempt.set_number(attempt_number++);
    ++attempts_so_far;
    *lost.attempt.mutable_started_at() = TimestampFromMs(started);
    lost.attempt.set_outcome(v1::DeliveryAttempt::RETRYABLE_ERROR);
    lost.attempt.set_error(
        "the EHR closed the kept-alive connection without answering; resent at once on a new "
        "connection");
    lost.new_status = v1::DELIVERING;
    if (absl::Status s = store_.CompleteAttempt(lost); !s.ok()) {
      LogError(absl::StrCat("transaction ", task.transaction_id,
                            ": cannot record the attempt: ", s.message()));
    }
  }

  AttemptResult result;
  result.transaction_id = task.transaction_id;
  v1::DeliveryAttempt& attempt = result.attempt;
  attempt.set_number(attempt_number);
  *attempt.mutable_started_at() = TimestampFromMs(started);
  attempt.set_duration_ms(now - started);
  attempt.set_http_status(answer.http_status);
  attempt.set_response(answer.body);
  attempt.set_error(answer.error);
  std::vector<v1::Issue> issues = ParseOperationOutcome(answer.body);
  for (v1::Issue& issue : issues) *attempt.add_issues() = std::move(issue);

  thread_local std::mt19937_64 random(std::random_device{}());
  const double draw = std::uniform_real_distribution<double>(-1.0, 1.0)(random);
  const Decision decision = Decide(answer, attempt.issues_size() > 0, config.retry(),
                                   attempts_so_far, task.queued_at_ms, now, draw);
  attempt.set_outcome(decision.outcome);
  result.new_status = decision.status;
  result.next_attempt_at_ms = decision.next_attempt_at_ms;
  if (decision.status == v1::DELIVERED && !absl::StartsWith(config.base_url(), "file:")) {
    absl::StatusOr<std::vector<v1::ResourceRef>> refs =
        ParseTransactionResponse(answer.body, task.fhir_json);
    if (refs.ok()) {
      result.resources = std::move(*refs);
    } else {
      LogWarning(absl::StrCat(
          "transaction ", task.transaction_id,
          ": delivered, but the response was not understood: ", refs.status().message()));
    }
  }
  absl::Status stored = store_.CompleteAttempt(result);
  if (!stored.ok()) {
    // The attempt is lost from the log but the transaction stays DELIVERING; RecoverInFlight at the
    // next start sends it again, which conditional writes make harmless.
    LogError(absl::StrCat("transaction ", task.transaction_id,
                          ": cannot record the attempt: ", stored.message()));
    return;
  }
  metrics_
      .GetCounter("fhirgw_delivery_attempts_total", "Delivery attempts by destination and outcome",
                  {{"destination", config.name()}, {"outcome", OutcomeLabel(decision.outcome)}})
      .Inc();
  if (decision.status != v1::DELIVERED) {
    LogWarning(
        absl::StrCat("transaction ", task.transaction_id, " attempt ", task.attempt_number, " to ",
                     config.name(), ": ",
                     answer.http_status ? absl::StrCat("HTTP ", answer.http_status) : answer.error,
                     " -> ", v1::TransactionStatus_Name(decision.status)));
  }
  if (listener_) listener_(task.transaction_id, decision.status);
}

}  // namespace fhirgw::gateway
