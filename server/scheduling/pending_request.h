// PendingRequest: one inference request on its way through a model version's
// DynamicBatcher — what the caller asks (stage, input views, outputs, deadline,
// cancellation probe) and, once `done` is notified, what it got (result and timings).
// Not thread-safe by itself: the caller fills it, hands it to DynamicBatcher::Enqueue(),
// and reads the results only after `done`; in between only the batcher touches it.
//
// The batcher's own bookkeeping (batch key, rows, time queued) is private to
// DynamicBatcher, so a caller can neither read it before it is set nor change it while
// the request is queued.
#ifndef TORCHBRICKS_SERVER_SCHEDULING_PENDING_REQUEST_H_
#define TORCHBRICKS_SERVER_SCHEDULING_PENDING_REQUEST_H_

#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "core/graph/stage.h"
#include "core/servable/host_tensor.h"

namespace torchbricks::server {

class DynamicBatcher;

class PendingRequest {
 public:
  // Filled by the caller. The views must stay valid until `done`.
  Stage stage = Stage::kInference;
  std::vector<HostTensorView> inputs;
  std::vector<std::string> outputs;
  absl::Time deadline = absl::InfiniteFuture();
  std::function<bool()> cancelled;  // may be empty

  // Filled by the batcher before `done` is notified.
  absl::StatusOr<std::vector<HostTensor>> result;
  absl::Duration queue_time;
  absl::Duration compute_time;
  int64_t batch_rows = 0;  // rows of the batch it ran in
  absl::Notification done;

 private:
  friend class DynamicBatcher;

  // Set by Enqueue(): requests with equal keys may share a batch (BatchKey()).
  std::string key_;
  // Set by Enqueue(): the request's rows (BatchRows()).
  int64_t rows_ = 0;
  // Set by Enqueue(): when the request arrived, for its queue time and queue delay.
  absl::Time enqueued_;
  // Set by Enqueue(): while the adaptive queue delay skips waits, this request waits out the
  // delay anyway, to see whether requests come together again.
  bool probe_ = false;
};

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_SCHEDULING_PENDING_REQUEST_H_
