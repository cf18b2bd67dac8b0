// Closed-loop async gRPC load: GenericStub unary calls over pre-serialized requests, one
// CompletionQueue (and one connection) per client thread.
#include "bench/closed_loop_client.h"

#include <algorithm>
#include <chrono>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/generic/generic_stub.h"
#include "proto/grpc_service.grpc.pb.h"

namespace torchbricks::bench {
namespace {

using Clock = std::chrono::steady_clock;

constexpr char kModelInferMethod[] = "/inference.GRPCInferenceService/ModelInfer";

// One request in flight; owned by its completion-queue tag from issue to completion.
struct PendingCall {
  grpc::ClientContext context;
  std::unique_ptr<grpc::GenericClientAsyncResponseReader> reader;
  grpc::ByteBuffer response;
  grpc::Status status;
  Clock::time_point start;
};

// What one client thread measured. Written by that thread only, read after join().
struct ThreadTally {
  std::vector<int64_t> latencies_ns;
  uint64_t errors = 0;
  std::string first_error;
};

struct Window {
  Clock::time_point begin;  // measuring starts
  Clock::time_point end;    // measuring ends; no request is issued after it
};

// Empty when `call` succeeded with a response holding at least one output tensor;
// otherwise what went wrong.
std::string FailureOf(PendingCall& call, bool ok) {
  if (!ok) return "completion queue reported failure";
  if (!call.status.ok()) {
    return absl::StrCat("gRPC status ", call.status.error_code(), ": ",
                        call.status.error_message());
  }
  inference::ModelInferResponse response;
  if (!grpc::SerializationTraits<inference::ModelInferResponse>::Deserialize(&call.response,
                                                                             &response)
           .ok()) {
    return "response does not parse as ModelInferResponse";
  }
  if (response.outputs_size() == 0) return "response has no output tensor";
  return "";
}

void RunClientThread(const ClosedLoopOptions& options, int slots, size_t first_request,
                     Window window, ThreadTally* tally) {
  grpc::ChannelArguments arguments;
  arguments.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);  // a connection of its own
  arguments.SetMaxReceiveMessageSize(-1);
  arguments.SetMaxSendMessageSize(-1);
  const auto channel =
      grpc::CreateCustomChannel(options.address, grpc::InsecureChannelCredentials(), arguments);
  grpc::GenericStub stub(channel);
  grpc::CompletionQueue queue;
  const std::vector<grpc::ByteBuffer> requests = options.requests;  // this thread's copies
  size_t next_request = first_request;
  const auto deadline = std::chrono::duration_cast<std::chrono::system_clock::duration>(
      std::chrono::duration<double>(options.request_deadline_seconds));

  auto issue = [&] {
    auto call = std::make_unique<PendingCall>();
    call->context.set_deadline(std::chrono::system_clock::now() + deadline);
    call->start = Clock::now();
    call->reader = stub.PrepareUnaryCall(&call->context, kModelInferMethod,
                                         requests[next_request++ % requests.size()], &queue);
    call->reader->StartCall();
    PendingCall* tag = call.release();  // reclaimed when the completion arrives
    tag->reader->Finish(&tag->response, &tag->status, tag);
  };

  tally->latencies_ns.reserve(1 << 16);
  for (int i = 0; i < slots; ++i) issue();
  int outstanding = slots;
  void* tag = nullptr;
  bool ok = false;
  while (outstanding > 0 && queue.Next(&tag, &ok)) {
    std::unique_ptr<PendingCall> call(static_cast<PendingCall*>(tag));
    const Clock::time_point now = Clock::now();
    --outstanding;
    const std::string failure = FailureOf(*call, ok);
    if (!failure.empty()) {
      if (tally->errors++ == 0) tally->first_error = failure;
    } else if (now >= window.begin && now < window.end) {
      tally->latencies_ns.push_back(
          std::chrono::duration_cast<std::chrono::nanoseconds>(now - call->start).count());
    }
    if (now < window.end) {
      issue();
      ++outstanding;
    }
  }
  queue.Shutdown();
  while (queue.Next(&tag, &ok)) delete static_cast<PendingCall*>(tag);
}

}  // namespace

absl::StatusOr<ClosedLoopResult> RunClosedLoop(const ClosedLoopOptions& options) {
  if (options.address.empty() || options.requests.empty() || options.concurrency < 1 ||
      options.client_threads < 1 || options.warmup_seconds < 0 || options.measure_seconds <= 0 ||
      options.request_deadline_seconds <= 0) {
    return absl::InvalidArgumentError(
        "closed loop needs an address, requests, concurrency >= 1, client threads >= 1, "
        "warm-up >= 0 s and a measuring window > 0 s");
  }
  const int threads = std::min(options.client_threads, options.concurrency);
  const Clock::time_point start = Clock::now();
  const auto seconds = [](double s) {
    return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s));
  };
  const Window window = {start + seconds(options.warmup_seconds),
                         start + seconds(options.warmup_seconds + options.measure_seconds)};

  std::vector<ThreadTally> tallies(threads);
  std::vector<std::thread> workers;
  for (int t = 0; t < threads; ++t) {
    const int slots = options.concurrency / threads + (t < options.concurrency % threads);
    workers.emplace_back(RunClientThread, std::cref(options), slots, static_cast<size_t>(t), window,
                         &tallies[t]);
  }
  for (std::thread& worker : workers) worker.join();

  ClosedLoopResult result;
  std::vector<int64_t> latencies;
  for (ThreadTally& tally : tallies) {
    latencies.insert(latencies.end(), tally.latencies_ns.begin(), tally.latencies_ns.end());
    if (tally.errors > 0 && result.errors == 0) result.first_error = tally.first_error;
    result.errors += tally.errors;
  }
  result.completed = latencies.size();
  result.latency = SummarizeLatencies(std::move(latencies));
  result.window_seconds = options.measure_seconds;
  result.requests_per_second = result.completed / options.measure_seconds;
  return result;
}

}  // namespace torchbricks::bench
