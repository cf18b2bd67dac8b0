// InProcessSweep: the in-process limit a server is measured against. Runs a loaded
// collection's inference stage on [b, ...] batches, back to back in the calling thread, for
// each batch size b, and reports images/s and per-call latency. Blocking; uses whatever
// intra-op threads libtorch is configured with.
//
//   ASSIGN_OR_RETURN(std::vector<BatchPoint> points,
//                    RunInProcessSweep(*collection, workload, {.batch_sizes = {1, 8, 64}}));
#ifndef TORCHBRICKS_BENCH_INPROCESS_SWEEP_H_
#define TORCHBRICKS_BENCH_INPROCESS_SWEEP_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/workload.h"
#include "clients/cpp/perf/window_statistics.h"
#include "core/execution/loaded_collection.h"

namespace torchbricks::bench {

struct InProcessOptions {
  // Batch sizes to measure, in order (each >= 1). Required, non-empty.
  std::vector<int64_t> batch_sizes;
  // Per batch size: unmeasured calls for this long first (at least one call).
  double warmup_seconds = 1;
  // Per batch size: measured calls for this long (at least one call).
  double measure_seconds = 5;
};

struct BatchPoint {
  int64_t batch_size = 0;
  uint64_t calls = 0;                     // measured Run() calls
  double images_per_second = 0;           // batch_size * calls / measured wall time
  perf::LatencyPercentiles call_latency;  // per Run() call
};

// Measures every batch size of `options` on `collection` (borrowed for the call) with
// `workload`'s input and the stage's terminal outputs. InvalidArgument for bad options;
// the Run() error, naming the batch size, when the collection rejects an input.
absl::StatusOr<std::vector<BatchPoint>> RunInProcessSweep(const LoadedCollection& collection,
                                                          const Workload& workload,
                                                          const InProcessOptions& options);

// The point with the highest images/s; nullptr when `points` is empty. Borrows `points`.
const BatchPoint* BestBatch(const std::vector<BatchPoint>& points);
// The point for batch size 1; nullptr when not measured. Borrows `points`.
const BatchPoint* BatchOfOne(const std::vector<BatchPoint>& points);

}  // namespace torchbricks::bench

#endif  // TORCHBRICKS_BENCH_INPROCESS_SWEEP_H_
