// ServableModel on exported packages: host bytes in and out, batched runs that hand each
// member exactly its own rows, and failure isolation inside a batch.
#include "core/servable/servable_model.h"

#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <mutex>

#include "ATen/Parallel.h"
#include "core/libtorch/torch_log_sink.h"
#include "core/testing/package_fixtures.h"
#include "gtest/gtest.h"
#include "torch/csrc/jit/frontend/resolver.h"
#include "torch/csrc/jit/frontend/sugared_value.h"
#include "torch/library.h"
#include "torch/script.h"

namespace torchbricks {
namespace {

using ::torchbricks::testing::FixturePackage;

// Owns the bytes behind a view.
struct OwnedInput {
  OwnedInput(std::string name, package::DataType type, std::vector<int64_t> shape,
             std::string bytes)
      : bytes(std::move(bytes)) {
    view = {std::move(name), type, std::move(shape), this->bytes};
  }
  std::string bytes;
  HostTensorView view;
};

std::unique_ptr<OwnedInput> Floats(const std::string& name, std::vector<int64_t> shape,
                                   float seed) {
  int64_t n = 1;
  for (int64_t d : shape) n *= d;
  std::vector<float> values(n);
  for (int64_t i = 0; i < n; ++i) values[i] = seed + 0.001f * static_cast<float>(i % 997);
  std::string bytes(n * sizeof(float), '\0');
  if (n > 0) std::memcpy(bytes.data(), values.data(), bytes.size());  // no rows: no data
  return std::make_unique<OwnedInput>(name, package::TYPE_FP32, std::move(shape), std::move(bytes));
}

std::unique_ptr<OwnedInput> Index(int64_t value) {
  std::string bytes(sizeof(value), '\0');
  std::memcpy(bytes.data(), &value, sizeof(value));
  return std::make_unique<OwnedInput>("index", package::TYPE_INT64, std::vector<int64_t>{1, 1},
                                      std::move(bytes));
}

std::map<std::string, HostTensor> ByName(const std::vector<HostTensor>& tensors) {
  std::map<std::string, HostTensor> result;
  for (const HostTensor& tensor : tensors) result[tensor.name] = tensor;
  return result;
}

std::vector<float> AsFloats(const HostTensor& tensor) {
  std::vector<float> values(tensor.data.size() / sizeof(float));
  std::memcpy(values.data(), tensor.data.data(), tensor.data.size());
  return values;
}

TEST(ServableModelTest, BatchMembersGetExactlyTheirOwnRowsAndOutputs) {
  auto model = LoadServableModel({.version_dir = FixturePackage("readme_dummy"), .warmup_runs = 1});
  ASSERT_TRUE(model.ok()) << model.status();
  std::vector<std::unique_ptr<OwnedInput>> inputs;
  inputs.push_back(Floats("raw_images", {1, 3, 100, 200}, 0.1f));
  inputs.push_back(Floats("raw_images", {2, 3, 100, 200}, 0.5f));
  inputs.push_back(Floats("raw_images", {1, 3, 100, 200}, 0.9f));
  const std::vector<std::vector<std::string>> wants = {{"logits"}, {}, {"embedding", "softmaxed"}};
  std::vector<BatchItem> items;
  for (size_t i = 0; i < inputs.size(); ++i) {
    items.push_back({absl::MakeConstSpan(&inputs[i]->view, 1), wants[i]});
  }
  RunTrace trace;
  auto batched = (*model)->RunBatch(Stage::kInference, items, &trace);
  ASSERT_EQ(batched.size(), 3u);
  EXPECT_EQ(trace.bricks.size(), 3u) << "the batch should run each brick once";
  for (size_t i = 0; i < items.size(); ++i) {
    ASSERT_TRUE(batched[i].ok()) << batched[i].status();
    auto alone = (*model)->Run(Stage::kInference, items[i].inputs, items[i].outputs, nullptr);
    ASSERT_TRUE(alone.ok()) << alone.status();
    const auto got = ByName(*batched[i]);
    const auto expected = ByName(*alone);
    ASSERT_EQ(got.size(), expected.size()) << "member " << i;
    for (const auto& [name, tensor] : expected) {
      ASSERT_TRUE(got.count(name)) << "member " << i << " lacks " << name;
      EXPECT_EQ(got.at(name).shape, tensor.shape) << name;
      const std::vector<float> a = AsFloats(got.at(name));
      const std::vector<float> b = AsFloats(tensor);
      ASSERT_EQ(a.size(), b.size());
      for (size_t k = 0; k < a.size(); ++k)
        ASSERT_NEAR(a[k], b[k], 1e-5) << name << "[" << k << "]";
    }
  }
  EXPECT_EQ(ByName(*batched[1]).at("logits").shape, (std::vector<int64_t>{2, 3}));
}

TEST(ServableModelTest, FailureInsideABatchReachesOnlyTheMemberThatFailsAlone) {
  auto model = LoadServableModel({.version_dir = FixturePackage("lookup_table"), .warmup_runs = 1});
  ASSERT_TRUE(model.ok()) << model.status();
  std::vector<std::unique_ptr<OwnedInput>> inputs;
  for (int64_t index : {1, 99, 3}) inputs.push_back(Index(index));
  std::vector<BatchItem> items;
  for (const auto& input : inputs) items.push_back({absl::MakeConstSpan(&input->view, 1), {}});
  auto results = (*model)->RunBatch(Stage::kInference, items, nullptr);
  ASSERT_EQ(results.size(), 3u);
  ASSERT_TRUE(results[0].ok()) << results[0].status();
  EXPECT_EQ(AsFloats((*results[0])[0]), (std::vector<float>{2, 3}));
  ASSERT_FALSE(results[1].ok());
  EXPECT_EQ(results[1].status().code(), absl::StatusCode::kInternal);
  EXPECT_NE(results[1].status().message().find("brick 'lookup'"), std::string::npos)
      << results[1].status();
  ASSERT_TRUE(results[2].ok()) << results[2].status();
  EXPECT_EQ(AsFloats((*results[2])[0]), (std::vector<float>{6, 7}));
}

TEST(ServableModelTest, ItemsWhoseInputsDisagreeOnRowsAreNeverConcatenated) {
  // keyword_inputs computes (y - x) row by row. Two items whose inputs have complementary
  // rows (0 and 2, then 2 and 0) around a victim would concatenate to equal totals; each
  // item must be split at its own rows, so they run alone and the victim gets its own answer.
  auto model =
      LoadServableModel({.version_dir = FixturePackage("keyword_inputs"), .warmup_runs = 1});
  ASSERT_TRUE(model.ok()) << model.status();
  std::vector<std::vector<std::unique_ptr<OwnedInput>>> inputs(3);
  const std::vector<std::pair<int64_t, int64_t>> rows = {{0, 2}, {1, 1}, {2, 0}};
  for (size_t i = 0; i < rows.size(); ++i) {
    inputs[i].push_back(Floats("x", {rows[i].first, 3}, 10.0f * static_cast<float>(i)));
    inputs[i].push_back(Floats("y", {rows[i].second, 3}, 100.0f * static_cast<float>(i + 1)));
  }
  std::vector<std::vector<HostTensorView>> views(3);
  std::vector<BatchItem> items;
  for (size_t i = 0; i < rows.size(); ++i) {
    for (const auto& input : inputs[i]) views[i].push_back(input->view);
    items.push_back({views[i], {}});
  }
  auto results = (*model)->RunBatch(Stage::kInference, items, nullptr);
  ASSERT_EQ(results.size(), 3u);
  auto alone = (*model)->Run(Stage::kInference, views[1], {}, nullptr);
  ASSERT_TRUE(alone.ok()) << alone.status();
  ASSERT_TRUE(results[1].ok()) << results[1].status();
  EXPECT_EQ(AsFloats((*results[1])[0]), AsFloats((*alone)[0]));
  EXPECT_FALSE(results[0].ok());
  EXPECT_FALSE(results[2].ok());
}

TEST(ServableModelTest, ARunNobodyWaitsForStops) {
  auto model = LoadServableModel({.version_dir = FixturePackage("readme_dummy"), .warmup_runs = 1});
  ASSERT_TRUE(model.ok()) << model.status();
  auto first = Floats("raw_images", {1, 3, 100, 200}, 0.1f);
  auto second = Floats("raw_images", {1, 3, 100, 200}, 0.2f);
  const absl::Time past = absl::Now() - absl::Seconds(1);
  // Both expired: the batch stops before its first brick.
  std::vector<BatchItem> items = {{absl::MakeConstSpan(&first->view, 1), {}, {.deadline = past}},
                                  {absl::MakeConstSpan(&second->view, 1), {}, {.deadline = past}}};
  RunTrace trace;
  auto results = (*model)->RunBatch(Stage::kInference, items, &trace);
  ASSERT_EQ(results.size(), 2u);
  for (const auto& result : results) {
    EXPECT_EQ(result.status().code(), absl::StatusCode::kDeadlineExceeded) << result.status();
  }
  EXPECT_TRUE(trace.bricks.empty());
  // One still waited for: the batch runs once (each brick once), and both get their rows.
  items[1].limits = {.cancelled = [] { return false; }};
  RunTrace batched_once;
  results = (*model)->RunBatch(Stage::kInference, items, &batched_once);
  EXPECT_TRUE(results[0].ok()) << results[0].status();
  EXPECT_TRUE(results[1].ok()) << results[1].status();
  EXPECT_EQ(batched_once.bricks.size(), 3u) << "the batch should have run as one";
  // Every member cancelled: it stops with Cancelled.
  items[0].limits = items[1].limits = {.cancelled = [] { return true; }};
  results = (*model)->RunBatch(Stage::kInference, items, nullptr);
  EXPECT_EQ(results[0].status().code(), absl::StatusCode::kCancelled) << results[0].status();
}

TEST(ServableModelTest, ValidateRefusesWhatRunWouldRefuse) {
  auto model = LoadServableModel({.version_dir = FixturePackage("readme_dummy"), .warmup_runs = 0});
  ASSERT_TRUE(model.ok()) << model.status();
  auto good = Floats("raw_images", {1, 3, 100, 200}, 0.f);
  EXPECT_TRUE((*model)->Validate(Stage::kInference, {good->view}, {}).ok());
  auto wrong_shape = Floats("raw_images", {1, 3, 10, 20}, 0.f);
  EXPECT_EQ((*model)->Validate(Stage::kInference, {wrong_shape->view}, {}).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ((*model)->Validate(Stage::kInference, {}, {}).code(),
            absl::StatusCode::kInvalidArgument);
  const std::vector<std::string> unknown = {"nope"};
  EXPECT_EQ((*model)->Validate(Stage::kInference, {good->view}, unknown).code(),
            absl::StatusCode::kInvalidArgument);
  OwnedInput truncated("raw_images", package::TYPE_FP32, {1, 3, 100, 200}, "abc");
  EXPECT_NE((*model)->Validate(Stage::kInference, {truncated.view}, {}).message().find("bytes"),
            std::string::npos);
}

TEST(ServableModelTest, OutputInfoComesFromWarmUp) {
  auto model = LoadServableModel({.version_dir = FixturePackage("readme_dummy"), .warmup_runs = 1});
  ASSERT_TRUE(model.ok()) << model.status();
  const std::vector<ValueSpec> outputs = (*model)->OutputSpecs(Stage::kInference);
  ASSERT_EQ(outputs.size(), 2u);
  EXPECT_EQ(outputs[0].name, "logits");
  EXPECT_EQ(outputs[0].data_type, package::TYPE_FP32);
  EXPECT_EQ(outputs[0].dims, (std::vector<int64_t>{-1, 3}));
}

// --- Warm-up thread settings and libtorch's warnings ------------------------------------------

// The intra-op threads of the thread that last ran torchbricks_test::record_threads.
std::atomic<int> threads_seen{-1};

at::Tensor RecordThreads(const at::Tensor& x) {
  threads_seen = at::get_num_threads();
  return x / 2;
}

TORCH_LIBRARY(torchbricks_test, m) { m.def("record_threads", &RecordThreads); }

// TorchScript source compiled here sees `torch` (aten) and `probe` (this test's ops).
struct ProbeResolver : torch::jit::Resolver {
  std::shared_ptr<torch::jit::SugaredValue> resolveValue(
      const std::string& name, torch::jit::GraphFunction& function,
      const torch::jit::SourceRange& loc) override {
    if (name == "probe") return std::make_shared<torch::jit::BuiltinModule>("torchbricks_test");
    return torch::jit::nativeResolver()->resolveValue(name, function, loc);
  }
  c10::TypePtr resolveType(const std::string& name, const torch::jit::SourceRange& loc) override {
    return torch::jit::nativeResolver()->resolveType(name, loc);
  }
};

// A copy of readme_dummy whose preprocessor (same contract: raw_input / 2) is `source`.
std::filesystem::path PackageWithPreprocessor(const std::string& name, const std::string& source) {
  const std::filesystem::path dir = std::filesystem::path(::testing::TempDir()) /
                                    ("servable_" + name + std::to_string(getpid())) / "1";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::filesystem::copy(FixturePackage("readme_dummy"), dir,
                        std::filesystem::copy_options::recursive);
  torch::jit::Module module("PreprocessorProbe");
  module.define(source, std::make_shared<ProbeResolver>());
  module.save((dir / "modules" / "preprocessor.pt").string());
  return dir;
}

TEST(ServableModelTest, WarmUpRunsWithTheInstancesIntraOpThreads) {
  const std::filesystem::path dir = PackageWithPreprocessor("threads", R"(
def forward(self, raw_input: Tensor) -> Tensor:
    return probe.record_threads(raw_input)
)");
  at::set_num_threads(1);  // the loading thread's own setting
  threads_seen = -1;
  auto model = LoadServableModel({.version_dir = dir, .warmup_runs = 1, .intra_op_threads = 3});
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(threads_seen, 3) << "the warm-up should run with the instances' intra-op threads";
  EXPECT_EQ(at::get_num_threads(), 1) << "the loading thread's setting should be restored";
  threads_seen = -1;
  model = LoadServableModel({.version_dir = dir, .warmup_runs = 1});
  ASSERT_TRUE(model.ok()) << model.status();
  EXPECT_EQ(threads_seen, 1) << "0 keeps the calling thread's setting";
  EXPECT_EQ(LoadServableModel({.version_dir = dir, .intra_op_threads = -1}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(ServableModelTest, LibtorchWarningsReachTheSinkFromEveryThreadThatRuns) {
  const std::filesystem::path dir = PackageWithPreprocessor("warns", R"(
def forward(self, raw_input: Tensor) -> Tensor:
    torch.warn("torchbricks-test: the preprocessor warns", 2)
    return raw_input / 2
)");
  std::mutex mu;
  std::vector<TorchLogLine> lines;
  SetTorchLogSink([&](const TorchLogLine& line) {
    std::lock_guard<std::mutex> lock(mu);
    lines.push_back(line);
  });
  auto model = LoadServableModel({.version_dir = dir, .warmup_runs = 1});
  ASSERT_TRUE(model.ok()) << model.status();
  auto input = Floats("raw_images", {1, 3, 100, 200}, 0.f);
  std::thread worker([&] {  // a thread that never set a warning handler of its own
    EXPECT_TRUE((*model)->Run(Stage::kInference, {input->view}, {}, nullptr).ok());
  });
  worker.join();
  SetTorchLogSink(nullptr);
  std::lock_guard<std::mutex> lock(mu);
  ASSERT_GE(lines.size(), 1u);
  for (const TorchLogLine& line : lines) {
    EXPECT_NE(line.message.find("torchbricks-test: the preprocessor warns"), std::string::npos)
        << line.message;
  }
  EXPECT_EQ(lines[0].kind, "warning");
  EXPECT_EQ(lines[0].severity, TorchLogLine::Severity::kWarning);
}

}  // namespace
}  // namespace torchbricks
