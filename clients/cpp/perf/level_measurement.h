// MeasureLevel: one load level of torchbricks-perf — start the load, take measurement
// windows until the last three agree (or the trials run out), stop and drain — and what it
// found: the client's view over the reported windows, the server's ModelStatistics over
// the same windows, and, over the whole level, the request counts of both sides and the
// per-brick breakdown from BrickService. Runs on the calling thread; blocking.
#ifndef TORCHBRICKS_CLIENTS_CPP_PERF_LEVEL_MEASUREMENT_H_
#define TORCHBRICKS_CLIENTS_CPP_PERF_LEVEL_MEASUREMENT_H_

#include <cstdint>
#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "clients/cpp/inference_client.h"
#include "clients/cpp/perf/load_generator.h"
#include "clients/cpp/perf/perf_options.h"
#include "clients/cpp/perf/server_counters.h"
#include "clients/cpp/perf/window_statistics.h"

namespace torchbricks::perf {

struct LevelResult {
  double level = 0;  // concurrency or requests per second
  int windows = 0;   // measurement windows taken
  int reported_windows = 0;
  bool stable = false;

  // The client over the reported windows (the last three, or fewer if fewer were taken).
  uint64_t requests = 0;  // successful requests
  double seconds = 0;
  double requests_per_second = 0;
  double inferences_per_second = 0;  // requests_per_second * batch size
  LatencyPercentiles latency;
  double client_send_us = 0;  // average time to issue a call
  double client_recv_us = 0;  // average time to parse a response
  // The server over the same windows (snapshots taken as each window closed).
  ServerCounters server;

  // The whole level: every window, the windows before them and the drain at the end.
  uint64_t level_requests = 0;  // successful requests the tool saw complete
  uint64_t level_failures = 0;
  std::string first_error;
  uint64_t late_sends = 0;
  ServerCounters level_server;  // the server's counters, from before the load to after it
  BrickCounters level_bricks;   // per brick, the same span; empty when unavailable
  // Why a ModelStatistics or BrickStatistics call failed ("" when none did): the server's
  // figures above are then incomplete.
  std::string statistics_error;
  std::string brick_statistics_error;

  // Microseconds not accounted for by the client's send and receive nor the server's
  // queue and compute: avg latency - send - recv - queue - compute input/infer/output,
  // and never below 0 (perf_analyzer's "Network+Server Send/Recv").
  double NetworkAndServerOverheadUs() const;
};

struct LevelSettings {
  LoadLevel load;
  int64_t batch_size = 1;
  absl::Duration measurement_interval = absl::Milliseconds(5000);
  double stability_percentage = 10;
  int max_trials = 10;
  std::string model;
  std::string model_version;
};

// Measures one level with `generator` (which must not be running), reading the server's
// statistics through `client`. Stops taking windows early when one holds a failed request.
// With `verbose` non-null, prints a line per window there. Errors of requests and of
// statistics calls are reported in the result, not as a status; the status is not OK only
// when the generator refuses the level (see LoadGenerator::Start).
absl::StatusOr<LevelResult> MeasureLevel(LoadGenerator& generator, client::InferenceClient& client,
                                         const LevelSettings& settings, std::ostream* verbose);

}  // namespace torchbricks::perf

#endif  // TORCHBRICKS_CLIENTS_CPP_PERF_LEVEL_MEASUREMENT_H_
