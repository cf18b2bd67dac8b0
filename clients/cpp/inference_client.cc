#include "clients/cpp/inference_client.h"

#include <chrono>
#include <fstream>
#include <sstream>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "clients/cpp/grpc_status.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "grpcpp/grpcpp.h"
#include "proto/brick_service.grpc.pb.h"
#include "proto/grpc_service.grpc.pb.h"

namespace torchbricks::client {
namespace {

// Request metadata that names the stage ModelMetadata describes (docs/SERVER.md).
constexpr char kStageMetadataKey[] = "torchbricks-stage";

absl::StatusOr<std::string> ReadFile(const std::string& path, absl::string_view what) {
  std::ifstream file(path, std::ios::binary);
  if (!file)
    return absl::NotFoundError(absl::StrCat("cannot read the ", what, " file '", path, "'"));
  std::ostringstream contents;
  contents << file.rdbuf();
  return contents.str();
}

absl::Status CheckHeader(const std::string& key, const std::string& value) {
  bool valid_key = !key.empty() && !absl::StartsWith(key, "grpc-");
  for (const char c : key) {
    valid_key = valid_key && (absl::ascii_islower(c) || absl::ascii_isdigit(c) || c == '-' ||
                              c == '_' || c == '.');
  }
  if (!valid_key) {
    return absl::InvalidArgumentError(
        absl::StrCat("header key '", key,
                     "' is not one gRPC can send: lower-case letters, digits, '-', '_' or '.', "
                     "not starting with 'grpc-'"));
  }
  if (!absl::EndsWith(key, "-bin")) {
    for (const char c : value) {
      if (c < 0x20 || c > 0x7e) {
        return absl::InvalidArgumentError(absl::StrCat(
            "the value of header '", key, "' holds a byte that is not printable ASCII"));
      }
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> CredentialsFor(
    const ClientOptions& options) {
  const bool tls = options.use_tls || !options.root_certificates_file.empty() ||
                   !options.private_key_file.empty() || !options.certificate_chain_file.empty();
  if (!tls) return grpc::InsecureChannelCredentials();
  if (options.private_key_file.empty() != options.certificate_chain_file.empty()) {
    return absl::InvalidArgumentError(
        "mutual TLS needs both a client key and a client certificate chain");
  }
  grpc::SslCredentialsOptions ssl;
  if (!options.root_certificates_file.empty()) {
    absl::StatusOr<std::string> roots =
        ReadFile(options.root_certificates_file, "root certificates");
    if (!roots.ok()) return roots.status();
    ssl.pem_root_certs = *std::move(roots);
  }
  if (!options.private_key_file.empty()) {
    absl::StatusOr<std::string> key = ReadFile(options.private_key_file, "client key");
    if (!key.ok()) return key.status();
    absl::StatusOr<std::string> chain =
        ReadFile(options.certificate_chain_file, "client certificate chain");
    if (!chain.ok()) return chain.status();
    ssl.pem_private_key = *std::move(key);
    ssl.pem_cert_chain = *std::move(chain);
  }
  return grpc::SslCredentials(ssl);
}

ServingStatus ServingStatusOf(grpc::health::v1::HealthCheckResponse::ServingStatus status) {
  switch (status) {
    case grpc::health::v1::HealthCheckResponse::SERVING:
      return ServingStatus::kServing;
    case grpc::health::v1::HealthCheckResponse::NOT_SERVING:
      return ServingStatus::kNotServing;
    case grpc::health::v1::HealthCheckResponse::SERVICE_UNKNOWN:
      return ServingStatus::kServiceUnknown;
    default:
      return ServingStatus::kUnknown;
  }
}

std::chrono::system_clock::time_point DeadlineAfter(absl::Duration timeout) {
  return std::chrono::system_clock::now() + absl::ToChronoMicroseconds(timeout);
}

}  // namespace

absl::string_view ServingStatusName(ServingStatus status) {
  switch (status) {
    case ServingStatus::kServing:
      return "SERVING";
    case ServingStatus::kNotServing:
      return "NOT_SERVING";
    case ServingStatus::kServiceUnknown:
      return "SERVICE_UNKNOWN";
    case ServingStatus::kUnknown:
      break;
  }
  return "UNKNOWN";
}

// --- InferStream ---------------------------------------------------------------------------

struct InferStream::Call {
  grpc::ClientContext context;
  std::unique_ptr<
      grpc::ClientReaderWriter<inference::ModelInferRequest, inference::ModelStreamInferResponse>>
      stream;
  bool writes_closed = false;
  bool finished = false;
};

InferStream::InferStream(std::unique_ptr<Call> call) : call_(std::move(call)) {}

InferStream::~InferStream() {
  if (!call_->finished) {
    call_->context.TryCancel();
    (void)Finish();
  }
}

absl::Status InferStream::Write(const InferRequest& request) {
  if (call_->writes_closed) {
    return absl::FailedPreconditionError("the stream's writes are closed");
  }
  if (!call_->stream->Write(BuildModelInferRequest(request))) {
    return absl::UnavailableError("the stream is broken; Finish() says why");
  }
  return absl::OkStatus();
}

absl::Status InferStream::CloseWrites() {
  if (call_->writes_closed) return absl::OkStatus();
  call_->writes_closed = true;
  if (!call_->stream->WritesDone()) {
    return absl::UnavailableError("the stream is broken; Finish() says why");
  }
  return absl::OkStatus();
}

std::optional<absl::StatusOr<InferResult>> InferStream::Read() {
  inference::ModelStreamInferResponse reply;
  if (call_->finished || !call_->stream->Read(&reply)) return std::nullopt;
  if (!reply.error_message().empty()) return FromStreamErrorMessage(reply.error_message());
  return InferResultFromResponse(std::move(*reply.mutable_infer_response()));
}

absl::Status InferStream::Finish() {
  if (call_->finished) return absl::FailedPreconditionError("the stream is finished already");
  (void)CloseWrites();
  inference::ModelStreamInferResponse unread;
  while (call_->stream->Read(&unread)) {
  }
  call_->finished = true;
  return FromGrpcStatus(call_->stream->Finish());
}

absl::StatusOr<std::shared_ptr<grpc::Channel>> CreateChannel(const ClientOptions& options,
                                                             grpc::ChannelArguments arguments) {
  if (options.max_message_bytes <= 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("max_message_bytes must be positive, not ", options.max_message_bytes));
  }
  absl::StatusOr<std::shared_ptr<grpc::ChannelCredentials>> credentials = CredentialsFor(options);
  if (!credentials.ok()) return credentials.status();
  arguments.SetMaxReceiveMessageSize(options.max_message_bytes);
  arguments.SetMaxSendMessageSize(options.max_message_bytes);
  if (!options.tls_server_name.empty()) {
    arguments.SetSslTargetNameOverride(options.tls_server_name);
  }
  return grpc::CreateCustomChannel(options.url, *credentials, arguments);
}

// --- InferenceClient -------------------------------------------------------------------------

struct InferenceClient::Stubs {
  std::unique_ptr<inference::GRPCInferenceService::Stub> inference;
  std::unique_ptr<torchbricks::BrickService::Stub> bricks;
  std::unique_ptr<grpc::health::v1::Health::Stub> health;
};

absl::StatusOr<std::unique_ptr<InferenceClient>> InferenceClient::Create(
    const ClientOptions& options) {
  for (const auto& [key, value] : options.headers) {
    if (absl::Status status = CheckHeader(key, value); !status.ok()) return status;
  }
  absl::StatusOr<std::shared_ptr<grpc::Channel>> channel =
      CreateChannel(options, grpc::ChannelArguments());
  if (!channel.ok()) return channel.status();
  return std::unique_ptr<InferenceClient>(new InferenceClient(options, *std::move(channel)));
}

InferenceClient::InferenceClient(ClientOptions options, std::shared_ptr<grpc::Channel> channel)
    : options_(std::move(options)),
      channel_(std::move(channel)),
      stubs_(new Stubs{inference::GRPCInferenceService::NewStub(channel_),
                       torchbricks::BrickService::NewStub(channel_),
                       grpc::health::v1::Health::NewStub(channel_)}) {}

InferenceClient::~InferenceClient() {
  absl::MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](int* pending) { return *pending == 0; }, &pending_async_));
}

void InferenceClient::Prepare(grpc::ClientContext& context,
                              std::optional<absl::Duration> timeout) const {
  const absl::Duration deadline = timeout.value_or(options_.timeout);
  // Past a century there is no deadline: now + the timeout would overflow the clock.
  if (deadline < absl::Hours(24 * 365 * 100)) context.set_deadline(DeadlineAfter(deadline));
  for (const auto& [key, value] : options_.headers) context.AddMetadata(key, value);
}

absl::Status InferenceClient::WaitForConnection(absl::Duration timeout) {
  const auto deadline = DeadlineAfter(timeout);
  grpc_connectivity_state state = channel_->GetState(/*try_to_connect=*/true);
  while (state != GRPC_CHANNEL_READY) {
    if (state == GRPC_CHANNEL_TRANSIENT_FAILURE || state == GRPC_CHANNEL_SHUTDOWN) {
      return absl::UnavailableError(absl::StrCat("cannot connect to ", options_.url));
    }
    if (!channel_->WaitForStateChange(state, deadline)) {
      return absl::DeadlineExceededError(absl::StrCat("no connection to ", options_.url, " within ",
                                                      absl::FormatDuration(timeout)));
    }
    state = channel_->GetState(/*try_to_connect=*/true);
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> InferenceClient::ServerLive() {
  grpc::ClientContext context;
  Prepare(context);
  inference::ServerLiveResponse response;
  const grpc::Status status =
      stubs_->inference->ServerLive(&context, inference::ServerLiveRequest(), &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response.live();
}

absl::StatusOr<bool> InferenceClient::ServerReady() {
  grpc::ClientContext context;
  Prepare(context);
  inference::ServerReadyResponse response;
  const grpc::Status status =
      stubs_->inference->ServerReady(&context, inference::ServerReadyRequest(), &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response.ready();
}

absl::StatusOr<bool> InferenceClient::ModelReady(absl::string_view model,
                                                 absl::string_view version) {
  grpc::ClientContext context;
  Prepare(context);
  inference::ModelReadyRequest request;
  request.set_name(std::string(model));
  request.set_version(std::string(version));
  inference::ModelReadyResponse response;
  const grpc::Status status = stubs_->inference->ModelReady(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response.ready();
}

absl::StatusOr<ServingStatus> InferenceClient::HealthCheck(absl::string_view service) {
  grpc::ClientContext context;
  Prepare(context);
  grpc::health::v1::HealthCheckRequest request;
  request.set_service(std::string(service));
  grpc::health::v1::HealthCheckResponse response;
  const grpc::Status status = stubs_->health->Check(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return ServingStatusOf(response.status());
}

absl::StatusOr<inference::ServerMetadataResponse> InferenceClient::ServerMetadata() {
  grpc::ClientContext context;
  Prepare(context);
  inference::ServerMetadataResponse response;
  const grpc::Status status =
      stubs_->inference->ServerMetadata(&context, inference::ServerMetadataRequest(), &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::StatusOr<inference::ModelMetadataResponse> InferenceClient::ModelMetadata(
    absl::string_view model, absl::string_view version, absl::string_view stage) {
  grpc::ClientContext context;
  Prepare(context);
  if (!stage.empty()) context.AddMetadata(kStageMetadataKey, std::string(stage));
  inference::ModelMetadataRequest request;
  request.set_name(std::string(model));
  request.set_version(std::string(version));
  inference::ModelMetadataResponse response;
  const grpc::Status status = stubs_->inference->ModelMetadata(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::StatusOr<inference::ModelConfig> InferenceClient::ModelConfig(absl::string_view model,
                                                                    absl::string_view version) {
  grpc::ClientContext context;
  Prepare(context);
  inference::ModelConfigRequest request;
  request.set_name(std::string(model));
  request.set_version(std::string(version));
  inference::ModelConfigResponse response;
  const grpc::Status status = stubs_->inference->ModelConfig(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return std::move(*response.mutable_config());
}

absl::StatusOr<torchbricks::ModelGraphResponse> InferenceClient::ModelGraph(
    absl::string_view model, absl::string_view stage, absl::string_view version) {
  grpc::ClientContext context;
  Prepare(context);
  torchbricks::ModelGraphRequest request;
  request.set_model_name(std::string(model));
  request.set_model_version(std::string(version));
  request.set_stage(std::string(stage));
  torchbricks::ModelGraphResponse response;
  const grpc::Status status = stubs_->bricks->ModelGraph(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::StatusOr<InferResult> InferenceClient::Infer(const InferRequest& request) {
  grpc::ClientContext context;
  Prepare(context);
  inference::ModelInferResponse response;
  const grpc::Status status =
      stubs_->inference->ModelInfer(&context, BuildModelInferRequest(request), &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return InferResultFromResponse(std::move(response));
}

void InferenceClient::AsyncInfer(const InferRequest& request, InferCallback done) {
  // Lives until gRPC has answered; the callback deletes it.
  struct Call {
    grpc::ClientContext context;
    inference::ModelInferRequest request;
    inference::ModelInferResponse response;
    InferCallback done;
  };
  auto* call = new Call{.request = BuildModelInferRequest(request), .done = std::move(done)};
  Prepare(call->context);
  {
    absl::MutexLock lock(&mu_);
    ++pending_async_;
  }
  stubs_->inference->async()->ModelInfer(
      &call->context, &call->request, &call->response, [this, call](grpc::Status status) {
        if (status.ok()) {
          call->done(InferResultFromResponse(std::move(call->response)));
        } else {
          call->done(FromGrpcStatus(status));
        }
        delete call;
        absl::MutexLock lock(&mu_);
        --pending_async_;
      });
}

absl::StatusOr<std::unique_ptr<InferStream>> InferenceClient::OpenStream(absl::Duration timeout) {
  auto call = std::make_unique<InferStream::Call>();
  Prepare(call->context, timeout);
  call->stream = stubs_->inference->ModelStreamInfer(&call->context);
  if (call->stream == nullptr) return absl::InternalError("gRPC did not open the stream");
  return std::unique_ptr<InferStream>(new InferStream(std::move(call)));
}

absl::Status InferenceClient::RegisterSystemSharedMemory(absl::string_view name,
                                                         absl::string_view key, int64_t byte_size,
                                                         int64_t offset) {
  if (byte_size < 0 || offset < 0) {
    return absl::InvalidArgumentError(absl::StrCat("region '", name, "': byte size ", byte_size,
                                                   " and offset ", offset,
                                                   " must not be negative"));
  }
  grpc::ClientContext context;
  Prepare(context);
  inference::SystemSharedMemoryRegisterRequest request;
  request.set_name(std::string(name));
  request.set_key(std::string(key));
  request.set_byte_size(static_cast<uint64_t>(byte_size));
  request.set_offset(static_cast<uint64_t>(offset));
  inference::SystemSharedMemoryRegisterResponse response;
  return FromGrpcStatus(
      stubs_->inference->SystemSharedMemoryRegister(&context, request, &response));
}

absl::StatusOr<inference::SystemSharedMemoryStatusResponse>
InferenceClient::SystemSharedMemoryStatus(absl::string_view name) {
  grpc::ClientContext context;
  Prepare(context);
  inference::SystemSharedMemoryStatusRequest request;
  request.set_name(std::string(name));
  inference::SystemSharedMemoryStatusResponse response;
  const grpc::Status status =
      stubs_->inference->SystemSharedMemoryStatus(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::Status InferenceClient::UnregisterSystemSharedMemory(absl::string_view name) {
  grpc::ClientContext context;
  Prepare(context);
  inference::SystemSharedMemoryUnregisterRequest request;
  request.set_name(std::string(name));
  inference::SystemSharedMemoryUnregisterResponse response;
  return FromGrpcStatus(
      stubs_->inference->SystemSharedMemoryUnregister(&context, request, &response));
}

absl::StatusOr<inference::RepositoryIndexResponse> InferenceClient::RepositoryIndex(
    bool ready_only) {
  grpc::ClientContext context;
  Prepare(context);
  inference::RepositoryIndexRequest request;
  request.set_ready(ready_only);
  inference::RepositoryIndexResponse response;
  const grpc::Status status = stubs_->inference->RepositoryIndex(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::Status InferenceClient::LoadModel(absl::string_view model) {
  grpc::ClientContext context;
  Prepare(context);
  inference::RepositoryModelLoadRequest request;
  request.set_model_name(std::string(model));
  inference::RepositoryModelLoadResponse response;
  return FromGrpcStatus(stubs_->inference->RepositoryModelLoad(&context, request, &response));
}

absl::Status InferenceClient::UnloadModel(absl::string_view model) {
  grpc::ClientContext context;
  Prepare(context);
  inference::RepositoryModelUnloadRequest request;
  request.set_model_name(std::string(model));
  inference::RepositoryModelUnloadResponse response;
  return FromGrpcStatus(stubs_->inference->RepositoryModelUnload(&context, request, &response));
}

absl::StatusOr<inference::ModelStatisticsResponse> InferenceClient::ModelStatistics(
    absl::string_view model, absl::string_view version) {
  grpc::ClientContext context;
  Prepare(context);
  inference::ModelStatisticsRequest request;
  request.set_name(std::string(model));
  request.set_version(std::string(version));
  inference::ModelStatisticsResponse response;
  const grpc::Status status = stubs_->inference->ModelStatistics(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

absl::StatusOr<torchbricks::BrickStatisticsResponse> InferenceClient::BrickStatistics(
    absl::string_view model, absl::string_view version) {
  grpc::ClientContext context;
  Prepare(context);
  torchbricks::BrickStatisticsRequest request;
  request.set_model_name(std::string(model));
  request.set_model_version(std::string(version));
  torchbricks::BrickStatisticsResponse response;
  const grpc::Status status = stubs_->bricks->BrickStatistics(&context, request, &response);
  if (!status.ok()) return FromGrpcStatus(status);
  return response;
}

}  // namespace torchbricks::client
