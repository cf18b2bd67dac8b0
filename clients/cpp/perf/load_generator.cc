#include "clients/cpp/perf/load_generator.h"

#include <algorithm>
#include <cmath>
#include <random>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "base/status_macros.h"
#include "clients/cpp/grpc_status.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "grpcpp/support/channel_arguments.h"
#include "proto/grpc_service.grpc.pb.h"

namespace torchbricks::perf {
namespace {

constexpr char kModelInferMethod[] = "/inference.GRPCInferenceService/ModelInfer";
// Longer timeouts mean no deadline: now + a century would overflow the clock.
constexpr absl::Duration kLongestTimeout = absl::Hours(24 * 365 * 100);
// An open-loop worker looks at its stop flag at least this often.
constexpr auto kPollInterval = std::chrono::milliseconds(50);
// An open-loop request issued later than this after its scheduled time counts as late.
constexpr auto kLateAfter = std::chrono::milliseconds(1);

int64_t Nanoseconds(std::chrono::steady_clock::duration duration) {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(duration).count();
}

}  // namespace

void LoadSample::Merge(LoadSample other) {
  duration += other.duration;
  if (latencies_ns.empty()) {
    latencies_ns = std::move(other.latencies_ns);
  } else {
    latencies_ns.insert(latencies_ns.end(), other.latencies_ns.begin(), other.latencies_ns.end());
  }
  send_ns += other.send_ns;
  recv_ns += other.recv_ns;
  if (failures == 0 && other.failures > 0) first_error = std::move(other.first_error);
  failures += other.failures;
  late_sends += other.late_sends;
}

struct LoadGenerator::Worker {
  std::shared_ptr<grpc::Channel> channel;
  std::unique_ptr<grpc::GenericStub> stub;
  std::vector<grpc::ByteBuffer> requests;  // this thread's list (its slices are shared)
  size_t next_request = 0;                 // worker thread only
  std::thread thread;
  absl::Mutex mu;
  LoadSample pending ABSL_GUARDED_BY(mu);  // completed since the last Collect
};

// One request in flight; owned by its completion-queue tag from Issue to Complete.
struct LoadGenerator::Call {
  grpc::ClientContext context;
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> reader;
  grpc::ByteBuffer response;
  grpc::Status status;
  Clock::time_point start;
  int64_t send_ns = 0;
};

absl::StatusOr<std::unique_ptr<LoadGenerator>> LoadGenerator::Create(const Options& options) {
  if (options.requests == nullptr || options.requests->empty() || options.max_threads < 1) {
    return absl::InvalidArgumentError("a load generator needs requests and max_threads >= 1");
  }
  std::vector<std::unique_ptr<Worker>> workers;
  for (int i = 0; i < options.max_threads; ++i) {
    grpc::ChannelArguments arguments;
    arguments.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection of its own
    auto worker = std::make_unique<Worker>();
    ASSIGN_OR_RETURN(worker->channel, client::CreateChannel(options.client, arguments));
    worker->stub = std::make_unique<grpc::GenericStub>(worker->channel);
    worker->requests = *options.requests;
    worker->next_request = static_cast<size_t>(i);
    workers.push_back(std::move(worker));
  }
  return std::unique_ptr<LoadGenerator>(new LoadGenerator(options, std::move(workers)));
}

LoadGenerator::LoadGenerator(Options options, std::vector<std::unique_ptr<Worker>> workers)
    : options_(std::move(options)), workers_(std::move(workers)) {}

LoadGenerator::~LoadGenerator() { (void)Stop(); }

absl::Status LoadGenerator::Start(const LoadLevel& level) {
  if (running_) return absl::FailedPreconditionError("a load level is running already");
  const int max_threads = static_cast<int>(workers_.size());
  stopping_.store(false);
  const Clock::time_point start = Clock::now();
  if (level.mode == LoadMode::kConcurrency) {
    if (!(level.value >= 1) || level.value != std::floor(level.value)) {
      return absl::InvalidArgumentError(absl::StrCat("bad concurrency ", level.value));
    }
    const int concurrency = static_cast<int>(level.value);
    active_workers_ = std::min(max_threads, concurrency);
    for (int t = 0; t < active_workers_; ++t) {
      const int slots = concurrency / active_workers_ + (t < concurrency % active_workers_);
      workers_[t]->thread = std::thread([this, t, slots] { RunClosedLoop(*workers_[t], slots); });
    }
  } else {
    if (!(level.value > 0)) return absl::InvalidArgumentError("the request rate must be positive");
    active_workers_ = std::clamp(static_cast<int>(std::ceil(level.value / 1000)), 1, max_threads);
    const double per_thread = level.value / active_workers_;
    for (int t = 0; t < active_workers_; ++t) {
      // Thread t's first request falls t/rate after the start: constant gaps interleave.
      const auto phase = std::chrono::duration_cast<Clock::duration>(
          std::chrono::duration<double>(t / level.value));
      workers_[t]->thread = std::thread([this, t, per_thread, level, start, phase] {
        RunOpenLoop(*workers_[t], per_thread, level.distribution, start + phase,
                    /*seed=*/static_cast<uint64_t>(t) + 1);
      });
    }
  }
  running_ = true;
  last_collect_ = start;
  return absl::OkStatus();
}

LoadSample LoadGenerator::Collect() {
  const Clock::time_point now = Clock::now();
  LoadSample sample;
  for (const std::unique_ptr<Worker>& worker : workers_) {
    absl::MutexLock lock(&worker->mu);
    sample.Merge(std::exchange(worker->pending, LoadSample()));
  }
  sample.duration = absl::FromChrono(now - last_collect_);
  last_collect_ = now;
  return sample;
}

LoadSample LoadGenerator::Stop() {
  if (!running_) return LoadSample();
  stopping_.store(true);
  for (int t = 0; t < active_workers_; ++t) workers_[t]->thread.join();
  running_ = false;
  return Collect();
}

void LoadGenerator::Issue(Worker& worker, void* queue) {
  auto* call = new Call;
  call->start = Clock::now();
  if (options_.client.timeout < kLongestTimeout) {
    call->context.set_deadline(std::chrono::system_clock::now() +
                               absl::ToChronoMicroseconds(options_.client.timeout));
  }
  for (const auto& [key, value] : options_.client.headers) call->context.AddMetadata(key, value);
  const grpc::ByteBuffer& request = worker.requests[worker.next_request++ % worker.requests.size()];
  call->reader = worker.stub->PrepareUnaryCall(&call->context, kModelInferMethod, request,
                                               static_cast<grpc::CompletionQueue*>(queue));
  call->reader->StartCall();
  call->reader->Finish(&call->response, &call->status, call);
  call->send_ns = Nanoseconds(Clock::now() - call->start);
}

void LoadGenerator::Complete(Worker& worker, Call* call, bool ok) {
  std::unique_ptr<Call> owned(call);
  const Clock::time_point arrived = Clock::now();
  std::string failure;
  if (!ok) {
    failure = "the completion queue reported a failed call";
  } else if (!call->status.ok()) {
    failure = client::FromGrpcStatus(call->status).ToString();
  } else {
    inference::ModelInferResponse response;
    if (!grpc::SerializationTraits<inference::ModelInferResponse>::Deserialize(&call->response,
                                                                               &response)
             .ok()) {
      failure = "a response does not parse as inference.ModelInferResponse";
    }
  }
  const Clock::time_point done = Clock::now();
  absl::MutexLock lock(&worker.mu);
  LoadSample& sample = worker.pending;
  if (!failure.empty()) {
    if (sample.failures++ == 0) sample.first_error = std::move(failure);
    return;
  }
  sample.latencies_ns.push_back(Nanoseconds(done - call->start));
  sample.send_ns += call->send_ns;
  sample.recv_ns += Nanoseconds(done - arrived);
}

void LoadGenerator::RunClosedLoop(Worker& worker, int slots) {
  grpc::CompletionQueue queue;
  for (int i = 0; i < slots; ++i) Issue(worker, &queue);
  int outstanding = slots;
  void* tag = nullptr;
  bool ok = false;
  while (outstanding > 0 && queue.Next(&tag, &ok)) {
    --outstanding;
    Complete(worker, static_cast<Call*>(tag), ok);
    if (!stopping_.load(std::memory_order_relaxed)) {
      Issue(worker, &queue);
      ++outstanding;
    }
  }
  queue.Shutdown();
  while (queue.Next(&tag, &ok)) delete static_cast<Call*>(tag);
}

void LoadGenerator::RunOpenLoop(Worker& worker, double rate, RequestDistribution distribution,
                                Clock::time_point first_send, uint64_t seed) {
  grpc::CompletionQueue queue;
  std::mt19937_64 engine(seed);
  std::exponential_distribution<double> poisson_gap(rate);
  const auto gap = [&] {
    const double seconds =
        distribution == RequestDistribution::kPoisson ? poisson_gap(engine) : 1.0 / rate;
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(seconds));
  };
  Clock::time_point next_send = first_send;
  int outstanding = 0;
  void* tag = nullptr;
  bool ok = false;
  uint64_t late = 0;
  while (!stopping_.load(std::memory_order_relaxed)) {
    const Clock::time_point now = Clock::now();
    if (now >= next_send) {
      if (now - next_send > kLateAfter) ++late;
      Issue(worker, &queue);
      ++outstanding;
      next_send += gap();
      // Answers that are already in are taken before the next send, so a loop behind its
      // schedule still records completions (and their latency) as they happen.
      while (queue.AsyncNext(&tag, &ok, gpr_time_0(GPR_CLOCK_MONOTONIC)) ==
             grpc::CompletionQueue::GOT_EVENT) {
        --outstanding;
        Complete(worker, static_cast<Call*>(tag), ok);
      }
      continue;
    }
    const Clock::time_point wake = std::min(next_send, now + kPollInterval);
    const auto deadline = std::chrono::system_clock::now() + (wake - now);
    if (queue.AsyncNext(&tag, &ok, deadline) == grpc::CompletionQueue::GOT_EVENT) {
      --outstanding;
      Complete(worker, static_cast<Call*>(tag), ok);
    }
    if (late > 0) {
      absl::MutexLock lock(&worker.mu);
      worker.pending.late_sends += std::exchange(late, 0);
    }
  }
  if (late > 0) {
    absl::MutexLock lock(&worker.mu);
    worker.pending.late_sends += late;
  }
  while (outstanding > 0 && queue.Next(&tag, &ok)) {
    --outstanding;
    Complete(worker, static_cast<Call*>(tag), ok);
  }
  queue.Shutdown();
  while (queue.Next(&tag, &ok)) delete static_cast<Call*>(tag);
}

}  // namespace torchbricks::perf
