// The benchmark workloads and the requests built for them.
#include "bench/workload.h"

#include <system_error>

#include "ATen/CPUGeneratorImpl.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "proto/grpc_service.grpc.pb.h"

namespace torchbricks::bench {

absl::StatusOr<Workload> FindWorkload(const std::string& id) {
  if (id == "W1") return Workload{"W1", "classifier", "raw_images", {3, 100, 200}};
  if (id == "W2") return Workload{"W2", "resnet18_classifier", "raw", {3, 32, 32}};
  return absl::NotFoundError(absl::StrCat("unknown workload '", id, "' (known: W1, W2)"));
}

std::string Describe(const Workload& workload) {
  return absl::StrCat(workload.model, ": ", workload.input, " [1,",
                      absl::StrJoin(workload.item_shape, ","), "] FP32 per request");
}

std::vector<at::Tensor> RandomBatches(const Workload& workload, int64_t batch, int count,
                                      uint64_t seed) {
  std::vector<int64_t> shape = {batch};
  shape.insert(shape.end(), workload.item_shape.begin(), workload.item_shape.end());
  at::Generator generator = at::make_generator<at::CPUGeneratorImpl>(seed);
  std::vector<at::Tensor> tensors;
  for (int i = 0; i < count; ++i) {
    tensors.push_back(at::rand(shape, generator, at::TensorOptions().dtype(at::kFloat)));
  }
  return tensors;
}

std::vector<grpc::ByteBuffer> SerializedInferRequests(const Workload& workload,
                                                      const std::vector<at::Tensor>& tensors) {
  std::vector<grpc::ByteBuffer> buffers;
  for (const at::Tensor& tensor : tensors) {
    const at::Tensor data = tensor.contiguous();
    inference::ModelInferRequest request;
    request.set_model_name(workload.model);
    auto* input = request.add_inputs();
    input->set_name(workload.input);
    input->set_datatype("FP32");
    for (int64_t dim : data.sizes()) input->add_shape(dim);
    request.add_raw_input_contents(
        std::string(static_cast<const char*>(data.data_ptr()), data.numel() * data.element_size()));
    grpc::ByteBuffer buffer;
    bool own_buffer = false;
    grpc::SerializationTraits<inference::ModelInferRequest>::Serialize(request, &buffer,
                                                                       &own_buffer);
    buffers.push_back(std::move(buffer));
  }
  return buffers;
}

absl::StatusOr<std::filesystem::path> LatestVersionDir(const std::filesystem::path& repository,
                                                       const std::string& model) {
  std::error_code error;
  int64_t best = -1;
  for (const auto& entry : std::filesystem::directory_iterator(repository / model, error)) {
    int64_t version = 0;
    if (entry.is_directory() && absl::SimpleAtoi(entry.path().filename().string(), &version) &&
        version > best) {
      best = version;
    }
  }
  if (best < 0) {
    return absl::NotFoundError(
        absl::StrCat("no version directory for model '", model, "' in ", repository.string()));
  }
  return repository / model / std::to_string(best);
}

}  // namespace torchbricks::bench
