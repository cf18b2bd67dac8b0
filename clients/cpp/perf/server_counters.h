// ServerCounters and BrickCounters: snapshots of a model's cumulative statistics on the
// server — Triton's ModelStatistics (request outcomes and the queue / compute input /
// compute infer / compute output split) and torchbricks.BrickService's per-brick runs and
// compute time — and the differences that give one load level's or window's share.
// Plain values; the fetch functions are as thread-safe as InferenceClient.
#ifndef TORCHBRICKS_CLIENTS_CPP_PERF_SERVER_COUNTERS_H_
#define TORCHBRICKS_CLIENTS_CPP_PERF_SERVER_COUNTERS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "clients/cpp/inference_client.h"

namespace torchbricks::perf {

// A count and a total duration (StatisticDuration).
struct CountedNs {
  uint64_t count = 0;
  uint64_t ns = 0;
  // Average microseconds; 0 when count is 0.
  double AverageUs() const { return count == 0 ? 0 : static_cast<double>(ns) / count / 1000; }
};

struct ServerCounters {
  CountedNs success;  // successful requests, whole request on the server
  CountedNs fail;
  CountedNs queue;
  CountedNs compute_input;
  CountedNs compute_infer;
  CountedNs compute_output;
  uint64_t inference_count = 0;  // batch elements
  uint64_t execution_count = 0;  // model executions

  // Field-wise this - earlier (a later snapshot minus an earlier one); a counter that went
  // down was reset by a reload and counts from zero.
  ServerCounters operator-(const ServerCounters& earlier) const;
  // Field-wise sum: differences of several windows added into one total.
  ServerCounters& operator+=(const ServerCounters& other);

  // inference_count / execution_count: the average batch the server executed; 0 when
  // nothing ran.
  double AverageBatch() const;
  // Queue time per successful request, in microseconds; 0 when none succeeded.
  double QueueUsPerRequest() const;
  // compute_infer per successful request, in microseconds — the duration of the execution
  // a request was part of (a batch's run is added once per request in it, as Triton
  // counts); 0 when none succeeded.
  double InferUsPerExecution() const;
};

// The sums over the versions of `model` that the server reports (only `version` when
// not ""). The server's status on failure (NotFound for an unknown model or version).
absl::StatusOr<ServerCounters> FetchServerCounters(client::InferenceClient& client,
                                                   absl::string_view model,
                                                   absl::string_view version);

// One brick's cumulative runs (executions: batches, not requests) and compute time.
struct BrickCounter {
  std::string version;
  std::string brick;
  uint64_t runs = 0;
  uint64_t compute_ns = 0;
  // Average microseconds per run; 0 when it did not run.
  double AverageUs() const { return runs == 0 ? 0 : static_cast<double>(compute_ns) / runs / 1000; }
};

// Every brick of the served versions, in the server's (manifest) order.
using BrickCounters = std::vector<BrickCounter>;

// The bricks of `model` (of `version` when not ""). The server's status on failure
// (NotFound when the model is not loaded; Unimplemented when the server has no BrickService).
absl::StatusOr<BrickCounters> FetchBrickCounters(client::InferenceClient& client,
                                                 absl::string_view model,
                                                 absl::string_view version);

// `later` minus `earlier`, brick by brick (matched by version and name; a brick missing
// from `earlier`, or whose counters went down, counts from zero), in `later`'s order.
BrickCounters Subtract(const BrickCounters& later, const BrickCounters& earlier);

}  // namespace torchbricks::perf

#endif  // TORCHBRICKS_CLIENTS_CPP_PERF_SERVER_COUNTERS_H_
