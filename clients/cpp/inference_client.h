// InferenceClient: a typed C++ client for TorchBricks Serve over one gRPC channel — the Open
// Inference Protocol v2 (inference.GRPCInferenceService with Triton's model-config,
// statistics, repository and system shared-memory extensions), torchbricks.BrickService
// (brick graphs and per-brick statistics) and grpc.health.v1. Every call returns the
// server's gRPC code and message as an absl::Status. Thread-safe: one client may serve
// calls from many threads at once. Links gRPC, protobuf and abseil only (no libtorch).
//
//   absl::StatusOr<std::unique_ptr<InferenceClient>> client =
//       InferenceClient::Create({.url = "127.0.0.1:8001"});
//   if (!client.ok()) return client.status();
//   std::vector<float> images(2 * 3 * 100 * 200);
//   absl::StatusOr<InferResult> result = (*client)->Infer(
//       {.model = "readme_dummy",
//        .inputs = {InferInput::Of<float>("raw_images", {2, 3, 100, 200}, images)},
//        .outputs = {{"softmaxed"}}});
//   if (!result.ok()) return result.status();  // e.g. NOT_FOUND for an unknown model
//   absl::StatusOr<std::vector<float>> scores = result->Find("softmaxed")->Values<float>();
//
// Error codes are the server's (docs/SERVER.md, "Errors"): NOT_FOUND for an unknown model
// or version, UNAVAILABLE for one not ready (and for a server that cannot be reached),
// INVALID_ARGUMENT for a bad input, DEADLINE_EXCEEDED past ClientOptions::timeout, ...
#ifndef TORCHBRICKS_CLIENTS_CPP_INFERENCE_CLIENT_H_
#define TORCHBRICKS_CLIENTS_CPP_INFERENCE_CLIENT_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "clients/cpp/infer_tensors.h"
#include "proto/brick_service.pb.h"
#include "proto/grpc_service.pb.h"

namespace grpc {
class Channel;
class ChannelArguments;
class ClientContext;
}  // namespace grpc

namespace torchbricks::client {

// How to reach the server. Every field has a working default for a local plaintext server.
struct ClientOptions {
  // "host:port" (or any gRPC target, "unix:/path", ...).
  std::string url = "127.0.0.1:8001";
  // TLS. Implied by any of the files below.
  bool use_tls = false;
  // PEM roots that sign the server's certificate; empty: gRPC's default roots.
  std::string root_certificates_file;
  // Mutual TLS: this client's PEM key and certificate chain, both or neither.
  std::string private_key_file;
  std::string certificate_chain_file;
  // The name the server's certificate must carry, when it differs from the url's host.
  std::string tls_server_name;
  // Metadata sent with every call: (lower-case key, value), e.g. the access-control header
  // ("triton-grpc-protocol-admin-key", token) of --grpc-restricted-protocol.
  std::vector<std::pair<std::string, std::string>> headers;
  // Deadline of each unary call (and each AsyncInfer); absl::InfiniteDuration() for none.
  absl::Duration timeout = absl::Seconds(60);
  // The largest message sent or received, in bytes (the server's own limit is
  // --grpc-max-message-size, 256 MiB by default).
  int max_message_bytes = 1 << 30;
};

// grpc.health.v1's answer for one service.
enum class ServingStatus { kUnknown, kServing, kNotServing, kServiceUnknown };
// "SERVING", "NOT_SERVING", "SERVICE_UNKNOWN" or "UNKNOWN".
absl::string_view ServingStatusName(ServingStatus status);

// A ModelStreamInfer stream (InferenceClient::OpenStream): requests go out in order and
// their answers come back in order. One thread may Write while another Reads; Write and
// CloseWrites must not be called concurrently with each other, nor Read with Read.
// Destroying an unfinished stream cancels it.
class InferStream {
 public:
  ~InferStream();
  InferStream(const InferStream&) = delete;
  InferStream& operator=(const InferStream&) = delete;

  // Sends one request. FailedPrecondition after CloseWrites; Unavailable when the stream
  // has broken (Finish then says why). A request the server refuses is answered through
  // Read, not here.
  absl::Status Write(const InferRequest& request);

  // Tells the server no more requests follow; it answers those sent, then ends the stream.
  absl::Status CloseWrites();

  // The next answer: a result, or the status of that one failed request (its code as the
  // server gave it, see FromStreamErrorMessage). std::nullopt once the stream has ended;
  // then call Finish.
  std::optional<absl::StatusOr<InferResult>> Read();

  // Ends the stream (closing writes and discarding unread answers first, if need be) and
  // returns its final status: OK, or why the stream as a whole failed. Call once.
  absl::Status Finish();

 private:
  friend class InferenceClient;
  struct Call;
  explicit InferStream(std::unique_ptr<Call> call);

  std::unique_ptr<Call> call_;
};

// The channel InferenceClient::Create opens for `options` (credentials from the TLS files,
// message size limits, TLS name override), with `arguments` as the starting point — for
// callers that drive the server through their own stubs (torchbricks-perf's load loop).
// InvalidArgument for a non-positive max_message_bytes or half a mutual-TLS pair; NotFound
// when a TLS file cannot be read. Headers are not part of a channel: send them per call.
absl::StatusOr<std::shared_ptr<grpc::Channel>> CreateChannel(const ClientOptions& options,
                                                             grpc::ChannelArguments arguments);

class InferenceClient {
 public:
  // A client for `options.url`. No connection is made yet (see WaitForConnection).
  // InvalidArgument for a header key gRPC cannot send (not lower-case letters, digits,
  // '-', '_', '.'), for half a client key pair or a non-positive message size;
  // NotFound when a TLS file cannot be read.
  static absl::StatusOr<std::unique_ptr<InferenceClient>> Create(const ClientOptions& options);

  // Waits for pending AsyncInfer callbacks, then closes the channel.
  ~InferenceClient();
  InferenceClient(const InferenceClient&) = delete;
  InferenceClient& operator=(const InferenceClient&) = delete;

  const ClientOptions& options() const { return options_; }

  // Connects, if not connected yet. OK once connected; Unavailable when the attempt fails
  // (nothing listening, a TLS handshake refused); DeadlineExceeded after `timeout`.
  absl::Status WaitForConnection(absl::Duration timeout);

  // --- health ---------------------------------------------------------------------------
  absl::StatusOr<bool> ServerLive();
  // True once start-up is done, false while starting or draining.
  absl::StatusOr<bool> ServerReady();
  // Whether `model` (version `version`, "" = the newest) can infer. NotFound for an unknown
  // model or version.
  absl::StatusOr<bool> ModelReady(absl::string_view model, absl::string_view version = "");
  // grpc.health.v1 Check of `service` ("": readiness; "liveness": the process runs).
  absl::StatusOr<ServingStatus> HealthCheck(absl::string_view service = "");

  // --- metadata ---------------------------------------------------------------------------
  absl::StatusOr<inference::ServerMetadataResponse> ServerMetadata();
  // The inputs and outputs of `stage` ("" = INFERENCE), sent as the `torchbricks-stage`
  // request metadata. NotFound for an unknown model or version.
  absl::StatusOr<inference::ModelMetadataResponse> ModelMetadata(absl::string_view model,
                                                                 absl::string_view version = "",
                                                                 absl::string_view stage = "");
  // Triton's model configuration (max_batch_size, inputs, dynamic batching, ...).
  absl::StatusOr<inference::ModelConfig> ModelConfig(absl::string_view model,
                                                     absl::string_view version = "");
  // The brick graph of `stage` ("" = INFERENCE), with its mermaid text. NotFound for an
  // unknown model or version; InvalidArgument for an unknown stage.
  absl::StatusOr<torchbricks::ModelGraphResponse> ModelGraph(absl::string_view model,
                                                             absl::string_view stage = "",
                                                             absl::string_view version = "");

  // --- inference --------------------------------------------------------------------------
  // One ModelInfer call.
  absl::StatusOr<InferResult> Infer(const InferRequest& request);

  // ModelInfer without blocking: `done` runs exactly once with the result, on a gRPC thread
  // (it must not block for long). `request` is copied into the call before this returns.
  using InferCallback = std::function<void(absl::StatusOr<InferResult>)>;
  void AsyncInfer(const InferRequest& request, InferCallback done);

  // Opens a ModelStreamInfer stream with deadline `timeout` for the whole stream.
  // The stream must not outlive this client.
  absl::StatusOr<std::unique_ptr<InferStream>> OpenStream(
      absl::Duration timeout = absl::InfiniteDuration());

  // --- system shared memory (servers run with --allow-client-shm true) -------------------
  // Registers `byte_size` bytes at `offset` of shared-memory object `key` as region `name`.
  // FailedPrecondition when the server does not allow client shared memory; NotFound for
  // a missing object; AlreadyExists for a name in use; InvalidArgument for a bad key or a
  // range past the object's end.
  absl::Status RegisterSystemSharedMemory(absl::string_view name, absl::string_view key,
                                          int64_t byte_size, int64_t offset = 0);
  // Region `name`, or every region when empty. NotFound for an unknown name.
  absl::StatusOr<inference::SystemSharedMemoryStatusResponse> SystemSharedMemoryStatus(
      absl::string_view name = "");
  // Unregisters region `name`, or every region when empty; an unknown name is no error.
  absl::Status UnregisterSystemSharedMemory(absl::string_view name = "");

  // --- repository and statistics ----------------------------------------------------------
  // Every model version the repository knows, with its state and reason; `ready_only`
  // lists the ready ones only.
  absl::StatusOr<inference::RepositoryIndexResponse> RepositoryIndex(bool ready_only = false);
  // Load (or reload) and unload. FailedPrecondition unless the server runs
  // --model-control-mode explicit; NotFound for a model the repository lacks.
  absl::Status LoadModel(absl::string_view model);
  absl::Status UnloadModel(absl::string_view model);
  // Triton's statistics of `model` ("" = every model) and `version` ("" = every version).
  absl::StatusOr<inference::ModelStatisticsResponse> ModelStatistics(
      absl::string_view model = "", absl::string_view version = "");
  // Executions and compute time per brick. NotFound when the model is not loaded.
  absl::StatusOr<torchbricks::BrickStatisticsResponse> BrickStatistics(
      absl::string_view model, absl::string_view version = "");

 private:
  struct Stubs;
  InferenceClient(ClientOptions options, std::shared_ptr<grpc::Channel> channel);

  // Sets the deadline (`timeout`, or the options' timeout) and the options' headers.
  void Prepare(grpc::ClientContext& context,
               std::optional<absl::Duration> timeout = std::nullopt) const;

  const ClientOptions options_;
  const std::shared_ptr<grpc::Channel> channel_;
  const std::unique_ptr<Stubs> stubs_;

  absl::Mutex mu_;
  int pending_async_ ABSL_GUARDED_BY(mu_) = 0;  // AsyncInfer calls whose callback has not run
};

}  // namespace torchbricks::client

#endif  // TORCHBRICKS_CLIENTS_CPP_INFERENCE_CLIENT_H_
