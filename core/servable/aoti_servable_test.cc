// A package with AOTInductor bricks behind the ServableModel seam (fixture aoti_mixed of
// tests/fixtures/aoti_fixtures.py: backbone batch 1..8, head 1..16): Run and RunBatch equal
// the eager modules; batches outside the compiled range are refused by Validate and by Run.
#include <cstring>

#include "core/execution/reference_check.h"
#include "core/servable/servable_model.h"
#include "core/testing/package_fixtures.h"
#include "gtest/gtest.h"

namespace torchbricks {
namespace {

using ::torchbricks::testing::FixturePackage;

const std::vector<std::string> kOutputs = {"logits", "probabilities"};

std::unique_ptr<ServableModel> LoadMixed() {
  auto model = LoadServableModel({.version_dir = FixturePackage("aoti_mixed"), .warmup_runs = 1});
  EXPECT_TRUE(model.ok()) << model.status();
  return model.ok() ? *std::move(model) : nullptr;
}

// The eager modules' input "raw" (as a host tensor) and outputs at `batch` rows.
struct Eager {
  HostTensorView raw;
  std::string raw_bytes;
  NamedTensors outputs;
};

std::unique_ptr<Eager> EagerAt(int batch) {
  const std::filesystem::path dir =
      FixturePackage("aoti_mixed").parent_path() / ("eager_batch_" + std::to_string(batch));
  auto reference = ReadReference(dir, Stage::kInference);
  EXPECT_TRUE(reference.ok() && reference->has_value()) << dir;
  auto eager = std::make_unique<Eager>();
  if (!reference.ok() || !reference->has_value()) return eager;
  const at::Tensor raw = (*reference)->inputs.at("raw").contiguous();
  eager->raw_bytes.assign(static_cast<const char*>(raw.data_ptr()), raw.nbytes());
  eager->raw = {"raw", package::TYPE_FP32,
                std::vector<int64_t>(raw.sizes().begin(), raw.sizes().end()), eager->raw_bytes};
  eager->outputs = (*reference)->outputs;
  return eager;
}

HostTensorView Zeros(int64_t batch, std::string* bytes) {
  bytes->assign(batch * 3 * 8 * 8 * sizeof(float), '\0');
  return {"raw", package::TYPE_FP32, {batch, 3, 8, 8}, *bytes};
}

::testing::AssertionResult MatchesEager(const std::vector<HostTensor>& out,
                                        const NamedTensors& eager) {
  if (out.size() != kOutputs.size()) {
    return ::testing::AssertionFailure() << out.size() << " outputs";
  }
  for (const HostTensor& tensor : out) {
    const at::Tensor& want = eager.at(tensor.name);
    if (tensor.shape != std::vector<int64_t>(want.sizes().begin(), want.sizes().end())) {
      return ::testing::AssertionFailure() << tensor.name << " has another shape";
    }
    const at::Tensor got =
        at::from_blob(const_cast<char*>(tensor.data.data()), want.sizes(), at::kFloat).clone();
    if (!at::allclose(got, want, 1e-4, 1e-5)) {
      return ::testing::AssertionFailure() << tensor.name << " differs from the eager module's";
    }
  }
  return ::testing::AssertionSuccess();
}

TEST(AotiServableTest, RunEqualsTheEagerModulesAtEveryBatchInRange) {
  auto model = LoadMixed();
  ASSERT_NE(model, nullptr);
  for (int batch : {1, 3, 8}) {
    auto eager = EagerAt(batch);
    ASSERT_TRUE(model->Validate(Stage::kInference, {eager->raw}, kOutputs).ok());
    auto out = model->Run(Stage::kInference, {eager->raw}, kOutputs, nullptr);
    ASSERT_TRUE(out.ok()) << "batch " << batch << ": " << out.status();
    EXPECT_TRUE(MatchesEager(*out, eager->outputs)) << "batch " << batch;
  }
}

TEST(AotiServableTest, RunBatchEqualsTheEagerModulesPerItem) {
  auto model = LoadMixed();
  ASSERT_NE(model, nullptr);
  std::vector<std::unique_ptr<Eager>> eager;
  for (int batch : {1, 3, 8}) eager.push_back(EagerAt(batch));
  // 1 + 3 rows fit the compiled range in one run; 1 + 3 + 8 do not, and run item by item.
  for (size_t members : {2u, 3u}) {
    std::vector<BatchItem> items;
    for (size_t i = 0; i < members; ++i) {
      items.push_back({absl::MakeConstSpan(&eager[i]->raw, 1), kOutputs});
    }
    auto results = model->RunBatch(Stage::kInference, items, nullptr);
    ASSERT_EQ(results.size(), members);
    for (size_t i = 0; i < members; ++i) {
      ASSERT_TRUE(results[i].ok()) << results[i].status();
      EXPECT_TRUE(MatchesEager(*results[i], eager[i]->outputs)) << "item " << i;
    }
  }
}

TEST(AotiServableTest, ABatchOutsideTheCompiledRangeIsInvalidForValidateAndRun) {
  auto model = LoadMixed();
  ASSERT_NE(model, nullptr);
  const BatchRange range = model->graph().CompiledBatchRange(Stage::kInference);
  EXPECT_EQ(range.min, 1);
  EXPECT_EQ(range.max, 8);
  EXPECT_EQ(range.max_brick, "backbone");
  for (int64_t batch : {0, 9}) {
    std::string bytes;
    const HostTensorView raw = Zeros(batch, &bytes);
    for (const absl::Status& status :
         {model->Validate(Stage::kInference, {raw}, {}),
          model->Run(Stage::kInference, {raw}, {}, nullptr).status(),
          model
              ->RunBatch(Stage::kInference, {BatchItem{absl::MakeConstSpan(&raw, 1), {}}},
                         nullptr)[0]
              .status()}) {
      EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
      EXPECT_NE(status.message().find("'backbone'"), std::string::npos) << status;
      EXPECT_NE(status.message().find("1 to 8"), std::string::npos) << status;
    }
  }
}

TEST(AotiServableTest, AWrongDtypeOrSizeIsInvalidNamingTheInput) {
  auto model = LoadMixed();
  ASSERT_NE(model, nullptr);
  std::string bytes(2 * 3 * 8 * 9 * sizeof(float), '\0');
  const HostTensorView wide{"raw", package::TYPE_FP32, {2, 3, 8, 9}, bytes};
  const HostTensorView doubles{"raw", package::TYPE_FP64, {2, 3, 8, 4}, bytes};
  for (const HostTensorView& view : {wide, doubles}) {
    for (const absl::Status& status :
         {model->Validate(Stage::kInference, {view}, {}),
          model->Run(Stage::kInference, {view}, {}, nullptr).status()}) {
      EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
      EXPECT_NE(status.message().find("'raw'"), std::string::npos) << status;
    }
  }
}

}  // namespace
}  // namespace torchbricks
