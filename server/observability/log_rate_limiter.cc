#include "server/observability/log_rate_limiter.h"

#include <algorithm>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace torchbricks::server {

std::optional<uint64_t> LogRateLimiter::Admit(absl::Time now) {
  absl::MutexLock lock(&mu_);
  if (refilled_ != absl::InfinitePast() && now > refilled_) {
    tokens_ = std::min(options_.burst,
                       tokens_ + absl::ToDoubleSeconds(now - refilled_) * options_.per_second);
  }
  refilled_ = std::max(refilled_, now);
  if (tokens_ < 1) {
    ++dropped_;
    return std::nullopt;
  }
  tokens_ -= 1;
  const uint64_t dropped = dropped_;
  dropped_ = 0;
  return dropped;
}

LogRateLimiter& KeyedLogRateLimiter::For(absl::string_view key) {
  absl::MutexLock lock(&mu_);
  auto it = limiters_.find(key);
  if (it != limiters_.end()) return *it->second;
  if (limiters_.size() >= kMaxKeys) return overflow_;
  return *limiters_.emplace(std::string(key), std::make_unique<LogRateLimiter>(options_))
              .first->second;
}

void LogEventLimited(LogRateLimiter& limiter, LogLevel level, absl::string_view message,
                     std::vector<std::pair<std::string, std::string>> fields) {
  const std::optional<uint64_t> dropped = limiter.Admit(absl::Now());
  if (!dropped.has_value()) return;
  if (*dropped > 0) fields.emplace_back("lines_dropped_before", absl::StrCat(*dropped));
  LogEvent(level, message, fields);
}

}  // namespace torchbricks::server
