// Figures of measurement windows for torchbricks-perf: latency percentiles (nearest rank)
// and the stability rule that ends a load level — the last three windows' throughput and
// p50 latency each stay within ±P% of their mean. Pure functions; thread-safe.
#ifndef TORCHBRICKS_CLIENTS_CPP_PERF_WINDOW_STATISTICS_H_
#define TORCHBRICKS_CLIENTS_CPP_PERF_WINDOW_STATISTICS_H_

#include <cstdint>
#include <vector>

#include "absl/types/span.h"

namespace torchbricks::perf {

// Microseconds; all 0 for no latencies.
struct LatencyPercentiles {
  double avg_us = 0;
  double p50_us = 0;
  double p90_us = 0;
  double p95_us = 0;
  double p99_us = 0;
};

// The mean and the nearest-rank percentiles (the smallest latency with at least p% of
// them at or below it) of `latencies_ns`, which it sorts.
LatencyPercentiles Summarize(std::vector<int64_t> latencies_ns);

// What the stability rule compares between windows.
struct WindowFigures {
  double throughput = 0;  // requests per second
  double p50_us = 0;
};

// True when `windows` holds at least 3 and the last 3 each have throughput > 0 and
// throughput and p50 within `percentage`% of the 3 windows' mean.
bool IsStable(absl::Span<const WindowFigures> windows, double percentage);

}  // namespace torchbricks::perf

#endif  // TORCHBRICKS_CLIENTS_CPP_PERF_WINDOW_STATISTICS_H_
