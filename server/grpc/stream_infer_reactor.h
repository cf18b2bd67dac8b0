// StreamInferReactor: one ModelStreamInfer call, served through gRPC's callback API on raw
// messages so that a message which does not parse can be told apart from the client's
// half-close. It reads one message, parses it as a ModelInferRequest, has the handler answer
// it and writes the answer, one message at a time and in order, on a thread of its own: a
// model that takes seconds never blocks gRPC's callback threads. A message that does not
// parse ends the stream with INVALID_ARGUMENT, after the answers already written.
// Owns itself: gRPC holds it from Create() until OnDone(), which deletes it.
#ifndef TORCHBRICKS_SERVER_GRPC_STREAM_INFER_REACTOR_H_
#define TORCHBRICKS_SERVER_GRPC_STREAM_INFER_REACTOR_H_

#include <functional>
#include <optional>
#include <thread>

#include "absl/base/thread_annotations.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/server_callback.h"
#include "proto/grpc_service.pb.h"

namespace torchbricks::server {

class StreamInferReactor final
    : public grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer> {
 public:
  // Answers one request of the stream. A request that fails is answered with an OK
  // response carrying error_message; an error status ends the whole stream with it (the
  // server draining, for one).
  using Handler = std::function<absl::StatusOr<inference::ModelStreamInferResponse>(
      grpc::CallbackServerContext* context, const inference::ModelInferRequest& request)>;

  // Starts serving the call on `context` (borrowed until OnDone). `on_done` runs once: when
  // the stream has answered its last message, before its final status is sent (so the
  // client never sees the end before `on_done` ran), or, if serving never started, when
  // gRPC is done with the call. When no thread can
  // be started (the process is at its thread limit), returns a reactor that ends the call
  // RESOURCE_EXHAUSTED, after running `on_done`.
  static grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Create(
      grpc::CallbackServerContext* context, Handler handler, std::function<void()> on_done);

  // A reactor that ends the call at once with `status` (a refused stream).
  static grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* Refuse(
      const grpc::Status& status);

  StreamInferReactor(const StreamInferReactor&) = delete;
  StreamInferReactor& operator=(const StreamInferReactor&) = delete;

  void OnReadDone(bool ok) override { Complete(ok); }
  void OnWriteDone(bool ok) override { Complete(ok); }
  void OnDone() override;

 private:
  StreamInferReactor(grpc::CallbackServerContext* context, Handler handler,
                     std::function<void()> on_done);
  // Starts the worker; the std::thread error when the system refuses a thread.
  void Start();

  // The worker thread: read, answer, write until the client half-closes or goes away, or
  // a message cannot be served; then Finish().
  void Serve();
  // Waits for the one outstanding read or write; its `ok`.
  bool AwaitCompletion();
  void Complete(bool ok);

  grpc::CallbackServerContext* context_;
  Handler handler_;
  std::function<void()> on_done_;
  absl::Mutex mu_;
  // The outcome of the outstanding read or write, once gRPC reports it.
  std::optional<bool> completed_ ABSL_GUARDED_BY(mu_);
  std::thread worker_;
};

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_GRPC_STREAM_INFER_REACTOR_H_
