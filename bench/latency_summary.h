// LatencySummary: count, mean and nearest-rank percentiles of a set of latencies, in
// microseconds. A plain value type with a pure function; thread-compatible.
//
//   LatencySummary s = SummarizeLatencies(std::move(nanoseconds));
//   std::printf("p99 %.0f us\n", s.p99_us);
#ifndef TORCHBRICKS_BENCH_LATENCY_SUMMARY_H_
#define TORCHBRICKS_BENCH_LATENCY_SUMMARY_H_

#include <cstdint>
#include <vector>

namespace torchbricks::bench {

struct LatencySummary {
  uint64_t count = 0;
  double mean_us = 0;
  double p50_us = 0;
  double p90_us = 0;
  double p99_us = 0;
};

// Summarizes `nanoseconds` (any order; taken by value and sorted). All fields are 0 for an
// empty input. Percentiles are nearest-rank: p50 of {1,2,3,4} is 2.
LatencySummary SummarizeLatencies(std::vector<int64_t> nanoseconds);

}  // namespace torchbricks::bench

#endif  // TORCHBRICKS_BENCH_LATENCY_SUMMARY_H_
