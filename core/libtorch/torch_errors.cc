#include "core/libtorch/torch_errors.h"

#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "c10/util/Exception.h"

namespace torchbricks {
namespace {

// TorchScript errors carry a multi-line traceback that ends in the error itself.
std::string ConciseMessage(const std::string& text) {
  std::vector<absl::string_view> lines = absl::StrSplit(text, '\n', absl::SkipWhitespace());
  if (lines.empty()) return text;
  const bool scripted = text.find("TorchScript") != std::string::npos;
  return std::string(absl::StripAsciiWhitespace(scripted ? lines.back() : lines.front()));
}

}  // namespace

absl::Status TorchExceptionToStatus(absl::string_view context, const std::exception& error,
                                    absl::StatusCode code) {
  std::string message;
  if (const auto* c10_error = dynamic_cast<const c10::Error*>(&error)) {
    message = ConciseMessage(c10_error->what_without_backtrace());
  } else {
    message = ConciseMessage(error.what());
  }
  return absl::Status(code, absl::StrCat(context, ": ", message));
}

}  // namespace torchbricks
