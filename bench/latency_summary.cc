// Nearest-rank percentiles over sorted latencies.
#include "bench/latency_summary.h"

#include <algorithm>
#include <cmath>

namespace torchbricks::bench {
namespace {

double PercentileUs(const std::vector<int64_t>& sorted, double percent) {
  const size_t rank = static_cast<size_t>(std::ceil(percent / 100.0 * sorted.size()));
  const size_t index = rank == 0 ? 0 : std::min(rank, sorted.size()) - 1;
  return sorted[index] / 1e3;
}

}  // namespace

LatencySummary SummarizeLatencies(std::vector<int64_t> nanoseconds) {
  LatencySummary summary;
  if (nanoseconds.empty()) return summary;
  std::sort(nanoseconds.begin(), nanoseconds.end());
  double total = 0;
  for (int64_t ns : nanoseconds) total += static_cast<double>(ns);
  summary.count = nanoseconds.size();
  summary.mean_us = total / nanoseconds.size() / 1e3;
  summary.p50_us = PercentileUs(nanoseconds, 50);
  summary.p90_us = PercentileUs(nanoseconds, 90);
  summary.p99_us = PercentileUs(nanoseconds, 99);
  return summary;
}

}  // namespace torchbricks::bench
