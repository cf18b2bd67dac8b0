// Self-configuration, the choosing half: which scheduling settings a model's config.pbtxt
// leaves open, which layouts and batch sizes are worth measuring, and the settings chosen
// from measured points under a latency objective. The measuring half is calibration.h; the
// two meet in LoadModelVersion (server/repository/version_loader.cc). Pure functions of their
// arguments; thread-safe.
//
//   OpenSettings open = OpenSettingsOf(config);
//   ASSIGN_OR_RETURN(absl::Duration objective, LatencyObjectiveOf(config));
//   ... measure points over CandidateLayouts(cores) x CalibrationBatches(max_batch_size) ...
//   SelfConfiguration chosen = ChooseConfiguration(points, open, plan.batching, objective);
//
// Errors: LatencyObjectiveOf and SelfConfigurationWanted return InvalidArgument for a
// parameter they cannot read; the other functions do not fail.
#ifndef TORCHBRICKS_SERVER_SCHEDULING_SELF_CONFIGURATION_H_
#define TORCHBRICKS_SERVER_SCHEDULING_SELF_CONFIGURATION_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "proto/model_config.pb.h"
#include "server/scheduling/scheduling_plan.h"

namespace torchbricks::server {

// CPU instances of one model and the intra-op threads of each.
struct Layout {
  int instances = 1;
  int intra_op_threads = 1;
  // "2 instances x 1 intra-op thread"
  std::string ToString() const;
  bool operator==(const Layout& other) const {
    return instances == other.instances && intra_op_threads == other.intra_op_threads;
  }
};

// One measurement: `layout.instances` threads running batches of `batch` rows at once,
// each with `layout.intra_op_threads` intra-op threads.
struct CalibrationPoint {
  Layout layout;
  int64_t batch = 1;
  double rows_per_second = 0;  // all instances together
  absl::Duration run_time;     // median of one batch's run
  int runs = 0;                // runs measured, over all instances
};

// The settings config.pbtxt leaves to the server. An explicit setting is never chosen.
struct OpenSettings {
  bool layout = false;                 // no instance_group at all
  bool preferred_batch_sizes = false;  // no preferred_batch_size
  bool queue_delay = false;            // no dynamic_batching block at all
  bool max_batch_size = false;         // no max_batch_size
  bool any() const { return layout || preferred_batch_sizes || queue_delay; }
  // "instance layout, preferred batch sizes, queue delay"
  std::string ToString() const;
};

OpenSettings OpenSettingsOf(const config::ModelConfig& config);

// parameters { key: "self_configuration" value: "on" | "off" }: false for "off", true when
// absent or "on"; InvalidArgument for any other value.
absl::StatusOr<bool> SelfConfigurationWanted(const config::ModelConfig& config);

// parameters { key: "latency_objective_p99_ms" value: "50" }: the p99 latency the chosen
// settings must keep under load; absl::InfiniteDuration() when absent. InvalidArgument
// unless it is a number of milliseconds in (0, 3600000].
absl::StatusOr<absl::Duration> LatencyObjectiveOf(const config::ModelConfig& config);

// The CPU layouts worth measuring on `cores` cores: for intra-op threads t = 1, 2, 4, ...
// up to `cores`, as many instances as fill the cores, and as many as leave one core to the
// gRPC front end. Distinct, at least {1 x 1}.
std::vector<Layout> CandidateLayouts(int cores);

// The batch sizes measured for a model batching up to `max_batch_size` rows: 1, 4, 16,
// 64, ... below it, and `max_batch_size` itself. {1} when the model does not batch.
std::vector<int64_t> CalibrationBatches(int max_batch_size);

// A point's p99 latency under closed-loop load, as the choice estimates it: a request that
// arrives just after a batch closed waits the queue delay, the batch running, then its own.
absl::Duration EstimatedP99(const CalibrationPoint& point, absl::Duration queue_delay);

// What self-configuration decided. Fields for settings that were not open hold the
// config's own values.
struct SelfConfiguration {
  Layout layout;
  std::vector<int> preferred_batch_sizes;
  absl::Duration max_queue_delay;
  int max_batch_size = 0;
  // The chosen layout's point with the most rows per second under the objective.
  CalibrationPoint basis;
  bool objective_met = true;  // false when no measured point keeps the objective
  // One line for the log and ModelConfig: the choice, what was open, the basis.
  std::string summary;
};

// Chooses from `points` (at least one) for a model whose config leaves `open` open and
// whose other settings are `policy`:
// - queue delay (when open): none. Batches form from what queues while every instance is
//   busy; a delay only adds latency at light load (docs/CONFIG.md, "Self-configuration").
// - layout (when open): a layout of several instances whose runs took, on geometric average
//   over the batches, more than 1/0.85 times as long as those of the same threads with fewer
//   instances is left out (its instances did not get a core each: the machine is busy). Of
//   the rest, the measured layout with the highest geometric mean of rows per
//   second over its points whose EstimatedP99 keeps `objective` (the batch a served model
//   runs depends on its load, so a layout must win across batch sizes, not at one); within
//   5 % of the best, the one whose batch-1 run is fastest. When no point keeps the
//   objective, the point with the lowest estimate.
// - preferred batch sizes (when open): the chosen layout's peak batch, when larger
//   batches measured slower by more than 5 % (the curve falls after it); otherwise none,
//   since a preferred size below the largest batch caps the batches of a busy server.
// - max_batch_size (when open and `objective` is finite): lowered to the largest measured
//   batch that keeps the objective when a larger measured batch missed it, never below a
//   preferred size.
// Layouts are scored on the batches measured for every layout in the running (a budget that
// ran out part-way through a batch favours none).
// When the layout is not open, `points` should hold the config's layout only.
SelfConfiguration ChooseConfiguration(const std::vector<CalibrationPoint>& points,
                                      const OpenSettings& open, const BatchPolicy& policy,
                                      absl::Duration objective);

// `original` with the chosen settings written into the fields that were open, so that a user
// can pin them (config.pbtxt text through google::protobuf::TextFormat).
config::ModelConfig PinnedConfig(const config::ModelConfig& original, const OpenSettings& open,
                                 const SelfConfiguration& chosen);

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_SCHEDULING_SELF_CONFIGURATION_H_
