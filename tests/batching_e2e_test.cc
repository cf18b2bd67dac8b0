// Dynamic batching against a real server: batches close at max size, at a preferred
// size and when the delay runs out; only equal shapes share a batch; a full queue,
// deadlines and cancellation are answered without running. Observed through
// ModelStatistics (execution_count = batches run, inference_count = rows).
#include <unistd.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <string>
#include <thread>
#include <vector>

#include "core/testing/package_fixtures.h"
#include "gtest/gtest.h"
#include "proto/grpc_service.grpc.pb.h"
#include "tests/server_process.h"

namespace torchbricks {
namespace {

namespace fs = std::filesystem;
using ::torchbricks::testing::FixturePackage;
using ::torchbricks::testing::ServerProcess;

// readme_dummy's modules with a manifest that accepts any image size.
constexpr char kVariableSizeManifest[] = R"pb(
  inputs {
    name: "raw_images"
    data_type: TYPE_FP32
    dims: [ -1, 3, -1, -1 ]
  }
  nodes {
    name: "preprocessor"
    brick {
      kind: NOT_TRAINABLE
      input_names: "raw_images"
      output_names: "processed"
      module_file: "modules/preprocessor.pt"
    }
  }
  nodes {
    name: "backbone"
    brick { input_names: "processed" output_names: "embedding" module_file: "modules/backbone.pt" }
  }
  nodes {
    name: "head"
    brick {
      input_names: "embedding"
      output_names: [ "logits", "softmaxed" ]
      module_file: "modules/head.pt"
    }
  }
)pb";

void AddModel(const fs::path& repository, const std::string& name, const std::string& config,
              bool variable_size = false) {
  const fs::path version = repository / name / "1";
  fs::create_directories(version);
  fs::copy(FixturePackage("readme_dummy"), version, fs::copy_options::recursive);
  std::ofstream(repository / name / "config.pbtxt") << config;
  if (variable_size) {
    std::ofstream(version / "bricks.pbtxt") << kVariableSizeManifest;
    fs::remove_all(version / "reference");
  }
}

inference::ModelInferRequest Request(const std::string& model, int64_t rows, int64_t height,
                                     int64_t width, float value,
                                     std::vector<std::string> outputs = {}) {
  inference::ModelInferRequest request;
  request.set_model_name(model);
  auto* input = request.add_inputs();
  input->set_name("raw_images");
  input->set_datatype("FP32");
  for (int64_t dim : {rows, int64_t{3}, height, width}) input->add_shape(dim);
  std::vector<float> values(rows * 3 * height * width);
  for (size_t i = 0; i < values.size(); ++i) values[i] = value + 0.0001f * (i % 101);
  std::string bytes(values.size() * sizeof(float), '\0');
  std::memcpy(bytes.data(), values.data(), bytes.size());
  request.add_raw_input_contents(std::move(bytes));
  for (const std::string& name : outputs) request.add_outputs()->set_name(name);
  return request;
}

class BatchingEndToEndTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    // One folder per process: ctest runs each case as its own process, in parallel, and other
    // checkouts on the machine may run theirs at the same time.
    repository_ = new fs::path(fs::temp_directory_path() /
                               ("torchbricks_batching_repository_" + std::to_string(getpid())));
    fs::remove_all(*repository_);
    const std::string slow = "max_queue_delay_microseconds: 5000000";
    AddModel(*repository_, "max4", "max_batch_size: 4 dynamic_batching { " + slow + " }");
    AddModel(*repository_, "preferred",
             "max_batch_size: 8 dynamic_batching { preferred_batch_size: 2 " + slow + " }");
    AddModel(*repository_, "delayed",
             "max_batch_size: 8 dynamic_batching { max_queue_delay_microseconds: 300000 }");
    AddModel(*repository_, "shapes", "max_batch_size: 2 dynamic_batching { " + slow + " }",
             /*variable_size=*/true);
    AddModel(*repository_, "tiny_queue",
             "max_batch_size: 2 dynamic_batching { max_queue_size: 1 " + slow + " }");
    AddModel(
        *repository_, "timeout",
        "max_batch_size: 8 dynamic_batching { default_timeout_microseconds: 100000 " + slow + " }");
    server_ = new ServerProcess(repository_->string(), {"--warmup-runs", "1"});
  }
  static void TearDownTestSuite() {
    EXPECT_EQ(server_->Stop(), 0);
    delete server_;
    fs::remove_all(*repository_);
    delete repository_;
  }
  void SetUp() override {
    ASSERT_NE(server_->port(), 0) << "the server did not start";
    stub_ = inference::GRPCInferenceService::NewStub(server_->channel());
  }

  // (execution_count, inference_count) of `model`.
  std::pair<uint64_t, uint64_t> Counts(const std::string& model) {
    grpc::ClientContext context;
    inference::ModelStatisticsRequest request;
    request.set_name(model);
    inference::ModelStatisticsResponse response;
    EXPECT_TRUE(stub_->ModelStatistics(&context, request, &response).ok());
    if (response.model_stats_size() != 1) return {0, 0};
    return {response.model_stats(0).execution_count(), response.model_stats(0).inference_count()};
  }

  // Sends `requests` at once from one thread each; returns their statuses and responses. With
  // `stagger`, request i leaves i * stagger after the first, so that the requests reach the
  // queue (and take their rows in a batch) in order.
  std::vector<std::pair<grpc::Status, inference::ModelInferResponse>> SendTogether(
      const std::vector<inference::ModelInferRequest>& requests,
      std::chrono::milliseconds stagger = std::chrono::milliseconds(0)) {
    std::vector<std::pair<grpc::Status, inference::ModelInferResponse>> results(requests.size());
    std::vector<std::thread> threads;
    for (size_t i = 0; i < requests.size(); ++i) {
      threads.emplace_back([&, i] {
        std::this_thread::sleep_for(stagger * static_cast<int>(i));
        grpc::ClientContext context;
        context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(30));
        results[i].first = stub_->ModelInfer(&context, requests[i], &results[i].second);
      });
    }
    for (std::thread& thread : threads) thread.join();
    return results;
  }

  static fs::path* repository_;
  static ServerProcess* server_;
  std::unique_ptr<inference::GRPCInferenceService::Stub> stub_;
};

fs::path* BatchingEndToEndTest::repository_ = nullptr;
ServerProcess* BatchingEndToEndTest::server_ = nullptr;

TEST_F(BatchingEndToEndTest, BatchClosesAtMaxSizeLongBeforeTheDelay) {
  const auto before = Counts("max4");
  std::vector<inference::ModelInferRequest> requests;
  for (int i = 0; i < 4; ++i) requests.push_back(Request("max4", 1, 100, 200, 0.1f * i));
  const auto start = std::chrono::steady_clock::now();
  for (const auto& [status, response] : SendTogether(requests)) {
    EXPECT_TRUE(status.ok()) << status.error_message();
  }
  EXPECT_LT(std::chrono::steady_clock::now() - start, std::chrono::seconds(5))
      << "the batch waited for its delay although it was full";
  const auto after = Counts("max4");
  EXPECT_EQ(after.first - before.first, 1u);
  EXPECT_EQ(after.second - before.second, 4u);
}

TEST_F(BatchingEndToEndTest, PreferredSizeClosesTheBatch) {
  const auto before = Counts("preferred");
  auto results = SendTogether(
      {Request("preferred", 1, 100, 200, 0.2f), Request("preferred", 1, 100, 200, 0.4f)});
  for (const auto& [status, response] : results) EXPECT_TRUE(status.ok()) << status.error_message();
  const auto after = Counts("preferred");
  EXPECT_EQ(after.first - before.first, 1u);
  EXPECT_EQ(after.second - before.second, 2u);
}

TEST_F(BatchingEndToEndTest, RequestsArrivingWithinTheDelayShareOneBatch) {
  const auto before = Counts("delayed");
  std::vector<std::thread> threads;
  std::vector<grpc::Status> statuses(3);
  for (int i = 0; i < 3; ++i) {
    threads.emplace_back([&, i] {
      std::this_thread::sleep_for(std::chrono::milliseconds(40 * i));
      grpc::ClientContext context;
      inference::ModelInferResponse response;
      statuses[i] =
          stub_->ModelInfer(&context, Request("delayed", 1, 100, 200, 0.3f * i), &response);
    });
  }
  for (std::thread& thread : threads) thread.join();
  for (const grpc::Status& status : statuses) EXPECT_TRUE(status.ok()) << status.error_message();
  const auto after = Counts("delayed");
  EXPECT_EQ(after.first - before.first, 1u);
  EXPECT_EQ(after.second - before.second, 3u);
}

TEST_F(BatchingEndToEndTest, OnlyEqualShapesShareABatchAndEachGetsItsOwnRows) {
  const auto before = Counts("shapes");
  // Staggered (the queue delay is 5 s, so they still batch): 0.1 takes row 0 of its batch both
  // times below, and libtorch rounds a row the same way only at the same place in a batch.
  const auto stagger = std::chrono::milliseconds(50);
  auto results = SendTogether({Request("shapes", 1, 100, 200, 0.1f, {"logits"}),
                               Request("shapes", 1, 20, 30, 0.2f, {"embedding"}),
                               Request("shapes", 1, 100, 200, 0.3f, {"logits", "softmaxed"}),
                               Request("shapes", 1, 20, 30, 0.4f, {"logits"})},
                              stagger);
  for (const auto& [status, response] : results) ASSERT_TRUE(status.ok()) << status.error_message();
  const auto after = Counts("shapes");
  EXPECT_EQ(after.first - before.first, 2u) << "mixed shapes were batched together or not at all";
  EXPECT_EQ(after.second - before.second, 4u);
  // Each got the outputs it asked for, with its own row count and image size.
  EXPECT_EQ(results[0].second.outputs_size(), 1);
  EXPECT_EQ(results[1].second.outputs(0).name(), "embedding");
  EXPECT_EQ(results[1].second.outputs(0).shape(2), 20);
  EXPECT_EQ(results[2].second.outputs_size(), 2);
  EXPECT_EQ(results[3].second.outputs(0).shape(0), 1);
  // The same request batched with a different mate gets the same answer, bit for bit, and it
  // is not the mate's.
  auto pair = SendTogether({Request("shapes", 1, 100, 200, 0.1f, {"logits"}),
                            Request("shapes", 1, 100, 200, 0.7f, {"logits"})},
                           stagger);
  EXPECT_EQ(pair[0].second.raw_output_contents(0), results[0].second.raw_output_contents(0));
  EXPECT_NE(pair[1].second.raw_output_contents(0), results[0].second.raw_output_contents(0));
}

TEST_F(BatchingEndToEndTest, FullQueueAnswersResourceExhaustedAtOnce) {
  grpc::ClientContext waiting_context;
  inference::ModelInferResponse waiting_response;
  grpc::Status waiting_status;
  std::thread waiting([&] {
    waiting_status = stub_->ModelInfer(&waiting_context, Request("tiny_queue", 1, 100, 200, 0.1f),
                                       &waiting_response);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(300));  // let it sit in the queue
  grpc::ClientContext context;
  inference::ModelInferResponse response;
  grpc::Status refused =
      stub_->ModelInfer(&context, Request("tiny_queue", 1, 100, 200, 0.2f), &response);
  EXPECT_EQ(refused.error_code(), grpc::StatusCode::RESOURCE_EXHAUSTED) << refused.error_message();
  EXPECT_NE(refused.error_message().find("queue is full"), std::string::npos);
  waiting_context.TryCancel();  // frees the queue without waiting out the delay
  waiting.join();
  EXPECT_EQ(waiting_status.error_code(), grpc::StatusCode::CANCELLED);
}

TEST_F(BatchingEndToEndTest, ClientDeadlinePassingInTheQueueNeverRuns) {
  const auto before = Counts("preferred");
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::milliseconds(200));
  inference::ModelInferResponse response;
  grpc::Status status =
      stub_->ModelInfer(&context, Request("preferred", 1, 100, 200, 0.5f), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED);
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  EXPECT_EQ(Counts("preferred").first, before.first) << "an expired request ran";
}

TEST_F(BatchingEndToEndTest, DefaultTimeoutAnswersDeadlineExceededFromTheServer) {
  const auto before = Counts("timeout");
  grpc::ClientContext context;  // no client deadline: the server's queue policy decides
  inference::ModelInferResponse response;
  grpc::Status status =
      stub_->ModelInfer(&context, Request("timeout", 1, 100, 200, 0.5f), &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::DEADLINE_EXCEEDED) << status.error_message();
  EXPECT_NE(status.error_message().find("did not run"), std::string::npos)
      << status.error_message();
  EXPECT_EQ(Counts("timeout").first, before.first);
}

TEST_F(BatchingEndToEndTest, CancelledRequestIsDroppedWithoutRunning) {
  const auto before = Counts("preferred");
  grpc::ClientContext context;
  inference::ModelInferResponse response;
  grpc::Status status;
  std::thread caller([&] {
    status = stub_->ModelInfer(&context, Request("preferred", 1, 100, 200, 0.6f), &response);
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  context.TryCancel();
  caller.join();
  EXPECT_EQ(status.error_code(), grpc::StatusCode::CANCELLED);
  std::this_thread::sleep_for(std::chrono::milliseconds(100));
  EXPECT_EQ(Counts("preferred").first, before.first) << "a cancelled request ran";
  // The server still serves that model.
  auto results = SendTogether(
      {Request("preferred", 1, 100, 200, 0.2f), Request("preferred", 1, 100, 200, 0.4f)});
  for (const auto& [ok, unused] : results) EXPECT_TRUE(ok.ok()) << ok.error_message();
}

}  // namespace
}  // namespace torchbricks
