// The benchmarks' latency summary: torchbricks-perf's nearest-rank percentiles
// (clients/cpp/perf/window_statistics.h) plus the count.
#include "bench/latency_summary.h"

#include <utility>

#include "clients/cpp/perf/window_statistics.h"

namespace torchbricks::bench {

LatencySummary SummarizeLatencies(std::vector<int64_t> nanoseconds) {
  const uint64_t count = nanoseconds.size();
  const perf::LatencyPercentiles percentiles = perf::Summarize(std::move(nanoseconds));
  return {.count = count,
          .mean_us = percentiles.avg_us,
          .p50_us = percentiles.p50_us,
          .p90_us = percentiles.p90_us,
          .p99_us = percentiles.p99_us};
}

}  // namespace torchbricks::bench
