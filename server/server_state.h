// ServerState: what the gRPC services share — the repository once start-up has loaded
// it, the request gate that drains on shutdown, and readiness. Owned by InferenceServer;
// services borrow it for their whole life. Thread-safe.
#ifndef TORCHBRICKS_SERVER_SERVER_STATE_H_
#define TORCHBRICKS_SERVER_SERVER_STATE_H_

#include <atomic>

#include "server/model_repository.h"
#include "server/model_statistics.h"
#include "server/request_gate.h"

namespace torchbricks::server {

struct ServerState {
  // Null until start-up has loaded the models; set once, then stable.
  std::atomic<ModelRepository*> repository{nullptr};
  RequestGate gate;
  // True once start-up is done, false again when shutdown begins.
  std::atomic<bool> ready{false};
  // Inference requests refused before reaching a model version, by status code.
  std::atomic<uint64_t> refused[kStatusCodes] = {};
  void CountRefused(absl::StatusCode code) {
    const int c = static_cast<int>(code);
    if (c >= 0 && c < kStatusCodes) refused[c].fetch_add(1, std::memory_order_relaxed);
  }
};

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_SERVER_STATE_H_
