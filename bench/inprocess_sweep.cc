// Back-to-back Run() calls per batch size, timed with the steady clock.
#include "bench/inprocess_sweep.h"

#include <chrono>

#include "absl/strings/str_cat.h"

namespace torchbricks::bench {
namespace {

using Clock = std::chrono::steady_clock;

// Distinct inputs per batch size, reused round robin.
constexpr int kDistinctInputs = 4;

// Calls Run() until `seconds` have passed (at least once); appends each call's latency to
// `latencies` when not null. Returns the wall time spent, or the first Run() error.
absl::StatusOr<double> RunFor(const LoadedCollection& collection,
                              const std::vector<NamedTensors>& inputs, double seconds,
                              std::vector<int64_t>* latencies) {
  const Clock::time_point start = Clock::now();
  const auto budget = std::chrono::duration<double>(seconds);
  Clock::time_point now = start;
  size_t next = 0;
  do {
    const Clock::time_point before = Clock::now();
    absl::StatusOr<NamedTensors> outputs =
        collection.Run(Stage::kInference, inputs[next++ % inputs.size()]);
    now = Clock::now();
    if (!outputs.ok()) return outputs.status();
    if (latencies != nullptr) {
      latencies->push_back(
          std::chrono::duration_cast<std::chrono::nanoseconds>(now - before).count());
    }
  } while (now - start < budget);
  return std::chrono::duration<double>(now - start).count();
}

}  // namespace

absl::StatusOr<std::vector<BatchPoint>> RunInProcessSweep(const LoadedCollection& collection,
                                                          const Workload& workload,
                                                          const InProcessOptions& options) {
  if (options.batch_sizes.empty() || options.warmup_seconds < 0 || options.measure_seconds <= 0) {
    return absl::InvalidArgumentError(
        "the in-process sweep needs batch sizes, warm-up >= 0 s and a window > 0 s");
  }
  std::vector<BatchPoint> points;
  for (int64_t batch : options.batch_sizes) {
    if (batch < 1) return absl::InvalidArgumentError(absl::StrCat("batch size ", batch));
    std::vector<NamedTensors> inputs;
    for (const at::Tensor& tensor : RandomBatches(workload, batch, kDistinctInputs, batch)) {
      inputs.push_back({{workload.input, tensor}});
    }
    absl::StatusOr<double> warmed = RunFor(collection, inputs, options.warmup_seconds, nullptr);
    if (!warmed.ok()) {
      return absl::Status(warmed.status().code(),
                          absl::StrCat("batch ", batch, ": ", warmed.status().message()));
    }
    std::vector<int64_t> latencies;
    absl::StatusOr<double> elapsed =
        RunFor(collection, inputs, options.measure_seconds, &latencies);
    if (!elapsed.ok()) return elapsed.status();
    BatchPoint point;
    point.batch_size = batch;
    point.calls = latencies.size();
    point.images_per_second = static_cast<double>(batch) * latencies.size() / *elapsed;
    point.call_latency = perf::Summarize(std::move(latencies));
    points.push_back(point);
  }
  return points;
}

const BatchPoint* BestBatch(const std::vector<BatchPoint>& points) {
  const BatchPoint* best = nullptr;
  for (const BatchPoint& point : points) {
    if (best == nullptr || point.images_per_second > best->images_per_second) best = &point;
  }
  return best;
}

const BatchPoint* BatchOfOne(const std::vector<BatchPoint>& points) {
  for (const BatchPoint& point : points) {
    if (point.batch_size == 1) return &point;
  }
  return nullptr;
}

}  // namespace torchbricks::bench
