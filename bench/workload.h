// Workload: one named benchmark load — a model of the example repository
// (examples/build_example_repository.py) and the single FP32 input each request carries —
// and the tensors and serialized ModelInfer requests built for it. Plain values and pure
// functions; thread-compatible.
//
//   ASSIGN_OR_RETURN(Workload w1, FindWorkload("W1"));
//   std::vector<grpc::ByteBuffer> requests =
//       SerializedInferRequests(w1, RandomBatches(w1, /*batch=*/1, /*count=*/4, /*seed=*/1));
#ifndef TORCHBRICKS_BENCH_WORKLOAD_H_
#define TORCHBRICKS_BENCH_WORKLOAD_H_

#include <cstdint>
#include <filesystem>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "grpcpp/support/byte_buffer.h"
#include "torch/types.h"

namespace torchbricks::bench {

struct Workload {
  std::string id;                   // "W1"
  std::string model;                // model name in the repository
  std::string input;                // the one input tensor each request carries
  std::vector<int64_t> item_shape;  // one item, without the leading batch dimension
};

// The known workloads: W1 = classifier with raw_images [3,100,200], W2 =
// resnet18_classifier with raw [3,32,32]. NotFound (listing the known ids) otherwise.
absl::StatusOr<Workload> FindWorkload(const std::string& id);

// "classifier: raw_images [1,3,100,200] FP32 per request".
std::string Describe(const Workload& workload);

// `count` distinct uniform-random FP32 tensors of shape [batch, item_shape...], the same
// for the same `seed`.
std::vector<at::Tensor> RandomBatches(const Workload& workload, int64_t batch, int count,
                                      uint64_t seed);

// One serialized inference.ModelInferRequest per tensor: the workload's model, the tensor
// as raw FP32 input contents, no requested outputs (the model's terminal outputs).
std::vector<grpc::ByteBuffer> SerializedInferRequests(const Workload& workload,
                                                      const std::vector<at::Tensor>& tensors);

// The highest numeric version directory of `model` under `repository`; NotFound when the
// model has none.
absl::StatusOr<std::filesystem::path> LatestVersionDir(const std::filesystem::path& repository,
                                                       const std::string& model);

}  // namespace torchbricks::bench

#endif  // TORCHBRICKS_BENCH_WORKLOAD_H_
