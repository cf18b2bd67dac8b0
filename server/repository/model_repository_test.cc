// The repository manager with a fake loader: version policies, polling, failed reloads,
// explicit control, and versions outliving their retirement while held.
#include "server/repository/model_repository.h"

#include <atomic>
#include <fstream>
#include <map>
#include <mutex>

#include "google/protobuf/text_format.h"
#include "gtest/gtest.h"
#include "server/testing/fake_servable_model.h"

namespace torchbricks::server {
namespace {

namespace fs = std::filesystem;

// A servable whose only output is the text of its folder's "marker" file.
class FakeServable : public testing::FakeServableModel {
 public:
  explicit FakeServable(std::string marker, BrickGraph graph = BrickGraph())
      : FakeServableModel(std::move(graph)), marker_(std::move(marker)) {}
  absl::StatusOr<std::vector<HostTensor>> Run(Stage, absl::Span<const HostTensorView>,
                                              absl::Span<const std::string>,
                                              RunTrace*) const override {
    HostTensor out;
    out.name = "marker";
    out.data = marker_;
    return std::vector<HostTensor>{out};
  }
  const std::string& marker() const { return marker_; }

 private:
  std::string marker_;
};

class ModelRepositoryTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = fs::temp_directory_path() /
            ("torchbricks_repo_" +
             std::string(::testing::UnitTest::GetInstance()->current_test_info()->name()));
    fs::remove_all(root_);
    fs::create_directories(root_);
  }
  void TearDown() override { fs::remove_all(root_); }

  void WriteVersion(const std::string& model, int version, const std::string& marker) {
    const fs::path dir = root_ / model / std::to_string(version);
    fs::create_directories(dir);
    std::ofstream(dir / "marker") << marker;
    // Move the stamp forward so a rewrite is always noticed.
    fs::last_write_time(dir / "marker",
                        fs::file_time_type::clock::now() + std::chrono::seconds(++bumps_));
  }
  void WriteConfig(const std::string& model, const std::string& text) {
    fs::create_directories(root_ / model);
    std::ofstream(root_ / model / "config.pbtxt") << text;
  }

  std::unique_ptr<ModelRepository> Create(ModelControlMode mode,
                                          std::vector<std::string> startup = {}) {
    ModelRepository::Options options;
    options.root = root_;
    options.control_mode = mode;
    options.poll_interval = absl::Hours(1);  // tests call PollOnce() themselves
    options.startup_models = std::move(startup);
    options.loader =
        [this](const fs::path& dir, const std::string&, int, int runners,
               const config::ModelConfig&) -> absl::StatusOr<std::unique_ptr<ServableModel>> {
      ++loads_;
      std::ifstream in(dir / "marker");
      std::string marker((std::istreambuf_iterator<char>(in)), std::istreambuf_iterator<char>());
      if (marker == "fail") return absl::InvalidArgumentError("brick 'x': corrupt module");
      {
        std::lock_guard<std::mutex> lock(runners_mu_);
        runners_[dir.parent_path().filename().string()] = runners;
      }
      if (marker == "compiled") {
        return std::unique_ptr<ServableModel>(new FakeServable(marker, CompiledGraph()));
      }
      return std::unique_ptr<ServableModel>(new FakeServable(marker));
    };
    auto repository = ModelRepository::Create(std::move(options));
    EXPECT_TRUE(repository.ok()) << repository.status();
    return repository.ok() ? *std::move(repository) : nullptr;
  }

  static std::string MarkerOf(const std::shared_ptr<const ModelVersion>& version) {
    return static_cast<const FakeServable&>(*version->servable).marker();
  }

  // A collection whose brick "backbone" is compiled for batches of 1 to 8 rows.
  static BrickGraph CompiledGraph() {
    package::BrickCollection manifest;
    EXPECT_TRUE(google::protobuf::TextFormat::ParseFromString(
        R"pb(nodes {
               name: "backbone"
               brick {
                 input_names: "x"
                 output_names: "y"
                 module_file: "backbone.pt2"
                 module_format: AOT_INDUCTOR
                 compiled {
                   inputs {
                     data_type: TYPE_FP32
                     dims: [ -1, 4 ]
                   }
                   min_batch: 1
                   max_batch: 8
                   device: "cpu"
                 }
               }
             })pb",
        &manifest));
    auto graph = BrickGraph::Create(manifest);
    EXPECT_TRUE(graph.ok()) << graph.status();
    return *std::move(graph);
  }

  fs::path root_;
  std::mutex runners_mu_;
  std::map<std::string, int> runners_;  // the runners each model was last loaded with
  std::atomic<int> loads_{0};
  int bumps_ = 0;
};

TEST_F(ModelRepositoryTest, LatestVersionIsServedByDefault) {
  for (int v : {1, 2, 3}) WriteVersion("m", v, "v" + std::to_string(v));
  auto repository = Create(ModelControlMode::kNone);
  auto latest = repository->Find("m", "");
  ASSERT_TRUE(latest.ok()) << latest.status();
  EXPECT_EQ((*latest)->version, 3);
  EXPECT_EQ(MarkerOf(*latest), "v3");
  EXPECT_EQ(repository->Find("m", "1").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(repository->Find("m", "9").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(repository->Find("nope", "").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(loads_.load(), 1);
}

TEST_F(ModelRepositoryTest, AVersionHasOneSpelling) {
  WriteVersion("m", 1, "v1");
  auto repository = Create(ModelControlMode::kNone);
  ASSERT_TRUE(repository->Find("m", "1").ok());
  for (const char* alias : {" 1", "1 ", "+1", "01", "1.0", "0x1", "-1", "0", "1e0"}) {
    EXPECT_EQ(repository->Find("m", alias).status().code(), absl::StatusCode::kNotFound)
        << "'" << alias << "'";
  }
  EXPECT_EQ(repository->Find("m", "99999999999999999999").status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(ModelRepositoryTest, AllAndSpecificPolicies) {
  for (int v : {1, 2, 3}) {
    WriteVersion("every", v, "e");
    WriteVersion("some", v, "s");
  }
  WriteConfig("every", "version_policy { all {} }");
  WriteConfig("some", "version_policy { specific { versions: [1, 3] } }");
  auto repository = Create(ModelControlMode::kNone);
  EXPECT_EQ(repository->ReadyVersions("every").size(), 3u);
  auto some = repository->ReadyVersions("some");
  ASSERT_EQ(some.size(), 2u);
  EXPECT_EQ(some[0]->version, 1);
  EXPECT_EQ(some[1]->version, 3);
  EXPECT_EQ(repository->Find("some", "2").status().code(), absl::StatusCode::kUnavailable);
}

TEST_F(ModelRepositoryTest, PollLoadsANewVersionBeforeRetiringTheOld) {
  WriteVersion("m", 1, "old");
  auto repository = Create(ModelControlMode::kPoll);
  auto held = repository->Find("m", "");
  ASSERT_TRUE(held.ok());
  WriteVersion("m", 2, "new");
  ASSERT_TRUE(repository->PollOnce().ok());
  auto now = repository->Find("m", "");
  ASSERT_TRUE(now.ok());
  EXPECT_EQ(MarkerOf(*now), "new");
  EXPECT_EQ(repository->ReadyVersions("m").size(), 1u);
  // A request that held version 1 can still use it after retirement.
  auto out = (*held)->servable->Run(Stage::kInference, {}, {}, nullptr);
  ASSERT_TRUE(out.ok());
  EXPECT_EQ((*out)[0].data, "old");
}

TEST_F(ModelRepositoryTest, FailedReloadKeepsServingAndIsNotRetriedUntilChanged) {
  WriteVersion("m", 1, "good");
  auto repository = Create(ModelControlMode::kPoll);
  WriteVersion("m", 2, "fail");
  ASSERT_TRUE(repository->PollOnce().ok());
  auto serving = repository->Find("m", "");
  ASSERT_TRUE(serving.ok());
  EXPECT_EQ(MarkerOf(*serving), "good");
  bool saw_failure = false;
  for (const IndexEntry& entry : repository->Index(false)) {
    if (entry.version == "2") {
      saw_failure = true;
      EXPECT_EQ(entry.state, "UNAVAILABLE");
      EXPECT_NE(entry.reason.find("corrupt module"), std::string::npos);
    }
  }
  EXPECT_TRUE(saw_failure);
  EXPECT_EQ(repository->Find("m", "2").status().code(), absl::StatusCode::kUnavailable);
  const int loads = loads_.load();
  ASSERT_TRUE(repository->PollOnce().ok());
  EXPECT_EQ(loads_.load(), loads) << "an unchanged failed version was retried";
  WriteVersion("m", 2, "fixed");
  ASSERT_TRUE(repository->PollOnce().ok());
  EXPECT_EQ(MarkerOf(*repository->Find("m", "")), "fixed");
}

TEST_F(ModelRepositoryTest, PollUnloadsRemovedModels) {
  WriteVersion("gone", 1, "x");
  WriteVersion("stays", 1, "y");
  auto repository = Create(ModelControlMode::kPoll);
  ASSERT_TRUE(repository->Find("gone", "").ok());
  fs::remove_all(root_ / "gone");
  ASSERT_TRUE(repository->PollOnce().ok());
  EXPECT_EQ(repository->Find("gone", "").status().code(), absl::StatusCode::kNotFound);
  EXPECT_TRUE(repository->Find("stays", "").ok());
}

TEST_F(ModelRepositoryTest, ExplicitModeLoadsAndUnloadsOnRequest) {
  WriteVersion("a", 1, "a1");
  WriteVersion("b", 1, "b1");
  auto repository = Create(ModelControlMode::kExplicit, {"a"});
  EXPECT_TRUE(repository->Find("a", "").ok());
  EXPECT_EQ(repository->Find("b", "").status().code(), absl::StatusCode::kUnavailable);
  ASSERT_TRUE(repository->LoadModel("b").ok());
  EXPECT_TRUE(repository->Find("b", "").ok());
  ASSERT_TRUE(repository->UnloadModel("b").ok());
  EXPECT_EQ(repository->Find("b", "").status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(repository->LoadModel("missing").code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(repository->UnloadModel("missing").code(), absl::StatusCode::kNotFound);
}

TEST_F(ModelRepositoryTest, ExplicitControlIsRefusedInOtherModes) {
  WriteVersion("a", 1, "a1");
  auto repository = Create(ModelControlMode::kNone);
  EXPECT_EQ(repository->LoadModel("a").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(repository->UnloadModel("a").code(), absl::StatusCode::kFailedPrecondition);
}

TEST_F(ModelRepositoryTest, StartupFailureLeavesTheModelUnavailableWithItsReason) {
  WriteVersion("broken", 1, "fail");
  auto repository = Create(ModelControlMode::kNone);
  auto found = repository->Find("broken", "");
  EXPECT_EQ(found.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(found.status().message().find("corrupt module"), std::string::npos) << found.status();
}

TEST_F(ModelRepositoryTest, MalformedConfigMakesTheModelUnavailable) {
  WriteVersion("odd", 1, "x");
  WriteConfig("odd", "version_policy { nonsense: 1 }");
  auto repository = Create(ModelControlMode::kNone);
  auto found = repository->Find("odd", "");
  EXPECT_EQ(found.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(found.status().message().find("config.pbtxt"), std::string::npos) << found.status();
}

TEST_F(ModelRepositoryTest, AMaxBatchSizeAboveACompiledBricksMaxFailsTheLoadOnly) {
  WriteVersion("too_large", 1, "compiled");
  WriteConfig("too_large", "max_batch_size: 16");
  WriteVersion("other", 1, "plain");
  auto repository = Create(ModelControlMode::kExplicit, {"other"});
  const absl::Status load = repository->LoadModel("too_large");
  EXPECT_EQ(load.code(), absl::StatusCode::kFailedPrecondition) << load;
  for (const char* part : {"'backbone'", "16", "at most 8"}) {
    EXPECT_NE(load.message().find(part), std::string::npos) << part << " not in " << load;
  }
  EXPECT_EQ(repository->Find("too_large", "").status().code(), absl::StatusCode::kUnavailable);
  auto other = repository->Find("other", "");
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ(MarkerOf(*other), "plain");
}

TEST_F(ModelRepositoryTest, CompiledBricksCapTheDefaultMaxBatchSizeAndAllowSmallerOnes) {
  WriteVersion("defaulted", 1, "compiled");
  WriteVersion("smaller", 1, "compiled");
  WriteConfig("smaller", "max_batch_size: 4");
  WriteVersion("unbatched", 1, "compiled");
  WriteConfig("unbatched", "max_batch_size: 0");
  auto repository = Create(ModelControlMode::kNone);
  const std::map<std::string, int> expected = {{"defaulted", 8}, {"smaller", 4}, {"unbatched", 0}};
  for (const auto& [model, max_batch_size] : expected) {
    auto version = repository->Find(model, "");
    ASSERT_TRUE(version.ok()) << model << ": " << version.status();
    EXPECT_EQ((*version)->plan.batching.max_batch_size, max_batch_size) << model;
  }
}

TEST_F(ModelRepositoryTest, APreferredBatchSizeAboveACompiledBricksMaxFailsTheLoad) {
  WriteVersion("preferring", 1, "compiled");
  WriteConfig("preferring", "dynamic_batching { preferred_batch_size: [ 4, 12 ] }");
  auto repository = Create(ModelControlMode::kNone);
  auto found = repository->Find("preferring", "");
  EXPECT_EQ(found.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_NE(found.status().message().find("preferred_batch_size 12"), std::string::npos)
      << found.status();
}

TEST_F(ModelRepositoryTest, TheLoaderGetsOneRunnerPerInstanceOnTheDevice) {
  WriteVersion("three", 1, "x");
  WriteConfig("three", "instance_group { count: 3 kind: KIND_CPU }");
  WriteVersion("one", 1, "x");
  Create(ModelControlMode::kNone);
  EXPECT_EQ(runners_["three"], 3);
  EXPECT_EQ(runners_["one"], 1);
}

}  // namespace
}  // namespace torchbricks::server
