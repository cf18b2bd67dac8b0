#include "server/observability/log_rate_limiter.h"

#include <algorithm>

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

}  // namespace torchbricks::server
