#include "base/clock.h"

#include <chrono>
#include <thread>

#include "gtest/gtest.h"

namespace fhirgw::base {
namespace {

TEST(UnixMillisTest, MatchesTheSystemClock) {
  const int64_t before = std::chrono::duration_cast<std::chrono::milliseconds>(
                             std::chrono::system_clock::now().time_since_epoch())
                             .count();
  const int64_t now = UnixMillis();
  const int64_t after = std::chrono::duration_cast<std::chrono::milliseconds>(
                            std::chrono::system_clock::now().time_since_epoch())
                            .count();
  EXPECT_LE(before, now);
  EXPECT_LE(now, after);
  EXPECT_GT(now, int64_t{1'600'000'000'000});  // after September 2020: milliseconds, not seconds
}

TEST(DeadlineFromNowTest, IsTheTimeoutAfterNow) {
  const auto before = std::chrono::system_clock::now();
  const auto deadline = DeadlineFromNow(std::chrono::milliseconds(1500));
  const auto after = std::chrono::system_clock::now();
  EXPECT_GE(deadline, before + std::chrono::milliseconds(1500));
  EXPECT_LE(deadline, after + std::chrono::milliseconds(1500));
}

TEST(StopwatchTest, CountsElapsedTime) {
  Stopwatch watch;
  EXPECT_GE(watch.ElapsedMillis(), 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(20));
  EXPECT_GE(watch.ElapsedMillis(), 20);
  EXPECT_GE(watch.ElapsedSeconds(), 0.020);
}

}  // namespace
}  // namespace fhirgw::base
