#include "clients/cpp/perf/window_statistics.h"

#include <algorithm>
#include <cmath>

namespace torchbricks::perf {
namespace {

// The nearest-rank percentile of sorted, non-empty `values`, in microseconds.
double PercentileUs(const std::vector<int64_t>& sorted, double percent) {
  const double rank = std::ceil(percent / 100 * static_cast<double>(sorted.size()));
  const size_t index = static_cast<size_t>(std::max(rank, 1.0)) - 1;
  return static_cast<double>(sorted[std::min(index, sorted.size() - 1)]) / 1000;
}

// True when every value lies within `percentage`% of their mean (a positive mean).
bool WithinOfMean(const double (&values)[3], double percentage) {
  const double mean = (values[0] + values[1] + values[2]) / 3;
  if (!(mean > 0)) return false;
  for (const double value : values) {
    if (std::abs(value - mean) > mean * percentage / 100) return false;
  }
  return true;
}

}  // namespace

LatencyPercentiles Summarize(std::vector<int64_t> latencies_ns) {
  if (latencies_ns.empty()) return {};
  std::sort(latencies_ns.begin(), latencies_ns.end());
  double total_ns = 0;
  for (const int64_t latency : latencies_ns) total_ns += static_cast<double>(latency);
  return {.avg_us = total_ns / static_cast<double>(latencies_ns.size()) / 1000,
          .p50_us = PercentileUs(latencies_ns, 50),
          .p90_us = PercentileUs(latencies_ns, 90),
          .p95_us = PercentileUs(latencies_ns, 95),
          .p99_us = PercentileUs(latencies_ns, 99)};
}

bool IsStable(absl::Span<const WindowFigures> windows, double percentage) {
  if (windows.size() < 3) return false;
  const absl::Span<const WindowFigures> last = windows.subspan(windows.size() - 3);
  for (const WindowFigures& window : last) {
    if (!(window.throughput > 0)) return false;
  }
  const double throughputs[3] = {last[0].throughput, last[1].throughput, last[2].throughput};
  const double p50s[3] = {last[0].p50_us, last[1].p50_us, last[2].p50_us};
  return WithinOfMean(throughputs, percentage) && WithinOfMean(p50s, percentage);
}

}  // namespace torchbricks::perf
