#include "server/observability/logging.h"

#include <atomic>
#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"

namespace torchbricks::server {
namespace {

std::atomic<int> g_level{static_cast<int>(LogLevel::kInfo)};
std::atomic<int> g_format{static_cast<int>(LogFormat::kText)};

std::string JsonString(absl::string_view text) {
  std::string out = "\"";
  for (char c : text) {
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\n':
        out += "\\n";
        break;
      default:
        if (static_cast<unsigned char>(c) < 0x20) {
          out += absl::StrFormat("\\u%04x", static_cast<unsigned char>(c));
        } else {
          out += c;
        }
    }
  }
  return out + "\"";
}

}  // namespace

void SetLogFormat(LogFormat format) { g_format.store(static_cast<int>(format)); }

absl::StatusOr<LogFormat> ParseLogFormat(absl::string_view name) {
  if (name == "text") return LogFormat::kText;
  if (name == "json") return LogFormat::kJson;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown log format '", name, "'; use text or json"));
}

void SetLogLevel(LogLevel level) { g_level.store(static_cast<int>(level)); }

absl::StatusOr<LogLevel> ParseLogLevel(absl::string_view name) {
  if (name == "error") return LogLevel::kError;
  if (name == "warning") return LogLevel::kWarning;
  if (name == "info") return LogLevel::kInfo;
  if (name == "verbose") return LogLevel::kVerbose;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown log level '", name, "'; use error, warning, info or verbose"));
}

void Log(LogLevel level, absl::string_view message) { LogEvent(level, message, {}); }

void LogEvent(LogLevel level, absl::string_view message,
              const std::vector<std::pair<std::string, std::string>>& fields) {
  if (static_cast<int>(level) > g_level.load(std::memory_order_relaxed)) return;
  static constexpr char kLetters[] = {'E', 'W', 'I', 'V'};
  static constexpr const char* kNames[] = {"error", "warning", "info", "verbose"};
  const std::string time =
      absl::FormatTime("%Y-%m-%dT%H:%M:%E3SZ", absl::Now(), absl::UTCTimeZone());
  // Fields echo what clients sent: each is cut so one request cannot write megabytes.
  std::vector<std::pair<std::string, std::string>> shortened;
  shortened.reserve(fields.size());
  for (const auto& [key, value] : fields) {
    shortened.emplace_back(key,
                           value.size() <= kMaxLogFieldBytes
                               ? value
                               : absl::StrCat(value.substr(0, kMaxLogFieldBytes), "... (",
                                              value.size() - kMaxLogFieldBytes, " more bytes)"));
  }
  std::string line;
  if (g_format.load(std::memory_order_relaxed) == static_cast<int>(LogFormat::kJson)) {
    line = absl::StrCat("{\"time\":", JsonString(time), ",\"level\":\"",
                        kNames[static_cast<int>(level)], "\",\"message\":", JsonString(message));
    for (const auto& [key, value] : shortened) {
      absl::StrAppend(&line, ",", JsonString(key), ":", JsonString(value));
    }
    line += "}\n";
  } else {
    line = absl::StrCat(time, " ", std::string(1, kLetters[static_cast<int>(level)]), " ", message);
    for (const auto& [key, value] : shortened) {
      const bool quote = value.empty() || value.find_first_of(" \"=") != std::string::npos;
      absl::StrAppend(&line, " ", key, "=", quote ? JsonString(value) : value);
    }
    line += "\n";
  }
  // One fwrite per line: stdio locks the stream, so lines do not interleave.
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace torchbricks::server
