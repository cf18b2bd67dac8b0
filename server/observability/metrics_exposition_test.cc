#include "server/observability/metrics_exposition.h"

#include <thread>

#include "gtest/gtest.h"

namespace torchbricks::server {
namespace {

TEST(HistogramTest, CountsEachObservationInItsBucketCumulatively) {
  Histogram histogram({0.1, 1, 10});
  for (double value : {0.05, 0.1, 0.5, 5.0, 50.0}) histogram.Observe(value);
  const Histogram::Snapshot snapshot = histogram.Read();
  EXPECT_EQ(snapshot.cumulative, (std::vector<uint64_t>{2, 3, 4, 5}));  // le is inclusive
  EXPECT_EQ(snapshot.count, 5u);
  EXPECT_DOUBLE_EQ(snapshot.sum, 55.65);
}

TEST(HistogramTest, ConcurrentObservationsAreAllCounted) {
  Histogram histogram;
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&] {
      for (int i = 0; i < 10000; ++i) histogram.Observe(0.001);
    });
  }
  for (std::thread& thread : threads) thread.join();
  const Histogram::Snapshot snapshot = histogram.Read();
  EXPECT_EQ(snapshot.count, 80000u);
  EXPECT_NEAR(snapshot.sum, 80.0, 1e-6);
}

TEST(MetricsExpositionTest, RendersFamiliesOnceWithEscapedLabels) {
  MetricsExposition out;
  out.AddSample("requests_total", "Requests.", "counter", {{"model", "a\"b\\c\nd"}}, 3);
  out.AddSample("in_flight", "Now.", "gauge", {}, 0.5);
  out.AddSample("requests_total", "ignored", "counter", {{"model", "x"}}, 1e20);
  Histogram histogram({1});
  histogram.Observe(2);
  out.AddHistogram("latency_seconds", "Latency.", {{"m", "x"}}, histogram.Read());
  EXPECT_EQ(out.Render(),
            "# HELP requests_total Requests.\n"
            "# TYPE requests_total counter\n"
            "requests_total{model=\"a\\\"b\\\\c\\nd\"} 3\n"
            "requests_total{model=\"x\"} 1e+20\n"
            "# HELP in_flight Now.\n"
            "# TYPE in_flight gauge\n"
            "in_flight 0.5\n"
            "# HELP latency_seconds Latency.\n"
            "# TYPE latency_seconds histogram\n"
            "latency_seconds_bucket{m=\"x\",le=\"1\"} 0\n"
            "latency_seconds_bucket{m=\"x\",le=\"+Inf\"} 1\n"
            "latency_seconds_sum{m=\"x\"} 2\n"
            "latency_seconds_count{m=\"x\"} 1\n");
}

TEST(MetricsExpositionTest, FormatsSpecialValues) {
  EXPECT_EQ(FormatMetricValue(42), "42");
  EXPECT_EQ(FormatMetricValue(0.25), "0.25");
  EXPECT_EQ(FormatMetricValue(1.0 / 0.0), "+Inf");
}

}  // namespace
}  // namespace torchbricks::server
