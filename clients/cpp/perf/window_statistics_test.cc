#include "clients/cpp/perf/window_statistics.h"

#include <vector>

#include "gtest/gtest.h"

namespace torchbricks::perf {
namespace {

TEST(SummarizeTest, NearestRankPercentiles) {
  std::vector<int64_t> latencies;
  for (int64_t ms = 100; ms >= 1; --ms) latencies.push_back(ms * 1000);  // 1..100 us, unsorted
  const LatencyPercentiles summary = Summarize(latencies);
  EXPECT_DOUBLE_EQ(summary.avg_us, 50.5);
  EXPECT_DOUBLE_EQ(summary.p50_us, 50);
  EXPECT_DOUBLE_EQ(summary.p90_us, 90);
  EXPECT_DOUBLE_EQ(summary.p95_us, 95);
  EXPECT_DOUBLE_EQ(summary.p99_us, 99);
}

TEST(SummarizeTest, OneAndNone) {
  const LatencyPercentiles one = Summarize({7000});
  EXPECT_DOUBLE_EQ(one.p50_us, 7);
  EXPECT_DOUBLE_EQ(one.p99_us, 7);
  const LatencyPercentiles none = Summarize({});
  EXPECT_EQ(none.avg_us, 0);
  EXPECT_EQ(none.p99_us, 0);
}

TEST(IsStableTest, LastThreeWithinThePercentage) {
  const std::vector<WindowFigures> steady = {{500, 900}, {100, 1000}, {105, 1040}, {98, 990}};
  EXPECT_TRUE(IsStable(steady, 10));
  EXPECT_FALSE(IsStable(steady, 3));
  EXPECT_FALSE(IsStable(absl::MakeSpan(steady).subspan(1, 2), 10));  // fewer than three
  const std::vector<WindowFigures> latency_drifts = {{100, 1000}, {100, 1000}, {100, 1300}};
  EXPECT_FALSE(IsStable(latency_drifts, 10));
  const std::vector<WindowFigures> idle = {{0, 0}, {0, 0}, {0, 0}};
  EXPECT_FALSE(IsStable(idle, 10));
}

}  // namespace
}  // namespace torchbricks::perf
