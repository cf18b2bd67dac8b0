// LoadGenerator: drives ModelInfer load for torchbricks-perf from client threads, each with
// its own connection and CompletionQueue, sending pre-serialized requests round robin
// through grpc::GenericStub (no encoding on the hot path). A closed loop keeps exactly N
// requests outstanding; an open loop issues N requests per second whatever the answers do.
// Start, Collect and Stop are called from one controlling thread; the client threads share
// only the per-thread samples, each under its own mutex.
//
//   ASSIGN_OR_RETURN(auto generator, LoadGenerator::Create({.client = options, .requests = &set}));
//   RETURN_IF_ERROR(generator->Start({.mode = LoadMode::kConcurrency, .value = 4}));
//   absl::SleepFor(absl::Seconds(5));
//   LoadSample window = generator->Collect();  // what completed in those 5 s
//   LoadSample rest = generator->Stop();       // drains the outstanding requests
#ifndef TORCHBRICKS_CLIENTS_CPP_PERF_LOAD_GENERATOR_H_
#define TORCHBRICKS_CLIENTS_CPP_PERF_LOAD_GENERATOR_H_

#include <atomic>
#include <chrono>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "clients/cpp/inference_client.h"
#include "clients/cpp/perf/perf_options.h"
#include "grpcpp/support/byte_buffer.h"

namespace torchbricks::perf {

// The requests that completed in some stretch of time.
struct LoadSample {
  absl::Duration duration;            // the stretch's length
  std::vector<int64_t> latencies_ns;  // successful requests: send started to response parsed
  int64_t send_ns = 0;                // total over successful requests: issuing the call
  int64_t recv_ns = 0;                // total over successful requests: parsing the response
  uint64_t failures = 0;              // a non-OK status or a response that does not parse
  std::string first_error;            // the first failure, "" when none
  uint64_t late_sends = 0;            // open loop: issued more than 1 ms after their time

  uint64_t successes() const { return latencies_ns.size(); }
  // Adds `other`'s requests and duration to this sample.
  void Merge(LoadSample other);
};

// One load level.
struct LoadLevel {
  LoadMode mode = LoadMode::kConcurrency;
  double value = 1;  // outstanding requests (a whole number) or requests per second
  RequestDistribution distribution = RequestDistribution::kConstant;
};

class LoadGenerator {
 public:
  struct Options {
    // The server, TLS, headers (sent with every request) and each request's deadline.
    client::ClientOptions client;
    // The requests to send round robin; borrowed, must outlive the generator. Non-empty.
    const std::vector<grpc::ByteBuffer>* requests = nullptr;
    // Client threads at most (>= 1); a closed loop uses min(max_threads, N), an open loop
    // one thread per 1000 requests per second, at most max_threads.
    int max_threads = 4;
  };

  // Opens max_threads channels (connections are made lazily). InvalidArgument for no
  // requests or max_threads < 1; NotFound when a TLS file cannot be read.
  static absl::StatusOr<std::unique_ptr<LoadGenerator>> Create(const Options& options);

  // Stops a running level (see Stop) before returning.
  ~LoadGenerator();
  LoadGenerator(const LoadGenerator&) = delete;
  LoadGenerator& operator=(const LoadGenerator&) = delete;

  // Starts generating `level`. FailedPrecondition while a level runs; InvalidArgument for a
  // concurrency that is not a positive whole number or a rate that is not positive.
  absl::Status Start(const LoadLevel& level);

  // What completed since Start or the previous Collect; its duration is the time between.
  LoadSample Collect();

  // Stops issuing, waits until every outstanding request has completed, and returns what
  // completed since the previous Collect. Returns an empty sample when no level runs.
  LoadSample Stop();

 private:
  struct Worker;
  struct Call;
  using Clock = std::chrono::steady_clock;

  LoadGenerator(Options options, std::vector<std::unique_ptr<Worker>> workers);
  void RunClosedLoop(Worker& worker, int slots);
  void RunOpenLoop(Worker& worker, double rate, RequestDistribution distribution,
                   Clock::time_point first_send, uint64_t seed);
  // Issues the worker's next request on `queue`; returns the call (owned by its tag).
  void Issue(Worker& worker, void* queue);
  // Records a completed call into the worker's pending sample and frees it.
  void Complete(Worker& worker, Call* call, bool ok);

  const Options options_;
  const std::vector<std::unique_ptr<Worker>> workers_;
  std::atomic<bool> stopping_{false};
  bool running_ = false;            // controlling thread only
  int active_workers_ = 0;          // controlling thread only
  Clock::time_point last_collect_;  // controlling thread only
};

}  // namespace torchbricks::perf

#endif  // TORCHBRICKS_CLIENTS_CPP_PERF_LOAD_GENERATOR_H_
