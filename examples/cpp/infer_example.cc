// A first program with the C++ client (clients/cpp): checks that a model is ready, reads
// its metadata, sends one request of made-up FP32 inputs shaped as the metadata says, and
// prints each output and the model's brick graph.
//
//   build/examples/cpp/infer_example 127.0.0.1:8001 classifier
//
// Exit 0 on success, 1 with the server's status on stderr otherwise.
#include <iostream>
#include <string>
#include <vector>

#include "absl/strings/str_join.h"
#include "clients/cpp/inference_client.h"

namespace {

using ::torchbricks::client::InferenceClient;
using ::torchbricks::client::InferInput;
using ::torchbricks::client::InferRequest;
using ::torchbricks::client::InferResult;

absl::Status Run(const std::string& url, const std::string& model) {
  absl::StatusOr<std::unique_ptr<InferenceClient>> client =
      InferenceClient::Create({.url = url, .timeout = absl::Seconds(30)});
  if (!client.ok()) return client.status();

  absl::StatusOr<bool> ready = (*client)->ModelReady(model);
  if (!ready.ok()) return ready.status();
  if (!*ready) return absl::UnavailableError(model + " is not ready");

  absl::StatusOr<inference::ModelMetadataResponse> metadata = (*client)->ModelMetadata(model);
  if (!metadata.ok()) return metadata.status();
  InferRequest request{.model = model};
  for (const auto& input : metadata->inputs()) {
    if (input.datatype() != "FP32") {
      return absl::UnimplementedError("this example sends FP32 inputs only; '" + input.name() +
                                      "' is " + input.datatype());
    }
    std::vector<int64_t> shape(input.shape().begin(), input.shape().end());
    for (int64_t& dim : shape) dim = dim < 0 ? 1 : dim;  // one row for the batch dimension
    std::vector<float> values(static_cast<size_t>(torchbricks::client::ElementCount(shape)));
    for (size_t i = 0; i < values.size(); ++i) values[i] = static_cast<float>(i % 7) / 7;
    request.inputs.push_back(InferInput::Of<float>(input.name(), shape, values));
  }

  absl::StatusOr<InferResult> result = (*client)->Infer(request);
  if (!result.ok()) return result.status();
  std::cout << model << " version " << result->model_version << "\n";
  for (const auto& output : result->outputs) {
    std::cout << "  " << output.name << " " << output.datatype << " ["
              << absl::StrJoin(output.shape, ", ") << "]";
    if (absl::StatusOr<std::vector<float>> values = output.Values<float>(); values.ok()) {
      std::cout << " first value " << (values->empty() ? 0.0f : values->front());
    }
    std::cout << "\n";
  }

  absl::StatusOr<torchbricks::ModelGraphResponse> graph = (*client)->ModelGraph(model);
  if (!graph.ok()) return graph.status();
  std::cout << graph->mermaid();
  return absl::OkStatus();
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 3) {
    std::cerr << "usage: " << argv[0] << " HOST:PORT MODEL\n";
    return 2;
  }
  const absl::Status status = Run(argv[1], argv[2]);
  if (!status.ok()) {
    std::cerr << status << "\n";
    return 1;
  }
  return 0;
}
