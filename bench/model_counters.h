// ModelCounters: the cumulative ModelStatistics counters of one model (summed over its
// versions) as a torchbricks-server reports them, and the difference between two reads —
// which, around a load point, gives the average batch the server executed. Plain values;
// FetchModelCounters() is a blocking RPC and thread-safe.
#ifndef TORCHBRICKS_BENCH_MODEL_COUNTERS_H_
#define TORCHBRICKS_BENCH_MODEL_COUNTERS_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "grpcpp/channel.h"

namespace torchbricks::bench {

struct ModelCounters {
  uint64_t inference_count = 0;   // batch elements inferred
  uint64_t execution_count = 0;   // model executions
  uint64_t success_count = 0;     // successful requests
  uint64_t queue_ns = 0;          // total time requests waited for an executor / batch
  uint64_t compute_infer_ns = 0;  // total time executions ran the model

  // inference_count / execution_count; 0 when nothing ran.
  double AverageBatch() const;
  // Average queue time per successful request, in microseconds; 0 when none.
  double QueueUsPerRequest() const;
  // Average duration of the runs that requests were part of, in microseconds; 0 when none.
  double InferUsPerExecution() const;
};

// later - earlier, field by field (counters are cumulative).
ModelCounters operator-(const ModelCounters& later, const ModelCounters& earlier);

// Calls ModelStatistics for every version of `model` over `channel` and sums them.
// The RPC's status on failure (e.g. NotFound for an unknown model).
absl::StatusOr<ModelCounters> FetchModelCounters(const std::shared_ptr<grpc::Channel>& channel,
                                                 const std::string& model);

}  // namespace torchbricks::bench

#endif  // TORCHBRICKS_BENCH_MODEL_COUNTERS_H_
