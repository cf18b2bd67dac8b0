// FloorOptions: the flags of bench/floor_benchmark and their parser, plus the settings the
// benchmark fixes (not flags). Plain values and a pure function; thread-compatible.
//
//   absl::StatusOr<FloorOptions> options = ParseFloorOptions({"--repository", "repo"});
//   if (!options.ok()) std::cerr << options.status().message() << "\n" << kFloorUsage;
#ifndef TORCHBRICKS_BENCH_FLOOR_OPTIONS_H_
#define TORCHBRICKS_BENCH_FLOOR_OPTIONS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace torchbricks::bench {

// Distinct random requests (inputs) per workload, sent round robin.
inline constexpr int kDistinctRequests = 8;
// The idle time between the calls of the in-process "idle gap" point, in microseconds.
inline constexpr int kIdleGapUs = 300;

// The usage text printed with a flag error.
extern const char kFloorUsage[];

struct FloorOptions {
  // The example repository (examples/build_example_repository.py). Required.
  std::string repository;
  // torchbricks-server and bench/floor_server to start; default: this build's.
  std::string server_binary;
  std::string floor_binary;
  // Extra flags for torchbricks-server (after --allow-client-shm true).
  std::vector<std::string> server_flags;
  // bench/python_server.py to compare against; "" (the default): no Python server.
  std::string python_server;
  // Alternating rounds of the latency points, 1..100 (default 3).
  int rounds = 3;
  // Measuring window per point, > 0 (default 3).
  double seconds = 3;
  // Unmeasured load before each point, >= 0 (default 1).
  double warmup_seconds = 1;
  // Intra-op threads of W2 in-process, 1..256 (default 2: the server's two W2 instances of
  // one thread each).
  int w2_threads = 2;
  // Also write the report here; "" (the default): stdout only.
  std::string out;
  // Keep the load generator off the server's cores: the in-process runs and the servers
  // run on `server_cpus`, the closed-loop clients on `client_cpus` (parsed from taskset -c
  // lists; empty: wherever the scheduler puts them).
  std::vector<int> server_cpus;
  std::vector<int> client_cpus;
};

// Parses floor_benchmark's arguments (without the program name), each "--flag value" or
// "--flag=value" (base/command_line.h). InvalidArgument for a flag without a value, an
// unknown flag, a value out of range or a missing --repository.
absl::StatusOr<FloorOptions> ParseFloorOptions(const std::vector<std::string>& args);

}  // namespace torchbricks::bench

#endif  // TORCHBRICKS_BENCH_FLOOR_OPTIONS_H_
