// The one adapter between libtorch's exceptions and absl::Status. Every call into
// libtorch that can throw goes through CallTorch(), so no exception leaves core/.
//
//   absl::Status s = CallTorch("brick 'head'", [&] { out = module.forward(args); });
#ifndef TORCHBRICKS_CORE_LIBTORCH_TORCH_ERRORS_H_
#define TORCHBRICKS_CORE_LIBTORCH_TORCH_ERRORS_H_

#include <exception>
#include <string>
#include <utility>
#include "absl/strings/string_view.h"

#include "absl/status/status.h"

namespace torchbricks {

// Turns a caught exception into a status with code `code` whose message is
// "<context>: <the exception's concise message>". For c10::Error the backtrace is dropped;
// for TorchScript interpreter errors only the final error line is kept.
absl::Status TorchExceptionToStatus(absl::string_view context, const std::exception& error,
                                    absl::StatusCode code = absl::StatusCode::kInternal);

// Runs `fn` and returns OK, or the status of the exception it threw (see above).
template <typename Fn>
absl::Status CallTorch(absl::string_view context, Fn&& fn,
                       absl::StatusCode code = absl::StatusCode::kInternal) {
  try {
    std::forward<Fn>(fn)();
    return absl::OkStatus();
  } catch (const std::exception& error) {
    return TorchExceptionToStatus(context, error, code);
  } catch (...) {
    return absl::Status(code, std::string(context) + ": unknown exception");
  }
}

}  // namespace torchbricks

#endif  // TORCHBRICKS_CORE_LIBTORCH_TORCH_ERRORS_H_
