#include "server/grpc/inference_service.h"

#include "grpcpp/impl/codegen/rpc_service_method.h"
#include "grpcpp/support/byte_buffer.h"
#include "grpcpp/support/method_handler.h"

#include <chrono>
#include <deque>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/status_macros.h"
#include "server/grpc/grpc_status.h"
#include "server/grpc/infer_codec.h"
#include "server/grpc/infer_request.h"
#include "server/grpc/stream_infer_reactor.h"
#include "server/grpc/triton_model_config.h"
#include "server/observability/logging.h"
#include "server/repository/model_version.h"
#include "server/scheduling/dynamic_batcher.h"
#include "server/scheduling/pending_request.h"

namespace torchbricks::server {
namespace {

constexpr char kServerName[] = "torchbricks-serve";
constexpr char kServerVersion[] = "0.1.0";
constexpr char kStageMetadataKey[] = "torchbricks-stage";

using Clock = std::chrono::steady_clock;

grpc::Status Unavailable(const char* why) {
  return grpc::Status(grpc::StatusCode::UNAVAILABLE, why);
}

void FillStatistics(const ModelVersion& version, inference::ModelStatistics* out) {
  const server::VersionStats& s = *version.statistics;
  out->set_name(version.model_name);
  out->set_version(version.version_string);
  out->set_last_inference(s.last_inference_ms.load());
  out->set_inference_count(s.inference_count.load());
  out->set_execution_count(s.execution_count.load());
  auto copy = [](const DurationCounter& from, inference::StatisticDuration* to) {
    to->set_count(from.count.load());
    to->set_ns(from.ns.load());
  };
  inference::InferStatistics* infer = out->mutable_inference_stats();
  copy(s.success, infer->mutable_success());
  copy(s.fail, infer->mutable_fail());
  copy(s.queue, infer->mutable_queue());
  copy(s.compute_input, infer->mutable_compute_input());
  copy(s.compute_infer, infer->mutable_compute_infer());
  copy(s.compute_output, infer->mutable_compute_output());
}

}  // namespace

InferenceService::InferenceService(ServiceState* state) : state_(state) {
  using Handler = grpc::internal::RpcMethodHandler<InferenceService, grpc::ByteBuffer,
                                                   inference::ModelInferResponse>;
  AddMethod(new grpc::internal::RpcServiceMethod(
      "/inference.GRPCInferenceService/ModelInfer", grpc::internal::RpcMethod::NORMAL_RPC,
      new Handler(
          [](InferenceService* service, grpc::ServerContext* context,
             const grpc::ByteBuffer* request, inference::ModelInferResponse* response) {
            return service->ModelInferBytes(context, request, response);
          },
          this)));
}

grpc::Status InferenceService::ServerLive(grpc::ServerContext* context,
                                          const inference::ServerLiveRequest*,
                                          inference::ServerLiveResponse* response) {
  if (auto denied = state_->Deny(context, ProtocolGroup::kHealth)) return *denied;
  response->set_live(true);
  return grpc::Status::OK;
}

grpc::Status InferenceService::ServerReady(grpc::ServerContext* context,
                                           const inference::ServerReadyRequest*,
                                           inference::ServerReadyResponse* response) {
  if (auto denied = state_->Deny(context, ProtocolGroup::kHealth)) return *denied;
  response->set_ready(state_->ready.load() && !state_->listener_lost.load() &&
                      !state_->gate.draining());
  return grpc::Status::OK;
}

grpc::Status InferenceService::ModelReady(grpc::ServerContext* context,
                                          const inference::ModelReadyRequest* request,
                                          inference::ModelReadyResponse* response) {
  if (auto denied = state_->Deny(context, ProtocolGroup::kHealth)) return *denied;
  absl::StatusOr<ModelRepository*> repository = state_->Repository();
  if (!repository.ok()) return ToGrpcStatus(repository.status());
  // An unknown model or version is not ready, not an error: Triton answers so, and clients
  // poll ModelReady for a model that is about to appear (tritonclient's is_model_ready).
  auto version = (*repository)->Find(request->name(), request->version());
  response->set_ready(version.ok() && !state_->gate.draining());
  return grpc::Status::OK;
}

grpc::Status InferenceService::ServerMetadata(grpc::ServerContext* context,
                                              const inference::ServerMetadataRequest*,
                                              inference::ServerMetadataResponse* response) {
  if (auto denied = state_->Deny(context, ProtocolGroup::kMetadata)) return *denied;
  response->set_name(kServerName);
  response->set_version(kServerVersion);
  for (const char* extension :
       {"model_repository", "model_configuration", "statistics", "torchbricks_graph"}) {
    response->add_extensions(extension);
  }
  if (state_->shared_memory != nullptr) response->add_extensions("system_shared_memory");
  return grpc::Status::OK;
}

grpc::Status InferenceService::ModelMetadata(grpc::ServerContext* context,
                                             const inference::ModelMetadataRequest* request,
                                             inference::ModelMetadataResponse* response) {
  if (auto denied = state_->Deny(context, ProtocolGroup::kMetadata)) return *denied;
  absl::StatusOr<ModelRepository*> repository = state_->Repository();
  if (!repository.ok()) return ToGrpcStatus(repository.status());
  auto version = (*repository)->Find(request->name(), request->version());
  if (!version.ok()) return ToGrpcStatus(version.status());
  Stage stage = Stage::kInference;
  auto asked = context->client_metadata().find(kStageMetadataKey);
  if (asked != context->client_metadata().end()) {
    absl::StatusOr<Stage> parsed =
        ParseStage(absl::string_view(asked->second.data(), asked->second.size()));
    if (!parsed.ok()) return ToGrpcStatus(parsed.status());
    stage = *parsed;
  }
  context->AddInitialMetadata(kStageMetadataKey, std::string(StageName(stage)));

  response->set_name(request->name());
  response->set_platform(kTorchBricksPlatform);
  for (const auto& ready : (*repository)->ReadyVersions(request->name())) {
    response->add_versions(ready->version_string);
  }
  const ServableModel& model = *(*version)->servable;
  const bool batches = (*version)->plan.batching.max_batch_size > 0;
  for (int index : model.plan(stage).required_inputs()) {
    const ValueSpec& spec = model.graph().inputs()[index];
    auto* input = response->add_inputs();
    input->set_name(spec.name);
    input->set_datatype(ProtocolDataType(spec.data_type));
    for (int64_t dim : spec.dims) input->add_shape(dim);
    if (OneValuePerItem(spec, batches)) input->add_shape(1);  // as TritonModelConfig's dims
  }
  for (const ValueSpec& spec : model.OutputSpecs(stage)) {
    auto* output = response->add_outputs();
    output->set_name(spec.name);
    output->set_datatype(ProtocolDataType(spec.data_type));
    for (int64_t dim : spec.dims) output->add_shape(dim);
  }
  return grpc::Status::OK;
}

grpc::Status InferenceService::ModelConfig(grpc::ServerContext* context,
                                           const inference::ModelConfigRequest* request,
                                           inference::ModelConfigResponse* response) {
  if (auto denied = state_->Deny(context, ProtocolGroup::kModelConfig)) return *denied;
  absl::StatusOr<ModelRepository*> repository = state_->Repository();
  if (!repository.ok()) return ToGrpcStatus(repository.status());
  auto version = (*repository)->Find(request->name(), request->version());
  if (!version.ok()) return ToGrpcStatus(version.status());
  *response->mutable_config() = TritonModelConfig(**version);
  return grpc::Status::OK;
}

absl::Status InferenceService::Infer(grpc::ServerContextBase* context,
                                     const inference::ModelInferRequest& request,
                                     inference::ModelInferResponse* response) {
  const Clock::time_point start = Clock::now();
  // Inputs in shared memory are copied out of their regions (DecodeInputs): they count too.
  const uint64_t bytes = request.ByteSizeLong() + SharedMemoryInputBytes(request);
  ByteReservation held(&state_->request_bytes, bytes);
  if (!held.ok()) {
    const absl::Status refused = absl::ResourceExhaustedError(absl::StrCat(
        "the server holds too many request bytes to take this one (", bytes, " bytes; limit ",
        state_->request_bytes.limit(), " bytes in flight, --max-inflight-bytes): retry later"));
    state_->CountRefused(refused.code());
    LogRefused(request, refused);
    return refused;
  }
  absl::StatusOr<ModelRepository*> repository = state_->Repository();
  absl::StatusOr<std::shared_ptr<const ModelVersion>> version =
      repository.ok() ? (*repository)->Find(request.model_name(), request.model_version())
                      : repository.status();
  if (!version.ok()) {
    state_->CountRefused(version.status().code());
    LogRefused(request, version.status());
    return version.status();
  }
  int stage_index = kStageSlots - 1;
  absl::Status status = InferOnVersion(context, request, **version, response, &stage_index);
  server::VersionStats& stats = *(*version)->statistics;
  stats.CountOutcome(stage_index, status.code());
  stats.ObserveRequest(stage_index, std::chrono::duration<double>(Clock::now() - start).count());
  if (!status.ok()) LogRefused(request, status);
  return status;
}

void InferenceService::LogRefused(const inference::ModelInferRequest& request,
                                  const absl::Status& status) {
  const std::string id =
      request.id().empty()
          ? absl::StrCat("auto-", next_request_id_.fetch_add(1, std::memory_order_relaxed))
          : request.id();
  LogEvent(LogLevel::kInfo, "request refused",
           {{"request_id", id},
            {"model", request.model_name()},
            {"version", request.model_version()},
            {"code", absl::StatusCodeToString(status.code())},
            {"error", std::string(status.message())}});
}

absl::Status InferenceService::InferOnVersion(grpc::ServerContextBase* context,
                                              const inference::ModelInferRequest& request,
                                              const ModelVersion& version,
                                              inference::ModelInferResponse* response,
                                              int* stage_index) {
  RequestTimer timer(version.statistics.get());
  absl::StatusOr<Stage> stage = StageOfRequest(request);
  if (!stage.ok()) return timer.Fail(stage.status());
  *stage_index = ServedStageIndex(*stage);
  // Both outlive `pending`, whose views may point into them.
  std::deque<std::string> scratch;
  SharedMemoryLease lease(state_->shared_memory.get());
  PendingRequest pending;
  if (absl::Status normalized =
          NormalizeRequest(context, request, *stage, version, &scratch, &pending, &lease);
      !normalized.ok()) {
    return timer.Fail(normalized);
  }
  absl::StatusOr<std::map<std::string, PlacedOutput>> placed = PlaceOutputs(request, &lease);
  if (!placed.ok()) return timer.Fail(placed.status());
  timer.InputsReady();

  if (absl::Status queued = version.batcher->Enqueue(&pending); !queued.ok()) {
    return timer.Fail(absl::Status(
        queued.code(), absl::StrCat("model '", version.model_name, "': ", queued.message())));
  }
  version.batcher->AwaitDone(&pending);
  if (!pending.result.ok()) {
    const absl::Status& error = pending.result.status();
    return timer.Fail(
        absl::Status(error.code(), absl::StrCat("model '", version.model_name, "' version ",
                                                version.version, ": ", error.message())));
  }
  timer.Inferred();
  response->set_model_name(version.model_name);
  response->set_model_version(version.version_string);
  response->set_id(request.id());
  if (absl::Status encoded = EncodeOutputs(*std::move(pending.result), *placed, response);
      !encoded.ok()) {
    return timer.Fail(absl::Status(
        encoded.code(), absl::StrCat("model '", version.model_name, "': ", encoded.message())));
  }
  timer.Succeed(pending.queue_time, pending.compute_time);
  return absl::OkStatus();
}

grpc::Status InferenceService::ModelInferBytes(grpc::ServerContext* context,
                                               const grpc::ByteBuffer* request,
                                               inference::ModelInferResponse* response) {
  if (auto denied = state_->Deny(context, ProtocolGroup::kInference)) return *denied;
  GatePass pass(&state_->gate);
  if (!pass.admitted()) {
    state_->CountRefused(absl::StatusCode::kUnavailable);
    return Unavailable("the server is shutting down");
  }
  inference::ModelInferRequest parsed;
  // Parsing consumes the buffer: its slices are freed as soon as the message holds the bytes,
  // rather than when this handler returns (the generated handler does the same). The buffer
  // is gRPC's for this call only; nothing reads it after this handler.
  grpc::ByteBuffer bytes;
  bytes.Swap(const_cast<grpc::ByteBuffer*>(request));
  if (!grpc::SerializationTraits<inference::ModelInferRequest>::Deserialize(&bytes, &parsed).ok()) {
    state_->CountRefused(absl::StatusCode::kInvalidArgument);
    return ToGrpcStatus(absl::InvalidArgumentError(
        "the message is not a ModelInferRequest (it does not parse as one)"));
  }
  return ToGrpcStatus(Infer(context, parsed, response));
}

grpc::ServerBidiReactor<grpc::ByteBuffer, grpc::ByteBuffer>* InferenceService::ModelStreamInfer(
    grpc::CallbackServerContext* context) {
  if (auto denied = state_->Deny(context, ProtocolGroup::kInference)) {
    return StreamInferReactor::Refuse(*denied);
  }
  if (state_->open_streams.fetch_add(1) >= state_->max_streams) {
    state_->open_streams.fetch_sub(1);
    state_->CountRefused(absl::StatusCode::kResourceExhausted);
    return StreamInferReactor::Refuse(grpc::Status(
        grpc::StatusCode::RESOURCE_EXHAUSTED,
        absl::StrCat("the server has ", state_->max_streams,
                     " ModelStreamInfer streams open, its limit (--grpc-max-streams): retry "
                     "later or use ModelInfer")));
  }
  auto handler = [this](grpc::CallbackServerContext* call,
                        const inference::ModelInferRequest& request)
      -> absl::StatusOr<inference::ModelStreamInferResponse> {
    GatePass pass(&state_->gate);
    if (!pass.admitted()) {
      state_->CountRefused(absl::StatusCode::kUnavailable);
      return absl::UnavailableError("the server is shutting down");
    }
    inference::ModelStreamInferResponse reply;
    absl::Status status = Infer(call, request, reply.mutable_infer_response());
    if (!status.ok()) {
      reply.Clear();
      reply.set_error_message(ShortenForClient(status.ToString(), kMaxStatusMessageBytes));
      reply.mutable_infer_response()->set_model_name(request.model_name());
      reply.mutable_infer_response()->set_id(request.id());
    }
    return reply;
  };
  return StreamInferReactor::Create(context, std::move(handler),
                                    [state = state_] { state->open_streams.fetch_sub(1); });
}

namespace {

grpc::Status SharedMemoryOff() {
  return ToGrpcStatus(absl::FailedPreconditionError(
      "shared memory is off on this server (start it with --allow-client-shm true)"));
}

}  // namespace

grpc::Status InferenceService::SystemSharedMemoryStatus(
    grpc::ServerContext* context, const inference::SystemSharedMemoryStatusRequest* request,
    inference::SystemSharedMemoryStatusResponse* response) {
  if (auto denied = state_->Deny(context, ProtocolGroup::kSharedMemory)) return *denied;
  if (state_->shared_memory == nullptr) return SharedMemoryOff();
  absl::StatusOr<std::vector<SharedMemoryRegions::Entry>> entries =
      state_->shared_memory->Status(request->name());
  if (!entries.ok()) return ToGrpcStatus(entries.status());
  for (const SharedMemoryRegions::Entry& entry : *entries) {
    auto& region = (*response->mutable_regions())[entry.name];
    region.set_name(entry.name);
    region.set_key(entry.key);
    region.set_offset(entry.offset);
    region.set_byte_size(entry.byte_size);
  }
  return grpc::Status::OK;
}

grpc::Status InferenceService::SystemSharedMemoryRegister(
    grpc::ServerContext* context, const inference::SystemSharedMemoryRegisterRequest* request,
    inference::SystemSharedMemoryRegisterResponse*) {
  if (auto denied = state_->Deny(context, ProtocolGroup::kSharedMemory)) return *denied;
  if (state_->shared_memory == nullptr) return SharedMemoryOff();
  return ToGrpcStatus(state_->shared_memory->Register(request->name(), request->key(),
                                                      request->offset(), request->byte_size()));
}

grpc::Status InferenceService::SystemSharedMemoryUnregister(
    grpc::ServerContext* context, const inference::SystemSharedMemoryUnregisterRequest* request,
    inference::SystemSharedMemoryUnregisterResponse*) {
  if (auto denied = state_->Deny(context, ProtocolGroup::kSharedMemory)) return *denied;
  if (state_->shared_memory == nullptr) return SharedMemoryOff();
  state_->shared_memory->Unregister(request->name());
  return grpc::Status::OK;
}

grpc::Status InferenceService::ModelStatistics(grpc::ServerContext* context,
                                               const inference::ModelStatisticsRequest* request,
                                               inference::ModelStatisticsResponse* response) {
  if (auto denied = state_->Deny(context, ProtocolGroup::kStatistics)) return *denied;
  absl::StatusOr<ModelRepository*> repository = state_->Repository();
  if (!repository.ok()) return ToGrpcStatus(repository.status());
  std::vector<std::string> names;
  if (request->name().empty()) {
    for (const IndexEntry& entry : (*repository)->Index(/*ready_only=*/true)) {
      if (names.empty() || names.back() != entry.model_name) names.push_back(entry.model_name);
    }
  } else {
    names.push_back(request->name());
  }
  for (const std::string& name : names) {
    if (!request->version().empty()) {
      auto version = (*repository)->Find(name, request->version());
      if (!version.ok()) return ToGrpcStatus(version.status());
      FillStatistics(**version, response->add_model_stats());
      continue;
    }
    auto versions = (*repository)->ReadyVersions(name);
    if (versions.empty() && !request->name().empty()) {
      return ToGrpcStatus((*repository)->Find(name, "").status());
    }
    for (const auto& version : versions) FillStatistics(*version, response->add_model_stats());
  }
  return grpc::Status::OK;
}

grpc::Status InferenceService::RepositoryIndex(grpc::ServerContext* context,
                                               const inference::RepositoryIndexRequest* request,
                                               inference::RepositoryIndexResponse* response) {
  if (auto denied = state_->Deny(context, ProtocolGroup::kModelRepository)) return *denied;
  absl::StatusOr<ModelRepository*> repository = state_->Repository();
  if (!repository.ok()) return ToGrpcStatus(repository.status());
  for (const IndexEntry& entry : (*repository)->Index(request->ready())) {
    auto* model = response->add_models();
    model->set_name(entry.model_name);
    model->set_version(entry.version);
    model->set_state(entry.state);
    model->set_reason(entry.reason);
  }
  return grpc::Status::OK;
}

grpc::Status InferenceService::RepositoryModelLoad(
    grpc::ServerContext* context, const inference::RepositoryModelLoadRequest* request,
    inference::RepositoryModelLoadResponse*) {
  if (auto denied = state_->Deny(context, ProtocolGroup::kModelRepository)) return *denied;
  absl::StatusOr<ModelRepository*> repository = state_->Repository();
  if (!repository.ok()) return ToGrpcStatus(repository.status());
  if (!request->parameters().empty()) {
    return grpc::Status(grpc::StatusCode::INVALID_ARGUMENT,
                        "load parameters (config or file overrides) are not supported");
  }
  return ToGrpcStatus((*repository)->LoadModel(request->model_name()));
}

grpc::Status InferenceService::RepositoryModelUnload(
    grpc::ServerContext* context, const inference::RepositoryModelUnloadRequest* request,
    inference::RepositoryModelUnloadResponse*) {
  if (auto denied = state_->Deny(context, ProtocolGroup::kModelRepository)) return *denied;
  absl::StatusOr<ModelRepository*> repository = state_->Repository();
  if (!repository.ok()) return ToGrpcStatus(repository.status());
  return ToGrpcStatus((*repository)->UnloadModel(request->model_name()));
}

}  // namespace torchbricks::server
