// Execution of exported README packages: pruning, stages, special inputs, input checks,
// runtime failures and concurrent use.
#include "core/execution/loaded_collection.h"

#include <fstream>
#include <thread>

#include "core/execution/reference_check.h"
#include "core/testing/loaded_fixtures.h"
#include "core/testing/package_fixtures.h"
#include "gtest/gtest.h"

namespace torchbricks {
namespace {

using ::torchbricks::testing::BrickNamesOf;
using ::torchbricks::testing::FixturePackage;
using ::torchbricks::testing::LoadFixture;

at::Tensor Images(int64_t batch, int64_t seed) {
  at::manual_seed(seed);
  return at::rand({batch, 3, 100, 200});
}

TEST(LoadedCollectionTest, NoRequestedOutputsGivesTerminalOutputs) {
  auto c = LoadFixture("readme_dummy");
  ASSERT_NE(c, nullptr);
  RunTrace trace;
  auto out = c->Run(Stage::kInference, {{"raw_images", Images(2, 1)}}, {}, &trace);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->size(), 2u);
  ASSERT_TRUE(out->count("logits") && out->count("softmaxed"));
  EXPECT_EQ(out->at("logits").sizes(), (std::vector<int64_t>{2, 3}));
  EXPECT_TRUE(at::allclose(out->at("softmaxed"), at::softmax(out->at("logits"), 1)));
  EXPECT_EQ(BrickNamesOf(*c, trace),
            (std::vector<std::string>{"preprocessor", "backbone", "head"}));
}

TEST(LoadedCollectionTest, KeywordInputsReachTheirParameters) {
  // keyword_inputs calls ScaledDifference(a, b, scale=2) as (b=x, a=y): d = y - 2x.
  auto c = LoadFixture("keyword_inputs");
  ASSERT_NE(c, nullptr);
  const at::Tensor x = at::full({2, 3}, 1.0), y = at::full({2, 3}, 5.0);
  auto out = c->Run(Stage::kInference, {{"x", x}, {"y", y}}, {"d"});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(at::allclose(out->at("d"), y - 2 * x)) << out->at("d");
}

TEST(LoadedCollectionTest, StageTracedBrickRunsTheModuleOfTheRequestStage) {
  // stage_traced: (x + 100) * 2 in EXPORT, x * 2 in INFERENCE, and no module for TRAIN.
  auto c = LoadFixture("stage_traced");
  ASSERT_NE(c, nullptr);
  const at::Tensor x = at::full({2, 3}, 1.0);
  auto exported = c->Run(Stage::kExport, {{"x", x}}, {"y"});
  auto inferred = c->Run(Stage::kInference, {{"x", x}}, {"y"});
  ASSERT_TRUE(exported.ok() && inferred.ok()) << exported.status() << inferred.status();
  EXPECT_TRUE(at::allclose(exported->at("y"), at::full({2, 3}, 202.0)));
  EXPECT_TRUE(at::allclose(inferred->at("y"), at::full({2, 3}, 2.0)));
  auto trained = c->Run(Stage::kTrain, {{"x", x}}, {"y"});
  ASSERT_FALSE(trained.ok());
  EXPECT_EQ(trained.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_NE(trained.status().message().find("'offset'"), std::string::npos) << trained.status();
  EXPECT_NE(trained.status().message().find("TRAIN"), std::string::npos) << trained.status();
}

TEST(LoadedCollectionTest, AskingForEmbeddingDoesNotRunTheHead) {
  auto c = LoadFixture("readme_dummy");
  ASSERT_NE(c, nullptr);
  RunTrace trace;
  const at::Tensor images = Images(2, 2);
  auto out = c->Run(Stage::kInference, {{"raw_images", images}}, {"embedding"}, &trace);
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_EQ(out->size(), 1u);
  EXPECT_EQ(out->at("embedding").sizes(), (std::vector<int64_t>{2, 10, 100, 200}));
  EXPECT_EQ(BrickNamesOf(*c, trace), (std::vector<std::string>{"preprocessor", "backbone"}));
  // The intermediate is the same tensor the full graph computes.
  auto full = c->Run(Stage::kInference, {{"raw_images", images}}, {"embedding", "logits"});
  ASSERT_TRUE(full.ok());
  EXPECT_TRUE(at::equal(full->at("embedding"), out->at("embedding")));
}

TEST(LoadedCollectionTest, BadInputsAreRefusedNamingTheTensor) {
  auto c = LoadFixture("readme_dummy");
  ASSERT_NE(c, nullptr);
  auto expect_invalid = [&](const NamedTensors& inputs, const std::vector<std::string>& outputs,
                            const std::string& needle) {
    auto out = c->Run(Stage::kInference, inputs, outputs);
    ASSERT_FALSE(out.ok());
    EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument) << out.status();
    EXPECT_NE(out.status().message().find(needle), std::string::npos) << out.status();
  };
  expect_invalid({}, {}, "missing input 'raw_images'");
  expect_invalid({{"raw_images", Images(1, 3)}, {"surprise", at::ones({1})}}, {},
                 "unknown input 'surprise'");
  expect_invalid({{"raw_images", Images(1, 3).to(at::kDouble)}}, {}, "'raw_images'");
  expect_invalid({{"raw_images", at::rand({1, 4, 100, 200})}}, {}, "'raw_images' must have shape");
  expect_invalid({{"raw_images", Images(1, 3)}}, {"nonexistent"}, "unknown output 'nonexistent'");
}

TEST(LoadedCollectionTest, LossIsAliveOnlyInTrainWhereTargetsAreRequired) {
  auto c = LoadFixture("readme_loss");
  ASSERT_NE(c, nullptr);
  const at::Tensor images = Images(2, 4);
  auto inference = c->Run(Stage::kInference, {{"raw_images", images}});
  ASSERT_TRUE(inference.ok()) << inference.status();
  EXPECT_FALSE(inference->count("loss_ce"));
  auto export_loss = c->Run(Stage::kExport, {{"raw_images", images}}, {"loss_ce"});
  ASSERT_FALSE(export_loss.ok());
  EXPECT_NE(export_loss.status().message().find("not alive in stage EXPORT"), std::string::npos);

  auto train_without_targets = c->Run(Stage::kTrain, {{"raw_images", images}});
  ASSERT_FALSE(train_without_targets.ok());
  EXPECT_NE(train_without_targets.status().message().find("missing input 'targets'"),
            std::string::npos)
      << train_without_targets.status();
  const at::Tensor targets = at::tensor({0, 2}, at::kLong);
  auto train = c->Run(Stage::kTrain, {{"raw_images", images}, {"targets", targets}});
  ASSERT_TRUE(train.ok()) << train.status();
  ASSERT_TRUE(train->count("loss_ce"));
  auto logits = c->Run(Stage::kTrain, {{"raw_images", images}, {"targets", targets}}, {"logits"});
  ASSERT_TRUE(logits.ok());
  const at::Tensor expected = at::cross_entropy_loss(logits->at("logits"), targets);
  EXPECT_TRUE(at::allclose(train->at("loss_ce"), expected));
}

TEST(LoadedCollectionTest, StageInputChangesThePreprocessorInExport) {
  auto c = LoadFixture("stage_preprocessor");
  ASSERT_NE(c, nullptr);
  const NamedTensors inputs = {{"raw", Images(2, 5)}};
  auto exported = c->Run(Stage::kExport, inputs, {"processed"});
  ASSERT_TRUE(exported.ok()) << exported.status();
  EXPECT_EQ(exported->at("processed").sizes(), (std::vector<int64_t>{2, 3, 50, 100}));
  auto inference = c->Run(Stage::kInference, inputs, {"processed"});
  ASSERT_TRUE(inference.ok()) << inference.status();
  EXPECT_EQ(inference->at("processed").sizes(), (std::vector<int64_t>{2, 3, 100, 200}));
  EXPECT_TRUE(at::allclose(inference->at("processed"), inputs.at("raw") / 2));
}

TEST(LoadedCollectionTest, AllInputSeesEveryEarlierTensor) {
  auto c = LoadFixture("all_input");
  ASSERT_NE(c, nullptr);
  at::manual_seed(6);
  auto out = c->Run(Stage::kInference, {{"raw", at::rand({2, 3, 20, 40})}},
                    {"postprocessed", "embedding"});
  ASSERT_TRUE(out.ok()) << out.status();
  EXPECT_TRUE(at::equal(out->at("postprocessed"), out->at("embedding")));
}

TEST(LoadedCollectionTest, DictOutputsAreFlattenedByKey) {
  auto c = LoadFixture("dict_output");
  ASSERT_NE(c, nullptr);
  auto reference = ReadReference(FixturePackage("dict_output"), Stage::kInference);
  ASSERT_TRUE(reference.ok() && reference->has_value());
  auto out = c->Run(Stage::kInference, (*reference)->inputs);
  ASSERT_TRUE(out.ok()) << out.status();
  int flattened = 0;
  for (const auto& [name, tensor] : (*reference)->outputs) {
    if (name.find('/') == std::string::npos) continue;
    const std::string parent = name.substr(0, name.rfind('/'));
    auto dict = c->Run(Stage::kInference, (*reference)->inputs, {parent});
    ASSERT_TRUE(dict.ok()) << dict.status();
    ASSERT_TRUE(dict->count(name)) << name;
    EXPECT_TRUE(at::allclose(dict->at(name), tensor));
    ++flattened;
  }
  EXPECT_GT(flattened, 0) << "dict_output fixture has no dict-valued output";
}

// A manifest whose declared input has no shape lets a wrong tensor reach libtorch.
TEST(LoadedCollectionTest, LibtorchFailureInsideABrickIsInternalNamingTheBrick) {
  const std::filesystem::path dir =
      std::filesystem::temp_directory_path() / "torchbricks_runtime_failure";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir / "modules");
  std::filesystem::copy(FixturePackage("readme_dummy") / "modules", dir / "modules",
                        std::filesystem::copy_options::recursive);
  {
    std::ofstream out(dir / "bricks.pbtxt");
    out << R"pb(inputs { name: "raw_images" }
                nodes {
                  name: "backbone"
                  brick {
                    input_names: "raw_images"
                    output_names: "embedding"
                    module_file: "modules/backbone.pt"
                    module_type: "TinyModel"
                  }
                })pb";
  }
  auto c = LoadedCollection::Load({.version_dir = dir});
  ASSERT_TRUE(c.ok()) << c.status();
  auto out = (*c)->Run(Stage::kInference, {{"raw_images", at::rand({1, 5, 8, 8})}});
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInternal);
  EXPECT_NE(out.status().message().find("brick 'backbone'"), std::string::npos) << out.status();
  // The collection still works afterwards.
  EXPECT_TRUE((*c)->Run(Stage::kInference, {{"raw_images", at::rand({1, 3, 8, 8})}}).ok());
  std::filesystem::remove_all(dir);
}

TEST(LoadedCollectionTest, ConcurrentRunsGiveEachCallerItsOwnAnswer) {
  auto c = LoadFixture("readme_dummy");
  ASSERT_NE(c, nullptr);
  constexpr int kThreads = 8;
  constexpr int kRunsPerThread = 20;
  std::vector<at::Tensor> inputs;
  std::vector<at::Tensor> expected;
  for (int i = 0; i < kThreads * kRunsPerThread; ++i) {
    inputs.push_back(Images(1, 100 + i));
    auto out = c->Run(Stage::kInference, {{"raw_images", inputs.back()}}, {"logits"});
    ASSERT_TRUE(out.ok());
    expected.push_back(out->at("logits"));
  }
  std::atomic<int> mismatches{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int r = 0; r < kRunsPerThread; ++r) {
        const int i = t * kRunsPerThread + r;
        auto out = c->Run(Stage::kInference, {{"raw_images", inputs[i]}}, {"logits"});
        if (!out.ok() || !at::allclose(out->at("logits"), expected[i])) ++mismatches;
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  EXPECT_EQ(mismatches.load(), 0);
}

TEST(LoadedCollectionTest, ParallelBranchesGiveTheSameAnswers) {
  auto sequential = LoadedCollection::Load({.version_dir = FixturePackage("nested_heads")});
  auto parallel = LoadedCollection::Load(
      {.version_dir = FixturePackage("nested_heads"), .parallel_branches = true});
  ASSERT_TRUE(sequential.ok() && parallel.ok());
  auto reference = ReadReference(FixturePackage("nested_heads"), Stage::kTrain);
  ASSERT_TRUE(reference.ok() && reference->has_value());
  for (int run = 0; run < 20; ++run) {
    RunTrace trace;
    auto a = (*sequential)->Run(Stage::kTrain, (*reference)->inputs);
    auto b = (*parallel)->Run(Stage::kTrain, (*reference)->inputs, {}, &trace);
    ASSERT_TRUE(a.ok() && b.ok()) << b.status();
    ASSERT_EQ(a->size(), b->size());
    for (const auto& [name, tensor] : *a) EXPECT_TRUE(at::equal(tensor, b->at(name))) << name;
    EXPECT_EQ(trace.bricks.size(), (*parallel)->plan(Stage::kTrain).StepsFor({})->size());
  }
}

}  // namespace
}  // namespace torchbricks
