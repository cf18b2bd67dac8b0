// End to end with a C++ gRPC client against a real torchbricks-server process on
// loopback, serving the exported fixture packages; answers are compared with the same
// packages run in-process through core/.
#include <atomic>
#include <cstring>
#include <fstream>
#include <thread>

#include "core/execution/loaded_collection.h"
#include "core/execution/reference_check.h"
#include "core/testing/package_fixtures.h"
#include "gtest/gtest.h"
#include "proto/brick_service.grpc.pb.h"
#include "proto/grpc_service.grpc.pb.h"
#include "tests/server_process.h"

namespace torchbricks {
namespace {

using ::torchbricks::testing::FixturePackage;
using ::torchbricks::testing::ServerProcess;

inference::ModelInferRequest MakeRequest(const std::string& model, const NamedTensors& inputs,
                                         const std::vector<std::string>& outputs = {}) {
  inference::ModelInferRequest request;
  request.set_model_name(model);
  for (const auto& [name, tensor] : inputs) {
    const at::Tensor data = tensor.contiguous();
    auto* input = request.add_inputs();
    input->set_name(name);
    input->set_datatype(data.scalar_type() == at::kLong ? "INT64" : "FP32");
    for (int64_t dim : data.sizes()) input->add_shape(dim);
    request.add_raw_input_contents(
        std::string(static_cast<const char*>(data.data_ptr()), data.numel() * data.element_size()));
  }
  for (const std::string& name : outputs) request.add_outputs()->set_name(name);
  return request;
}

NamedTensors TensorsOf(const inference::ModelInferResponse& response) {
  NamedTensors result;
  for (int i = 0; i < response.outputs_size(); ++i) {
    const auto& output = response.outputs(i);
    const at::ScalarType type = output.datatype() == "INT64" ? at::kLong : at::kFloat;
    std::vector<int64_t> shape(output.shape().begin(), output.shape().end());
    at::Tensor tensor = at::empty(shape, at::TensorOptions().dtype(type));
    const std::string& bytes = response.raw_output_contents(i);
    EXPECT_EQ(static_cast<int64_t>(bytes.size()), tensor.numel() * tensor.element_size());
    std::memcpy(tensor.data_ptr(), bytes.data(), bytes.size());
    result[output.name()] = tensor;
  }
  return result;
}

class ServerEndToEndTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    const std::string repository = FixturePackage("readme_dummy").parent_path().parent_path();
    server_ = new ServerProcess(repository, {"--warmup-runs", "1"});
  }
  static void TearDownTestSuite() {
    EXPECT_EQ(server_->Stop(), 0);
    delete server_;
  }
  void SetUp() override {
    ASSERT_NE(server_->port(), 0) << "the server did not start";
    stub_ = inference::GRPCInferenceService::NewStub(server_->channel());
    bricks_ = torchbricks::BrickService::NewStub(server_->channel());
  }

  absl::StatusOr<NamedTensors> Infer(const inference::ModelInferRequest& request,
                                     std::string* version = nullptr) {
    grpc::ClientContext context;
    inference::ModelInferResponse response;
    grpc::Status status = stub_->ModelInfer(&context, request, &response);
    if (!status.ok()) {
      return absl::Status(static_cast<absl::StatusCode>(status.error_code()),
                          status.error_message());
    }
    if (version != nullptr) *version = response.model_version();
    return TensorsOf(response);
  }

  uint64_t Executions(const std::string& model, const std::string& brick) {
    grpc::ClientContext context;
    torchbricks::BrickStatisticsRequest request;
    request.set_model_name(model);
    torchbricks::BrickStatisticsResponse response;
    EXPECT_TRUE(bricks_->BrickStatistics(&context, request, &response).ok());
    for (const auto& version : response.versions()) {
      for (const auto& stat : version.bricks()) {
        if (stat.name() == brick) return stat.executions();
      }
    }
    ADD_FAILURE() << "no statistics for brick " << brick;
    return 0;
  }

  static ServerProcess* server_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> stub_;
  std::unique_ptr<torchbricks::BrickService::Stub> bricks_;
};

ServerProcess* ServerEndToEndTest::server_ = nullptr;

TEST_F(ServerEndToEndTest, OutputsEqualTheInProcessCore) {
  for (const std::string model : {"readme_dummy", "resnet18_classifier", "nested_heads"}) {
    auto local = LoadedCollection::Load({.version_dir = FixturePackage(model)});
    ASSERT_TRUE(local.ok()) << local.status();
    NamedTensors inputs;
    for (int index : (*local)->plan(Stage::kInference).required_inputs()) {
      const ValueSpec& spec = (*local)->graph().inputs()[index];
      std::vector<int64_t> shape = spec.dims;
      for (int64_t& dim : shape) dim = dim < 0 ? 2 : dim;
      at::manual_seed(7);
      inputs[spec.name] = at::rand(shape);
    }
    auto expected = (*local)->Run(Stage::kInference, inputs);
    ASSERT_TRUE(expected.ok()) << expected.status();
    std::string version;
    auto served = Infer(MakeRequest(model, inputs), &version);
    ASSERT_TRUE(served.ok()) << model << ": " << served.status();
    EXPECT_EQ(version, "1");
    ASSERT_EQ(served->size(), expected->size()) << model;
    for (const auto& [name, tensor] : *expected) {
      ASSERT_TRUE(served->count(name)) << model << " lacks " << name;
      EXPECT_TRUE(at::allclose(served->at(name), tensor, 1e-5, 1e-6)) << model << " " << name;
    }
  }
}

TEST_F(ServerEndToEndTest, AskingForEmbeddingDoesNotRunTheHead) {
  const uint64_t head_before = Executions("readme_dummy", "head");
  const uint64_t backbone_before = Executions("readme_dummy", "backbone");
  auto served = Infer(
      MakeRequest("readme_dummy", {{"raw_images", at::rand({1, 3, 100, 200})}}, {"embedding"}));
  ASSERT_TRUE(served.ok()) << served.status();
  ASSERT_EQ(served->size(), 1u);
  EXPECT_EQ(served->at("embedding").sizes(), (std::vector<int64_t>{1, 10, 100, 200}));
  EXPECT_EQ(Executions("readme_dummy", "head"), head_before);
  EXPECT_EQ(Executions("readme_dummy", "backbone"), backbone_before + 1);
}

TEST_F(ServerEndToEndTest, ThirtyTwoClientsTwoHundredRequestsEachAllCorrect) {
  auto local = LoadedCollection::Load({.version_dir = FixturePackage("readme_dummy")});
  ASSERT_TRUE(local.ok()) << local.status();
  at::manual_seed(11);
  const at::Tensor base = at::rand({1, 3, 100, 200});
  constexpr int kClients = 32;
  constexpr int kRequests = 200;
  std::atomic<int> wrong{0};
  std::atomic<int> failed{0};
  std::vector<std::thread> clients;
  for (int c = 0; c < kClients; ++c) {
    clients.emplace_back([&, c] {
      auto stub = inference::GRPCInferenceService::NewStub(server_->channel());
      for (int r = 0; r < kRequests; ++r) {
        // Distinct per request: the index scales the image.
        const at::Tensor image = base * (1.0 + 0.001 * (c * kRequests + r));
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(60));
        inference::ModelInferResponse response;
        if (!stub->ModelInfer(&context,
                              MakeRequest("readme_dummy", {{"raw_images", image}}, {"logits"}),
                              &response)
                 .ok()) {
          ++failed;
          continue;
        }
        auto expected = (*local)->Run(Stage::kInference, {{"raw_images", image}}, {"logits"});
        const NamedTensors got = TensorsOf(response);
        if (!expected.ok() || !got.count("logits") ||
            !at::allclose(got.at("logits"), expected->at("logits"), 1e-5, 1e-6)) {
          ++wrong;
        }
      }
    });
  }
  for (std::thread& client : clients) client.join();
  EXPECT_EQ(failed.load(), 0);
  EXPECT_EQ(wrong.load(), 0);
}

TEST_F(ServerEndToEndTest, StreamAnswersEachRequestInOrderAndSurvivesAnError) {
  grpc::ClientContext context;
  auto stream = stub_->ModelStreamInfer(&context);
  const at::Tensor image = at::rand({1, 3, 100, 200});
  std::vector<inference::ModelInferRequest> requests = {
      MakeRequest("readme_dummy", {{"raw_images", image}}, {"logits"}),
      MakeRequest("no_such_model", {{"raw_images", image}}),
      MakeRequest("readme_dummy", {{"raw_images", image * 2}}, {"logits"})};
  for (int i = 0; i < 3; ++i) requests[i].set_id("req" + std::to_string(i));
  for (const auto& request : requests) ASSERT_TRUE(stream->Write(request));
  stream->WritesDone();
  std::vector<inference::ModelStreamInferResponse> replies(3);
  for (auto& reply : replies) ASSERT_TRUE(stream->Read(&reply));
  EXPECT_TRUE(stream->Finish().ok());
  EXPECT_TRUE(replies[0].error_message().empty());
  EXPECT_EQ(replies[0].infer_response().id(), "req0");
  EXPECT_NE(replies[1].error_message().find("no_such_model"), std::string::npos);
  EXPECT_TRUE(replies[2].error_message().empty());
  EXPECT_EQ(replies[2].infer_response().id(), "req2");
}

TEST_F(ServerEndToEndTest, InvalidFixturesAreUnavailableButListed) {
  grpc::ClientContext context;
  inference::RepositoryIndexRequest request;
  inference::RepositoryIndexResponse response;
  ASSERT_TRUE(stub_->RepositoryIndex(&context, request, &response).ok());
  bool found = false;
  for (const auto& model : response.models()) {
    if (model.name() != "invalid_cycle") continue;
    found = true;
    EXPECT_EQ(model.state(), "UNAVAILABLE");
    EXPECT_NE(model.reason().find("cycle"), std::string::npos) << model.reason();
  }
  EXPECT_TRUE(found);
}

// aoti_mixed (tests/fixtures/aoti_fixtures.py): a TorchScript preprocessor, a compiled backbone
// (batch 1..8) and a compiled head, with config max_batch_size 8.
TEST_F(ServerEndToEndTest, CompiledBricksServeTheEagerModulesOutputs) {
  for (int batch : {1, 3, 8}) {
    auto eager = ReadReference(
        FixturePackage("aoti_mixed").parent_path() / ("eager_batch_" + std::to_string(batch)),
        Stage::kInference);
    ASSERT_TRUE(eager.ok() && eager->has_value()) << eager.status();
    auto served = Infer(MakeRequest("aoti_mixed", (*eager)->inputs, {"logits", "probabilities"}));
    ASSERT_TRUE(served.ok()) << "batch " << batch << ": " << served.status();
    for (const char* name : {"logits", "probabilities"}) {
      EXPECT_TRUE(at::allclose(served->at(name), (*eager)->outputs.at(name), 1e-4, 1e-5))
          << "batch " << batch << " " << name;
    }
  }
}

TEST_F(ServerEndToEndTest, ABatchACompiledBrickCannotTakeIsInvalidArgument) {
  for (int64_t batch : {0, 9}) {
    auto served = Infer(MakeRequest("aoti_mixed", {{"raw", at::rand({batch, 3, 8, 8})}}));
    ASSERT_FALSE(served.ok()) << "batch " << batch;
    EXPECT_EQ(served.status().code(), absl::StatusCode::kInvalidArgument) << served.status();
    EXPECT_NE(served.status().message().find("'backbone'"), std::string::npos) << served.status();
  }
  auto after = Infer(MakeRequest("aoti_mixed", {{"raw", at::rand({2, 3, 8, 8})}}));
  EXPECT_TRUE(after.ok()) << after.status();
}

TEST_F(ServerEndToEndTest, AnUnloadableCompiledPackageIsUnavailableNamingTheBrick) {
  grpc::ClientContext context;
  inference::RepositoryIndexRequest request;
  inference::RepositoryIndexResponse response;
  ASSERT_TRUE(stub_->RepositoryIndex(&context, request, &response).ok());
  std::map<std::string, std::string> reasons;
  for (const auto& model : response.models()) {
    if (model.name() == "aoti_corrupt" || model.name() == "aoti_missing") {
      EXPECT_EQ(model.state(), "UNAVAILABLE") << model.name();
      reasons[model.name()] = model.reason();
    }
  }
  EXPECT_NE(reasons["aoti_corrupt"].find("'backbone'"), std::string::npos)
      << reasons["aoti_corrupt"];
  EXPECT_NE(reasons["aoti_missing"].find("'head'"), std::string::npos) << reasons["aoti_missing"];
}

// A config whose max_batch_size exceeds what a compiled brick takes fails that model's load
// with FAILED_PRECONDITION; the server goes on serving the others.
TEST(CompiledBatchLimitEndToEndTest, ATooLargeMaxBatchSizeFailsTheLoadOnly) {
  namespace fs = std::filesystem;
  const fs::path repository = fs::temp_directory_path() / "torchbricks_compiled_batch_limit";
  fs::remove_all(repository);
  fs::create_directories(repository / "too_large");
  fs::copy(FixturePackage("aoti_mixed"), repository / "too_large" / "1",
           fs::copy_options::recursive);
  std::ofstream(repository / "too_large" / "config.pbtxt") << "max_batch_size: 16\n";
  fs::create_directories(repository / "readme_dummy");
  fs::copy(FixturePackage("readme_dummy"), repository / "readme_dummy" / "1",
           fs::copy_options::recursive);
  {
    ServerProcess server(repository.string(), {"--warmup-runs", "1", "--model-control-mode",
                                               "explicit", "--load-model", "readme_dummy"});
    ASSERT_NE(server.port(), 0) << "the server did not start";
    auto stub = inference::GRPCInferenceService::NewStub(server.channel());
    grpc::ClientContext load_context;
    inference::RepositoryModelLoadRequest load;
    load.set_model_name("too_large");
    inference::RepositoryModelLoadResponse loaded;
    const grpc::Status status = stub->RepositoryModelLoad(&load_context, load, &loaded);
    EXPECT_EQ(status.error_code(), grpc::StatusCode::FAILED_PRECONDITION) << status.error_message();
    for (const char* part : {"'backbone'", "16", "at most 8"}) {
      EXPECT_NE(status.error_message().find(part), std::string::npos) << status.error_message();
    }
    grpc::ClientContext infer_context;
    inference::ModelInferResponse response;
    const grpc::Status served = stub->ModelInfer(
        &infer_context, MakeRequest("readme_dummy", {{"raw_images", at::rand({1, 3, 100, 200})}}),
        &response);
    EXPECT_TRUE(served.ok()) << served.error_message();
    EXPECT_EQ(server.Stop(), 0);
  }
  fs::remove_all(repository);
}

}  // namespace
}  // namespace torchbricks
