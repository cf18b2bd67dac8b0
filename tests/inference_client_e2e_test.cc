// The C++ client library (clients/cpp) against real torchbricks-server processes on
// loopback: every call, the server's error codes, shared memory, access-control headers,
// and TLS / mutual TLS with certificates made by `openssl` for the test.
#include <netinet/in.h>
#include <signal.h>
#include <spawn.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cmath>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <map>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "clients/cpp/inference_client.h"
#include "clients/cpp/shared_memory_region.h"
#include "core/testing/package_fixtures.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/server_process.h"

extern char** environ;

namespace torchbricks::client {
namespace {

namespace fs = std::filesystem;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::torchbricks::testing::FixturePackage;
using ::torchbricks::testing::ServerProcess;

constexpr char kAdminHeader[] = "triton-grpc-protocol-admin-key";
constexpr char kAdminToken[] = "s3cret";
const std::vector<int64_t> kImageShape = {1, 3, 100, 200};

std::vector<float> Pixels(float scale) {
  std::vector<float> pixels(static_cast<size_t>(ElementCount(kImageShape)));
  for (size_t i = 0; i < pixels.size(); ++i) pixels[i] = scale * static_cast<float>(i % 251) / 251;
  return pixels;
}

InferRequest DummyRequest(const std::vector<float>& pixels,
                          std::vector<RequestedOutput> outputs = {{"softmaxed"}}) {
  return {.model = "readme_dummy",
          .inputs = {InferInput::Of<float>("raw_images", kImageShape, pixels)},
          .outputs = std::move(outputs)};
}

// A repository holding the readme_dummy fixture only (quick to load).
fs::path SmallRepository() {
  const fs::path repository = fs::temp_directory_path() / absl::StrCat("tb-client-repo-", getpid());
  if (!fs::exists(repository / "readme_dummy" / "1")) {
    fs::create_directories(repository / "readme_dummy");
    fs::copy(FixturePackage("readme_dummy"), repository / "readme_dummy" / "1",
             fs::copy_options::recursive);
  }
  return repository;
}

std::unique_ptr<InferenceClient> Connect(ClientOptions options) {
  absl::StatusOr<std::unique_ptr<InferenceClient>> client = InferenceClient::Create(options);
  EXPECT_TRUE(client.ok()) << client.status();
  return client.ok() ? *std::move(client) : nullptr;
}

// Two servers, each started when a test first needs it (ctest runs every case in a
// process of its own) and stopped when the binary ends. `main`: explicit control mode
// (readme_dummy loaded, keyword_inputs not), client shared memory on, model-repository calls
// restricted to the admin header. `plain`: control mode none on a one-model repository.
class Servers : public ::testing::Environment {
 public:
  void TearDown() override {
    if (main_ != nullptr) {
      EXPECT_EQ(main_->Stop(), 0);
    }
    if (plain_ != nullptr) {
      EXPECT_EQ(plain_->Stop(), 0);
    }
    fs::remove_all(SmallRepository());
  }
  // "127.0.0.1:PORT", or "" when the server did not start.
  static std::string MainUrl() {
    if (main_ == nullptr) {
      const std::string fixtures = FixturePackage("readme_dummy").parent_path().parent_path();
      main_ = std::make_unique<ServerProcess>(
          fixtures,
          std::vector<std::string>{
              "--model-control-mode", "explicit", "--load-model", "readme_dummy",
              "--allow-client-shm", "true", "--grpc-restricted-protocol",
              absl::StrCat("model-repository:admin-key=", kAdminToken), "--warmup-runs", "1"});
    }
    return UrlOf(*main_);
  }
  static std::string PlainUrl() {
    if (plain_ == nullptr) {
      plain_ = std::make_unique<ServerProcess>(SmallRepository().string(),
                                               std::vector<std::string>{"--warmup-runs", "1"});
    }
    return UrlOf(*plain_);
  }

 private:
  static std::string UrlOf(const ServerProcess& server) {
    return server.port() == 0 ? "" : absl::StrCat("127.0.0.1:", server.port());
  }
  static std::unique_ptr<ServerProcess> main_;
  static std::unique_ptr<ServerProcess> plain_;
};
std::unique_ptr<ServerProcess> Servers::main_;
std::unique_ptr<ServerProcess> Servers::plain_;
const auto* const kServers = ::testing::AddGlobalTestEnvironment(new Servers);

MATCHER_P(IsOkAndHolds, expected, "") {
  if (!arg.ok()) {
    *result_listener << "status " << arg.status();
    return false;
  }
  *result_listener << "holds " << ::testing::PrintToString(*arg);
  return *arg == expected;
}

class InferenceClientTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_NE(Servers::MainUrl(), "") << "the server did not start";
    client_ = Connect({.url = Servers::MainUrl(), .headers = {{kAdminHeader, kAdminToken}}});
    ASSERT_NE(client_, nullptr);
  }
  std::unique_ptr<InferenceClient> client_;
};

TEST_F(InferenceClientTest, HealthCalls) {
  ASSERT_TRUE(client_->WaitForConnection(absl::Seconds(10)).ok());
  EXPECT_THAT(client_->ServerLive(), IsOkAndHolds(true));
  EXPECT_THAT(client_->ServerReady(), IsOkAndHolds(true));
  EXPECT_THAT(client_->ModelReady("readme_dummy"), IsOkAndHolds(true));
  EXPECT_THAT(client_->ModelReady("readme_dummy", "1"), IsOkAndHolds(true));
  // As Triton: an unknown model or version is not ready, not NOT_FOUND.
  EXPECT_THAT(client_->ModelReady("no_such_model"), IsOkAndHolds(false));
  EXPECT_THAT(client_->ModelReady("readme_dummy", "99"), IsOkAndHolds(false));
  EXPECT_THAT(client_->HealthCheck(), IsOkAndHolds(ServingStatus::kServing));
  EXPECT_THAT(client_->HealthCheck("liveness"), IsOkAndHolds(ServingStatus::kServing));
  EXPECT_EQ(client_->HealthCheck("no-such-service").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ServingStatusName(ServingStatus::kNotServing), "NOT_SERVING");
}

TEST_F(InferenceClientTest, MetadataConfigAndGraph) {
  absl::StatusOr<inference::ServerMetadataResponse> server = client_->ServerMetadata();
  ASSERT_TRUE(server.ok()) << server.status();
  EXPECT_THAT(server->extensions(), Contains("system_shared_memory"));
  EXPECT_THAT(server->extensions(), Contains("model_configuration"));

  absl::StatusOr<inference::ModelMetadataResponse> metadata =
      client_->ModelMetadata("readme_dummy");
  ASSERT_TRUE(metadata.ok()) << metadata.status();
  EXPECT_EQ(metadata->platform(), "torchbricks");
  ASSERT_EQ(metadata->inputs_size(), 1);
  EXPECT_EQ(metadata->inputs(0).name(), "raw_images");
  EXPECT_THAT(metadata->inputs(0).shape(), ElementsAre(-1, 3, 100, 200));
  absl::StatusOr<inference::ModelMetadataResponse> exported =
      client_->ModelMetadata("readme_dummy", "", "EXPORT");
  ASSERT_TRUE(exported.ok()) << exported.status();
  EXPECT_EQ(exported->inputs(0).name(), "raw_images");
  EXPECT_EQ(client_->ModelMetadata("readme_dummy", "", "SLEEP").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client_->ModelMetadata("no_such_model").status().code(), absl::StatusCode::kNotFound);

  absl::StatusOr<inference::ModelConfig> config = client_->ModelConfig("readme_dummy");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->name(), "readme_dummy");
  EXPECT_EQ(config->backend(), "torchbricks");
  EXPECT_EQ(client_->ModelConfig("no_such_model").status().code(), absl::StatusCode::kNotFound);

  absl::StatusOr<torchbricks::ModelGraphResponse> graph =
      client_->ModelGraph("readme_dummy", "INFERENCE");
  ASSERT_TRUE(graph.ok()) << graph.status();
  EXPECT_EQ(graph->stage(), "INFERENCE");
  EXPECT_EQ(graph->model_version(), "1");
  ASSERT_EQ(graph->bricks_size(), 3);
  EXPECT_EQ(graph->bricks(0).name(), "preprocessor");
  EXPECT_EQ(graph->bricks(2).name(), "head");
  EXPECT_THAT(graph->mermaid(), HasSubstr("flowchart"));
  EXPECT_EQ(client_->ModelGraph("readme_dummy", "SLEEP").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client_->ModelGraph("no_such_model").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(InferenceClientTest, InferReturnsNamedTypedOutputs) {
  absl::StatusOr<InferResult> result = client_->Infer(DummyRequest(Pixels(1), {}));
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_EQ(result->model_name, "readme_dummy");
  EXPECT_EQ(result->model_version, "1");
  const InferOutput* softmaxed = result->Find("softmaxed");
  ASSERT_NE(softmaxed, nullptr);
  EXPECT_EQ(softmaxed->datatype, "FP32");
  ASSERT_EQ(softmaxed->shape.size(), 2u);
  EXPECT_EQ(softmaxed->shape[0], 1);
  absl::StatusOr<std::vector<float>> scores = softmaxed->Values<float>();
  ASSERT_TRUE(scores.ok()) << scores.status();
  float sum = 0;
  for (const float score : *scores) sum += score;
  EXPECT_NEAR(sum, 1.0f, 1e-4);  // a softmax row
  EXPECT_NE(result->Find("logits"), nullptr);

  // A requested intermediate comes back alone, and the stage parameter is passed.
  InferRequest embedding = DummyRequest(Pixels(1), {{"embedding"}});
  embedding.stage = "EXPORT";
  embedding.id = "embedding-request";
  absl::StatusOr<InferResult> pruned = client_->Infer(embedding);
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  EXPECT_EQ(pruned->id, "embedding-request");
  ASSERT_EQ(pruned->outputs.size(), 1u);
  EXPECT_THAT(pruned->outputs[0].shape, ElementsAre(1, 10, 100, 200));
}

TEST_F(InferenceClientTest, ServerErrorCodesPassThrough) {
  const std::vector<float> pixels = Pixels(1);
  InferRequest unknown_model = DummyRequest(pixels);
  unknown_model.model = "no_such_model";
  EXPECT_EQ(client_->Infer(unknown_model).status().code(), absl::StatusCode::kNotFound);

  InferRequest unknown_version = DummyRequest(pixels);
  unknown_version.version = "9";
  EXPECT_EQ(client_->Infer(unknown_version).status().code(), absl::StatusCode::kNotFound);

  InferRequest wrong_shape = DummyRequest(pixels);
  wrong_shape.inputs[0].shape = {1, 3, 200, 100};
  const absl::Status shape_status = client_->Infer(wrong_shape).status();
  EXPECT_EQ(shape_status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(shape_status.message(), HasSubstr("raw_images"));

  const std::vector<double> doubles(pixels.begin(), pixels.end());
  const InferRequest wrong_dtype{
      .model = "readme_dummy",
      .inputs = {InferInput::Of<double>("raw_images", kImageShape, doubles)}};
  EXPECT_EQ(client_->Infer(wrong_dtype).status().code(), absl::StatusCode::kInvalidArgument);

  InferRequest short_contents = DummyRequest(pixels);
  short_contents.inputs[0].data.resize(16);
  EXPECT_EQ(client_->Infer(short_contents).status().code(), absl::StatusCode::kInvalidArgument);

  InferRequest bad_stage = DummyRequest(pixels);
  bad_stage.stage = "TRAIN";
  EXPECT_EQ(client_->Infer(bad_stage).status().code(), absl::StatusCode::kInvalidArgument);

  EXPECT_EQ(client_->Infer(DummyRequest(pixels, {{"no_such_output"}})).status().code(),
            absl::StatusCode::kInvalidArgument);

  // keyword_inputs is in the repository but not loaded (explicit mode).
  EXPECT_EQ(client_->Infer({.model = "keyword_inputs"}).status().code(),
            absl::StatusCode::kUnavailable);

  // A deadline that has passed before the call leaves.
  std::unique_ptr<InferenceClient> hurried =
      Connect({.url = Servers::MainUrl(), .timeout = absl::Nanoseconds(1)});
  EXPECT_EQ(hurried->Infer(DummyRequest(pixels)).status().code(),
            absl::StatusCode::kDeadlineExceeded);
}

TEST_F(InferenceClientTest, AsyncInferCallsBackOnceEachWithTheBlockingResult) {
  const std::vector<float> pixels = Pixels(0.5f);
  absl::StatusOr<InferResult> expected = client_->Infer(DummyRequest(pixels));
  ASSERT_TRUE(expected.ok()) << expected.status();
  constexpr int kCalls = 4;
  absl::BlockingCounter pending(kCalls + 1);
  std::vector<absl::StatusOr<InferResult>> results(kCalls + 1, absl::UnknownError("not called"));
  for (int i = 0; i < kCalls; ++i) {
    client_->AsyncInfer(DummyRequest(pixels), [&, i](absl::StatusOr<InferResult> result) {
      results[i] = std::move(result);
      pending.DecrementCount();
    });
  }
  InferRequest unknown = DummyRequest(pixels);
  unknown.model = "no_such_model";
  client_->AsyncInfer(unknown, [&](absl::StatusOr<InferResult> result) {
    results[kCalls] = std::move(result);
    pending.DecrementCount();
  });
  pending.Wait();
  for (int i = 0; i < kCalls; ++i) {
    ASSERT_TRUE(results[i].ok()) << results[i].status();
    EXPECT_EQ(results[i]->Find("softmaxed")->data, expected->Find("softmaxed")->data);
  }
  EXPECT_EQ(results[kCalls].status().code(), absl::StatusCode::kNotFound);
}

TEST_F(InferenceClientTest, StreamAnswersInOrderWithPerRequestErrors) {
  const std::vector<float> pixels = Pixels(0.25f);
  absl::StatusOr<InferResult> expected = client_->Infer(DummyRequest(pixels));
  ASSERT_TRUE(expected.ok()) << expected.status();
  absl::StatusOr<std::unique_ptr<InferStream>> stream = client_->OpenStream(absl::Seconds(60));
  ASSERT_TRUE(stream.ok()) << stream.status();
  InferRequest first = DummyRequest(pixels);
  first.id = "first";
  InferRequest unknown = DummyRequest(pixels);
  unknown.model = "no_such_model";
  InferRequest last = DummyRequest(pixels);
  last.id = "last";
  ASSERT_TRUE((*stream)->Write(first).ok());
  ASSERT_TRUE((*stream)->Write(unknown).ok());
  ASSERT_TRUE((*stream)->Write(last).ok());
  ASSERT_TRUE((*stream)->CloseWrites().ok());
  EXPECT_EQ((*stream)->Write(first).code(), absl::StatusCode::kFailedPrecondition);
  std::vector<absl::StatusOr<InferResult>> answers;
  while (std::optional<absl::StatusOr<InferResult>> answer = (*stream)->Read()) {
    answers.push_back(*std::move(answer));
  }
  EXPECT_TRUE((*stream)->Finish().ok());
  ASSERT_EQ(answers.size(), 3u);
  ASSERT_TRUE(answers[0].ok()) << answers[0].status();
  EXPECT_EQ(answers[0]->id, "first");
  EXPECT_EQ(answers[0]->Find("softmaxed")->data, expected->Find("softmaxed")->data);
  EXPECT_EQ(answers[1].status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(answers[1].status().message(), HasSubstr("no_such_model"));
  ASSERT_TRUE(answers[2].ok()) << answers[2].status();
  EXPECT_EQ(answers[2]->id, "last");
}

TEST_F(InferenceClientTest, RepositoryLoadUnloadAndStatistics) {
  absl::StatusOr<inference::RepositoryIndexResponse> index = client_->RepositoryIndex();
  ASSERT_TRUE(index.ok()) << index.status();
  std::map<std::string, std::string> states;
  for (const auto& model : index->models()) states[model.name()] = model.state();
  EXPECT_EQ(states["readme_dummy"], "READY");
  EXPECT_NE(states["keyword_inputs"], "READY");
  absl::StatusOr<inference::RepositoryIndexResponse> ready = client_->RepositoryIndex(true);
  ASSERT_TRUE(ready.ok()) << ready.status();
  for (const auto& model : ready->models()) EXPECT_EQ(model.state(), "READY") << model.name();

  ASSERT_TRUE(client_->LoadModel("keyword_inputs").ok());
  EXPECT_THAT(client_->ModelReady("keyword_inputs"), IsOkAndHolds(true));
  const std::vector<float> x = {1, 2, 3, 4, 5, 6};
  absl::StatusOr<InferResult> sum = client_->Infer(
      {.model = "keyword_inputs",
       .inputs = {InferInput::Of<float>("x", {2, 3}, x), InferInput::Of<float>("y", {2, 3}, x)}});
  EXPECT_TRUE(sum.ok()) << sum.status();
  ASSERT_TRUE(client_->UnloadModel("keyword_inputs").ok());
  absl::StatusOr<bool> unloaded = client_->ModelReady("keyword_inputs");
  EXPECT_TRUE(!unloaded.ok() || !*unloaded);
  EXPECT_EQ(client_->LoadModel("no_such_model").code(), absl::StatusCode::kNotFound);

  ASSERT_TRUE(client_->Infer(DummyRequest(Pixels(1))).ok());
  absl::StatusOr<inference::ModelStatisticsResponse> stats =
      client_->ModelStatistics("readme_dummy");
  ASSERT_TRUE(stats.ok()) << stats.status();
  ASSERT_GE(stats->model_stats_size(), 1);
  EXPECT_EQ(stats->model_stats(0).name(), "readme_dummy");
  EXPECT_GE(stats->model_stats(0).inference_stats().success().count(), 1u);
  absl::StatusOr<torchbricks::BrickStatisticsResponse> bricks =
      client_->BrickStatistics("readme_dummy");
  ASSERT_TRUE(bricks.ok()) << bricks.status();
  ASSERT_EQ(bricks->versions_size(), 1);
  uint64_t head_runs = 0;
  for (const auto& brick : bricks->versions(0).bricks()) {
    if (brick.name() == "head") head_runs = brick.executions();
  }
  EXPECT_GE(head_runs, 1u);
  EXPECT_EQ(client_->BrickStatistics("no_such_model").status().code(), absl::StatusCode::kNotFound);
}

TEST_F(InferenceClientTest, HeadersReachTheServer) {
  std::unique_ptr<InferenceClient> without = Connect({.url = Servers::MainUrl()});
  EXPECT_EQ(without->RepositoryIndex().status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(without->ServerLive().ok());  // the health group is not restricted
  std::unique_ptr<InferenceClient> wrong =
      Connect({.url = Servers::MainUrl(), .headers = {{kAdminHeader, "guess"}}});
  EXPECT_EQ(wrong->LoadModel("keyword_inputs").code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(client_->RepositoryIndex().ok());
}

TEST(InferenceClientOptionsTest, BadOptionsAreRefusedAtCreate) {
  EXPECT_EQ(InferenceClient::Create({.headers = {{"Upper-Case", "v"}}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(InferenceClient::Create({.headers = {{"grpc-timeout", "1"}}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(InferenceClient::Create({.headers = {{"key", "line\nbreak"}}}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(InferenceClient::Create({.max_message_bytes = 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(InferenceClient::Create({.root_certificates_file = "/no/such/ca.pem"}).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(InferenceClient::Create({.use_tls = true, .private_key_file = "/tmp/key.pem"})
                .status()
                .code(),
            absl::StatusCode::kInvalidArgument);
}

// A loopback port that nothing listens on (bound, read, closed).
int UnusedPort() {
  const int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof(address);
  bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof(address));
  getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length);
  close(fd);
  return ntohs(address.sin_port);
}

TEST(InferenceClientUnreachableTest, NoServerIsUnavailable) {
  std::unique_ptr<InferenceClient> client =
      Connect({.url = absl::StrCat("127.0.0.1:", UnusedPort()), .timeout = absl::Seconds(10)});
  EXPECT_EQ(client->WaitForConnection(absl::Seconds(10)).code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(client->ServerLive().status().code(), absl::StatusCode::kUnavailable);
}

// --- system shared memory ---------------------------------------------------------------------

class ClientSharedMemoryTest : public InferenceClientTest {
 protected:
  void TearDown() override {
    if (client_ != nullptr) {
      EXPECT_TRUE(client_->UnregisterSystemSharedMemory().ok());
    }
  }
  std::unique_ptr<SharedMemoryRegion> Region(absl::string_view stem, int64_t byte_size) {
    absl::StatusOr<std::unique_ptr<SharedMemoryRegion>> region =
        SharedMemoryRegion::Create(absl::StrCat("/tb-client-e2e-", stem, "-", getpid()), byte_size);
    EXPECT_TRUE(region.ok()) << region.status();
    return region.ok() ? *std::move(region) : nullptr;
  }
};

TEST_F(ClientSharedMemoryTest, InputsAndOutputsInRegionsEqualTheWireResult) {
  const std::vector<float> pixels = Pixels(0.75f);
  absl::StatusOr<InferResult> expected = client_->Infer(DummyRequest(pixels, {{"logits"}}));
  ASSERT_TRUE(expected.ok()) << expected.status();
  const std::string& logits = expected->Find("logits")->data;

  const int64_t input_bytes = static_cast<int64_t>(pixels.size() * sizeof(float));
  std::unique_ptr<SharedMemoryRegion> inputs = Region("in", input_bytes + 64);
  std::unique_ptr<SharedMemoryRegion> outputs = Region("out", 256);
  ASSERT_NE(inputs, nullptr);
  ASSERT_NE(outputs, nullptr);
  ASSERT_TRUE(inputs
                  ->Write(64, absl::string_view(reinterpret_cast<const char*>(pixels.data()),
                                                static_cast<size_t>(input_bytes)))
                  .ok());
  ASSERT_TRUE(client_->RegisterSystemSharedMemory("in", inputs->key(), inputs->byte_size()).ok());
  ASSERT_TRUE(client_->RegisterSystemSharedMemory("out", outputs->key(), 256).ok());

  absl::StatusOr<inference::SystemSharedMemoryStatusResponse> status =
      client_->SystemSharedMemoryStatus();
  ASSERT_TRUE(status.ok()) << status.status();
  EXPECT_EQ(status->regions_size(), 2);
  EXPECT_EQ(status->regions().at("in").key(), inputs->key());
  EXPECT_EQ(client_->SystemSharedMemoryStatus("nope").status().code(), absl::StatusCode::kNotFound);

  const InferRequest request{
      .model = "readme_dummy",
      .inputs = {InferInput::InSharedMemory(
          "raw_images", "FP32", kImageShape,
          {.region = "in", .byte_size = input_bytes, .offset = 64})},
      .outputs = {
          {"logits", SharedMemoryPlacement{.region = "out", .byte_size = 128, .offset = 16}},
          {"softmaxed"}}};
  absl::StatusOr<InferResult> result = client_->Infer(request);
  ASSERT_TRUE(result.ok()) << result.status();
  const InferOutput* placed = result->Find("logits");
  ASSERT_NE(placed, nullptr);
  ASSERT_TRUE(placed->shared_memory.has_value());
  EXPECT_EQ(placed->shared_memory->region, "out");
  EXPECT_EQ(placed->shared_memory->offset, 16);
  EXPECT_EQ(placed->shared_memory->byte_size, static_cast<int64_t>(logits.size()));
  EXPECT_TRUE(placed->data.empty());
  absl::StatusOr<std::string> written = outputs->Read(16, static_cast<int64_t>(logits.size()));
  ASSERT_TRUE(written.ok());
  EXPECT_EQ(*written, logits);  // read from shm inputs, written to shm outputs
  EXPECT_FALSE(result->Find("softmaxed")->data.empty());

  ASSERT_TRUE(client_->UnregisterSystemSharedMemory("in").ok());
  EXPECT_TRUE(client_->UnregisterSystemSharedMemory("in").ok());  // repeatable
  EXPECT_EQ(client_->Infer(request).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(ClientSharedMemoryTest, PlacementErrorsHaveTheirCodes) {
  std::unique_ptr<SharedMemoryRegion> small = Region("small", 8);
  ASSERT_NE(small, nullptr);
  ASSERT_TRUE(client_->RegisterSystemSharedMemory("small", small->key(), 8).ok());
  EXPECT_EQ(client_->RegisterSystemSharedMemory("small", small->key(), 8).code(),
            absl::StatusCode::kAlreadyExists);
  EXPECT_EQ(client_->RegisterSystemSharedMemory("past", small->key(), 16).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(client_->RegisterSystemSharedMemory("gone", "/tb-client-no-such-object", 8).code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(client_->RegisterSystemSharedMemory("path", "/dev/shm/x", 8).code(),
            absl::StatusCode::kInvalidArgument);

  // An output larger than its place.
  InferRequest too_small = DummyRequest(Pixels(1), {{"logits", SharedMemoryPlacement{"small", 8}}});
  const absl::Status status = client_->Infer(too_small).status();
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(status.message(), HasSubstr("logits"));
  // An input whose placement is not its size.
  const InferRequest short_input{
      .model = "readme_dummy",
      .inputs = {InferInput::InSharedMemory("raw_images", "FP32", kImageShape, {"small", 8})}};
  EXPECT_EQ(client_->Infer(short_input).status().code(), absl::StatusCode::kInvalidArgument);
}

TEST(ClientSharedMemoryOffTest, AServerWithoutClientShmRefusesRegions) {
  ASSERT_NE(Servers::PlainUrl(), "") << "the server did not start";
  std::unique_ptr<InferenceClient> client = Connect({.url = Servers::PlainUrl()});
  EXPECT_EQ(client->RegisterSystemSharedMemory("r", "/tb-client-any", 8).code(),
            absl::StatusCode::kFailedPrecondition);
  // ... and repository control outside explicit mode.
  EXPECT_EQ(client->LoadModel("readme_dummy").code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(client->UnloadModel("readme_dummy").code(), absl::StatusCode::kFailedPrecondition);
}

// --- TLS -----------------------------------------------------------------------------------------

// A server process whose readiness is awaited over TLS, through the client under test.
// A server whose readiness is probed with `probe`'s credentials (testing::ServerProcess
// probes in plaintext by default).
class TlsServer {
 public:
  TlsServer(std::vector<std::string> flags, ClientOptions probe)
      : process_(testing::ServerProcess::Command{
            testing::ServerProcess::ServerCommand(SmallRepository().string(),
                                                  WithWarmUp(std::move(flags))),
            [probe](int port) mutable {
              probe.url = absl::StrCat("127.0.0.1:", port);
              std::unique_ptr<InferenceClient> client = Connect(probe);
              if (client == nullptr) return false;
              absl::StatusOr<bool> ready = client->ServerReady();
              return ready.ok() && *ready;
            }}) {}

  std::string url() const { return absl::StrCat("127.0.0.1:", process_.port()); }
  int port() const { return process_.port(); }

 private:
  static std::vector<std::string> WithWarmUp(std::vector<std::string> flags) {
    flags.insert(flags.end(), {"--warmup-runs", "1"});
    return flags;
  }
  testing::ServerProcess process_;
};

class ClientTlsTest : public ::testing::Test {
 protected:
  // A CA, a server certificate for localhost/127.0.0.1 and a client certificate signed by it,
  // and a second CA that signed neither.
  static void SetUpTestSuite() {
    pki_ = new fs::path(fs::temp_directory_path() / absl::StrCat("tb-client-pki-", getpid()));
    fs::create_directories(*pki_);
    const std::string dir = pki_->string();
    const std::string ec = "-newkey ec -pkeyopt ec_paramgen_curve:prime256v1 -nodes";
    std::string script = absl::StrCat("set -e; cd '", dir, "'; ");
    for (const char* ca : {"ca", "other_ca"}) {
      absl::StrAppend(&script, "openssl req -x509 ", ec, " -keyout ", ca, ".key -out ", ca,
                      ".pem -days 2 -subj /CN=", ca, "; ");
    }
    for (const auto& [name, usage] :
         {std::pair{"server", "serverAuth"}, {"client", "clientAuth"}}) {
      absl::StrAppend(
          &script, "printf 'subjectAltName=DNS:localhost,IP:127.0.0.1\\nextendedKeyUsage=", usage,
          "\\n' > ", name, ".ext; openssl req ", ec, " -keyout ", name, ".key -out ", name,
          ".csr -subj /CN=", name, "; openssl x509 -req -in ", name,
          ".csr -CA ca.pem -CAkey ca.key -CAcreateserial -out ", name, ".pem -days 2 -extfile ",
          name, ".ext; ");
    }
    made_ = std::system(absl::StrCat("(", script, ") >/dev/null 2>&1").c_str()) == 0;
  }
  static void TearDownTestSuite() {
    fs::remove_all(*pki_);
    delete pki_;
  }
  void SetUp() override {
    if (std::system("command -v openssl >/dev/null 2>&1") != 0) GTEST_SKIP() << "no openssl";
    ASSERT_TRUE(made_) << "openssl did not make the test certificates";
  }
  static std::string File(absl::string_view name) { return (*pki_ / std::string(name)).string(); }

  static fs::path* pki_;
  static bool made_;
};
fs::path* ClientTlsTest::pki_ = nullptr;
bool ClientTlsTest::made_ = false;

TEST_F(ClientTlsTest, TlsServerAnswersTlsClientsTrustingItsCa) {
  const ClientOptions trusting{.root_certificates_file = File("ca.pem")};
  TlsServer server({"--grpc-use-ssl", "true", "--grpc-server-cert", File("server.pem"),
                    "--grpc-server-key", File("server.key")},
                   trusting);
  ASSERT_NE(server.port(), 0) << "the TLS server did not start";
  ClientOptions options = trusting;
  options.url = server.url();
  std::unique_ptr<InferenceClient> client = Connect(options);
  EXPECT_THAT(client->ServerLive(), IsOkAndHolds(true));
  EXPECT_TRUE(client->Infer(DummyRequest(Pixels(1))).ok());
  EXPECT_TRUE(client->WaitForConnection(absl::Seconds(10)).ok());

  std::unique_ptr<InferenceClient> plaintext = Connect({.url = server.url()});
  EXPECT_EQ(plaintext->ServerLive().status().code(), absl::StatusCode::kUnavailable);
  std::unique_ptr<InferenceClient> distrusting =
      Connect({.url = server.url(), .root_certificates_file = File("other_ca.pem")});
  EXPECT_EQ(distrusting->ServerLive().status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(distrusting->WaitForConnection(absl::Seconds(10)).code(),
            absl::StatusCode::kUnavailable);
}

TEST_F(ClientTlsTest, MutualTlsNeedsTheClientCertificate) {
  const ClientOptions with_certificate{.root_certificates_file = File("ca.pem"),
                                       .private_key_file = File("client.key"),
                                       .certificate_chain_file = File("client.pem")};
  TlsServer server({"--grpc-use-ssl-mutual", "true", "--grpc-server-cert", File("server.pem"),
                    "--grpc-server-key", File("server.key"), "--grpc-root-cert", File("ca.pem")},
                   with_certificate);
  ASSERT_NE(server.port(), 0) << "the mutual TLS server did not start";
  ClientOptions options = with_certificate;
  options.url = server.url();
  EXPECT_THAT(Connect(options)->ServerReady(), IsOkAndHolds(true));
  std::unique_ptr<InferenceClient> anonymous =
      Connect({.url = server.url(), .root_certificates_file = File("ca.pem")});
  EXPECT_EQ(anonymous->ServerLive().status().code(), absl::StatusCode::kUnavailable);
}

TEST(ClientPlaintextTest, PlaintextServerAnswersPlaintextClientsOnly) {
  ASSERT_NE(Servers::PlainUrl(), "") << "the server did not start";
  EXPECT_THAT(Connect({.url = Servers::PlainUrl()})->ServerLive(), IsOkAndHolds(true));
  std::unique_ptr<InferenceClient> tls = Connect({.url = Servers::PlainUrl(), .use_tls = true});
  EXPECT_EQ(tls->ServerLive().status().code(), absl::StatusCode::kUnavailable);
}

}  // namespace
}  // namespace torchbricks::client
