#include "server/scheduling/calibration.h"

#include <atomic>
#include <memory>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/mutex.h"
#include "core/testing/package_fixtures.h"
#include "gtest/gtest.h"

namespace torchbricks::server {
namespace {

// A real fixture model behind a decorator that counts runs, records the rows and threads
// it saw and takes `pause` longer per run (so a test controls how many runs fit a budget).
class CountingModel : public ServableModel {
 public:
  CountingModel(std::unique_ptr<ServableModel> model, absl::Duration pause)
      : model_(std::move(model)), pause_(pause) {}

  absl::Status Validate(Stage stage, absl::Span<const HostTensorView> inputs,
                        absl::Span<const std::string> outputs) const override {
    return model_->Validate(stage, inputs, outputs);
  }
  std::vector<absl::StatusOr<std::vector<HostTensor>>> RunBatch(Stage stage,
                                                                absl::Span<const BatchItem> items,
                                                                RunTrace* trace) const override {
    return model_->RunBatch(stage, items, trace);
  }
  absl::StatusOr<std::vector<HostTensor>> Run(Stage stage, absl::Span<const HostTensorView> inputs,
                                              absl::Span<const std::string> outputs,
                                              RunTrace* trace) const override {
    if (runs_.fetch_add(1) + 1 >= fail_from_ && fail_from_ > 0) {
      return absl::InternalError("brick 'backbone' failed (a test's failure)");
    }
    {
      absl::MutexLock lock(&mu_);
      rows_.insert(inputs.empty() ? -1 : inputs.front().shape.front());
      threads_.insert(std::this_thread::get_id());
    }
    absl::SleepFor(pause_);
    return model_->Run(stage, inputs, outputs, trace);
  }
  std::vector<ValueSpec> OutputSpecs(Stage stage) const override {
    return model_->OutputSpecs(stage);
  }
  const BrickGraph& graph() const override { return model_->graph(); }
  const StagePlan& plan(Stage stage) const override { return model_->plan(stage); }
  std::string Mermaid(Stage stage) const override { return model_->Mermaid(stage); }

  int runs() const { return runs_.load(); }
  // Runs from the `run`-th on (1-based) fail. Call before any run.
  void FailFrom(int run) { fail_from_ = run; }
  std::set<int64_t> rows() const {
    absl::MutexLock lock(&mu_);
    return rows_;
  }
  size_t threads() const {
    absl::MutexLock lock(&mu_);
    return threads_.size();
  }

 private:
  std::unique_ptr<ServableModel> model_;
  absl::Duration pause_;
  int fail_from_ = 0;
  mutable std::atomic<int> runs_{0};
  mutable absl::Mutex mu_;
  mutable std::set<int64_t> rows_ ABSL_GUARDED_BY(mu_);
  mutable std::set<std::thread::id> threads_ ABSL_GUARDED_BY(mu_);
};

std::unique_ptr<CountingModel> Load(const std::string& fixture, absl::Duration pause) {
  absl::StatusOr<std::unique_ptr<ServableModel>> model =
      LoadServableModel({.version_dir = testing::FixturePackage(fixture), .warmup_runs = 0});
  EXPECT_TRUE(model.ok()) << model.status();
  return std::make_unique<CountingModel>(*std::move(model), pause);
}

TEST(SyntheticInputsTest, ShapedAsDeclaredWithTheRowsAsked) {
  std::unique_ptr<CountingModel> model = Load("readme_dummy", absl::ZeroDuration());
  absl::StatusOr<std::vector<HostTensor>> inputs = SyntheticInputs(*model, Stage::kInference, 5);
  ASSERT_TRUE(inputs.ok()) << inputs.status();
  ASSERT_EQ(inputs->size(), 1u);
  EXPECT_EQ(inputs->front().name, "raw_images");
  EXPECT_EQ(inputs->front().shape, (std::vector<int64_t>{5, 3, 100, 200}));
  EXPECT_EQ(inputs->front().data.size(), 5u * 3 * 100 * 200 * sizeof(float));
  // The model takes them.
  std::vector<HostTensorView> views = {{inputs->front().name, inputs->front().data_type,
                                        inputs->front().shape, inputs->front().data}};
  EXPECT_TRUE(model->Validate(Stage::kInference, views, {}).ok());
}

TEST(SyntheticInputsTest, EncodedImagesCannotBeMade) {
  std::unique_ptr<CountingModel> model = Load("vision_classifier", absl::ZeroDuration());
  absl::StatusOr<std::vector<HostTensor>> inputs = SyntheticInputs(*model, Stage::kInference, 2);
  EXPECT_EQ(inputs.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(inputs.status().message().find("encoded"), std::string::npos) << inputs.status();
}

TEST(CalibrateTest, MeasuresEveryLayoutAndBatchWithItsThreads) {
  std::unique_ptr<CountingModel> model = Load("readme_dummy", absl::ZeroDuration());
  absl::StatusOr<std::vector<CalibrationPoint>> points =
      Calibrate(*model, {.layouts = {{1, 1}, {2, 1}},
                         .batches = {1, 4},
                         .budget = absl::Seconds(20),
                         .enough_runs = 3,
                         .enough_time = absl::ZeroDuration()});
  ASSERT_TRUE(points.ok()) << points.status();
  ASSERT_EQ(points->size(), 4u);
  for (const CalibrationPoint& point : *points) {
    EXPECT_GT(point.rows_per_second, 0);
    EXPECT_GT(point.run_time, absl::ZeroDuration());
    EXPECT_GE(point.runs, 3 * point.layout.instances);
  }
  EXPECT_EQ((*points)[0].batch, 1);
  EXPECT_EQ((*points)[3].batch, 4);
  EXPECT_EQ((*points)[1].layout, (Layout{2, 1}));
  EXPECT_EQ(model->rows(), (std::set<int64_t>{1, 4}));
  EXPECT_GE(model->threads(), 2u);  // the 2-instance layout ran on two threads at once
}

TEST(CalibrateTest, BoundedByTheBudget) {
  // Every run takes at least 20 ms; 12 points share 300 ms. Each point's threads stop
  // starting runs once its share has passed, so the runs are bounded by the budget's worth
  // plus, per thread of every point started, a warm-up, a first run and one that overruns.
  const absl::Duration pause = absl::Milliseconds(20);
  const absl::Duration budget = absl::Milliseconds(300);
  std::unique_ptr<CountingModel> model = Load("readme_dummy", pause);
  const std::vector<Layout> layouts = CandidateLayouts(2);  // 2x1, 1x1, 1x2
  const std::vector<int64_t> batches = {1, 2, 4, 8};
  absl::StatusOr<std::vector<CalibrationPoint>> points =
      Calibrate(*model, {.layouts = layouts, .batches = batches, .budget = budget});
  ASSERT_TRUE(points.ok()) << points.status();
  int threads_per_round = 0;
  for (const Layout& layout : layouts) threads_per_round += layout.instances;
  const int bound = static_cast<int>(budget / pause) * 2 +  // both threads of 2x1 at once
                    3 * threads_per_round * static_cast<int>(batches.size());
  EXPECT_LE(model->runs(), bound);
  EXPECT_LE(points->size(), layouts.size() * batches.size());
}

TEST(CalibrateTest, ARunThatFailsIsTheResult) {
  std::unique_ptr<CountingModel> model = Load("readme_dummy", absl::ZeroDuration());
  model->FailFrom(2);  // the second run of the second point's thread fails
  absl::StatusOr<std::vector<CalibrationPoint>> points =
      Calibrate(*model, {.layouts = {{1, 1}}, .batches = {1, 4}, .budget = absl::Seconds(5)});
  EXPECT_EQ(points.status().code(), absl::StatusCode::kInternal);
  EXPECT_NE(points.status().message().find("brick 'backbone'"), std::string::npos)
      << points.status();
}

TEST(CalibrateTest, AZeroBudgetMeasuresNothing) {
  std::unique_ptr<CountingModel> model = Load("readme_dummy", absl::ZeroDuration());
  absl::StatusOr<std::vector<CalibrationPoint>> points =
      Calibrate(*model, {.layouts = {{1, 1}}, .batches = {1}, .budget = absl::ZeroDuration()});
  EXPECT_EQ(points.status().code(), absl::StatusCode::kDeadlineExceeded);
  EXPECT_EQ(model->runs(), 0);
}

}  // namespace
}  // namespace torchbricks::server
