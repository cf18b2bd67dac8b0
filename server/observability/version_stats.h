// VersionStats: lock-free counters for one model version — request outcomes and
// durations (as the ModelStatistics RPC reports them) and per-brick execution
// counts and times. Every method is thread-safe; readers see each counter atomically
// (not a consistent snapshot across counters).
#ifndef TORCHBRICKS_SERVER_OBSERVABILITY_VERSION_STATS_H_
#define TORCHBRICKS_SERVER_OBSERVABILITY_VERSION_STATS_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>

#include "absl/status/status.h"
#include "absl/time/time.h"
#include "core/graph/run_trace.h"
#include "core/graph/stage.h"
#include "server/observability/metrics_histogram.h"

namespace torchbricks::server {

// A count and a total duration, as StatisticDuration.
struct DurationCounter {
  std::atomic<uint64_t> count{0};
  std::atomic<uint64_t> ns{0};
  void Add(uint64_t nanoseconds) {
    count.fetch_add(1, std::memory_order_relaxed);
    ns.fetch_add(nanoseconds, std::memory_order_relaxed);
  }
};

// The stages a request can name, for per-stage metrics: INFERENCE, EXPORT, and "" for a
// request whose `stage` parameter was refused.
// Counters are kept per served stage: INFERENCE, EXPORT, and one slot for requests whose
// stage is neither (refused before a stage was known, or naming another stage).
inline constexpr int kStageSlots = 3;
// One outcome counter per absl::StatusCode, OK (0) through UNAUTHENTICATED (16).
inline constexpr int kStatusCodes = static_cast<int>(absl::StatusCode::kUnauthenticated) + 1;
int ServedStageIndex(Stage stage);        // 0 or 1 (2 for any other stage)
const char* ServedStageLabel(int index);  // "INFERENCE", "EXPORT", ""

class VersionStats {
 public:
  // `histograms` off skips the latency and batch histograms (metrics disabled).
  explicit VersionStats(int num_bricks, bool histograms = true)
      : histograms_(histograms),
        num_bricks_(num_bricks),
        brick_executions_(new std::atomic<uint64_t>[num_bricks]()),
        brick_ns_(new std::atomic<uint64_t>[num_bricks]()) {}
  VersionStats(const VersionStats&) = delete;
  VersionStats& operator=(const VersionStats&) = delete;

  DurationCounter success;                     // whole request, successful ones
  DurationCounter fail;                        // whole request, failed ones
  DurationCounter queue;                       // waiting for an executor
  DurationCounter compute_input;               // decoding request tensors
  DurationCounter compute_infer;               // running the collection
  DurationCounter compute_output;              // encoding response tensors
  std::atomic<uint64_t> inference_count{0};    // batch elements inferred
  std::atomic<uint64_t> execution_count{0};    // collection runs
  std::atomic<uint64_t> last_inference_ms{0};  // since the epoch

  // Requests that reached this version, by stage and final status code.
  std::atomic<uint64_t> outcomes[kStageSlots][kStatusCodes] = {};
  // Per stage: whole request, time queued, run of the batch (seconds).
  Histogram request_seconds[kStageSlots];
  Histogram queue_seconds[kStageSlots];
  Histogram compute_seconds[kStageSlots];
  Histogram batch_rows{BatchSizeBuckets()};  // rows per execution

  void CountOutcome(int stage_index, absl::StatusCode code) {
    const int c = static_cast<int>(code);
    if (c >= 0 && c < kStatusCodes)
      outcomes[stage_index][c].fetch_add(1, std::memory_order_relaxed);
  }
  void ObserveRequest(int stage_index, double seconds) {
    if (histograms_) request_seconds[stage_index].Observe(seconds);
  }
  void ObserveQueue(int stage_index, double seconds) {
    if (histograms_) queue_seconds[stage_index].Observe(seconds);
  }
  void ObserveCompute(int stage_index, double seconds) {
    if (histograms_) compute_seconds[stage_index].Observe(seconds);
  }
  void ObserveBatch(int64_t rows) {
    if (histograms_) batch_rows.Observe(static_cast<double>(rows));
  }

  // Adds the bricks (and fused programs) of one run.
  void AddTrace(const RunTrace& trace) {
    for (size_t i = 0; i < trace.bricks.size(); ++i) {
      const int b = trace.bricks[i];
      if (b < 0 || b >= num_bricks_) continue;
      brick_executions_[b].fetch_add(1, std::memory_order_relaxed);
      brick_ns_[b].fetch_add(trace.brick_nanoseconds[i], std::memory_order_relaxed);
    }
    for (size_t i = 0; i < trace.fused.size(); ++i) {
      const int s = static_cast<int>(trace.fused[i]);
      fused_executions_[s].fetch_add(1, std::memory_order_relaxed);
      fused_ns_[s].fetch_add(trace.fused_nanoseconds[i], std::memory_order_relaxed);
    }
  }
  int num_bricks() const { return num_bricks_; }
  uint64_t brick_executions(int brick) const { return brick_executions_[brick].load(); }
  uint64_t brick_ns(int brick) const { return brick_ns_[brick].load(); }
  // A stage's fused program (BrickGraph::FusedIn): its runs and time, reported under
  // FusedProgramName(stage); the bricks it ran count nothing for those runs.
  uint64_t fused_executions(Stage stage) const {
    return fused_executions_[static_cast<int>(stage)].load();
  }
  uint64_t fused_ns(Stage stage) const { return fused_ns_[static_cast<int>(stage)].load(); }

 private:
  const bool histograms_;
  const int num_bricks_;
  std::unique_ptr<std::atomic<uint64_t>[]> brick_executions_;
  std::unique_ptr<std::atomic<uint64_t>[]> brick_ns_;
  std::atomic<uint64_t> fused_executions_[kNumStages] = {};
  std::atomic<uint64_t> fused_ns_[kNumStages] = {};
};

// Times one request's phases on a version and records them into its VersionStats, the
// figures the ModelStatistics RPC reports: input preparation, queue, inference, output
// encoding, and the whole request as a success or a failure. Not thread-safe; one per request.
//
//   RequestTimer timer(version.statistics.get());
//   if (!ok) return timer.Fail(status);
//   timer.InputsReady();  ...  timer.Inferred();  ...  timer.Succeed(queue, compute);
class RequestTimer {
 public:
  using Clock = std::chrono::steady_clock;
  explicit RequestTimer(VersionStats* stats) : stats_(stats), start_(Clock::now()) {}

  // Ends input preparation (decoding and validation).
  void InputsReady() { inputs_ready_ = Clock::now(); }
  // Ends inference (the result is back from the batcher).
  void Inferred() { inferred_ = Clock::now(); }
  // Records a failed request; returns `status` for chaining.
  absl::Status Fail(absl::Status status) {
    stats_->fail.Add(NanosSince(start_));
    return status;
  }
  // Records a successful request that waited `queue` and ran for `compute`.
  void Succeed(absl::Duration queue, absl::Duration compute) {
    stats_->compute_input.Add(Nanos(inputs_ready_ - start_));
    stats_->queue.Add(absl::ToInt64Nanoseconds(queue));
    stats_->compute_infer.Add(absl::ToInt64Nanoseconds(compute));
    stats_->compute_output.Add(NanosSince(inferred_));
    stats_->last_inference_ms.store(std::chrono::duration_cast<std::chrono::milliseconds>(
                                        std::chrono::system_clock::now().time_since_epoch())
                                        .count());
    stats_->success.Add(NanosSince(start_));
  }

 private:
  static uint64_t Nanos(Clock::duration d) {
    return std::chrono::duration_cast<std::chrono::nanoseconds>(d).count();
  }
  static uint64_t NanosSince(Clock::time_point t) { return Nanos(Clock::now() - t); }

  VersionStats* const stats_;  // borrowed; outlives the timer (the request holds its version)
  const Clock::time_point start_;
  Clock::time_point inputs_ready_ = start_;
  Clock::time_point inferred_ = start_;
};

inline int ServedStageIndex(Stage stage) {
  return stage == Stage::kInference ? 0 : stage == Stage::kExport ? 1 : 2;
}

inline const char* ServedStageLabel(int index) {
  return index == 0 ? "INFERENCE" : index == 1 ? "EXPORT" : "";
}

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_OBSERVABILITY_VERSION_STATS_H_
