// FloorResults and the markdown report of bench/floor_benchmark: first the targets of
// docs/PERFORMANCE.md as ratios of the run's figures, then every point (in-process, floor,
// served, with the server's counters), the comparison with the Python server, and the
// servers' exit statuses. bench/compare_builds.sh parses the table of points: keep its
// first three columns (point, p50 µs, req/s). Plain values and pure functions.
//
//   std::string report = RenderFloorReport(options, results);
//   return HasFailures(results) ? 1 : 0;
#ifndef TORCHBRICKS_BENCH_FLOOR_REPORT_H_
#define TORCHBRICKS_BENCH_FLOOR_REPORT_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/floor_inprocess.h"
#include "bench/floor_options.h"
#include "bench/floor_served.h"
#include "bench/workload.h"

namespace torchbricks::bench {

// One workload at one concurrency, torchbricks-server against the Python server.
struct Versus {
  std::string workload;
  int concurrency = 0;
  FloorPoint ours, theirs;
};

// Everything one floor_benchmark run measured.
struct FloorResults {
  Workload w1, w2;
  // In-process: W1 at batch 1 (one thread), W2 at batches 16 and 64 (options.w2_threads).
  InProcessLimits w1_inprocess, w2_inprocess;
  // W2 in the server's layout (2 threads × 1 intra-op thread) at batch 8 and 32.
  absl::StatusOr<double> layout_8 = 0.0, layout_32 = 0.0;
  FloorPoint floor_w1{"floor W1"}, floor_tiny{"floor tiny"}, server_w1{"server W1"},
      server_w1_shm{"server W1 shm"}, server_w2_16{"server W2"}, server_w2_64{"server W2"};
  std::vector<Versus> versus;  // empty without --python-server
  // The exit statuses after SIGTERM; python_exit unset without a Python server.
  int server_exit = 0;
  int floor_exit = 0;
  std::optional<int> python_exit;
};

// The report, dated now (UTC). A figure whose points did not all run cleanly reads "n/a".
std::string RenderFloorReport(const FloorOptions& options, const FloorResults& results);

// True when any served point (the Python comparison's included) had a failed request.
bool HasFailures(const FloorResults& results);

}  // namespace torchbricks::bench

#endif  // TORCHBRICKS_BENCH_FLOOR_REPORT_H_
