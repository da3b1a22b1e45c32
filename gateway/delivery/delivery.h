// Delivery: sends the logged transaction Bundles to their destinations, from the log, so that an
// acknowledged record is delivered even after a crash.
//
// Each destination has `concurrency` worker threads, each with its own connection (libcurl handle).
// A worker claims the next due transaction, sends it, and records the attempt:
//   2xx                          -> DELIVERED, with the resource ids/versions the EHR assigned
//   network error, 408, 429, 5xx -> RETRYING after exponential backoff with jitter (Retry-After
//                                   honoured), DEAD_LETTER once the retry policy runs out
//   4xx with an OperationOutcome -> REJECTED with the EHR's issues, never retried
//   other 4xx                    -> retried like a 5xx (a proxy or auth problem the operator can
//   fix)
//
//   DeliveryService delivery(store, config, metrics);
//   FHIRGW_RETURN_IF_ERROR(delivery.Start());
//   delivery.Wake();  // after an append
//   delivery.Stop();  // finishes attempts in flight
#ifndef FHIRGW_GATEWAY_DELIVERY_DELIVERY_H_
#define FHIRGW_GATEWAY_DELIVERY_DELIVERY_H_

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "fhirgw/v1/config.pb.h"
#include "gateway/delivery/fhir_client.h"
#include "gateway/ops/metrics.h"
#include "gateway/store/store.h"

namespace fhirgw::gateway {

// Sends one Bundle; one instance per worker thread.
class Sender {
 public:
  virtual ~Sender() = default;
  virtual HttpResult Send(absl::string_view bundle_json) = 0;
  // Checks that the destination answers (for /readyz).
  virtual absl::Status Check() = 0;
};

// Returns the backoff before retry number `retry` (1 = the first retry) under `policy`, without
// jitter; the caller applies jitter.
int64_t BackoffMs(const v1::RetryPolicy& policy, int retry);

// Decides what an answer means for a transaction that has had `attempts_so_far` attempts before
// this one (since it was queued or replayed). Pure, for tests.
struct Decision {
  v1::TransactionStatus status;
  v1::DeliveryAttempt::Outcome outcome;
  int64_t next_attempt_at_ms = 0;
};
Decision Decide(const HttpResult& answer, bool has_operation_outcome, const v1::RetryPolicy& policy,
                int attempts_so_far, int64_t queued_at_ms, int64_t now_ms, double jitter_draw);

class DeliveryService {
 public:
  // Called when a transaction reaches DELIVERED, REJECTED or DEAD_LETTER (or RETRYING).
  using Listener = std::function<void(const std::string& transaction_id, v1::TransactionStatus)>;

  DeliveryService(Store& store, const v1::GatewayConfig& config, MetricsRegistry& metrics);
  ~DeliveryService();

  void SetListener(Listener listener) { listener_ = std::move(listener); }

  // Creates the senders (checking each destination's settings) and starts the workers.
  absl::Status Start();
  // Wakes idle workers: new work is in the log.
  void Wake();
  // Lets attempts in flight finish for up to `grace`, aborts those still running, then stops the
  // workers.
  void Stop(std::chrono::milliseconds grace = std::chrono::seconds(10));
  // OK when every destination answered a capability request recently.
  absl::Status CheckDestinations();

 private:
  struct Destination;
  absl::Status AddDestination(const v1::Destination& config);
  void Work(Destination& destination, Sender& sender);
  void Deliver(Destination& destination, Sender& sender, const DeliveryTask& task);

  Store& store_;
  const v1::GatewayConfig& config_;
  MetricsRegistry& metrics_;
  Listener listener_;
  std::vector<std::unique_ptr<Destination>> destinations_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  uint64_t generation_ = 0;  // guarded by mu_; bumped by Wake
  int in_flight_ = 0;        // guarded by mu_: attempts being sent
  std::atomic<bool> stopping_{false};
  std::atomic<bool> abort_{false};  // makes in-flight HTTP transfers stop at once
};

}  // namespace fhirgw::gateway

#endif  // FHIRGW_GATEWAY_DELIVERY_DELIVERY_H_
