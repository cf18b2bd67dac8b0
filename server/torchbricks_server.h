// TorchBricksServer: the whole serving process minus signal handling — it listens on the
// gRPC port first (live, not ready), loads the model repository, then turns ready. It
// serves inference.GRPCInferenceService, torchbricks.BrickService, grpc.health.v1.Health
// (SERVING exactly when ready) and server reflection.
//
//   ASSIGN_OR_RETURN(auto server, TorchBricksServer::Create(options));
//   ... wait for SIGTERM ...
//   server->Shutdown();   // not ready, refuse new requests, finish in-flight ones, stop
#ifndef TORCHBRICKS_SERVER_TORCHBRICKS_SERVER_H_
#define TORCHBRICKS_SERVER_TORCHBRICKS_SERVER_H_

#include <memory>
#include <thread>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "grpcpp/generic/async_generic_service.h"
#include "grpcpp/server.h"
#include "server/grpc/brick_service.h"
#include "server/grpc/inference_service.h"
#include "server/grpc/service_state.h"
#include "server/observability/metrics_http_server.h"
#include "server/repository/model_repository.h"
#include "server/server_options.h"

namespace torchbricks::server {

class TorchBricksServer {
 public:
  // Starts listening and loads the repository. Returns Unavailable when the port cannot
  // be bound and NotFound for a missing repository or start-up model.
  static absl::StatusOr<std::unique_ptr<TorchBricksServer>> Create(const ServerOptions& options);

  ~TorchBricksServer();  // calls Shutdown() if it has not run
  TorchBricksServer(const TorchBricksServer&) = delete;
  TorchBricksServer& operator=(const TorchBricksServer&) = delete;

  // The port actually bound (useful with --grpc-port 0).
  int port() const { return port_; }
  // The metrics port bound, or 0 when metrics are off.
  int metrics_port() const { return metrics_ == nullptr ? 0 : metrics_->port(); }

  // Graceful shutdown: readiness and health go false, new inference requests are refused
  // with UNAVAILABLE, in-flight ones get up to options.shutdown_timeout to finish, then
  // the gRPC server stops. Idempotent.
  void Shutdown();

 private:
  // Until stop_watching_: every kListenerCheckInterval, whether gRPC lost its listener; if
  // so, logs it once and reports the server neither ready nor live.
  void WatchListener();
  explicit TorchBricksServer(const ServerOptions& options) : options_(options) {}

  const ServerOptions options_;
  ServiceState state_;
  std::unique_ptr<InferenceService> inference_service_;
  std::unique_ptr<BrickService> brick_service_;
  // Answers UNIMPLEMENTED for methods nobody serves (InferenceService needs one registered).
  grpc::CallbackGenericService unknown_methods_;
  std::unique_ptr<grpc::Server> grpc_server_;
  std::unique_ptr<ModelRepository> repository_;
  std::unique_ptr<MetricsHttpServer> metrics_;  // null when metrics are off
  int port_ = 0;
  bool shut_down_ = false;
  // Turns readiness and liveness off when gRPC's listener is lost (WatchListener()).
  absl::Notification stop_watching_;
  std::thread listener_watcher_;
};

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_TORCHBRICKS_SERVER_H_
