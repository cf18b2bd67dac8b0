// InferenceService: inference.GRPCInferenceService, the Open Inference Protocol (KServe
// v2) over gRPC, as Triton defines it. It borrows the ServiceState for its lifetime and is
// called concurrently by gRPC's threads; it keeps no state of its own.
#ifndef TORCHBRICKS_SERVER_GRPC_INFERENCE_SERVICE_H_
#define TORCHBRICKS_SERVER_GRPC_INFERENCE_SERVICE_H_

#include <atomic>
#include <cstdint>

#include "absl/status/status.h"
#include "proto/grpc_service.grpc.pb.h"
#include "server/grpc/service_state.h"

namespace torchbricks::server {

// ModelStreamInfer is served on raw messages through the callback API (see
// StreamInferReactor). ModelInfer is served on raw messages too, synchronously, by
// ModelInferBytes(): gRPC's generated handler would parse the request itself and answer
// INTERNAL with an empty message when it cannot, where a stream answers INVALID_ARGUMENT.
// The generated method is handed over (WithGenericMethod_ModelInfer) and the constructor
// adds a handler for the same path whose request type is grpc::ByteBuffer, through the
// handler classes generated code itself uses. gRPC's ServerBuilder then requires a generic
// service beside it: register a grpc::CallbackGenericService, whose default answer for
// methods nobody serves is UNIMPLEMENTED, as without one. Every other method is synchronous.
class InferenceService final
    : public inference::GRPCInferenceService::WithRawCallbackMethod_ModelStreamInfer<
          inference::GRPCInferenceService::WithGenericMethod_ModelInfer<
              inference::GRPCInferenceService::Service>> {
 public:
  // `state` must outlive the service.
  explicit InferenceService(ServiceState* state);

  grpc::Status ServerLive(grpc::ServerContext*, const inference::ServerLiveRequest*,
                          inference::ServerLiveResponse* response) override;
  grpc::Status ServerReady(grpc::ServerContext*, const inference::ServerReadyRequest*,
                           inference::ServerReadyResponse* response) override;
  grpc::Status ModelReady(grpc::ServerContext*, const inference::ModelReadyRequest* request,
                          inference::ModelReadyResponse* response) override;
  grpc::Status ServerMetadata(grpc::ServerContext*, const inference::ServerMetadataRequest*,
                              inference::ServerMetadataResponse* response) override;
  // Describes the INFERENCE stage, or the stage named by the request metadata key
  // "torchbricks-stage"; the response metadata "torchbricks-stage" says which.
  grpc::Status ModelMetadata(grpc::ServerContext* context,
                             const inference::ModelMetadataRequest* request,
                             inference::ModelMetadataResponse* response) override;
  // Triton's ModelConfig of the version ModelReady would name (see TritonModelConfig).
  grpc::Status ModelConfig(grpc::ServerContext* context,
                           const inference::ModelConfigRequest* request,
                           inference::ModelConfigResponse* response) override;
  // ModelInfer on the serialized request: INVALID_ARGUMENT when it does not parse as a
  // ModelInferRequest; otherwise the request is served (see Infer()).
  grpc::Status ModelInferBytes(grpc::ServerContext* context, const grpc::ByteBuffer* request,
                               inference::ModelInferResponse* response);
  // One response per request, in order; a failed request answers with error_message and
  // the stream goes on. A message that is not a ModelInferRequest ends the stream with
  // INVALID_ARGUMENT; past --grpc-max-streams open streams a new one gets
  // RESOURCE_EXHAUSTED; once draining, UNAVAILABLE.
  grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* ModelStreamInfer(
      grpc::CallbackServerContext* context) override;
  // Triton's system shared-memory extension (see SharedMemoryRegions): FAILED_PRECONDITION
  // unless the server runs with --allow-client-shm.
  grpc::Status SystemSharedMemoryStatus(
      grpc::ServerContext* context, const inference::SystemSharedMemoryStatusRequest* request,
      inference::SystemSharedMemoryStatusResponse* response) override;
  grpc::Status SystemSharedMemoryRegister(
      grpc::ServerContext* context, const inference::SystemSharedMemoryRegisterRequest* request,
      inference::SystemSharedMemoryRegisterResponse*) override;
  grpc::Status SystemSharedMemoryUnregister(
      grpc::ServerContext* context, const inference::SystemSharedMemoryUnregisterRequest* request,
      inference::SystemSharedMemoryUnregisterResponse*) override;
  grpc::Status ModelStatistics(grpc::ServerContext*,
                               const inference::ModelStatisticsRequest* request,
                               inference::ModelStatisticsResponse* response) override;
  grpc::Status RepositoryIndex(grpc::ServerContext*,
                               const inference::RepositoryIndexRequest* request,
                               inference::RepositoryIndexResponse* response) override;
  grpc::Status RepositoryModelLoad(grpc::ServerContext*,
                                   const inference::RepositoryModelLoadRequest* request,
                                   inference::RepositoryModelLoadResponse*) override;
  grpc::Status RepositoryModelUnload(grpc::ServerContext*,
                                     const inference::RepositoryModelUnloadRequest* request,
                                     inference::RepositoryModelUnloadResponse*) override;

 private:
  // Runs one request on a ready version; fills `response`. Errors carry their code.
  // Counts the outcome and logs a refused request.
  // Requests whose bytes do not fit in the ServiceState's budget are ResourceExhausted.
  absl::Status Infer(grpc::ServerContextBase* context, const inference::ModelInferRequest& request,
                     inference::ModelInferResponse* response);
  // Infer() once the version is found: the request normalised once (NormalizeRequest),
  // queued, answered; a RequestTimer records its durations. Sets `stage_index` once the
  // stage is known.
  absl::Status InferOnVersion(grpc::ServerContextBase* context,
                              const inference::ModelInferRequest& request,
                              const ModelVersion& version, inference::ModelInferResponse* response,
                              int* stage_index);
  // One log line per refused request, without payloads, with the request's id (or one
  // made up when the client gave none).
  void LogRefused(const inference::ModelInferRequest& request, const absl::Status& status);

  ServiceState* state_;
  std::atomic<uint64_t> next_request_id_{1};
};

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_GRPC_INFERENCE_SERVICE_H_
