#include "server/scheduling/self_configuration.h"

#include <cmath>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"

namespace torchbricks::server {
namespace {

config::ModelConfig Config(const std::string& text) {
  config::ModelConfig config;
  EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(text, &config)) << text;
  return config;
}

CalibrationPoint Point(int instances, int threads, int64_t batch, double rows_per_second,
                       double run_ms) {
  return {.layout = {instances, threads},
          .batch = batch,
          .rows_per_second = rows_per_second,
          .run_time = absl::Microseconds(run_ms * 1000),
          .runs = 10};
}

OpenSettings AllOpen() { return OpenSettingsOf(config::ModelConfig()); }

// Measured on this machine's shape (2 cores): resnet18 at 32x32, one thread per instance
// gives the most rows; two intra-op threads on one instance the fastest single run.
std::vector<CalibrationPoint> Resnet18Like() {
  return {Point(2, 1, 1, 700, 2.8),  Point(1, 1, 1, 380, 2.6),  Point(1, 2, 1, 420, 2.3),
          Point(2, 1, 16, 2100, 15), Point(1, 1, 16, 1100, 14), Point(1, 2, 16, 1500, 10.5),
          Point(2, 1, 64, 2300, 55), Point(1, 1, 64, 1200, 53), Point(1, 2, 64, 1700, 37)};
}

TEST(OpenSettingsTest, AnExplicitSettingIsNotOpen) {
  const OpenSettings empty = OpenSettingsOf(Config(""));
  EXPECT_TRUE(empty.layout && empty.preferred_batch_sizes && empty.queue_delay &&
              empty.max_batch_size);
  const OpenSettings plain = OpenSettingsOf(
      Config("max_batch_size: 64 dynamic_batching { max_queue_delay_microseconds: 2000 }"));
  EXPECT_TRUE(plain.layout);
  EXPECT_TRUE(plain.preferred_batch_sizes);
  EXPECT_FALSE(plain.queue_delay);
  EXPECT_FALSE(plain.max_batch_size);
  const OpenSettings pinned = OpenSettingsOf(
      Config("dynamic_batching { preferred_batch_size: 8 } instance_group { count: 2 }"));
  EXPECT_FALSE(pinned.layout);
  EXPECT_FALSE(pinned.preferred_batch_sizes);
  EXPECT_FALSE(pinned.any());
}

TEST(OpenSettingsTest, ParametersAreChecked) {
  EXPECT_TRUE(*SelfConfigurationWanted(Config("")));
  EXPECT_FALSE(
      *SelfConfigurationWanted(Config(R"(parameters { key: "self_configuration" value: "off" })")));
  EXPECT_EQ(
      SelfConfigurationWanted(Config(R"(parameters { key: "self_configuration" value: "x" })"))
          .status()
          .code(),
      absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(*LatencyObjectiveOf(Config("")), absl::InfiniteDuration());
  EXPECT_EQ(*LatencyObjectiveOf(
                Config(R"(parameters { key: "latency_objective_p99_ms" value: "12.5" })")),
            absl::Microseconds(12500));
  for (const char* bad : {"0", "-3", "nan", "ten", "1e12"}) {
    EXPECT_EQ(LatencyObjectiveOf(
                  Config(absl::StrCat(R"(parameters { key: "latency_objective_p99_ms" value: ")",
                                      bad, R"(" })")))
                  .status()
                  .code(),
              absl::StatusCode::kInvalidArgument)
        << bad;
  }
}

TEST(CandidatesTest, LayoutsFillTheCoresOrLeaveOneToTheFrontEnd) {
  const std::vector<Layout> two = CandidateLayouts(2);
  EXPECT_EQ(two, (std::vector<Layout>{{2, 1}, {1, 1}, {1, 2}}));
  EXPECT_EQ(CandidateLayouts(1), (std::vector<Layout>{{1, 1}}));
  for (const Layout& layout : CandidateLayouts(16)) {
    EXPECT_LE(layout.instances * layout.intra_op_threads, 16) << layout.ToString();
    EXPECT_GE(layout.instances * layout.intra_op_threads, 8) << layout.ToString();
  }
}

TEST(CandidatesTest, BatchesGrowByFourUpToTheMaximum) {
  EXPECT_EQ(CalibrationBatches(64), (std::vector<int64_t>{1, 4, 16, 64}));
  EXPECT_EQ(CalibrationBatches(32), (std::vector<int64_t>{1, 4, 16, 32}));
  EXPECT_EQ(CalibrationBatches(8), (std::vector<int64_t>{1, 4, 8}));
  EXPECT_EQ(CalibrationBatches(1), (std::vector<int64_t>{1}));
  EXPECT_EQ(CalibrationBatches(0), (std::vector<int64_t>{1}));
}

TEST(ChooseTest, WithoutAnObjectiveTheMostRowsPerSecondWin) {
  BatchPolicy policy;
  policy.max_batch_size = 64;
  const SelfConfiguration chosen =
      ChooseConfiguration(Resnet18Like(), AllOpen(), policy, absl::InfiniteDuration());
  EXPECT_EQ(chosen.layout, (Layout{2, 1}));
  EXPECT_EQ(chosen.basis.batch, 64);
  EXPECT_TRUE(chosen.preferred_batch_sizes.empty());  // the curve still rises at 64
  EXPECT_EQ(chosen.max_queue_delay, absl::ZeroDuration());
  EXPECT_EQ(chosen.max_batch_size, 64);
  EXPECT_TRUE(chosen.objective_met);
  EXPECT_NE(chosen.summary.find("2 instances x 1 intra-op thread"), std::string::npos)
      << chosen.summary;
}

// The geometric mean of `layout`'s rows per second over its points that keep `objective`;
// 0 when none does. Computed here apart from the implementation, for a brute-force check.
double Score(const std::vector<CalibrationPoint>& points, const Layout& layout,
             absl::Duration delay, absl::Duration objective) {
  double product = 1;
  int count = 0;
  for (const CalibrationPoint& point : points) {
    if (point.layout == layout && EstimatedP99(point, delay) <= objective) {
      product *= point.rows_per_second;
      ++count;
    }
  }
  return count == 0 ? 0 : std::pow(product, 1.0 / count);
}

TEST(ChooseTest, TheChosenLayoutScoresBestUnderTheObjective) {
  // Brute force over every layout: the chosen one keeps the objective and none scores more
  // than the tie margin above it.
  BatchPolicy policy;
  policy.max_batch_size = 64;
  const std::vector<CalibrationPoint> points = Resnet18Like();
  for (double objective_ms : {5.0, 6.0, 25.0, 40.0, 80.0, 120.0}) {
    const absl::Duration objective = absl::Microseconds(objective_ms * 1000);
    const SelfConfiguration chosen = ChooseConfiguration(points, AllOpen(), policy, objective);
    ASSERT_TRUE(chosen.objective_met) << objective_ms;
    EXPECT_LE(EstimatedP99(chosen.basis, chosen.max_queue_delay), objective) << objective_ms;
    const double mine = Score(points, chosen.layout, chosen.max_queue_delay, objective);
    for (const Layout& other : CandidateLayouts(2)) {
      EXPECT_LE(Score(points, other, chosen.max_queue_delay, objective), mine / 0.95)
          << objective_ms << " ms: " << other.ToString() << " beats " << chosen.layout.ToString();
    }
  }
}

TEST(ChooseTest, ALayoutAheadOnlyAtTheLargestBatchDoesNotWin) {
  // Measured on this machine with a busy process on one core (docs/PERFORMANCE.md): two
  // instances gain only at batch 64 and double the run time; served at c=16 they lost 28 %.
  const std::vector<CalibrationPoint> busy = {
      Point(2, 1, 1, 229, 7.93),    Point(1, 1, 1, 260, 3.84),    Point(1, 2, 1, 217, 4.60),
      Point(2, 1, 4, 740, 9.95),    Point(1, 1, 4, 711, 5.61),    Point(1, 2, 4, 553, 6.95),
      Point(2, 1, 16, 1764, 17.70), Point(1, 1, 16, 1676, 9.26),  Point(1, 2, 16, 1430, 10.89),
      Point(2, 1, 64, 3192, 44.34), Point(1, 1, 64, 2618, 23.99), Point(1, 2, 64, 2452, 25.56)};
  BatchPolicy policy;
  policy.max_batch_size = 64;
  EXPECT_EQ(ChooseConfiguration(busy, AllOpen(), policy, absl::InfiniteDuration()).layout,
            (Layout{1, 1}));
  // Quiet, the same model: two instances win at every batch.
  const std::vector<CalibrationPoint> quiet = {
      Point(2, 1, 1, 501, 3.87),    Point(1, 1, 1, 267, 3.77),    Point(1, 2, 1, 180, 5.85),
      Point(2, 1, 4, 1389, 5.69),   Point(1, 1, 4, 717, 5.55),    Point(1, 2, 4, 483, 8.81),
      Point(2, 1, 16, 3259, 9.40),  Point(1, 1, 16, 1734, 9.23),  Point(1, 2, 16, 1378, 11.59),
      Point(2, 1, 64, 5211, 23.94), Point(1, 1, 64, 2682, 23.90), Point(1, 2, 64, 2994, 20.94)};
  EXPECT_EQ(ChooseConfiguration(quiet, AllOpen(), policy, absl::InfiniteDuration()).layout,
            (Layout{2, 1}));
}

TEST(ChooseTest, InstancesThatDidNotRunInParallelAreLeftOut) {
  // Measured on this machine with a busy process on one core (2026-12-05): two instances lead
  // in rows/s at batches 16 and 64, but each of their runs took about twice one instance's, so
  // they shared a core; served at c=16 they lost 27 % to one instance.
  const std::vector<CalibrationPoint> busy = {
      Point(2, 1, 1, 144, 14.36),   Point(1, 1, 1, 145, 6.66),    Point(1, 2, 1, 128, 7.53),
      Point(2, 1, 4, 495, 16.86),   Point(1, 1, 4, 466, 7.97),    Point(1, 2, 4, 389, 9.87),
      Point(2, 1, 16, 1243, 19.17), Point(1, 1, 16, 1006, 15.37), Point(1, 2, 16, 907, 17.31),
      Point(2, 1, 64, 1589, 90.81), Point(1, 1, 64, 1291, 48.71), Point(1, 2, 64, 1270, 52.77)};
  BatchPolicy policy;
  policy.max_batch_size = 64;
  const SelfConfiguration chosen =
      ChooseConfiguration(busy, AllOpen(), policy, absl::InfiniteDuration());
  EXPECT_EQ(chosen.layout, (Layout{1, 1}));
  EXPECT_NE(chosen.summary.find("left out, its instances ran slower than one alone: 2 instances"),
            std::string::npos)
      << chosen.summary;
  // The same rows/s with runs as long as one instance's: the instances ran side by side.
  std::vector<CalibrationPoint> parallel = busy;
  for (CalibrationPoint& point : parallel) {
    if (point.layout == Layout{2, 1}) {
      for (const CalibrationPoint& single : busy) {
        if (single.layout == Layout{1, 1} && single.batch == point.batch) {
          point.run_time = single.run_time * 1.1;
        }
      }
    }
  }
  const SelfConfiguration side_by_side =
      ChooseConfiguration(parallel, AllOpen(), policy, absl::InfiniteDuration());
  EXPECT_EQ(side_by_side.layout, (Layout{2, 1}));
  EXPECT_EQ(side_by_side.summary.find("left out"), std::string::npos) << side_by_side.summary;
}

TEST(ChooseTest, AnExplicitLayoutIsNeverLeftOut) {
  // instance_group set: the config's layout is kept however slowly its instances ran, even
  // next to a faster single instance.
  const std::vector<CalibrationPoint> points = {
      Point(2, 1, 1, 144, 14.36), Point(2, 1, 64, 1589, 90.81), Point(1, 1, 1, 145, 6.66),
      Point(1, 1, 64, 1291, 48.71)};
  OpenSettings open = AllOpen();
  open.layout = false;
  BatchPolicy policy;
  policy.max_batch_size = 64;
  const SelfConfiguration chosen =
      ChooseConfiguration(points, open, policy, absl::InfiniteDuration());
  EXPECT_EQ(chosen.layout, (Layout{2, 1}));
  EXPECT_EQ(chosen.summary.find("left out"), std::string::npos) << chosen.summary;
}

TEST(ChooseTest, ABatchMeasuredForOnlySomeLayoutsIsNotScored) {
  // The budget ran out after 2 x 1 at batch 64: that point alone would lift its mean above
  // 1 x 2, which is ahead at every batch both measured.
  const std::vector<CalibrationPoint> cut = {Point(2, 1, 1, 300, 6.6), Point(1, 2, 1, 330, 3.0),
                                             Point(2, 1, 16, 1500, 21), Point(1, 2, 16, 1700, 9.4),
                                             Point(2, 1, 64, 9000, 14)};
  BatchPolicy policy;
  policy.max_batch_size = 64;
  const SelfConfiguration chosen =
      ChooseConfiguration(cut, AllOpen(), policy, absl::InfiniteDuration());
  EXPECT_EQ(chosen.layout, (Layout{1, 2})) << chosen.summary;
  // Measured for both, the same point counts.
  std::vector<CalibrationPoint> whole = cut;
  whole.push_back(Point(1, 2, 64, 2000, 32));
  EXPECT_EQ(ChooseConfiguration(whole, AllOpen(), policy, absl::InfiniteDuration()).layout,
            (Layout{2, 1}));
}

TEST(ChooseTest, MaxBatchSizeIsLoweredOnlyBelowAMeasuredMiss) {
  const OpenSettings open = AllOpen();
  BatchPolicy policy;
  policy.max_batch_size = 64;
  // Batches 1 and 4 keep 20 ms; the budget ended before 16 and 64 were measured.
  const std::vector<CalibrationPoint> early = {Point(1, 1, 1, 500, 2), Point(1, 1, 4, 1000, 4)};
  EXPECT_EQ(ChooseConfiguration(early, open, policy, absl::Milliseconds(20)).max_batch_size, 64);
  // Batch 16 measured and missed: lowered to 4.
  std::vector<CalibrationPoint> missed = early;
  missed.push_back(Point(1, 1, 16, 1300, 12));
  EXPECT_EQ(ChooseConfiguration(missed, open, policy, absl::Milliseconds(20)).max_batch_size, 4);
  // An explicit preferred size of 8 stays servable: lowered to 8, not 4.
  OpenSettings preferred_set = open;
  preferred_set.preferred_batch_sizes = false;
  policy.preferred_batch_sizes = {8};
  EXPECT_EQ(
      ChooseConfiguration(missed, preferred_set, policy, absl::Milliseconds(20)).max_batch_size, 8);
}

TEST(ChooseTest, ATightObjectiveLowersTheBatchAndPicksTheFasterRun) {
  BatchPolicy policy;
  policy.max_batch_size = 64;
  // 2 x run <= 25 ms: batch 64 is out for every layout; at batch 16 the 2 x 1 layout
  // (15 ms) is out too, 1 x 2 (10.5 ms) keeps it.
  const SelfConfiguration chosen =
      ChooseConfiguration(Resnet18Like(), AllOpen(), policy, absl::Milliseconds(25));
  EXPECT_EQ(chosen.layout, (Layout{1, 2}));
  EXPECT_EQ(chosen.basis.batch, 16);
  EXPECT_EQ(chosen.max_batch_size, 16);  // open, so lowered to what keeps the objective
}

TEST(ChooseTest, AnObjectiveNoPointKeepsPicksTheLowestLatency) {
  BatchPolicy policy;
  policy.max_batch_size = 64;
  const SelfConfiguration chosen =
      ChooseConfiguration(Resnet18Like(), AllOpen(), policy, absl::Milliseconds(1));
  EXPECT_FALSE(chosen.objective_met);
  EXPECT_EQ(chosen.layout, (Layout{1, 2}));
  EXPECT_EQ(chosen.basis.batch, 1);
  EXPECT_EQ(chosen.max_batch_size, 64);  // not lowered on a guess
  EXPECT_NE(chosen.summary.find("not met"), std::string::npos);
}

TEST(ChooseTest, ExplicitSettingsAreNeverOverridden) {
  BatchPolicy policy;
  policy.max_batch_size = 64;
  policy.preferred_batch_sizes = {8};
  policy.max_queue_delay = absl::Microseconds(2000);
  OpenSettings open;  // nothing open but the layout
  open.layout = true;
  const SelfConfiguration chosen =
      ChooseConfiguration(Resnet18Like(), open, policy, absl::Milliseconds(25));
  EXPECT_EQ(chosen.preferred_batch_sizes, std::vector<int>{8});
  EXPECT_EQ(chosen.max_queue_delay, absl::Microseconds(2000));
  EXPECT_EQ(chosen.max_batch_size, 64);
  // The explicit delay counts in the estimate: 2 ms + 2 x 10.5 ms = 23 ms keeps 25 ms.
  EXPECT_EQ(chosen.layout, (Layout{1, 2}));
}

TEST(ChooseTest, APeakBeforeTheLargestBatchBecomesThePreferredSize) {
  // libtorch 1.13's MKL-DNN cliff (docs/PERFORMANCE.md): batch 16 far slower per row.
  const std::vector<CalibrationPoint> cliff = {Point(1, 1, 1, 1000, 1), Point(1, 1, 4, 3000, 1.3),
                                               Point(1, 1, 8, 5000, 1.6), Point(1, 1, 16, 600, 27)};
  BatchPolicy policy;
  policy.max_batch_size = 16;
  const SelfConfiguration chosen =
      ChooseConfiguration(cliff, AllOpen(), policy, absl::InfiniteDuration());
  EXPECT_EQ(chosen.preferred_batch_sizes, std::vector<int>{8});
}

TEST(ChooseTest, TiesGoToTheFasterSingleRun) {
  const std::vector<CalibrationPoint> tie = {Point(2, 1, 1, 1000, 2), Point(1, 2, 1, 960, 1.2)};
  BatchPolicy policy;
  policy.max_batch_size = 1;
  EXPECT_EQ(ChooseConfiguration(tie, AllOpen(), policy, absl::InfiniteDuration()).layout,
            (Layout{1, 2}));
}

TEST(PinnedConfigTest, OnlyOpenFieldsAreWrittenAndMeasuringIsOff) {
  const config::ModelConfig original =
      Config("max_batch_size: 64 dynamic_batching { max_queue_delay_microseconds: 2000 }");
  BatchPolicy policy;
  policy.max_batch_size = 64;
  policy.max_queue_delay = absl::Microseconds(2000);
  const OpenSettings open = OpenSettingsOf(original);
  const SelfConfiguration chosen =
      ChooseConfiguration(Resnet18Like(), open, policy, absl::InfiniteDuration());
  const config::ModelConfig pinned = PinnedConfig(original, open, chosen);
  ASSERT_EQ(pinned.instance_group_size(), 1);
  EXPECT_EQ(pinned.instance_group(0).count(), 2);
  EXPECT_EQ(pinned.instance_group(0).intra_op_threads(), 1);
  EXPECT_EQ(pinned.instance_group(0).kind(), config::InstanceGroup::KIND_CPU);
  EXPECT_EQ(pinned.dynamic_batching().max_queue_delay_microseconds(), 2000u);
  EXPECT_EQ(pinned.max_batch_size(), 64);
  EXPECT_EQ(pinned.parameters().at("self_configuration"), "off");
  // Loaded again, nothing is left to choose.
  EXPECT_FALSE(OpenSettingsOf(pinned).layout);
  EXPECT_FALSE(*SelfConfigurationWanted(pinned));
}

}  // namespace
}  // namespace torchbricks::server
