// ServerState: what the gRPC services share — the repository once start-up has loaded
// it, the request gate that drains on shutdown, and readiness. Owned by InferenceServer;
// services borrow it for their whole life. Thread-safe.
#ifndef TORCHBRICKS_SERVER_SERVER_STATE_H_
#define TORCHBRICKS_SERVER_SERVER_STATE_H_

#include <atomic>

#include "server/model_repository.h"
#include "server/request_gate.h"

namespace torchbricks::server {

struct ServerState {
  // Null until start-up has loaded the models; set once, then stable.
  std::atomic<ModelRepository*> repository{nullptr};
  RequestGate gate;
  // True once start-up is done, false again when shutdown begins.
  std::atomic<bool> ready{false};
};

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_SERVER_STATE_H_
