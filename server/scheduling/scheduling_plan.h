// How a model version is scheduled, worked out from its config.pbtxt: batch limits,
// queue policy and the model instances (device and intra-op threads each). Pure
// function of the config and the machine; thread-safe.
#ifndef TORCHBRICKS_SERVER_SCHEDULING_SCHEDULING_PLAN_H_
#define TORCHBRICKS_SERVER_SCHEDULING_SCHEDULING_PLAN_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/model_config.pb.h"

namespace torchbricks::server {

// How requests are grouped into batches and how long they may wait: the batcher's rules,
// written once with their defaults (config.pbtxt's dynamic_batching when absent).
struct BatchPolicy {
  // Rows per batch at most; 0 runs every request on its own.
  int max_batch_size = 32;
  // Batch sizes that close a batch at once.
  std::vector<int> preferred_batch_sizes;
  // How long the oldest request may wait for batch-mates.
  absl::Duration max_queue_delay = absl::ZeroDuration();
  // Requests queued at most; more are refused RESOURCE_EXHAUSTED.
  size_t max_queue_size = 4096;
  // Longest wait in the queue; zero for none.
  absl::Duration default_timeout = absl::ZeroDuration();
  // config.pbtxt's parameters { key: "batching_policy" value: "fair_share" }: a batch also
  // closes once it holds its instance's share of the rows in sight — rows that could join
  // it queued plus rows running on other instances (or, when more, that sum smoothed over
  // the last batches and fading within seconds, since rows just answered come back),
  // divided by the instance count — so that several instances under closed-loop load take
  // even batches instead of the first taking all it can wait for. With one instance it
  // waits until the queue holds the recent load. max_queue_delay (which must be above 0)
  // still bounds every wait. Default ("delay"): Triton's rules above only.
  bool fair_share = false;
  // config.pbtxt's parameters { key: "adaptive_queue_delay" value: "true" | "false" }
  // (default true): max_queue_delay is a bound, and a batcher whose waits gather nothing
  // stops waiting. After kFruitlessWaitsToSkip (dynamic_batcher.h) batches in a row that
  // closed with the lone request that waited out the delay, batches close as soon as an
  // instance is free (and an idle batcher of CPU instances runs a lone request on the
  // receiving thread), except that one request in kProbeInterval waits (a probe); when
  // requests join a probe's batch, batches wait again. So one client at a time is not taxed
  // the delay on every request, and load that a wait can batch is batched as configured
  // (docs/CONFIG.md, "Queue delay").
  bool adaptive_queue_delay = true;
};

// The CUDA devices the server's libtorch offers (core's CudaBuilt() and CudaDeviceCount(),
// asked once at start).
struct CudaInventory {
  bool built = false;  // libtorch has CUDA (libtorch_cuda loaded)
  int devices = 0;     // CUDA devices it sees
  bool usable() const { return built && devices > 0; }
  // Why no GPU is usable, for a message; "" when one is.
  std::string WhyUnusable() const;
};

struct SchedulingPlan {
  BatchPolicy batching;
  struct Instance {
    std::string device;  // "cpu" or "cuda:N"
    int intra_op_threads = 1;
  };
  std::vector<Instance> instances;
  // The distinct devices of `instances`, in first-use order.
  std::vector<std::string> devices() const;
  // How many of `instances` are on `device`.
  int InstancesOn(const std::string& device) const;
  // Where the instances are, for the load log line: "2 instances on cuda:0, 1 on cpu", and,
  // for a config without instance_group, why there (Triton's rule: a usable GPU, else the CPU).
  std::string placement;
};

// Defaults (for an absent config.pbtxt or absent fields): max_batch_size 32, no queue
// delay, queue of 4096, one instance on cuda:0 when `cuda` has a usable GPU, else on the CPU,
// CPU instances sharing `cores` - 1 intra-op threads evenly (at least one each; one core
// is left to the gRPC front end). InvalidArgument for negative
// sizes, a preferred size above max_batch_size, a queue delay or timeout beyond int64
// microseconds, a batching_policy other than "delay" or "fair_share" (or fair_share
// without a queue delay), an adaptive_queue_delay other than "true" or "false", instances or
// threads beyond the machine's bounds, or a GPU index that `cuda` does not have; Unavailable for
// KIND_GPU without a usable GPU (the message says why: the config is valid, the machine lacks it).
absl::StatusOr<SchedulingPlan> PlanScheduling(const config::ModelConfig& config,
                                              const CudaInventory& cuda, int cores);

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_SCHEDULING_SCHEDULING_PLAN_H_
