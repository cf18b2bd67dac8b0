// RunLimits: when a run of a collection should give up before it is done.
//
// A run serves one or more requests (a batch). It is worth finishing while at least one
// of them still wants the answer: its deadline has not passed and its client has not gone
// away (nor has the server's shutdown timeout passed, which cancels every call). The
// executor checks the limits between bricks, and long decoding steps (a progressive JPEG)
// check them as they go, so a request that nobody waits for stops holding a worker.
// Torch-free; a value type, safe to copy; Check() is as thread-safe as `cancelled`.
//
//   RunLimits limits{.deadline = absl::Now() + absl::Seconds(2)};
//   RETURN_IF_ERROR(limits.Check("decoding input 'image'"));
#ifndef TORCHBRICKS_CORE_GRAPH_RUN_LIMITS_H_
#define TORCHBRICKS_CORE_GRAPH_RUN_LIMITS_H_

#include <functional>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace torchbricks {

struct RunLimits {
  // The latest deadline of the requests served; past it nobody waits for the answer.
  absl::Time deadline = absl::InfiniteFuture();
  // True once every request served was cancelled. May be empty (never cancelled). Called
  // from the running thread, possibly often: it must be cheap.
  std::function<bool()> cancelled;

  // True once the run should stop (what Check() then explains). Cheap: no allocation.
  bool Reached() const;

  // OK while the run should go on. Otherwise DeadlineExceeded or Cancelled, the message
  // saying that the run stopped while `doing` (e.g. "decoding input 'image' element 3").
  absl::Status Check(absl::string_view doing) const;
};

}  // namespace torchbricks

#endif  // TORCHBRICKS_CORE_GRAPH_RUN_LIMITS_H_
