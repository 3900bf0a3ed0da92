// The per-address authentication failure limiter.
#include "broker/auth/failure_limiter.hpp"

#include <gtest/gtest.h>

namespace zguard::auth {
namespace {

using std::chrono::milliseconds;

TEST(FailureLimiter, BlocksAfterTheLimitWithinTheWindowThenCoolsDown) {
  FailureLimiter limiter({3, milliseconds(1000), milliseconds(500), 100});
  const auto t0 = FailureLimiter::Clock::now();
  EXPECT_FALSE(limiter.RecordFailure("10.0.0.1", t0));
  EXPECT_FALSE(limiter.RecordFailure("10.0.0.1", t0 + milliseconds(10)));
  EXPECT_FALSE(limiter.Blocked("10.0.0.1", t0 + milliseconds(20)));
  EXPECT_TRUE(limiter.RecordFailure("10.0.0.1", t0 + milliseconds(20)));
  EXPECT_TRUE(limiter.Blocked("10.0.0.1", t0 + milliseconds(30)));
  EXPECT_FALSE(limiter.Blocked("10.0.0.2", t0 + milliseconds(30)));  // per address
  EXPECT_TRUE(limiter.Blocked("10.0.0.1", t0 + milliseconds(519)));
  EXPECT_FALSE(limiter.Blocked("10.0.0.1", t0 + milliseconds(520)));
}

TEST(FailureLimiter, FailuresOutsideTheWindowDoNotAddUp) {
  FailureLimiter limiter({3, milliseconds(100), milliseconds(500), 100});
  const auto t0 = FailureLimiter::Clock::now();
  for (int i = 0; i < 10; ++i) {
    EXPECT_FALSE(limiter.RecordFailure("10.0.0.1", t0 + milliseconds(60 * i))) << i;
  }
}

TEST(FailureLimiter, ZeroLimitDisablesIt) {
  FailureLimiter limiter({0, milliseconds(100), milliseconds(500), 100});
  const auto t0 = FailureLimiter::Clock::now();
  for (int i = 0; i < 100; ++i) EXPECT_FALSE(limiter.RecordFailure("10.0.0.1", t0));
  EXPECT_FALSE(limiter.Blocked("10.0.0.1", t0));
}

TEST(FailureLimiter, MemoryIsBounded) {
  FailureLimiter limiter({5, milliseconds(100), milliseconds(100), 50});
  const auto t0 = FailureLimiter::Clock::now();
  for (int i = 0; i < 1000; ++i) limiter.RecordFailure("10.0." + std::to_string(i), t0);
  EXPECT_LE(limiter.tracked(), 50U);
  // Once the old entries have expired they make room again.
  limiter.RecordFailure("192.168.0.1", t0 + milliseconds(500));
  EXPECT_LE(limiter.tracked(), 50U);
  EXPECT_FALSE(limiter.Blocked("192.168.0.1", t0 + milliseconds(500)));
}

}  // namespace
}  // namespace zguard::auth
