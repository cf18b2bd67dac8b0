// LogRateLimiter: keeps a source of log lines that outsiders can trigger (gRPC's lines
// about failed TLS handshakes from unauthenticated peers, ~175 bytes each) from filling the
// log. A token bucket: up to `burst` lines at once, refilled at `per_second`; a line that
// finds no token is dropped and counted, and the next line let through reports how many
// were dropped. Thread-safe.
//
//   static LogRateLimiter limiter({.burst = 20, .per_second = 1});
//   if (auto pass = limiter.Admit(absl::Now())) Log(level, message, *pass /*dropped*/);
#ifndef TORCHBRICKS_SERVER_OBSERVABILITY_LOG_RATE_LIMITER_H_
#define TORCHBRICKS_SERVER_OBSERVABILITY_LOG_RATE_LIMITER_H_

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "server/observability/logging.h"

namespace torchbricks::server {

class LogRateLimiter {
 public:
  struct Options {
    // Lines that may pass at once after a quiet spell.
    double burst = 20;
    // Lines per second that may pass in a steady stream.
    double per_second = 1;
  };
  explicit LogRateLimiter(Options options) : options_(options), tokens_(options.burst) {}
  LogRateLimiter(const LogRateLimiter&) = delete;
  LogRateLimiter& operator=(const LogRateLimiter&) = delete;

  // For a line arriving at `now`: nullopt when it is to be dropped (and counted); else the
  // number of lines dropped since the last one that passed (0 when none were), which the
  // caller should report with this line.
  std::optional<uint64_t> Admit(absl::Time now);

 private:
  const Options options_;
  absl::Mutex mu_;
  double tokens_ ABSL_GUARDED_BY(mu_);
  absl::Time refilled_ ABSL_GUARDED_BY(mu_) = absl::InfinitePast();
  uint64_t dropped_ ABSL_GUARDED_BY(mu_) = 0;
};

// One LogRateLimiter per key (a log line's source file and line), made on first use, so a
// flood from one place (failed TLS handshakes) does not silence the others (a lost
// listener's one line, a trace being debugged). At most kMaxKeys keys; lines of further
// keys share one limiter. Thread-safe.
class KeyedLogRateLimiter {
 public:
  static constexpr size_t kMaxKeys = 256;

  explicit KeyedLogRateLimiter(LogRateLimiter::Options options)
      : options_(options), overflow_(options) {}
  KeyedLogRateLimiter(const KeyedLogRateLimiter&) = delete;
  KeyedLogRateLimiter& operator=(const KeyedLogRateLimiter&) = delete;

  // The limiter of `key`; valid as long as this object.
  LogRateLimiter& For(absl::string_view key);

 private:
  const LogRateLimiter::Options options_;
  absl::Mutex mu_;
  absl::flat_hash_map<std::string, std::unique_ptr<LogRateLimiter>> limiters_ ABSL_GUARDED_BY(mu_);
  LogRateLimiter overflow_;
};

// Logs through LogEvent() unless `limiter` drops the line; a line that passes after some
// were dropped carries their count in the field `lines_dropped_before`.
void LogEventLimited(LogRateLimiter& limiter, LogLevel level, absl::string_view message,
                     std::vector<std::pair<std::string, std::string>> fields);

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_OBSERVABILITY_LOG_RATE_LIMITER_H_
