// ModelStatistics: lock-free counters for one model version — request outcomes and
// durations (as ModelStatistics in the protocol reports them) and per-brick execution
// counts and times. Every method is thread-safe; readers see each counter atomically
// (not a consistent snapshot across counters).
#ifndef TORCHBRICKS_SERVER_MODEL_STATISTICS_H_
#define TORCHBRICKS_SERVER_MODEL_STATISTICS_H_

#include <atomic>
#include <cstdint>
#include <memory>

#include "core/run_trace.h"

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

class ModelStatistics {
 public:
  explicit ModelStatistics(int num_bricks)
      : num_bricks_(num_bricks),
        brick_executions_(new std::atomic<uint64_t>[num_bricks]()),
        brick_ns_(new std::atomic<uint64_t>[num_bricks]()) {}
  ModelStatistics(const ModelStatistics&) = delete;
  ModelStatistics& operator=(const ModelStatistics&) = delete;

  DurationCounter success;        // whole request, successful ones
  DurationCounter fail;           // whole request, failed ones
  DurationCounter queue;          // waiting for an executor
  DurationCounter compute_input;  // decoding request tensors
  DurationCounter compute_infer;  // running the collection
  DurationCounter compute_output; // encoding response tensors
  std::atomic<uint64_t> inference_count{0};    // batch elements inferred
  std::atomic<uint64_t> execution_count{0};    // collection runs
  std::atomic<uint64_t> last_inference_ms{0};  // since the epoch

  // Adds the bricks of one run.
  void AddTrace(const RunTrace& trace) {
    for (size_t i = 0; i < trace.bricks.size(); ++i) {
      const int b = trace.bricks[i];
      if (b < 0 || b >= num_bricks_) continue;
      brick_executions_[b].fetch_add(1, std::memory_order_relaxed);
      brick_ns_[b].fetch_add(trace.brick_nanoseconds[i], std::memory_order_relaxed);
    }
  }
  int num_bricks() const { return num_bricks_; }
  uint64_t brick_executions(int brick) const { return brick_executions_[brick].load(); }
  uint64_t brick_ns(int brick) const { return brick_ns_[brick].load(); }

 private:
  const int num_bricks_;
  std::unique_ptr<std::atomic<uint64_t>[]> brick_executions_;
  std::unique_ptr<std::atomic<uint64_t>[]> brick_ns_;
};

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_MODEL_STATISTICS_H_
