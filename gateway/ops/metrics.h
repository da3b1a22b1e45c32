// A small thread-safe Prometheus metrics registry, rendered in the text exposition format 0.0.4.
//
// Look a metric up once and keep the reference: Inc/Set/Add/Observe are lock-free, while the
// Get* lookups take the registry's lock.
//
//   MetricsRegistry registry;
//   Counter& delivered = registry.GetCounter("fhirgw_deliveries_total", "Bundles delivered.",
//                                            {{"outcome", "ok"}});
//   Histogram& latency = registry.GetHistogram("fhirgw_delivery_seconds", "Delivery latency.",
//                                              LatencyBuckets());
//   registry.AddCallbackGauge("fhirgw_queue_depth", "Entries waiting.",
//                             [&store] { return store.PendingCount(); });
//   delivered.Inc();
//   latency.Observe(0.042);
//   std::string text = registry.Render();  // served on GET /metrics
//
// Misusing a family (a name reused with another type or other label names, an invalid metric or
// label name) is a programming error, not a data error: the process prints the problem to stderr
// and aborts, so the mistake shows up on the first test run rather than as a missing series.
// Label values may be any text (they are escaped when rendered).
#ifndef FHIRGW_GATEWAY_OPS_METRICS_H_
#define FHIRGW_GATEWAY_OPS_METRICS_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"

namespace fhirgw::gateway {

// Label name/value pairs identifying one series of a family, e.g. {{"outcome", "ok"}}.
using MetricLabels = std::vector<std::pair<std::string, std::string>>;

// A monotonically increasing value.
class Counter {
 public:
  Counter() = default;
  Counter(const Counter&) = delete;
  Counter& operator=(const Counter&) = delete;

  // Adds `v`. Negative and NaN increments are dropped: a counter that goes down would look to
  // Prometheus like a process restart.
  void Inc(double v = 1);
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// A value that can go up and down.
class Gauge {
 public:
  Gauge() = default;
  Gauge(const Gauge&) = delete;
  Gauge& operator=(const Gauge&) = delete;

  void Set(double v) { value_.store(v, std::memory_order_relaxed); }
  void Add(double v) { value_.fetch_add(v, std::memory_order_relaxed); }
  double value() const { return value_.load(std::memory_order_relaxed); }

 private:
  std::atomic<double> value_{0};
};

// Counts observations into buckets with upper bounds fixed at creation, plus an implicit +Inf
// bucket. Rendered as cumulative `_bucket{le="..."}` samples, `_sum` and `_count`.
class Histogram {
 public:
  // Sorts `bounds` and drops duplicates, NaN and infinities (+Inf is always present).
  explicit Histogram(std::vector<double> bounds);
  Histogram(const Histogram&) = delete;
  Histogram& operator=(const Histogram&) = delete;

  // Records `v` in the first bucket whose bound is >= `v`. NaN is dropped so that one bad
  // measurement cannot turn `_sum` into NaN for the rest of the process's life.
  void Observe(double v);

  // The finite upper bounds, ascending.
  const std::vector<double>& bounds() const { return bounds_; }
  // Returns the cumulative count for each bound, then for +Inf (so the last is count()).
  std::vector<uint64_t> CumulativeCounts() const;
  uint64_t count() const;
  double sum() const { return sum_.load(std::memory_order_relaxed); }

 private:
  const std::vector<double> bounds_;
  // Per-bucket (not cumulative) counts; the last is the +Inf bucket. Never resized.
  std::unique_ptr<std::atomic<uint64_t>[]> counts_;
  std::atomic<double> sum_{0};
};

// Owns metric families and renders them for scraping. Thread-safe. Not copyable or movable:
// it hands out references to the metrics it owns.
class MetricsRegistry {
 public:
  MetricsRegistry();
  ~MetricsRegistry();
  MetricsRegistry(const MetricsRegistry&) = delete;
  MetricsRegistry& operator=(const MetricsRegistry&) = delete;

  // Returns the series of family `name` with `labels`, creating the family (with `help` and the
  // label names of `labels`) on first use and the series on first use of those label values.
  // Later calls may list the labels in any order but must use the same names; `help` of later
  // calls is ignored. The reference stays valid for the registry's life.
  Counter& GetCounter(absl::string_view name, absl::string_view help,
                      const MetricLabels& labels = {});
  Gauge& GetGauge(absl::string_view name, absl::string_view help, const MetricLabels& labels = {});
  // As above; `bounds` are the finite bucket upper bounds (see LatencyBuckets()). A family's
  // bounds are fixed by its first call.
  Histogram& GetHistogram(absl::string_view name, absl::string_view help,
                          std::vector<double> bounds, const MetricLabels& labels = {});

  // Registers a gauge whose value is computed by `fn` on every Render(), e.g. a queue depth read
  // from the store. `fn` runs outside the registry's lock, possibly on several scraping threads
  // at once; it should be quick and return NaN when the value cannot be read. Registering the
  // same name again replaces the callback.
  void AddCallbackGauge(absl::string_view name, absl::string_view help, std::function<double()> fn);

  // Returns every family in the text exposition format 0.0.4: "# HELP" and "# TYPE" lines,
  // families sorted by name, series sorted by label values.
  std::string Render() const;

 private:
  enum class Kind;
  struct Series;
  struct Family;

  // Returns the series of family `name` for `labels`, creating the family (of `kind`, with
  // `help`, and `bounds` for histograms) and the series on first use. Aborts on a mismatched
  // reuse of `name`.
  const Series& GetSeries(absl::string_view name, absl::string_view help, Kind kind,
                          const MetricLabels& labels, std::vector<double> bounds);

  mutable absl::Mutex mu_;
  std::map<std::string, std::unique_ptr<Family>, std::less<>> families_ ABSL_GUARDED_BY(mu_);
};

// Returns latency bucket bounds in seconds suited to a gateway, from 0.5 ms to 10 s.
std::vector<double> LatencyBuckets();

}  // namespace fhirgw::gateway

#endif  // FHIRGW_GATEWAY_OPS_METRICS_H_
