#include "core/graph/run_limits.h"

#include "absl/strings/str_cat.h"

namespace torchbricks {

bool RunLimits::Reached() const {
  return (deadline != absl::InfiniteFuture() && absl::Now() >= deadline) ||
         (cancelled && cancelled());
}

absl::Status RunLimits::Check(absl::string_view doing) const {
  if (deadline != absl::InfiniteFuture() && absl::Now() >= deadline) {
    return absl::DeadlineExceededError(
        absl::StrCat("the request's deadline passed while ", doing, "; the run stopped"));
  }
  if (cancelled && cancelled()) {
    return absl::CancelledError(absl::StrCat(
        "the request was cancelled (the client went away, or the server's shutdown timeout "
        "passed) while ",
        doing, "; the run stopped"));
  }
  return absl::OkStatus();
}

}  // namespace torchbricks
