// RequestGate: admits requests until draining starts, counts those in flight, and lets
// shutdown wait until they have all finished. Thread-safe.
//
//   if (!gate.TryEnter()) return UNAVAILABLE;   // draining: refuse
//   ... serve ...
//   gate.Exit();
#ifndef TORCHBRICKS_SERVER_SCHEDULING_REQUEST_GATE_H_
#define TORCHBRICKS_SERVER_SCHEDULING_REQUEST_GATE_H_

#include <cstdint>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

namespace torchbricks::server {

class RequestGate {
 public:
  RequestGate() = default;
  RequestGate(const RequestGate&) = delete;
  RequestGate& operator=(const RequestGate&) = delete;

  // True, and the request counts as in flight, unless draining has started.
  bool TryEnter() {
    absl::MutexLock lock(&mu_);
    if (draining_) return false;
    ++in_flight_;
    return true;
  }
  // Ends a request that TryEnter() admitted.
  void Exit() {
    absl::MutexLock lock(&mu_);
    --in_flight_;
  }
  // From now on TryEnter() refuses.
  void StartDraining() {
    absl::MutexLock lock(&mu_);
    draining_ = true;
  }
  bool draining() const {
    absl::MutexLock lock(&mu_);
    return draining_;
  }
  // Waits until no request is in flight or `timeout` passes; true when idle.
  bool WaitIdle(absl::Duration timeout) {
    absl::MutexLock lock(&mu_);
    auto idle = [this]() ABSL_SHARED_LOCKS_REQUIRED(mu_) { return in_flight_ == 0; };
    return mu_.AwaitWithTimeout(absl::Condition(&idle), timeout);
  }
  int64_t in_flight() const {
    absl::MutexLock lock(&mu_);
    return in_flight_;
  }

 private:
  mutable absl::Mutex mu_;
  bool draining_ ABSL_GUARDED_BY(mu_) = false;
  int64_t in_flight_ ABSL_GUARDED_BY(mu_) = 0;
};

// Holds a place in a RequestGate for one scope.
class GatePass {
 public:
  explicit GatePass(RequestGate* gate) : gate_(gate), admitted_(gate->TryEnter()) {}
  ~GatePass() {
    if (admitted_) gate_->Exit();
  }
  GatePass(const GatePass&) = delete;
  GatePass& operator=(const GatePass&) = delete;
  bool admitted() const { return admitted_; }

 private:
  RequestGate* gate_;
  bool admitted_;
};

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_SCHEDULING_REQUEST_GATE_H_
