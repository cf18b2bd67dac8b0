// How a model version is scheduled, worked out from its config.pbtxt: batch limits,
// queue policy and the model instances (device and intra-op threads each). Pure
// function of the config and the machine; thread-safe.
#ifndef TORCHBRICKS_SERVER_SCHEDULING_CONFIG_H_
#define TORCHBRICKS_SERVER_SCHEDULING_CONFIG_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/model_config.pb.h"

namespace torchbricks::server {

struct SchedulingPlan {
  int max_batch_size = 32;
  std::vector<int> preferred_batch_sizes;
  absl::Duration max_queue_delay = absl::ZeroDuration();
  size_t max_queue_size = 4096;
  absl::Duration default_timeout = absl::ZeroDuration();
  struct Instance {
    std::string device;  // "cpu" or "cuda:N"
    int intra_op_threads = 1;
  };
  std::vector<Instance> instances;
  // The distinct devices of `instances`, in first-use order.
  std::vector<std::string> devices() const;
};

// Defaults (for an absent config.pbtxt or absent fields): max_batch_size 32, no queue
// delay, queue of 4096, one instance on the GPU when `cuda_available`, else on the CPU,
// CPU instances sharing `cores` - 1 intra-op threads evenly (at least one each; one core
// is left to the gRPC front end). InvalidArgument for negative
// sizes, a preferred size above max_batch_size, or KIND_GPU without CUDA.
absl::StatusOr<SchedulingPlan> PlanScheduling(const config::ModelConfig& config,
                                              bool cuda_available, int cores);

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_SCHEDULING_CONFIG_H_
