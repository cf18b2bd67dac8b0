// BenchmarkReport: the results of one load_driver run — per workload, the in-process batch
// sweep and the server's closed-loop points — rendered as one markdown document (aligned
// so that it reads the same on a terminal). Plain values and a pure function.
#ifndef TORCHBRICKS_BENCH_BENCHMARK_REPORT_H_
#define TORCHBRICKS_BENCH_BENCHMARK_REPORT_H_

#include <string>
#include <utility>
#include <vector>

#include "bench/closed_loop_client.h"
#include "bench/cpu_usage.h"
#include "bench/inprocess_sweep.h"
#include "bench/workload.h"
#include "clients/cpp/perf/server_counters.h"

namespace torchbricks::bench {

// One concurrency level against the server.
struct ServerPoint {
  int concurrency = 0;
  ClosedLoopResult load;
  // ModelStatistics difference across the point (warm-up and drain included); unset when
  // counters_error says why.
  perf::ServerCounters counters;
  std::string counters_error;
  // Cores the load generator, the server and nobody used across the point (warm-up
  // included); an error when they could not be read.
  absl::StatusOr<CoresUsed> cores = absl::UnknownError("not measured");
};

struct WorkloadResult {
  Workload workload;
  std::vector<BatchPoint> inprocess;  // empty when inprocess_error says why
  std::string inprocess_error;
  std::vector<ServerPoint> server;  // the points measured before any server_error
  std::string server_error;
};

// Renders the report: a title, `facts` as "- label: value" lines (machine, flags, ...),
// then per workload the in-process table (best batch, batch-1 p50), the server table
// (throughput, latency percentiles, ratio to the best in-process images/s, the server's
// average batch, the cores server, load generator and nobody used) and the c=1 p50 difference to
// in-process batch 1.
std::string RenderReport(const std::vector<std::pair<std::string, std::string>>& facts,
                         const std::vector<WorkloadResult>& results);

// True when any server point failed a request or a workload could not be measured.
bool HasFailures(const std::vector<WorkloadResult>& results);

}  // namespace torchbricks::bench

#endif  // TORCHBRICKS_BENCH_BENCHMARK_REPORT_H_
