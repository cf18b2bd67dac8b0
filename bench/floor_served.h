// The served points of bench/floor_benchmark: closed-loop runs against a server (the floor,
// torchbricks-server or the Python server), gathered per point over rounds, with the
// server's ModelStatistics around each run; and the requests the points send — W1 in
// system shared memory, a one-float request for the floor. Blocking; not thread-safe.
//
//   FloorPoint point{"server W1"};
//   PointRunner runner(options);
//   runner.Run(&point, address, requests, /*concurrency=*/1, control.get(), "classifier");
//   double p50_us = point.P50();  // the median of the rounds' p50s
#ifndef TORCHBRICKS_BENCH_FLOOR_SERVED_H_
#define TORCHBRICKS_BENCH_FLOOR_SERVED_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "bench/floor_inprocess.h"
#include "bench/floor_options.h"
#include "bench/workload.h"
#include "clients/cpp/inference_client.h"
#include "clients/cpp/perf/server_counters.h"
#include "clients/cpp/shared_memory_region.h"
#include "grpcpp/support/byte_buffer.h"

namespace torchbricks::bench {

// One point (a server, a request set, a concurrency) over the rounds it ran in.
struct FloorPoint {
  std::string label;
  std::vector<double> p50s;   // per round, microseconds
  std::vector<double> rates;  // per round, requests per second
  uint64_t errors = 0;        // failed requests and failed runs
  std::string first_error;
  perf::ServerCounters counters;  // summed over rounds (torchbricks-server points only)
  // The median over rounds; 0 before any round ran.
  double P50() const;
  double Rate() const;
};

// Runs the closed loop of each point with options' warm-up and window.
class PointRunner {
 public:
  // Borrows `options` for the runner's lifetime.
  explicit PointRunner(const FloorOptions& options) : options_(options) {}

  // One closed-loop run appended to `point`; `control` (may be null; borrowed for the call)
  // reads `model`'s counters around it. A run that cannot start counts as one error.
  void Run(FloorPoint* point, const std::string& address,
           const std::vector<grpc::ByteBuffer>& requests, int concurrency,
           client::InferenceClient* control = nullptr, const std::string& model = "");

 private:
  const FloorOptions& options_;
};

// W1 with its input read from, and its outputs written to, registered regions: the input
// region holds the kDistinctRequests inputs one after the other; the output region holds
// one set of outputs (the loop runs at concurrency 1, so requests never overlap).
struct ShmSetup {
  std::unique_ptr<client::SharedMemoryRegion> inputs;
  std::unique_ptr<client::SharedMemoryRegion> outputs;
  std::vector<grpc::ByteBuffer> requests;
};

// Creates the regions (named after this process), registers them with the server at
// `address` as "floor_in" and "floor_out", and serializes the requests; the output layout
// is `inprocess`'s batch-1 outputs. The region's or the registration's error on failure.
absl::StatusOr<ShmSetup> SetUpShm(const Workload& workload, const InProcessLimits& inprocess,
                                  const std::string& address);

// A tiny request for the floor: one FP32 element.
std::vector<grpc::ByteBuffer> TinyRequests();

}  // namespace torchbricks::bench

#endif  // TORCHBRICKS_BENCH_FLOOR_SERVED_H_
