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
#include <optional>

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

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

}  // namespace torchbricks::server

#endif  // TORCHBRICKS_SERVER_OBSERVABILITY_LOG_RATE_LIMITER_H_
