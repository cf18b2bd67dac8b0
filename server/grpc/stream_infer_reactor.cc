#include "server/grpc/stream_infer_reactor.h"

#include <cstdint>
#include <memory>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
// SerializationTraits of protobuf messages (what generated services use).
#include "grpcpp/impl/codegen/proto_utils.h"
#include "server/grpc/grpc_status.h"

namespace torchbricks::server {
namespace {

// Ends its call at once with a status given at construction.
class RefusedStream final : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  explicit RefusedStream(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* StreamInferReactor::Create(
    grpc::CallbackServerContext* context, Handler handler, std::function<void()> on_done) {
  auto reactor = std::unique_ptr<StreamInferReactor>(
      new StreamInferReactor(context, std::move(handler), std::move(on_done)));
  try {
    reactor->Start();
  } catch (const std::system_error& error) {
    if (reactor->on_done_) reactor->on_done_();
    return Refuse(grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("the server cannot start a thread for this stream (", error.what(), ")")));
  }
  return reactor.release();
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* StreamInferReactor::Refuse(
    const grpc::Status& status) {
  return new RefusedStream(status);
}

StreamInferReactor::StreamInferReactor(grpc::CallbackServerContext* context, Handler handler,
                                       std::function<void()> on_done)
    : context_(context), handler_(std::move(handler)), on_done_(std::move(on_done)) {}

void StreamInferReactor::Start() {
  worker_ = std::thread([this] { Serve(); });
}

void StreamInferReactor::Serve() {
  grpc::Status final_status = grpc::Status::OK;
  for (uint64_t index = 1;; ++index) {
    grpc::ByteBuffer incoming;
    StartRead(&incoming);
    if (!AwaitCompletion()) break;  // the client half-closed, or the call is over
    inference::ModelInferRequest request;
    if (!grpc::SerializationTraits<inference::ModelInferRequest>::Deserialize(&incoming, &request)
             .ok()) {
      final_status = grpc::Status(
          grpc::StatusCode::INVALID_ARGUMENT,
          absl::StrCat("message ", index,
                       " of the stream is not a ModelInferRequest (it does not parse); the "
                       "stream ends here, after ",
                       index - 1, " answered request(s)"));
      break;
    }
    absl::StatusOr<inference::ModelStreamInferResponse> reply = handler_(context_, request);
    if (!reply.ok()) {
      final_status = ToGrpcStatus(reply.status());
      break;
    }
    grpc::ByteBuffer outgoing;
    bool own_buffer = false;
    if (!grpc::SerializationTraits<inference::ModelStreamInferResponse>::Serialize(
             *reply, &outgoing, &own_buffer)
             .ok()) {
      final_status =
          grpc::Status(grpc::StatusCode::INTERNAL,
                       absl::StrCat("the answer to message ", index, " could not be serialized"));
      break;
    }
    StartWrite(&outgoing);
    if (!AwaitCompletion()) break;  // the client went away
  }
  // The stream's place is free before its end reaches the client, so a client that opens
  // another stream as soon as this one ends is not refused for it.
  if (on_done_) std::exchange(on_done_, nullptr)();
  Finish(final_status);
}

bool StreamInferReactor::AwaitCompletion() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](std::optional<bool>* completed) { return completed->has_value(); }, &completed_));
  const bool ok = *completed_;
  completed_.reset();
  return ok;
}

void StreamInferReactor::Complete(bool ok) {
  absl::MutexLock lock(&mu_);
  completed_ = ok;
}

void StreamInferReactor::OnDone() {
  // gRPC may report the end on the worker itself, from inside its Finish().
  if (worker_.get_id() == std::this_thread::get_id()) {
    worker_.detach();
  } else {
    worker_.join();
  }
  if (on_done_) on_done_();  // when Serve() did not run it
  delete this;
}

}  // namespace torchbricks::server
