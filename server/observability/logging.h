// Process-wide plain-text logging to stderr: one line per event, with a UTC timestamp and
// a severity letter. Thread-safe; lines from different threads never interleave.
//
//   Log(LogLevel::kInfo, absl::StrCat("loaded model '", name, "' version ", v));
#ifndef TORCHBRICKS_SERVER_OBSERVABILITY_LOGGING_H_
#define TORCHBRICKS_SERVER_OBSERVABILITY_LOGGING_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace torchbricks::server {

enum class LogLevel { kError = 0, kWarning = 1, kInfo = 2, kVerbose = 3 };
enum class LogFormat { kText, kJson };

// Plain text ("... key=value") or one JSON object per line. The default is text.
void SetLogFormat(LogFormat format);
// "text" or "json"; InvalidArgument otherwise.
absl::StatusOr<LogFormat> ParseLogFormat(absl::string_view name);

// Lines above `level` are dropped. The default is kInfo.
void SetLogLevel(LogLevel level);

// "error", "warning", "info" or "verbose"; InvalidArgument otherwise.
absl::StatusOr<LogLevel> ParseLogLevel(absl::string_view name);

void Log(LogLevel level, absl::string_view message);

// A line with structured fields (request ids, model names): "message k=v ..." in text,
// {"time":...,"level":...,"message":...,"k":"v"} in JSON.
// The most bytes of one field's value that LogEvent writes (the rest is counted).
inline constexpr size_t kMaxLogFieldBytes = 1024;

void LogEvent(LogLevel level, absl::string_view message,
              const std::vector<std::pair<std::string, std::string>>& fields);

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_OBSERVABILITY_LOGGING_H_
