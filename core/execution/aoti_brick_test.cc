// AOTInductor bricks on the compiled fixtures of tests/fixtures/aoti_fixtures.py: a TorchScript
// preprocessor, a compiled backbone (batch 1..8) and a compiled head (batch 1..16), compared
// with the eager Python modules; every input the compiled code would take silently (or die of)
// refused first; packages that cannot load; concurrent runs.
#include "core/execution/aoti_brick.h"

#include <thread>

#include "core/execution/cpu_isa.h"
#include "core/execution/loaded_collection.h"
#include "core/execution/reference_check.h"
#include "core/testing/package_fixtures.h"
#include "gtest/gtest.h"

namespace torchbricks {
namespace {

using ::torchbricks::testing::FixturePackage;

const std::vector<std::string> kOutputs = {"embedding", "logits", "probabilities"};

std::unique_ptr<LoadedCollection> LoadMixed(int runners = 1) {
  auto loaded =
      LoadedCollection::Load({.version_dir = FixturePackage("aoti_mixed"), .runners = runners});
  EXPECT_TRUE(loaded.ok()) << loaded.status();
  return loaded.ok() ? *std::move(loaded) : nullptr;
}

// The eager modules' inputs and outputs at `batch` rows (1, 3 or 8).
ReferenceData Eager(int batch) {
  const std::filesystem::path dir =
      FixturePackage("aoti_mixed").parent_path() / ("eager_batch_" + std::to_string(batch));
  auto reference = ReadReference(dir, Stage::kInference);
  EXPECT_TRUE(reference.ok() && reference->has_value()) << dir;
  return reference.ok() && reference->has_value() ? **reference : ReferenceData{};
}

// Whether `out` holds every output of kOutputs equal to the eager ones (rtol 1e-4).
::testing::AssertionResult MatchesEager(const NamedTensors& out, const ReferenceData& eager) {
  for (const std::string& name : kOutputs) {
    auto got = out.find(name);
    if (got == out.end()) return ::testing::AssertionFailure() << "no output " << name;
    const at::Tensor& want = eager.outputs.at(name);
    if (got->second.sizes() != want.sizes() || !at::allclose(got->second, want, 1e-4, 1e-5)) {
      return ::testing::AssertionFailure() << name << " differs: got " << got->second.sizes()
                                           << " want " << want.sizes() << " max diff "
                                           << (got->second.sizes() == want.sizes()
                                                   ? (got->second - want).abs().max().item<double>()
                                                   : -1.0);
    }
  }
  return ::testing::AssertionSuccess();
}

void ExpectInvalidNaming(const absl::Status& status, std::initializer_list<const char*> parts) {
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  for (const char* part : parts) {
    EXPECT_NE(status.message().find(part), std::string::npos) << part << " not in " << status;
  }
}

// The backbone's spec as the fixture's manifest declares it.
BrickSpec BackboneSpec() {
  auto manifest = ReadManifestFile(FixturePackage("aoti_mixed") / "bricks.pbtxt");
  EXPECT_TRUE(manifest.ok()) << manifest.status();
  auto graph = BrickGraph::Create(*manifest);
  EXPECT_TRUE(graph.ok()) << graph.status();
  for (const BrickSpec& brick : graph->bricks()) {
    if (brick.name == "backbone") return brick;
  }
  ADD_FAILURE() << "no backbone";
  return {};
}

std::unique_ptr<AotiBrick> LoadBackbone() {
  auto brick = AotiBrick::Load(BackboneSpec(), FixturePackage("aoti_mixed"), c10::kCPU, 1);
  EXPECT_TRUE(brick.ok()) << brick.status();
  return brick.ok() ? *std::move(brick) : nullptr;
}

TEST(AotiCollectionTest, OutputsEqualTheEagerModulesAtEveryBatchInRange) {
  auto collection = LoadMixed();
  ASSERT_NE(collection, nullptr);
  for (int batch : {1, 3, 8}) {
    const ReferenceData eager = Eager(batch);
    auto out = collection->Run(Stage::kInference, eager.inputs, kOutputs);
    ASSERT_TRUE(out.ok()) << "batch " << batch << ": " << out.status();
    EXPECT_TRUE(MatchesEager(*out, eager)) << "batch " << batch;
  }
}

TEST(AotiCollectionTest, TheExportersReferenceCheckPasses) {
  auto collection = LoadMixed();
  ASSERT_NE(collection, nullptr);
  auto comparisons = CompareWithReference(*collection, FixturePackage("aoti_mixed"), Tolerance{});
  ASSERT_TRUE(comparisons.ok()) << comparisons.status();
  ASSERT_EQ(comparisons->size(), 2u);  // INFERENCE and EXPORT
  for (const StageComparison& stage : *comparisons) {
    EXPECT_TRUE(stage.matches()) << StageName(stage.stage) << ": " << stage.run_status;
  }
}

TEST(AotiCollectionTest, ABatchOutsideTheCompiledRangeIsRefusedBeforeAnyBrickRuns) {
  auto collection = LoadMixed();
  ASSERT_NE(collection, nullptr);
  for (int64_t batch : {0, 9}) {
    const NamedTensors inputs = {{"raw", at::rand({batch, 3, 8, 8})}};
    RunTrace trace;
    auto out = collection->Run(Stage::kInference, inputs, {}, &trace);
    ExpectInvalidNaming(out.status(), {"'backbone'", "1 to 8", "'raw'"});
    EXPECT_TRUE(trace.bricks.empty()) << "batch " << batch;
    const TensorSignature signature{"raw", package::TYPE_FP32, {batch, 3, 8, 8}};
    ExpectInvalidNaming(collection->Check(Stage::kInference, {signature}, {}),
                        {"'backbone'", "1 to 8"});
    // Outputs that need no compiled brick take any batch.
    auto processed = collection->Run(Stage::kInference, inputs, {"processed"});
    EXPECT_TRUE(processed.ok()) << processed.status();
  }
}

TEST(AotiCollectionTest, ConcurrentRunsWithTwoRunnersAreAllCorrect) {
  auto collection = LoadMixed(/*runners=*/2);
  ASSERT_NE(collection, nullptr);
  const std::vector<ReferenceData> eager = {Eager(1), Eager(3), Eager(8)};
  std::atomic<int> wrong{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 25; ++i) {
        const ReferenceData& reference = eager[(t + i) % eager.size()];
        auto out = collection->Run(Stage::kInference, reference.inputs, kOutputs);
        if (!out.ok() || !MatchesEager(*out, reference)) ++wrong;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(wrong.load(), 0);
}

TEST(AotiCollectionTest, RunnersBelowOneAreRefused) {
  auto loaded = LoadedCollection::Load({.version_dir = FixturePackage("aoti_mixed"), .runners = 0});
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kInvalidArgument) << loaded.status();
}

TEST(AotiCollectionTest, ACorruptPackageIsAFailedPreconditionNamingTheBrickAndFile) {
  auto loaded = LoadedCollection::Load({.version_dir = FixturePackage("aoti_corrupt")});
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kFailedPrecondition) << loaded.status();
  EXPECT_NE(loaded.status().message().find("'backbone'"), std::string::npos) << loaded.status();
  EXPECT_NE(loaded.status().message().find("modules/backbone.pt2"), std::string::npos)
      << loaded.status();
}

TEST(AotiCollectionTest, AMissingPackageIsNotFoundNamingTheBrickAndFile) {
  auto loaded = LoadedCollection::Load({.version_dir = FixturePackage("aoti_missing")});
  ASSERT_FALSE(loaded.ok());
  EXPECT_EQ(loaded.status().code(), absl::StatusCode::kNotFound) << loaded.status();
  EXPECT_NE(loaded.status().message().find("'head'"), std::string::npos) << loaded.status();
  EXPECT_NE(loaded.status().message().find("modules/head.pt2"), std::string::npos)
      << loaded.status();
}

TEST(AotiBrickTest, AWrongDtypeIsRefusedNamingTheInput) {
  auto brick = LoadBackbone();
  ASSERT_NE(brick, nullptr);
  for (at::ScalarType type : {at::kDouble, at::kHalf, at::kLong}) {
    auto out = brick->Run({at::zeros({2, 3, 8, 8}, type)});
    ExpectInvalidNaming(out.status(), {"'backbone'", "'processed'", "data type", "FP32"});
  }
}

TEST(AotiBrickTest, AWrongRankOrNonBatchSizeIsRefusedNamingTheInput) {
  auto brick = LoadBackbone();
  ASSERT_NE(brick, nullptr);
  for (const std::vector<int64_t>& shape : std::vector<std::vector<int64_t>>{
           {2, 3, 8, 9}, {2, 4, 8, 8}, {2, 3, 8}, {2, 3, 8, 8, 1}, {}}) {
    auto out = brick->Run({at::zeros(shape)});
    ExpectInvalidNaming(out.status(), {"'backbone'", "'processed'", "[-1,3,8,8]"});
  }
}

TEST(AotiBrickTest, ABatchOutsideTheRangeIsRefused) {
  auto brick = LoadBackbone();
  ASSERT_NE(brick, nullptr);
  for (int64_t batch : {0, 9, 64}) {
    auto out = brick->Run({at::zeros({batch, 3, 8, 8})});
    ExpectInvalidNaming(out.status(), {"'backbone'", "1 to 8", "'processed'"});
  }
}

TEST(AotiBrickTest, WhatIsNotATensorOrTheWrongNumberOfInputsIsRefused) {
  auto brick = LoadBackbone();
  ASSERT_NE(brick, nullptr);
  ExpectInvalidNaming(brick->Run({at::Tensor()}).status(), {"'backbone'", "'processed'"});
  ExpectInvalidNaming(brick->Run({c10::IValue(std::string("INFERENCE"))}).status(),
                      {"'backbone'", "'processed'", "not a tensor"});
  ExpectInvalidNaming(brick->Run({}).status(), {"'backbone'", "takes 1 inputs, got 0"});
  ExpectInvalidNaming(brick->Run({at::zeros({2, 3, 8, 8}), at::zeros({2, 3, 8, 8})}).status(),
                      {"'backbone'", "takes 1 inputs, got 2"});
}

TEST(AotiBrickTest, ANonContiguousInputGivesWhatItsContiguousCopyGives) {
  auto brick = LoadBackbone();
  ASSERT_NE(brick, nullptr);
  const at::Tensor channels_last = at::rand({4, 8, 8, 3}).permute({0, 3, 1, 2});
  ASSERT_FALSE(channels_last.is_contiguous());
  auto strided = brick->Run({channels_last});
  auto contiguous = brick->Run({channels_last.contiguous()});
  ASSERT_TRUE(strided.ok() && contiguous.ok()) << strided.status() << contiguous.status();
  ASSERT_EQ(strided->size(), 1u);
  EXPECT_TRUE(at::equal((*strided)[0].toTensor(), (*contiguous)[0].toTensor()));
}

TEST(AotiBrickTest, APackageForAnotherDeviceIsAFailedPrecondition) {
  BrickSpec spec = BackboneSpec();
  spec.compiled->device = "cuda";
  auto brick = AotiBrick::Load(spec, FixturePackage("aoti_mixed"), c10::kCPU, 1);
  ASSERT_FALSE(brick.ok());
  EXPECT_EQ(brick.status().code(), absl::StatusCode::kFailedPrecondition) << brick.status();
  EXPECT_NE(brick.status().message().find("'backbone'"), std::string::npos) << brick.status();
  EXPECT_NE(brick.status().message().find("cuda"), std::string::npos) << brick.status();
}

TEST(AotiBrickTest, APackageForInstructionsThisCpuLacksIsAFailedPrecondition) {
  std::string lacking;
  for (const char* name : {"AMX_TILE", "AVX512_VNNI", "AVX512", "AVX2"}) {
    if (HostHasCpuIsa(name) == std::optional<bool>(false)) lacking = name;
  }
  if (lacking.empty()) GTEST_SKIP() << "this CPU has every instruction set AOTInductor names";
  BrickSpec spec = BackboneSpec();
  spec.compiled->cpu_isa = lacking;
  auto brick = AotiBrick::Load(spec, FixturePackage("aoti_mixed"), c10::kCPU, 1);
  ASSERT_FALSE(brick.ok());
  EXPECT_EQ(brick.status().code(), absl::StatusCode::kFailedPrecondition) << brick.status();
  EXPECT_NE(brick.status().message().find(lacking), std::string::npos) << brick.status();
  // Names the check does not know never refuse a package.
  spec.compiled->cpu_isa = "SOMETHING_NEWER";
  EXPECT_TRUE(AotiBrick::Load(spec, FixturePackage("aoti_mixed"), c10::kCPU, 1).ok());
}

TEST(AotiBrickTest, ATorchScriptBrickOrNoRunnersAreRefused) {
  BrickSpec spec = BackboneSpec();
  EXPECT_EQ(AotiBrick::Load(spec, FixturePackage("aoti_mixed"), c10::kCPU, 0).status().code(),
            absl::StatusCode::kInvalidArgument);
  spec.compiled.reset();
  EXPECT_EQ(AotiBrick::Load(spec, FixturePackage("aoti_mixed"), c10::kCPU, 1).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace torchbricks
