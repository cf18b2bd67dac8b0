// ClosedLoopClient: drives a torchbricks-server (or any Open Inference Protocol v2 gRPC
// server) with exactly `concurrency` ModelInfer requests outstanding at all times — each
// completion immediately issues the next — from 1..N client threads, each polling its own
// CompletionQueue over its own connection. Requests are pre-serialized and reused round
// robin, so the client spends no time encoding. The loop is torchbricks-perf's
// (perf::LoadGenerator); this is the benchmarks' warm-up-then-one-window use of it.
// Blocking; one run at a time per call.
//
//   ASSIGN_OR_RETURN(ClosedLoopResult r,
//                    RunClosedLoop({.address = "127.0.0.1:8001", .requests = buffers,
//                                   .concurrency = 16}));
#ifndef TORCHBRICKS_BENCH_CLOSED_LOOP_CLIENT_H_
#define TORCHBRICKS_BENCH_CLOSED_LOOP_CLIENT_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "clients/cpp/perf/window_statistics.h"
#include "grpcpp/support/byte_buffer.h"

namespace torchbricks::bench {

struct ClosedLoopOptions {
  // host:port of the server. Required.
  std::string address;
  // Serialized inference.ModelInferRequest messages, sent round robin. Required, non-empty.
  std::vector<grpc::ByteBuffer> requests;
  // Requests outstanding at any moment (>= 1).
  int concurrency = 1;
  // Threads polling completion queues (>= 1); capped at `concurrency`.
  int client_threads = 1;
  // Load runs this long before measuring starts (>= 0).
  double warmup_seconds = 1;
  // Length of the measuring window (> 0).
  double measure_seconds = 5;
  // Deadline of each request.
  double request_deadline_seconds = 60;
};

struct ClosedLoopResult {
  // Successful requests that finished inside the measuring window, and their latencies
  // (issue to completion, steady clock).
  uint64_t completed = 0;
  perf::LatencyPercentiles latency;
  double window_seconds = 0;
  double requests_per_second = 0;  // completed / window_seconds
  // Failed requests over the whole run, warm-up included: a non-OK status, or a response
  // that does not parse. first_error describes the first one.
  uint64_t errors = 0;
  std::string first_error;
};

// Runs the closed loop for warmup_seconds + measure_seconds, then lets the outstanding
// requests finish (not counted). InvalidArgument for options out of range. A server that
// answers with errors is not a failure of this call: see ClosedLoopResult::errors.
absl::StatusOr<ClosedLoopResult> RunClosedLoop(const ClosedLoopOptions& options);

}  // namespace torchbricks::bench

#endif  // TORCHBRICKS_BENCH_CLOSED_LOOP_CLIENT_H_
