// Process-wide plain-text logging to stderr: one line per event, with a UTC timestamp and
// a severity letter. Thread-safe; lines from different threads never interleave.
//
//   Log(LogLevel::kInfo, absl::StrCat("loaded model '", name, "' version ", v));
#ifndef TORCHBRICKS_SERVER_LOGGING_H_
#define TORCHBRICKS_SERVER_LOGGING_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace torchbricks::server {

enum class LogLevel { kError = 0, kWarning = 1, kInfo = 2, kVerbose = 3 };

// Lines above `level` are dropped. The default is kInfo.
void SetLogLevel(LogLevel level);

// "error", "warning", "info" or "verbose"; InvalidArgument otherwise.
absl::StatusOr<LogLevel> ParseLogLevel(absl::string_view name);

void Log(LogLevel level, absl::string_view message);

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_LOGGING_H_
