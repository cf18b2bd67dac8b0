// The in-process limits of bench/floor_benchmark: a model of the example repository run by
// LoadedCollection in this process, no server — a batch sweep, batch 1 after an idle gap,
// and the server's instance layout (threads side by side on one collection). Blocking;
// each function loads its own collection and sets libtorch's intra-op threads.
//
//   ASSIGN_OR_RETURN(InProcessLimits w1, MeasureInProcess(options, *FindWorkload("W1"), {1}, 1));
//   double p50_us = w1.points.at(1).call_latency.p50_us;
#ifndef TORCHBRICKS_BENCH_FLOOR_INPROCESS_H_
#define TORCHBRICKS_BENCH_FLOOR_INPROCESS_H_

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/floor_options.h"
#include "bench/inprocess_sweep.h"
#include "bench/workload.h"

namespace torchbricks::bench {

// One model's in-process figures and what its batch-1 outputs look like.
struct InProcessLimits {
  std::map<int64_t, BatchPoint> points;                       // by batch size
  std::vector<std::pair<std::string, int64_t>> output_bytes;  // terminal outputs at batch 1
  std::vector<std::pair<std::string, int64_t>> output_elements;
  // Batch 1 with the thread idle for kIdleGapUs between calls, as a server at c=1 is while
  // the response and the next request travel: the run starts on a core that went idle.
  // 0 when batch 1 is not among the batches measured.
  double idle_gap_p50_us = 0;
};

// Loads `workload`'s model from options.repository, runs it once at batch 1 (for the
// outputs' sizes), then sweeps `batches` on `threads` intra-op threads (options.seconds per
// batch after options.warmup_seconds) and, when 1 is among `batches`, measures the idle-gap
// point. Progress goes to stderr. The load's or a run's error on failure.
absl::StatusOr<InProcessLimits> MeasureInProcess(const FloorOptions& options,
                                                 const Workload& workload,
                                                 const std::vector<int64_t>& batches, int threads);

// The server's own layout in-process: `instances` threads of one intra-op thread each, every
// one running its own batches of `batch` rows on the same loaded collection at the same
// time, for options.seconds after options.warmup_seconds. Returns the images/s of all of
// them together, or the load's or the first failed run's error.
absl::StatusOr<double> MeasureInstanceLayout(const FloorOptions& options, const Workload& workload,
                                             int instances, int64_t batch);

}  // namespace torchbricks::bench

#endif  // TORCHBRICKS_BENCH_FLOOR_INPROCESS_H_
