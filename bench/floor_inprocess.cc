// floor_benchmark's in-process points: LoadedCollection::Run timed with the steady clock.
#include "bench/floor_inprocess.h"

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <thread>

#include "ATen/Parallel.h"
#include "base/status_macros.h"
#include "clients/cpp/perf/window_statistics.h"
#include "core/execution/loaded_collection.h"

namespace torchbricks::bench {
namespace {

// Batch-1 calls of `collection` for `seconds`, each after kIdleGapUs of sleep; their p50.
absl::StatusOr<double> MeasureIdleGap(const LoadedCollection& collection, const Workload& workload,
                                      double seconds) {
  const std::vector<at::Tensor> inputs = RandomBatches(workload, 1, kDistinctRequests, 3);
  std::vector<int64_t> latencies;
  const auto end = std::chrono::steady_clock::now() + std::chrono::duration<double>(seconds);
  for (size_t i = 0; std::chrono::steady_clock::now() < end; ++i) {
    std::this_thread::sleep_for(std::chrono::microseconds(kIdleGapUs));
    const auto before = std::chrono::steady_clock::now();
    absl::StatusOr<NamedTensors> run =
        collection.Run(Stage::kInference, {{workload.input, inputs[i % inputs.size()]}});
    latencies.push_back(std::chrono::duration_cast<std::chrono::nanoseconds>(
                            std::chrono::steady_clock::now() - before)
                            .count());
    if (!run.ok()) return run.status();
  }
  return perf::Summarize(std::move(latencies)).p50_us;
}

}  // namespace

absl::StatusOr<InProcessLimits> MeasureInProcess(const FloorOptions& options,
                                                 const Workload& workload,
                                                 const std::vector<int64_t>& batches, int threads) {
  at::set_num_threads(threads);
  ASSIGN_OR_RETURN(const std::filesystem::path version_dir,
                   LatestVersionDir(options.repository, workload.model));
  ASSIGN_OR_RETURN(std::unique_ptr<LoadedCollection> collection,
                   LoadedCollection::Load({.version_dir = version_dir}));
  InProcessLimits result;
  ASSIGN_OR_RETURN(
      NamedTensors outputs,
      collection->Run(Stage::kInference, {{workload.input, RandomBatches(workload, 1, 1, 7)[0]}}));
  for (const auto& [name, tensor] : outputs) {
    result.output_bytes.emplace_back(name, tensor.numel() * tensor.element_size());
    result.output_elements.emplace_back(name, tensor.numel());
  }
  ASSIGN_OR_RETURN(std::vector<BatchPoint> points,
                   RunInProcessSweep(*collection, workload,
                                     {.batch_sizes = batches,
                                      .warmup_seconds = options.warmup_seconds,
                                      .measure_seconds = options.seconds}));
  if (std::find(batches.begin(), batches.end(), 1) != batches.end()) {
    ASSIGN_OR_RETURN(result.idle_gap_p50_us,
                     MeasureIdleGap(*collection, workload, options.seconds));
    std::fprintf(stderr, "[in-process] %s batch 1, %d us idle between calls: p50 %.0f us\n",
                 workload.id.c_str(), kIdleGapUs, result.idle_gap_p50_us);
  }
  for (BatchPoint& point : points) {
    std::fprintf(stderr, "[in-process] %s batch %ld (%d threads): %.0f images/s, p50 %.0f us\n",
                 workload.id.c_str(), static_cast<long>(point.batch_size), threads,
                 point.images_per_second, point.call_latency.p50_us);
    result.points[point.batch_size] = point;
  }
  return result;
}

absl::StatusOr<double> MeasureInstanceLayout(const FloorOptions& options, const Workload& workload,
                                             int instances, int64_t batch) {
  ASSIGN_OR_RETURN(const std::filesystem::path version_dir,
                   LatestVersionDir(options.repository, workload.model));
  // One runner per instance, as the server gives each AOTInductor brick (TorchScript has none).
  ASSIGN_OR_RETURN(std::unique_ptr<LoadedCollection> collection,
                   LoadedCollection::Load({.version_dir = version_dir, .runners = instances}));
  const std::vector<at::Tensor> inputs = RandomBatches(workload, batch, 2, 5);
  std::vector<int64_t> calls(instances, 0);
  std::vector<absl::Status> errors(instances);
  const auto start = std::chrono::steady_clock::now();
  const auto warm = start + std::chrono::duration<double>(options.warmup_seconds);
  const auto end = warm + std::chrono::duration<double>(options.seconds);
  std::vector<std::thread> threads;
  for (int t = 0; t < instances; ++t) {
    threads.emplace_back([&, t] {
      at::set_num_threads(1);  // per thread, as each server instance does
      for (size_t i = 0; std::chrono::steady_clock::now() < end; ++i) {
        absl::StatusOr<NamedTensors> run =
            collection->Run(Stage::kInference, {{workload.input, inputs[i % inputs.size()]}});
        if (!run.ok()) {
          errors[t] = run.status();
          return;
        }
        if (std::chrono::steady_clock::now() > warm) ++calls[t];
      }
    });
  }
  for (std::thread& thread : threads) thread.join();
  int64_t total = 0;
  for (int t = 0; t < instances; ++t) {
    RETURN_IF_ERROR(errors[t]);
    total += calls[t];
  }
  const double images_per_second = static_cast<double>(total * batch) / options.seconds;
  std::fprintf(stderr, "[in-process] %s %d threads x batch %ld side by side: %.0f images/s\n",
               workload.id.c_str(), instances, static_cast<long>(batch), images_per_second);
  return images_per_second;
}

}  // namespace torchbricks::bench
