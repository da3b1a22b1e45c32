#include "gateway/ops/metrics.h"

#include <atomic>
#include <cmath>
#include <limits>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fhirgw::gateway {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

TEST(MetricsRegistryTest, RendersCounterWithoutLabels) {
  MetricsRegistry registry;
  Counter& counter = registry.GetCounter("fhirgw_records_total", "Records received.");
  counter.Inc();
  counter.Inc(2);
  EXPECT_EQ(counter.value(), 3);
  EXPECT_EQ(registry.Render(),
            "# HELP fhirgw_records_total Records received.\n"
            "# TYPE fhirgw_records_total counter\n"
            "fhirgw_records_total 3\n");
}

TEST(MetricsRegistryTest, RendersLabelledSeriesSortedByLabelValues) {
  MetricsRegistry registry;
  registry
      .GetCounter("fhirgw_deliveries_total", "Deliveries.", {{"outcome", "retry"}, {"target", "b"}})
      .Inc(4);
  registry
      .GetCounter("fhirgw_deliveries_total", "Deliveries.", {{"outcome", "ok"}, {"target", "b"}})
      .Inc(2);
  registry
      .GetCounter("fhirgw_deliveries_total", "Deliveries.", {{"outcome", "ok"}, {"target", "a"}})
      .Inc();
  EXPECT_EQ(registry.Render(),
            "# HELP fhirgw_deliveries_total Deliveries.\n"
            "# TYPE fhirgw_deliveries_total counter\n"
            "fhirgw_deliveries_total{outcome=\"ok\",target=\"a\"} 1\n"
            "fhirgw_deliveries_total{outcome=\"ok\",target=\"b\"} 2\n"
            "fhirgw_deliveries_total{outcome=\"retry\",target=\"b\"} 4\n");
}

TEST(MetricsRegistryTest, ReturnsTheSameSeriesWhateverTheLabelOrder) {
  MetricsRegistry registry;
  Counter& first = registry.GetCounter("c_total", "h", {{"a", "1"}, {"b", "2"}});
  Counter& again = registry.GetCounter("c_total", "h", {{"a", "1"}, {"b", "2"}});
  Counter& swapped = registry.GetCounter("c_total", "h", {{"b", "2"}, {"a", "1"}});
  Counter& other = registry.GetCounter("c_total", "h", {{"a", "1"}, {"b", "3"}});
  EXPECT_EQ(&first, &again);
  EXPECT_EQ(&first, &swapped);
  EXPECT_NE(&first, &other);
  swapped.Inc();
  EXPECT_THAT(registry.Render(),
              HasSubstr("c_total{a=\"1\",b=\"2\"} 1\nc_total{a=\"1\",b=\"3\"} 0\n"));
}

TEST(MetricsRegistryTest, RendersGauges) {
  MetricsRegistry registry;
  Gauge& gauge = registry.GetGauge("fhirgw_inflight", "Requests in flight.");
  gauge.Set(-1.5);
  gauge.Add(0.25);
  registry.GetGauge("fhirgw_pool_size", "Pool size.", {{"pool", "db"}}).Set(1000000);
  EXPECT_EQ(gauge.value(), -1.25);
  EXPECT_EQ(registry.Render(),
            "# HELP fhirgw_inflight Requests in flight.\n"
            "# TYPE fhirgw_inflight gauge\n"
            "fhirgw_inflight -1.25\n"
            "# HELP fhirgw_pool_size Pool size.\n"
            "# TYPE fhirgw_pool_size gauge\n"
            "fhirgw_pool_size{pool=\"db\"} 1000000\n");
}

TEST(MetricsRegistryTest, FormatsSpecialAndFractionalValues) {
  MetricsRegistry registry;
  registry.GetGauge("g", "h", {{"v", "a_tenth"}}).Set(0.1);
  registry.GetGauge("g", "h", {{"v", "b_nan"}}).Set(std::nan(""));
  registry.GetGauge("g", "h", {{"v", "c_inf"}}).Set(std::numeric_limits<double>::infinity());
  registry.GetGauge("g", "h", {{"v", "d_minus_inf"}}).Set(-std::numeric_limits<double>::infinity());
  registry.GetGauge("g", "h", {{"v", "e_huge"}}).Set(1e300);
  registry.GetGauge("g", "h", {{"v", "f_tiny"}}).Set(0.00001);
  registry.GetGauge("g", "h", {{"v", "g_long"}}).Set(1234567.125);
  EXPECT_EQ(registry.Render(),
            "# HELP g h\n"
            "# TYPE g gauge\n"
            "g{v=\"a_tenth\"} 0.1\n"
            "g{v=\"b_nan\"} NaN\n"
            "g{v=\"c_inf\"} +Inf\n"
            "g{v=\"d_minus_inf\"} -Inf\n"
            "g{v=\"e_huge\"} 1e+300\n"
            "g{v=\"f_tiny\"} 1e-05\n"
            "g{v=\"g_long\"} 1234567.125\n");
}

TEST(MetricsRegistryTest, RendersHistogramWithoutLabels) {
  MetricsRegistry registry;
  Histogram& histogram =
      registry.GetHistogram("fhirgw_delivery_seconds", "Delivery latency.", {0.25, 1, 4});
  histogram.Observe(0.125);
  histogram.Observe(0.25);  // a bound is inclusive (le)
  histogram.Observe(0.5);
  histogram.Observe(8);
  EXPECT_EQ(histogram.count(), 4u);
  EXPECT_EQ(histogram.sum(), 8.875);
  EXPECT_EQ(registry.Render(),
            "# HELP fhirgw_delivery_seconds Delivery latency.\n"
            "# TYPE fhirgw_delivery_seconds histogram\n"
            "fhirgw_delivery_seconds_bucket{le=\"0.25\"} 2\n"
            "fhirgw_delivery_seconds_bucket{le=\"1\"} 3\n"
            "fhirgw_delivery_seconds_bucket{le=\"4\"} 3\n"
            "fhirgw_delivery_seconds_bucket{le=\"+Inf\"} 4\n"
            "fhirgw_delivery_seconds_sum 8.875\n"
            "fhirgw_delivery_seconds_count 4\n");
}

TEST(MetricsRegistryTest, RendersHistogramWithLabels) {
  MetricsRegistry registry;
  registry.GetHistogram("rpc_seconds", "RPC latency.", {0.5, 2}, {{"method", "Submit"}}).Observe(1);
  registry.GetHistogram("rpc_seconds", "RPC latency.", {0.5, 2}, {{"method", "Get"}}).Observe(0.25);
  EXPECT_EQ(registry.Render(),
            "# HELP rpc_seconds RPC latency.\n"
            "# TYPE rpc_seconds histogram\n"
            "rpc_seconds_bucket{method=\"Get\",le=\"0.5\"} 1\n"
            "rpc_seconds_bucket{method=\"Get\",le=\"2\"} 1\n"
            "rpc_seconds_bucket{method=\"Get\",le=\"+Inf\"} 1\n"
            "rpc_seconds_sum{method=\"Get\"} 0.25\n"
            "rpc_seconds_count{method=\"Get\"} 1\n"
            "rpc_seconds_bucket{method=\"Submit\",le=\"0.5\"} 0\n"
            "rpc_seconds_bucket{method=\"Submit\",le=\"2\"} 1\n"
            "rpc_seconds_bucket{method=\"Submit\",le=\"+Inf\"} 1\n"
            "rpc_seconds_sum{method=\"Submit\"} 1\n"
            "rpc_seconds_count{method=\"Submit\"} 1\n");
}

TEST(HistogramTest, SortsAndDeduplicatesBoundsAndDropsNaN) {
  Histogram histogram({4, 1, std::nan(""), 1, std::numeric_limits<double>::infinity(), 0.5});
  EXPECT_THAT(histogram.bounds(), ElementsAre(0.5, 1, 4));
  histogram.Observe(std::nan(""));
  histogram.Observe(0.75);
  histogram.Observe(100);
  EXPECT_THAT(histogram.CumulativeCounts(), ElementsAre(0, 1, 1, 2));
  EXPECT_EQ(histogram.sum(), 100.75);
}

TEST(CounterTest, IgnoresNegativeAndNaNIncrements) {
  Counter counter;
  counter.Inc(2.5);
  counter.Inc(-1);
  counter.Inc(std::nan(""));
  EXPECT_EQ(counter.value(), 2.5);
}

TEST(MetricsRegistryTest, EscapesLabelValuesAndHelp) {
  MetricsRegistry registry;
  registry
      .GetCounter("e_total", "Help with \\ and\nnewline and \"quotes\".",
                  {{"path", "C:\\dir \"x\"\nnext"}})
      .Inc();
  EXPECT_EQ(registry.Render(),
            "# HELP e_total Help with \\\\ and\\nnewline and \"quotes\".\n"
            "# TYPE e_total counter\n"
            "e_total{path=\"C:\\\\dir \\\"x\\\"\\nnext\"} 1\n");
}

TEST(MetricsRegistryTest, SortsFamiliesByName) {
  MetricsRegistry registry;
  registry.GetGauge("zeta", "z").Set(1);
  registry.GetCounter("alpha_total", "a").Inc();
  registry.AddCallbackGauge("mid", "m", [] { return 2.0; });
  const std::string text = registry.Render();
  const size_t alpha = text.find("# HELP alpha_total");
  const size_t mid = text.find("# HELP mid");
  const size_t zeta = text.find("# HELP zeta");
  ASSERT_NE(alpha, std::string::npos);
  ASSERT_NE(mid, std::string::npos);
  ASSERT_NE(zeta, std::string::npos);
  EXPECT_LT(alpha, mid);
  EXPECT_LT(mid, zeta);
}

TEST(MetricsRegistryTest, ConcurrentIncrementsSumExactly) {
  MetricsRegistry registry;
  constexpr int kThreads = 8;
  constexpr int kIncrements = 100000;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&registry] {
      // Every thread looks the series up itself, as independent callers would.
      Counter& counter = registry.GetCounter("hits_total", "Hits.", {{"kind", "x"}});
      Gauge& gauge = registry.GetGauge("level", "Level.");
      Histogram& histogram = registry.GetHistogram("size", "Size.", {1, 10});
      for (int i = 0; i < kIncrements; ++i) {
        counter.Inc();
        gauge.Add(1);
        histogram.Observe(i % 2 == 0 ? 0.5 : 5);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  constexpr int kTotal = kThreads * kIncrements;
  EXPECT_EQ(registry.GetCounter("hits_total", "Hits.", {{"kind", "x"}}).value(), kTotal);
  EXPECT_EQ(registry.GetGauge("level", "Level.").value(), kTotal);
  Histogram& histogram = registry.GetHistogram("size", "Size.", {1, 10});
  EXPECT_THAT(histogram.CumulativeCounts(), ElementsAre(kTotal / 2, kTotal, kTotal));
  EXPECT_EQ(histogram.sum(), kTotal / 2 * 0.5 + kTotal / 2 * 5.0);
  EXPECT_THAT(registry.Render(), HasSubstr(absl::StrCat("hits_total{kind=\"x\"} ", kTotal, "\n")));
}

TEST(MetricsRegistryTest, CreatesSeriesConcurrentlyWithRendering) {
  MetricsRegistry registry;
  std::atomic<bool> done{false};
  std::thread renderer([&] {
    while (!done) registry.Render();
  });
  std::vector<std::thread> writers;
  for (int t = 0; t < 4; ++t) {
    writers.emplace_back([&registry, t] {
      for (int i = 0; i < 200; ++i) {
        registry.GetCounter("made_total", "Made.", {{"id", absl::StrCat(t, "_", i)}}).Inc();
      }
    });
  }
  for (std::thread& writer : writers) writer.join();
  done = true;
  renderer.join();
  const std::string text = registry.Render();
  for (int t = 0; t < 4; ++t) {
    EXPECT_THAT(text, HasSubstr(absl::StrCat("made_total{id=\"", t, "_199\"} 1\n")));
  }
}

TEST(MetricsRegistryTest, RunsCallbackGaugesOnEveryRender) {
  MetricsRegistry registry;
  int calls = 0;
  double depth = 7;
  registry.AddCallbackGauge("fhirgw_queue_depth", "Entries waiting.", [&] {
    ++calls;
    return depth;
  });
  EXPECT_EQ(calls, 0);
  EXPECT_EQ(registry.Render(),
            "# HELP fhirgw_queue_depth Entries waiting.\n"
            "# TYPE fhirgw_queue_depth gauge\n"
            "fhirgw_queue_depth 7\n");
  depth = 3;
  EXPECT_THAT(registry.Render(), HasSubstr("fhirgw_queue_depth 3\n"));
  EXPECT_EQ(calls, 2);
}

TEST(MetricsRegistryTest, ReplacesACallbackRegisteredAgain) {
  MetricsRegistry registry;
  registry.AddCallbackGauge("q", "h", [] { return 1.0; });
  registry.AddCallbackGauge("q", "h", [] { return 2.0; });
  EXPECT_EQ(registry.Render(), "# HELP q h\n# TYPE q gauge\nq 2\n");
}

TEST(MetricsRegistryTest, CallbackMayUseTheRegistry) {
  // Callbacks run outside the registry's lock, so this must not deadlock.
  MetricsRegistry registry;
  registry.AddCallbackGauge("renders", "Renders seen.", [&registry] {
    return registry.GetCounter("inner_total", "Inner.").value();
  });
  registry.GetCounter("inner_total", "Inner.").Inc(5);
  EXPECT_THAT(registry.Render(), HasSubstr("renders 5\n"));
}

TEST(LatencyBucketsTest, SpansHalfAMillisecondToTenSeconds) {
  EXPECT_THAT(LatencyBuckets(), ElementsAre(0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1,
                                            0.25, 0.5, 1, 2.5, 5, 10));
  MetricsRegistry registry;
  registry.GetHistogram("lat", "h", LatencyBuckets()).Observe(0.003);
  const std::string text = registry.Render();
  EXPECT_THAT(text, HasSubstr("lat_bucket{le=\"0.0005\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("lat_bucket{le=\"0.0025\"} 0\n"));
  EXPECT_THAT(text, HasSubstr("lat_bucket{le=\"0.005\"} 1\n"));
}

TEST(MetricsRegistryDeathTest, AbortsOnATypeMismatch) {
  MetricsRegistry registry;
  registry.GetCounter("x_total", "h");
  EXPECT_DEATH(registry.GetGauge("x_total", "h"), "metric x_total is a counter, not a gauge");
  EXPECT_DEATH(registry.AddCallbackGauge("x_total", "h", [] { return 0.0; }),
               "metric x_total is a counter, not a callback gauge");
}

TEST(MetricsRegistryDeathTest, AbortsOnOtherLabelNames) {
  MetricsRegistry registry;
  registry.GetCounter("x_total", "h", {{"a", "1"}});
  EXPECT_DEATH(registry.GetCounter("x_total", "h", {{"b", "1"}}),
               "metric x_total has labels \\{a\\}, not \\{b\\}");
  EXPECT_DEATH(registry.GetCounter("x_total", "h"),
               "metric x_total has labels \\{a\\}, not \\{\\}");
}

TEST(MetricsRegistryDeathTest, AbortsOnInvalidNames) {
  MetricsRegistry registry;
  EXPECT_DEATH(registry.GetCounter("1bad", "h"), "invalid metric name \"1bad\"");
  EXPECT_DEATH(registry.GetCounter("ok_total", "h", {{"bad-label", "v"}}),
               "metric ok_total: invalid label name \"bad-label\"");
  EXPECT_DEATH(registry.GetHistogram("h_seconds", "h", {1}, {{"le", "1"}}),
               "metric h_seconds: invalid label name \"le\"");
  EXPECT_DEATH(registry.GetCounter("d_total", "h", {{"a", "1"}, {"a", "2"}}),
               "metric d_total: label \"a\" given twice");
}

}  // namespace
}  // namespace fhirgw::gateway
