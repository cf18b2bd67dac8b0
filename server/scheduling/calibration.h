// Self-configuration, the measuring half: runs a loaded model in-process in candidate
// layouts (N threads at once, each with T intra-op threads, like N instances) at a few
// batch sizes, on synthetic inputs, within a time budget, and returns the measured points
// for ChooseConfiguration (self_configuration.h). Runs only through the torch-free
// ServableModel seam. Calibrate() blocks its caller for at most the budget plus three
// batch runs per thread of the last point it starts (its warm-up, its first measured run and
// one that overruns); it is thread-safe (it starts and joins its own threads).
//
//   ASSIGN_OR_RETURN(std::vector<CalibrationPoint> points,
//                    Calibrate(model, {.layouts = CandidateLayouts(cores),
//                                      .batches = CalibrationBatches(64),
//                                      .budget = absl::Seconds(2)}));
#ifndef TORCHBRICKS_SERVER_SCHEDULING_CALIBRATION_H_
#define TORCHBRICKS_SERVER_SCHEDULING_CALIBRATION_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "core/graph/stage.h"
#include "core/servable/host_tensor.h"
#include "core/servable/servable_model.h"
#include "server/scheduling/self_configuration.h"

namespace torchbricks::server {

struct CalibrationOptions {
  // The layouts to measure (at least one), on the CPU.
  std::vector<Layout> layouts;
  // The batch sizes to measure (at least one), in rows.
  std::vector<int64_t> batches = {1};
  // The wall time all points share, evenly. A point whose turn comes after the budget is
  // spent is not measured.
  absl::Duration budget = absl::Seconds(2);
  // A point ends early once every thread has made this many measured runs and this much
  // time has passed (small models need a fraction of their share).
  int enough_runs = 10;
  absl::Duration enough_time = absl::Milliseconds(30);
  Stage stage = Stage::kInference;
};

// Synthetic inputs of `rows` rows for `stage`: every input the stage reads, with its
// declared dtype and dims (dimension 0 = `rows`), FP32/FP64 elements 0.5 and others 0.
// FailedPrecondition naming the input when one cannot be made: BYTES or encoded images,
// a dimension past 0 that is variable, or no declared dims.
absl::StatusOr<std::vector<HostTensor>> SyntheticInputs(const ServableModel& model, Stage stage,
                                                        int64_t rows);

// Measures every (batch, layout) pair, batch sizes outer and in order, so a budget that
// runs out drops the largest batches of every layout alike; no point starts once the budget
// is spent. Each point: one unmeasured run per thread, then at least one measured run per
// thread and more until the point's share of what is left ends or it has enough.
// Returns the points measured (possibly fewer than asked, never none on OK).
// FailedPrecondition from SyntheticInputs; the run's own error (naming the model's brick)
// when a run fails; DeadlineExceeded when the budget ends before the first point.
absl::StatusOr<std::vector<CalibrationPoint>> Calibrate(const ServableModel& model,
                                                        const CalibrationOptions& options);

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_SCHEDULING_CALIBRATION_H_
