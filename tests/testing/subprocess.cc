#include "tests/testing/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <sstream>
#include <utility>

#include "gtest/gtest.h"

extern char** environ;

namespace fhirgw::testing {
namespace {

using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

// Longest poll between checks for the child's exit (its pipes may outlive it in a grandchild).
constexpr milliseconds kMaxSlice{50};
// How long output is still collected after a timed-out child was killed.
constexpr milliseconds kDrainAfterKill{2000};
// How much of each output Describe() shows.
constexpr size_t kDescribeLimit = 8000;

void CloseFd(int& fd) {
  if (fd >= 0) {
    ::close(fd);
    fd = -1;
  }
}

void SetNonBlocking(int fd) { ::fcntl(fd, F_SETFL, ::fcntl(fd, F_GETFL) | O_NONBLOCK); }

std::string QuoteArgv(const std::vector<std::string>& argv) {
  std::string text;
  for (const std::string& arg : argv) {
    if (!text.empty()) text += ' ';
    if (!arg.empty() && arg.find_first_of(" \t\n'\"\\$") == std::string::npos) {
      text += arg;
    } else {
      text += '\'';
      for (char c : arg) text += c == '\'' ? std::string("'\\''") : std::string(1, c);
      text += '\'';
    }
  }
  return text;
}

std::string Excerpt(const std::string& text) {
  if (text.empty()) return "(empty)\n";
  std::string shown = text.size() <= kDescribeLimit
                          ? text
                          : text.substr(0, kDescribeLimit) + "\n... (" +
                                std::to_string(text.size() - kDescribeLimit) + " more bytes)";
  if (shown.back() != '\n') shown += '\n';
  return shown;
}

std::string StatusText(const SubprocessResult& result, bool running) {
  if (running) return "still running";
  std::string text;
  if (result.term_signal != 0) {
    text = "killed by signal " + std::to_string(result.term_signal) + " (" +
           ::strsignal(result.term_signal) + ")";
  } else {
    text = "exit status " + std::to_string(result.exit_code);
  }
  if (result.timed_out) text += ", timed out";
  return text;
}

std::string DescribeState(const SubprocessResult& result, bool running) {
  std::ostringstream text;
  text << "command: " << QuoteArgv(result.argv) << "\n"
       << "status: " << StatusText(result, running) << "\n"
       << "stdout:\n"
       << Excerpt(result.out) << "stderr:\n"
       << Excerpt(result.err);
  return text.str();
}

// The test's environment with `overrides` ("NAME=value") applied.
std::vector<std::string> BuildEnvironment(const std::vector<std::string>& overrides) {
  std::vector<std::string> env;
  for (char** entry = environ; entry != nullptr && *entry != nullptr; ++entry) {
    env.emplace_back(*entry);
  }
  for (const std::string& override_entry : overrides) {
    const std::string name = override_entry.substr(0, override_entry.find('=') + 1);
    auto same = std::find_if(env.begin(), env.end(), [&](const std::string& existing) {
      return existing.compare(0, name.size(), name) == 0;
    });
    if (same != env.end()) {
      *same = override_entry;
    } else {
      env.push_back(override_entry);
    }
  }
  return env;
}

std::vector<char*> CStrings(std::vector<std::string>& strings) {
  std::vector<char*> pointers;
  for (std::string& s : strings) pointers.push_back(s.data());
  pointers.push_back(nullptr);
  return pointers;
}

// In the forked child: only async-signal-safe calls from here to execve.
[[noreturn]] void ExecChild(const SubprocessOptions& options, pid_t parent, char* const* argv,
                            char* const* envp, int stdin_fd, int stdout_fd, int stderr_fd,
                            int error_fd) {
  auto fail = [error_fd]() {
    const int error = errno;
    (void)!::write(error_fd, &error, sizeof error);
    ::_exit(127);
  };
  ::setpgid(0, 0);
  if (options.kill_on_parent_death) {
    if (::prctl(PR_SET_PDEATHSIG, SIGKILL) != 0) fail();
    if (::getppid() != parent) ::_exit(127);  // the parent died before prctl
  }
  // Default dispositions and no blocked signals, whatever the test process set up.
  struct sigaction default_action;
  std::memset(&default_action, 0, sizeof default_action);
  default_action.sa_handler = SIG_DFL;
  for (int sig : {SIGPIPE, SIGTERM, SIGINT, SIGCHLD, SIGHUP}) {
    ::sigaction(sig, &default_action, nullptr);
  }
  sigset_t empty;
  ::sigemptyset(&empty);
  ::sigprocmask(SIG_SETMASK, &empty, nullptr);
  if (::dup2(stdin_fd, STDIN_FILENO) < 0 || ::dup2(stdout_fd, STDOUT_FILENO) < 0 ||
      ::dup2(stderr_fd, STDERR_FILENO) < 0) {
    fail();
  }
  if (!options.working_dir.empty() && ::chdir(options.working_dir.c_str()) != 0) fail();
  ::execve(argv[0], argv, envp);
  fail();
  ::_exit(127);  // not reached: fail() exits
}

}  // namespace

std::string SubprocessResult::Describe() const { return DescribeState(*this, false); }

std::unique_ptr<Subprocess> Subprocess::Start(const SubprocessOptions& options,
                                              std::string* error) {
  auto fail = [&](const std::string& what) -> std::unique_ptr<Subprocess> {
    if (error != nullptr) *error = what + " (command: " + QuoteArgv(options.argv) + ")";
    return nullptr;
  };
  if (options.argv.empty()) return fail("no argv");

  std::vector<std::string> argv_strings = options.argv;
  std::vector<std::string> env_strings = BuildEnvironment(options.env);
  std::vector<char*> argv = CStrings(argv_strings);
  std::vector<char*> envp = CStrings(env_strings);

  // Child ends first, parent ends second; all close-on-exec (dup2 clears the flag on 0, 1, 2).
  int in_pipe[2] = {-1, -1};
  int out_pipe[2] = {-1, -1};
  int err_pipe[2] = {-1, -1};
  int exec_pipe[2] = {-1, -1};
  auto close_all = [&]() {
    for (int* fds : {in_pipe, out_pipe, err_pipe, exec_pipe}) {
      CloseFd(fds[0]);
      CloseFd(fds[1]);
    }
  };
  if (options.stdin_data.has_value()) {
    if (::pipe2(in_pipe, O_CLOEXEC) != 0) return fail(std::string("pipe: ") + strerror(errno));
  } else {
    in_pipe[0] = ::open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (in_pipe[0] < 0) return fail(std::string("/dev/null: ") + strerror(errno));
  }
  if (::pipe2(out_pipe, O_CLOEXEC) != 0 || ::pipe2(err_pipe, O_CLOEXEC) != 0 ||
      ::pipe2(exec_pipe, O_CLOEXEC) != 0) {
    const std::string reason = std::string("pipe: ") + strerror(errno);
    close_all();
    return fail(reason);
  }

  const pid_t parent = ::getpid();
  const pid_t pid = ::fork();
  if (pid < 0) {
    const std::string reason = std::string("fork: ") + strerror(errno);
    close_all();
    return fail(reason);
  }
  if (pid == 0) {
    // in_pipe[0] is the read end (or /dev/null); out/err write ends are [1].
    ExecChild(options, parent, argv.data(), envp.data(), in_pipe[0], out_pipe[1], err_pipe[1],
              exec_pipe[1]);
  }
  ::setpgid(pid, pid);  // also in the child; whichever runs first (fails harmlessly after exec)
  CloseFd(in_pipe[0]);
  CloseFd(out_pipe[1]);
  CloseFd(err_pipe[1]);
  CloseFd(exec_pipe[1]);

  // The exec pipe closes on a successful execve; before that the child writes errno to it.
  int exec_errno = 0;
  ssize_t n;
  do {
    n = ::read(exec_pipe[0], &exec_errno, sizeof exec_errno);
  } while (n < 0 && errno == EINTR);
  CloseFd(exec_pipe[0]);
  if (n > 0) {
    int status;
    while (::waitpid(pid, &status, 0) < 0 && errno == EINTR) {
    }
    close_all();
    return fail(std::string("cannot start ") + options.argv[0] +
                (options.working_dir.empty() ? "" : " in " + options.working_dir) + ": " +
                strerror(exec_errno));
  }

  std::unique_ptr<Subprocess> process(new Subprocess());
  process->pid_ = pid;
  process->result_.argv = options.argv;
  process->out_fd_ = std::exchange(out_pipe[0], -1);
  process->err_fd_ = std::exchange(err_pipe[0], -1);
  SetNonBlocking(process->out_fd_);
  SetNonBlocking(process->err_fd_);
  if (options.stdin_data.has_value()) {
    process->in_fd_ = std::exchange(in_pipe[1], -1);
    SetNonBlocking(process->in_fd_);
    process->stdin_data_ = *options.stdin_data;
    if (process->stdin_data_.empty()) process->CloseStdin();
  }
  return process;
}

Subprocess::~Subprocess() {
  if (!reaped_) KillAndReap();
  CloseStdin();
  CloseFd(out_fd_);
  CloseFd(err_fd_);
}

void Subprocess::ReadFrom(int& fd, std::string& sink) {
  char buffer[65536];
  while (fd >= 0) {
    const ssize_t n = ::read(fd, buffer, sizeof buffer);
    if (n > 0) {
      sink.append(buffer, static_cast<size_t>(n));
    } else if (n == 0) {
      CloseFd(fd);
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      return;
    } else {
      CloseFd(fd);
    }
  }
}

void Subprocess::WriteStdin() {
  // A child that stops reading closes the pipe: EPIPE, not a SIGPIPE that would end the test.
  sigset_t pipe_signal, old_mask;
  ::sigemptyset(&pipe_signal);
  ::sigaddset(&pipe_signal, SIGPIPE);
  ::pthread_sigmask(SIG_BLOCK, &pipe_signal, &old_mask);
  sigset_t pending_before;
  ::sigpending(&pending_before);
  bool broken = false;
  while (in_fd_ >= 0 && stdin_written_ < stdin_data_.size()) {
    const ssize_t n =
        ::write(in_fd_, stdin_data_.data() + stdin_written_, stdin_data_.size() - stdin_written_);
    if (n >= 0) {
      stdin_written_ += static_cast<size_t>(n);
    } else if (errno == EINTR) {
      continue;
    } else if (errno == EAGAIN || errno == EWOULDBLOCK) {
      break;
    } else {
      broken = errno == EPIPE;
      CloseStdin();
    }
  }
  if (broken && !::sigismember(&pending_before, SIGPIPE)) {
    const timespec zero = {0, 0};
    ::sigtimedwait(&pipe_signal, nullptr, &zero);
  }
  ::pthread_sigmask(SIG_SETMASK, &old_mask, nullptr);
  if (stdin_written_ == stdin_data_.size()) CloseStdin();
}

void Subprocess::CloseStdin() { CloseFd(in_fd_); }

bool Subprocess::TryReap() {
  if (reaped_) return true;
  int status;
  pid_t done;
  do {
    done = ::waitpid(pid_, &status, WNOHANG);
  } while (done < 0 && errno == EINTR);
  if (done != pid_) return false;
  reaped_ = true;
  if (WIFEXITED(status)) result_.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result_.term_signal = WTERMSIG(status);
  return true;
}

void Subprocess::KillAndReap() {
  if (reaped_) return;
  ::kill(-pid_, SIGKILL);
  ::kill(pid_, SIGKILL);
  int status;
  while (::waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  reaped_ = true;
  if (WIFEXITED(status)) result_.exit_code = WEXITSTATUS(status);
  if (WIFSIGNALED(status)) result_.term_signal = WTERMSIG(status);
}

void Subprocess::Pump(milliseconds slice) {
  pollfd fds[3];
  int* owners[3];
  nfds_t count = 0;
  for (int* fd : {&out_fd_, &err_fd_}) {
    if (*fd >= 0) {
      fds[count] = {*fd, POLLIN, 0};
      owners[count++] = fd;
    }
  }
  if (in_fd_ >= 0) {
    fds[count] = {in_fd_, POLLOUT, 0};
    owners[count++] = &in_fd_;
  }
  slice = std::clamp(slice, milliseconds(0), count == 0 ? milliseconds(5) : kMaxSlice);
  const int ready = ::poll(count == 0 ? nullptr : fds, count, static_cast<int>(slice.count()));
  if (ready > 0) {
    for (nfds_t i = 0; i < count; ++i) {
      if (fds[i].revents == 0) continue;
      if (owners[i] == &out_fd_) {
        ReadFrom(out_fd_, result_.out);
      } else if (owners[i] == &err_fd_) {
        ReadFrom(err_fd_, result_.err);
      } else {
        WriteStdin();
      }
    }
  }
  TryReap();
}

bool Subprocess::WaitUntil(
    const std::function<bool(const std::string& out, const std::string& err)>& ready,
    milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  while (true) {
    if (ready(result_.out, result_.err)) return true;
    if (Finished()) return false;
    const auto remaining = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (remaining <= milliseconds(0)) return false;
    Pump(remaining);
  }
}

bool Subprocess::WaitForText(Stream stream, std::string_view text, milliseconds timeout) {
  return WaitUntil(
      [&](const std::string& out, const std::string& err) {
        return (stream == Stream::kStdout ? out : err).find(text) != std::string::npos;
      },
      timeout);
}

SubprocessResult Subprocess::Wait(milliseconds timeout) {
  const Clock::time_point deadline = Clock::now() + timeout;
  while (!Finished()) {
    const auto remaining = std::chrono::duration_cast<milliseconds>(deadline - Clock::now());
    if (remaining <= milliseconds(0)) {
      result_.timed_out = true;
      KillAndReap();
      const Clock::time_point drain_deadline = Clock::now() + kDrainAfterKill;
      while ((out_fd_ >= 0 || err_fd_ >= 0) && Clock::now() < drain_deadline) {
        CloseStdin();
        Pump(kMaxSlice);
      }
      CloseFd(out_fd_);
      CloseFd(err_fd_);
      ADD_FAILURE() << "subprocess did not finish within " << timeout.count()
                    << " ms and was killed\n"
                    << result_.Describe();
      break;
    }
    Pump(remaining);
  }
  CloseStdin();
  return result_;
}

void Subprocess::Signal(int signal) {
  if (reaped_) return;
  ::kill(-pid_, signal);
  ::kill(pid_, signal);
}

SubprocessResult Subprocess::Terminate(milliseconds grace) {
  Signal(SIGTERM);
  return Wait(grace);
}

std::string Subprocess::Describe() const {
  std::string text = DescribeState(result_, !reaped_);
  if (!reaped_) text += "pid: " + std::to_string(pid_) + "\n";
  return text;
}

SubprocessResult RunSubprocess(const SubprocessOptions& options, milliseconds timeout) {
  std::string error;
  std::unique_ptr<Subprocess> process = Subprocess::Start(options, &error);
  if (process == nullptr) {
    ADD_FAILURE() << error;
    SubprocessResult result;
    result.argv = options.argv;
    result.err = error;
    return result;
  }
  return process->Wait(timeout);
}

SubprocessResult RunCommand(std::vector<std::string> argv, std::optional<std::string> stdin_data,
                            milliseconds timeout) {
  SubprocessOptions options;
  options.argv = std::move(argv);
  options.stdin_data = std::move(stdin_data);
  return RunSubprocess(options, timeout);
}

}  // namespace fhirgw::testing
