#include "server/observability/log_rate_limiter.h"

#include "gtest/gtest.h"

namespace torchbricks::server {
namespace {

TEST(LogRateLimiterTest, PassesABurstThenDropsAndReportsTheDropped) {
  LogRateLimiter limiter({.burst = 3, .per_second = 1});
  const absl::Time start = absl::FromUnixSeconds(1000);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(limiter.Admit(start), 0u) << i;
  for (int i = 0; i < 5; ++i) EXPECT_FALSE(limiter.Admit(start).has_value()) << i;
  // One token back after a second: the line passes and says five were dropped.
  EXPECT_EQ(limiter.Admit(start + absl::Seconds(1)), 5u);
  EXPECT_FALSE(limiter.Admit(start + absl::Seconds(1)).has_value());
}

TEST(LogRateLimiterTest, RefillsNoFurtherThanTheBurst) {
  LogRateLimiter limiter({.burst = 2, .per_second = 10});
  const absl::Time start = absl::FromUnixSeconds(1000);
  EXPECT_TRUE(limiter.Admit(start).has_value());
  const absl::Time later = start + absl::Hours(1);
  EXPECT_TRUE(limiter.Admit(later).has_value());
  EXPECT_TRUE(limiter.Admit(later).has_value());
  EXPECT_FALSE(limiter.Admit(later).has_value());
}

TEST(LogRateLimiterTest, AClockGoingBackDoesNotAddTokens) {
  LogRateLimiter limiter({.burst = 1, .per_second = 1});
  const absl::Time start = absl::FromUnixSeconds(1000);
  EXPECT_TRUE(limiter.Admit(start).has_value());
  EXPECT_FALSE(limiter.Admit(start - absl::Seconds(30)).has_value());
  EXPECT_FALSE(limiter.Admit(start).has_value());
}

}  // namespace
}  // namespace torchbricks::server
