// BrickService: torchbricks.BrickService, what the Open Inference Protocol lacks — the
// graph of a model version per stage and per-brick statistics. Borrows the ServiceState;
// called concurrently by gRPC's threads; keeps no state.
#ifndef TORCHBRICKS_SERVER_GRPC_BRICK_SERVICE_H_
#define TORCHBRICKS_SERVER_GRPC_BRICK_SERVICE_H_

#include "proto/brick_service.grpc.pb.h"
#include "server/grpc/service_state.h"

namespace torchbricks::server {

class BrickService final : public torchbricks::BrickService::Service {
 public:
  // `state` must outlive the service.
  explicit BrickService(ServiceState* state) : state_(state) {}

  grpc::Status ModelGraph(grpc::ServerContext*, const ModelGraphRequest* request,
                          ModelGraphResponse* response) override;
  grpc::Status BrickStatistics(grpc::ServerContext*, const BrickStatisticsRequest* request,
                               BrickStatisticsResponse* response) override;

 private:
  ServiceState* state_;
};

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_GRPC_BRICK_SERVICE_H_
