#include "base/clock.h"

namespace fhirgw::base {

int64_t UnixMillis() {
  return std::chrono::duration_cast<std::chrono::milliseconds>(
             std::chrono::system_clock::now().time_since_epoch())
      .count();
}

std::chrono::system_clock::time_point DeadlineFromNow(std::chrono::milliseconds timeout) {
  return std::chrono::system_clock::now() + timeout;
}

int64_t Stopwatch::ElapsedMillis() const {
  return std::chrono::duration_cast<std::chrono::milliseconds>(std::chrono::steady_clock::now() -
                                                               start_)
      .count();
}

double Stopwatch::ElapsedSeconds() const {
  return std::chrono::duration<double>(std::chrono::steady_clock::now() - start_).count();
}

}  // namespace fhirgw::base
