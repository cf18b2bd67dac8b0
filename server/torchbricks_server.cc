#include "server/torchbricks_server.h"

#include <algorithm>
#include <fstream>
#include <memory>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/status_macros.h"
#include "base/usable_cores.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/resource_quota.h"
#include "grpcpp/security/server_credentials.h"
#include "grpcpp/security/tls_certificate_provider.h"
#include "grpcpp/security/tls_credentials_options.h"
#include "grpcpp/server_builder.h"
#include "server/listener_watch.h"
#include "server/observability/logging.h"
#include "server/server_metrics.h"

namespace torchbricks::server {
namespace {

// After the last in-flight request, how long new requests are still refused with
// UNAVAILABLE before the port closes.
constexpr absl::Duration kRefusalWindow = absl::Milliseconds(250);

// The health service name that reports liveness (for Kubernetes liveness probes).
constexpr char kLivenessService[] = "liveness";

// How often the listener watcher looks (server/listener_watch.h).
constexpr absl::Duration kListenerCheckInterval = absl::Milliseconds(250);

// A connection must finish its TLS and HTTP/2 handshakes within this time, or gRPC closes it
// (its default, 120 s, lets a client that never speaks hold a descriptor six times longer).
constexpr absl::Duration kHandshakeTimeout = absl::Seconds(20);

// OK when `path` names a readable PEM file; InvalidArgument naming `flag` otherwise.
absl::Status CheckPemFile(const char* flag, const std::string& path) {
  std::ifstream file(path);
  std::string head(4096, '\0');  // PEM may follow text such as OpenSSL's Bag Attributes
  file.read(head.data(), static_cast<std::streamsize>(head.size()));
  if (!file.good() && !file.eof()) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " ", path, ": cannot be read"));
  }
  if (head.find("-----BEGIN") == std::string::npos) {
    return absl::InvalidArgumentError(absl::StrCat(flag, " ", path, ": not a PEM file"));
  }
  return absl::OkStatus();
}

// Insecure credentials, or TLS (mutual with --grpc-use-ssl-mutual) from certificate files
// that gRPC reads again every --grpc-cert-refresh-secs.
absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> ServerCredentialsOf(
    const ServerOptions& options) {
  if (!options.grpc_use_ssl) return grpc::InsecureServerCredentials();
  RETURN_IF_ERROR(CheckPemFile("--grpc-server-cert", options.grpc_server_cert));
  RETURN_IF_ERROR(CheckPemFile("--grpc-server-key", options.grpc_server_key));
  if (options.grpc_use_ssl_mutual) {
    RETURN_IF_ERROR(CheckPemFile("--grpc-root-cert", options.grpc_root_cert));
  }
  auto files = std::make_shared<grpc::experimental::FileWatcherCertificateProvider>(
      options.grpc_server_key, options.grpc_server_cert,
      options.grpc_use_ssl_mutual ? options.grpc_root_cert : "",
      static_cast<unsigned int>(options.grpc_cert_refresh_secs));
  grpc::experimental::TlsServerCredentialsOptions tls(files);
  tls.watch_identity_key_cert_pairs();
  if (options.grpc_use_ssl_mutual) {
    tls.watch_root_certs();
    tls.set_cert_request_type(GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY);
  } else {
    tls.set_cert_request_type(GRPC_SSL_DONT_REQUEST_CLIENT_CERTIFICATE);
  }
  return grpc::experimental::TlsServerCredentials(tls);
}

}  // namespace

absl::StatusOr<std::unique_ptr<TorchBricksServer>> TorchBricksServer::Create(
    const ServerOptions& options) {
  std::unique_ptr<TorchBricksServer> server(new TorchBricksServer(options));
  server->inference_service_ = std::make_unique<InferenceService>(&server->state_);
  server->brick_service_ = std::make_unique<BrickService>(&server->state_);

  grpc::EnableDefaultHealthCheckService(true);
  grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  const std::string address = absl::StrCat(options.grpc_address.find(':') != std::string::npos
                                               ? "[" + options.grpc_address + "]"
                                               : options.grpc_address,
                                           ":", options.grpc_port);
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> credentials,
                   ServerCredentialsOf(options));
  ASSIGN_OR_RETURN(server->state_.access, AccessPolicy::Create(options.restricted_protocols));
  builder.AddListeningPort(address, credentials, &server->port_);
  // gRPC sets SO_REUSEPORT by default, so a second server on the same port would start and
  // take half the connections; sharing a port is only on request (--reuse-grpc-port).
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, options.reuse_grpc_port ? 1 : 0);
  builder.AddChannelArgument(GRPC_ARG_SERVER_HANDSHAKE_TIMEOUT_MS,
                             static_cast<int>(absl::ToInt64Milliseconds(kHandshakeTimeout)));
  // Each synchronous call in flight holds one of gRPC's threads: bound them, and so the
  // calls in flight (one that finds no thread is refused RESOURCE_EXHAUSTED).
  grpc::ResourceQuota quota("torchbricks-server");
  quota.SetMaxThreads(options.grpc_max_threads);
  builder.SetResourceQuota(quota);
  server->state_.request_bytes.set_limit(static_cast<uint64_t>(options.max_inflight_bytes));
  server->state_.max_streams = options.grpc_max_streams;
  if (options.allow_client_shm) {
    server->state_.shared_memory = std::make_unique<SharedMemoryRegions>();
  }
  builder.SetMaxReceiveMessageSize(options.max_message_bytes);
  builder.SetMaxSendMessageSize(options.max_message_bytes);
  builder.RegisterService(server->inference_service_.get());
  builder.RegisterCallbackGenericService(&server->unknown_methods_);
  builder.RegisterService(server->brick_service_.get());
  server->grpc_server_ = builder.BuildAndStart();
  if (server->grpc_server_ == nullptr || server->port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", address, " (is the port in use or the address wrong?)"));
  }
  // "" (the server) is SERVING exactly when ready; "liveness" whenever the process runs.
  server->grpc_server_->GetHealthCheckService()->SetServingStatus("", false);
  server->grpc_server_->GetHealthCheckService()->SetServingStatus(kLivenessService, true);
  server->listener_watcher_ = std::thread([s = server.get()] { s->WatchListener(); });
  Log(LogLevel::kInfo, absl::StrCat("listening on ", options.grpc_address, ":", server->port_,
                                    options.grpc_use_ssl_mutual ? " with mutual TLS"
                                    : options.grpc_use_ssl      ? " with TLS"
                                                                : "",
                                    " (live, loading models)"));
  if (options.allow_metrics) {
    ASSIGN_OR_RETURN(
        server->metrics_,
        MetricsHttpServer::Start(options.grpc_address, options.metrics_port,
                                 [state = &server->state_] { return ScrapeMetrics(*state); }));
    Log(LogLevel::kInfo, absl::StrCat("metrics on http://", options.grpc_address, ":",
                                      server->metrics_->port(), "/metrics"));
  }

  ModelRepository::Options repository_options;
  repository_options.root = options.model_repository;
  repository_options.control_mode = options.control_mode;
  repository_options.poll_interval = options.poll_interval;
  repository_options.startup_models = options.startup_models;
  const int warmup_runs = options.warmup_runs;
  repository_options.loader =
      [warmup_runs](
          const std::filesystem::path& dir, const std::string& device, int intra_op_threads,
          int runners,
          const config::ModelConfig& config) -> absl::StatusOr<std::unique_ptr<ServableModel>> {
    auto parallel = config.parameters().find("parallel_branches");
    // Bounded by the core (0..kMaxImagePixels); 0 or absent: the budget of the input's size.
    int64_t max_image_pixels = 0;
    auto pixels = config.parameters().find("max_image_pixels");
    if (pixels != config.parameters().end() &&
        (!absl::SimpleAtoi(pixels->second, &max_image_pixels) || max_image_pixels < 0)) {
      return absl::InvalidArgumentError(absl::StrCat("parameters[\"max_image_pixels\"] '",
                                                     pixels->second.substr(0, 64),
                                                     "' is not a whole number of pixels"));
    }
    return LoadServableModel(
        {.version_dir = dir,
         .warmup_runs = warmup_runs,
         .device = device,
         .parallel_branches = parallel != config.parameters().end() && parallel->second == "true",
         .intra_op_threads = intra_op_threads,
         .max_image_pixels = max_image_pixels,
         .runners = runners});
  };
  // Sizes every default layout and bound: the CPUs this process may use, not the host's.
  const UsableCores cores = DetectUsableCores();
  repository_options.cores = cores.cores;
  Log(LogLevel::kInfo, absl::StrCat("cores: ", cores.Describe()));
  repository_options.cuda = {.built = CudaBuilt(), .devices = CudaDeviceCount()};
  Log(LogLevel::kInfo,
      repository_options.cuda.usable()
          ? absl::StrCat("CUDA: ", repository_options.cuda.devices, " device(s) usable")
          : absl::StrCat("CUDA: none usable: ", repository_options.cuda.WhyUnusable()));
  repository_options.histograms = options.allow_metrics;
  repository_options.self_configuration_budget = options.self_configuration_budget;
  repository_options.chosen_config_dir = options.chosen_config_dir;
  repository_options.spin_before_block = options.spin_before_block;
  ASSIGN_OR_RETURN(server->repository_, ModelRepository::Create(std::move(repository_options)));
  server->state_.repository.store(server->repository_.get());
  server->state_.ready.store(true);
  // A listener lost while the models loaded keeps the server unready (WatchListener).
  server->grpc_server_->GetHealthCheckService()->SetServingStatus(
      "", !server->state_.listener_lost.load());
  Log(LogLevel::kInfo, "ready");
  return server;
}

TorchBricksServer::~TorchBricksServer() { Shutdown(); }

void TorchBricksServer::WatchListener() {
  while (!stop_watching_.WaitForNotificationWithTimeout(kListenerCheckInterval)) {
    if (!GrpcListenerLost() || state_.listener_lost.exchange(true)) continue;
    state_.ready.store(false);
    grpc_server_->GetHealthCheckService()->SetServingStatus("", false);
    grpc_server_->GetHealthCheckService()->SetServingStatus(kLivenessService, false);
    LogEvent(LogLevel::kError,
             "gRPC's listener stopped accepting connections (gRPC 1.51 gives up after a failed "
             "accept, e.g. when file descriptors ran out); the server is no longer ready or "
             "live and must be restarted",
             {{"open_file_limit", absl::StrCat(CurrentOpenFileLimit().soft)}});
  }
}

void TorchBricksServer::Shutdown() {
  if (shut_down_) return;
  shut_down_ = true;
  stop_watching_.Notify();
  if (listener_watcher_.joinable()) listener_watcher_.join();
  state_.ready.store(false);
  state_.gate.StartDraining();
  if (grpc_server_ != nullptr) {
    grpc_server_->GetHealthCheckService()->SetServingStatus("", false);
  }
  Log(LogLevel::kInfo, absl::StrCat("draining ", state_.gate.in_flight(), " in-flight request(s)"));
  if (!state_.gate.WaitIdle(options_.shutdown_timeout)) {
    Log(LogLevel::kWarning,
        absl::StrCat("shutdown timeout: ", state_.gate.in_flight(), " request(s) still running"));
  }
  // Keep answering UNAVAILABLE a little longer so that clients see the refusal and go
  // elsewhere, rather than having calls cut off in transit when the listener closes.
  absl::SleepFor(kRefusalWindow);
  if (grpc_server_ != nullptr) {
    // Nothing accepted is still running, so there is nothing to wait for: idle
    // connections and streams waiting for their next message are closed at once.
    grpc_server_->Shutdown(std::chrono::system_clock::now());
    grpc_server_->Wait();
  }
  metrics_.reset();
  state_.repository.store(nullptr);
  repository_.reset();
  Log(LogLevel::kInfo, "stopped");
}

}  // namespace torchbricks::server
