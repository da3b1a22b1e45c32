// Clock helpers: wall-clock milliseconds, elapsed time on the monotonic clock, and deadlines.
//
//   entry.received_at_ms = base::UnixMillis();
//   base::Stopwatch watch;
//   ...
//   result.duration_ms = watch.ElapsedMillis();  // immune to wall-clock steps
//   context.set_deadline(base::DeadlineFromNow(std::chrono::milliseconds(timeout_ms)));
#ifndef FHIRGW_BASE_CLOCK_H_
#define FHIRGW_BASE_CLOCK_H_

#include <chrono>
#include <cstdint>

namespace fhirgw::base {

// Returns the milliseconds since the Unix epoch, from the system (wall) clock.
int64_t UnixMillis();

// Returns the system-clock time `timeout` from now: gRPC deadlines are system-clock time points.
std::chrono::system_clock::time_point DeadlineFromNow(std::chrono::milliseconds timeout);

// Measures the time since it was made, on the monotonic clock, so that a
// duration never goes negative or jumps when the wall clock is set.
class Stopwatch {
 public:
  Stopwatch() : start_(std::chrono::steady_clock::now()) {}

  // Returns the whole milliseconds elapsed.
  int64_t ElapsedMillis() const;
  // Returns the seconds elapsed, with the clock's full resolution.
  double ElapsedSeconds() const;

 private:
  std::chrono::steady_clock::time_point start_;
};

}  // namespace fhirgw::base

#endif  // FHIRGW_BASE_CLOCK_H_
