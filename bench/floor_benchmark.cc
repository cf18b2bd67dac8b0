// floor_benchmark: torchbricks-server against this machine's limits, in one run.
//
// The limits, measured here and now rather than quoted: the in-process run of each model
// (LoadedCollection, no server; bench/floor_inprocess.h) and the transport floor —
// bench/floor_server, a bare gRPC sync server that parses the same ModelInfer request and
// answers a response of the same size without any model work. Then the real server is
// driven with the same pre-serialized requests (closed loop, bench/floor_served.h), W1 also
// with its input and outputs in system shared memory; and, with --python-server, a Python
// torchbricks + grpcio server (bench/python_server.py) doing the same work. Latency points
// alternate between the servers for --rounds rounds and report the median of the rounds'
// p50s, so that drift on a shared machine hits every server alike. Prints (and with --out
// writes) a markdown report (bench/floor_report.h) whose first table is the targets of
// docs/PERFORMANCE.md as ratios of this run's figures. Flags: bench/floor_options.h.
//
//   build/bench/floor_benchmark --repository examples/repository [--python-server
//   bench/python_server.py] [--out docs/floor-latest.md]
//
// Exit status: 0 when every point ran without a failed request, 1 otherwise, 2 for bad
// flags.
#include <stdlib.h>

#include <fstream>
#include <iostream>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "bench/cpu_usage.h"
#include "bench/floor_inprocess.h"
#include "bench/floor_options.h"
#include "bench/floor_report.h"
#include "bench/floor_served.h"
#include "bench/workload.h"
#include "clients/cpp/inference_client.h"
#include "tests/server_process.h"

namespace torchbricks::bench {
namespace {

// Deadline of each ModelStatistics call around a point.
constexpr absl::Duration kStatisticsTimeout = absl::Seconds(30);

// The Python comparison: each point once per server, alternating.
std::vector<Versus> RunVersus(PointRunner& runner, const FloorResults& results,
                              const std::string& server_address, const std::string& python_address,
                              const std::vector<grpc::ByteBuffer>& w1_requests,
                              const std::vector<grpc::ByteBuffer>& w2_requests) {
  std::vector<Versus> versus;
  for (const Workload* workload : {&results.w1, &results.w2}) {
    for (int concurrency : {1, 16, 64}) {
      Versus point{workload->id, concurrency, FloorPoint{"server " + workload->id},
                   FloorPoint{"python " + workload->id}};
      const auto& requests = workload == &results.w1 ? w1_requests : w2_requests;
      runner.Run(&point.ours, server_address, requests, concurrency);
      runner.Run(&point.theirs, python_address, requests, concurrency);
      versus.push_back(std::move(point));
    }
  }
  return versus;
}

// Pins the calling thread to `cpus` (`flag`'s list; empty leaves it be). False, saying why,
// when the kernel refuses.
bool PinTo(const char* flag, const std::vector<int>& cpus) {
  if (cpus.empty()) return true;
  if (absl::Status pinned = PinCallingThread(cpus); !pinned.ok()) {
    std::cerr << "floor_benchmark: " << flag << ": " << pinned << "\n";
    return false;
  }
  return true;
}

int Main(const std::vector<std::string>& args) {
  absl::StatusOr<FloorOptions> parsed = ParseFloorOptions(args);
  if (!parsed.ok()) {
    std::cerr << "floor_benchmark: " << parsed.status().message() << "\n" << kFloorUsage;
    return 2;
  }
  const FloorOptions& options = *parsed;
  FloorResults results{.w1 = *FindWorkload("W1"), .w2 = *FindWorkload("W2")};
  // Before any thread starts: libtorch's threads and the servers inherit the mask.
  if (!PinTo("--server-cpus", options.server_cpus)) return 1;
  absl::StatusOr<InProcessLimits> w2_inprocess =
      MeasureInProcess(options, results.w2, {16, 64}, options.w2_threads);
  absl::StatusOr<InProcessLimits> w1_inprocess = MeasureInProcess(options, results.w1, {1}, 1);
  // The example's W2 layout (two instances of one thread) at the batches c=16 and c=64 give
  // each instance when split evenly: the limit of the layout itself, for the analysis.
  results.layout_8 = MeasureInstanceLayout(options, results.w2, 2, 8);
  results.layout_32 = MeasureInstanceLayout(options, results.w2, 2, 32);
  if (!w1_inprocess.ok() || !w2_inprocess.ok()) {
    std::cerr << "floor_benchmark: in-process run failed: "
              << (w1_inprocess.ok() ? w2_inprocess.status() : w1_inprocess.status()) << "\n";
    return 1;
  }
  results.w1_inprocess = *std::move(w1_inprocess);
  results.w2_inprocess = *std::move(w2_inprocess);
  int64_t w1_output_elements = 0;
  for (const auto& [name, elements] : results.w1_inprocess.output_elements) {
    w1_output_elements += elements;
  }

  // The servers: the floor answers W1-sized responses; torchbricks-server with client
  // shared memory allowed.
  testing::ServerProcess floor(testing::ServerProcess::Command{
      {options.floor_binary, "--output-elements", absl::StrCat(w1_output_elements)}});
  setenv("TORCHBRICKS_SERVER", options.server_binary.c_str(), /*overwrite=*/1);
  std::vector<std::string> server_flags = {"--allow-client-shm", "true"};
  server_flags.insert(server_flags.end(), options.server_flags.begin(), options.server_flags.end());
  testing::ServerProcess server(options.repository, server_flags);
  std::unique_ptr<testing::ServerProcess> python;
  if (!options.python_server.empty()) {
    python = std::make_unique<testing::ServerProcess>(testing::ServerProcess::Command{
        {TORCHBRICKS_DEFAULT_PYTHON, options.python_server, "--grpc-port", "0"}});
  }
  if (floor.port() == 0 || server.port() == 0 || (python != nullptr && python->port() == 0)) {
    std::cerr << "floor_benchmark: a server did not start (floor port " << floor.port()
              << ", server port " << server.port() << ")\n";
    return 1;
  }
  // The servers run; the load generator's threads, started from here on, take the client's
  // CPUs (gRPC's own threads that the readiness probes started keep the server's).
  if (!PinTo("--client-cpus", options.client_cpus)) return 1;
  const std::string floor_address = absl::StrCat("127.0.0.1:", floor.port());
  const std::string server_address = absl::StrCat("127.0.0.1:", server.port());
  absl::StatusOr<std::unique_ptr<client::InferenceClient>> control =
      client::InferenceClient::Create({.url = server_address, .timeout = kStatisticsTimeout});
  if (!control.ok()) {
    std::cerr << "floor_benchmark: " << control.status() << "\n";
    return 1;
  }

  const Workload& w1 = results.w1;
  const Workload& w2 = results.w2;
  const std::vector<grpc::ByteBuffer> w1_requests =
      SerializedInferRequests(w1, RandomBatches(w1, 1, kDistinctRequests, 1));
  const std::vector<grpc::ByteBuffer> w2_requests =
      SerializedInferRequests(w2, RandomBatches(w2, 1, kDistinctRequests, 1));
  const std::vector<grpc::ByteBuffer> tiny_requests = TinyRequests();
  absl::StatusOr<ShmSetup> shm = SetUpShm(w1, results.w1_inprocess, server_address);
  if (!shm.ok()) {
    std::cerr << "floor_benchmark: " << shm.status() << "\n";
    return 1;
  }

  PointRunner runner(options);
  client::InferenceClient* counters = control->get();
  for (int round = 0; round < options.rounds; ++round) {
    runner.Run(&results.floor_w1, floor_address, w1_requests, 1);
    runner.Run(&results.server_w1, server_address, w1_requests, 1, counters, w1.model);
    runner.Run(&results.floor_tiny, floor_address, tiny_requests, 1);
    runner.Run(&results.server_w1_shm, server_address, shm->requests, 1, counters, w1.model);
    runner.Run(&results.server_w2_16, server_address, w2_requests, 16, counters, w2.model);
    runner.Run(&results.server_w2_64, server_address, w2_requests, 64, counters, w2.model);
  }
  if (python != nullptr) {
    results.versus =
        RunVersus(runner, results, server_address, absl::StrCat("127.0.0.1:", python->port()),
                  w1_requests, w2_requests);
  }

  results.server_exit = server.Stop();
  results.floor_exit = floor.Stop();
  if (python != nullptr) results.python_exit = python->Stop();
  const std::string report = RenderFloorReport(options, results);
  std::cout << report << std::flush;
  if (!options.out.empty()) {
    std::ofstream out(options.out);
    out << report;
    if (!out.good()) {
      std::cerr << "floor_benchmark: cannot write " << options.out << "\n";
      return 1;
    }
  }
  return HasFailures(results) ? 1 : 0;
}

}  // namespace
}  // namespace torchbricks::bench

int main(int argc, char** argv) {
  return torchbricks::bench::Main(std::vector<std::string>(argv + 1, argv + argc));
}
