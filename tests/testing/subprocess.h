// Runs a child process for end-to-end tests: argv (no shell, no PATH search), optional stdin
// content, both output pipes captured without deadlock (one poll loop also feeds stdin), and a
// timeout that kills the child and fails the running test with what the child printed so far.
//
//   // A command that runs to completion:
//   SubprocessResult r = RunCommand({FHIRGW_BINARY, "translate", "-"}, record_json);
//   EXPECT_TRUE(r.ExitedWith(0)) << r.Describe();
//
//   // A server that keeps running:
//   SubprocessOptions options;  // set fields one by one: GCC's -Wextra rejects partial
//   options.argv = {FHIRGW_BINARY, "serve", "--port=0"};  // designated initializers
//   options.env = {"FHIRGW_LOG=debug"};
//   std::string error;
//   std::unique_ptr<Subprocess> server = Subprocess::Start(options, &error);
//   ASSERT_NE(server, nullptr) << error;
//   ASSERT_TRUE(server->WaitForText(Subprocess::Stream::kStderr, "listening on", 10s))
//       << server->Describe();
//   ... talk to the server; server->err() holds its log so far ...
//   SubprocessResult r = server->Terminate(5s);  // SIGTERM, then SIGKILL (and a failure) after 5 s
//   EXPECT_TRUE(r.ExitedWith(0)) << r.Describe();
//
// The child runs in its own process group (its pgid is its pid); signals go to that group, so
// helpers the child started go too. With kill_on_parent_death (the default) the child also gets
// SIGKILL when the test thread that started it dies, so a crashed test leaves no server behind.
// Not thread-safe: use a Subprocess from one thread.
#ifndef FHIRGW_TESTS_TESTING_SUBPROCESS_H_
#define FHIRGW_TESTS_TESTING_SUBPROCESS_H_

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

namespace fhirgw::testing {

inline constexpr std::chrono::milliseconds kDefaultSubprocessTimeout{30000};

struct SubprocessOptions {
  // argv[0] is the path of the executable (absolute, or relative to `working_dir`).
  std::vector<std::string> argv;
  // Written to the child's stdin, which is then closed; nullopt gives the child /dev/null.
  std::optional<std::string> stdin_data;
  // "NAME=value" entries added to (or replacing those in) the test's environment.
  std::vector<std::string> env;
  // The child's working directory; empty keeps the test's.
  std::string working_dir;
  // SIGKILL the child when the thread that started it exits (Linux PR_SET_PDEATHSIG).
  bool kill_on_parent_death = true;
};

struct SubprocessResult {
  std::vector<std::string> argv;
  std::string out;  // everything the child wrote to stdout
  std::string err;  // everything the child wrote to stderr
  // The exit status when the child exited; -1 when it was killed by a signal or is not reaped.
  int exit_code = -1;
  // The signal that ended the child, 0 when it exited.
  int term_signal = 0;
  // The child was still running at the deadline and was killed.
  bool timed_out = false;

  // True when the child exited by itself with `code`.
  bool ExitedWith(int code) const { return !timed_out && term_signal == 0 && exit_code == code; }
  // "exit status 2", "killed by signal 9 (timed out)", ... with the command and both outputs, for
  // failure messages.
  std::string Describe() const;
};

class Subprocess {
 public:
  enum class Stream { kStdout, kStderr };

  // Starts the child; nullptr (with `*error` set) when it could not be started, e.g. when the
  // executable is missing.
  static std::unique_ptr<Subprocess> Start(const SubprocessOptions& options, std::string* error);

  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;
  // Kills (SIGKILL) and reaps a child that is still running.
  ~Subprocess();

  pid_t pid() const { return pid_; }
  bool running() const { return !reaped_; }

  // Output so far (grows as WaitUntil/WaitForText/Wait pump the pipes).
  const std::string& out() const { return result_.out; }
  const std::string& err() const { return result_.err; }

  // Pumps the pipes until `ready(out, err)` holds (true), the child exits or `timeout` passes
  // (false; the child keeps running and the test is not failed: the caller decides).
  bool WaitUntil(const std::function<bool(const std::string& out, const std::string& err)>& ready,
                 std::chrono::milliseconds timeout);
  // WaitUntil `text` appears in `stream`.
  bool WaitForText(Stream stream, std::string_view text, std::chrono::milliseconds timeout);

  // Waits for the child to exit and both pipes to close. At the deadline the child's process
  // group is killed, the result says timed_out and the running test fails (ADD_FAILURE) with
  // Describe().
  SubprocessResult Wait(std::chrono::milliseconds timeout = kDefaultSubprocessTimeout);

  // Sends `signal` to the child's process group (no-op once the child is reaped).
  void Signal(int signal);
  // Signal(SIGTERM), then Wait up to `grace`; SIGKILL after that (reported as timed_out).
  SubprocessResult Terminate(std::chrono::milliseconds grace = kDefaultSubprocessTimeout);

  // The command, its state and its output so far, for failure messages.
  std::string Describe() const;

 private:
  Subprocess() = default;

  // One round of poll over the open pipes, waiting at most `slice`; reaps the child if it exited.
  void Pump(std::chrono::milliseconds slice);
  void ReadFrom(int& fd, std::string& sink);
  void WriteStdin();
  void CloseStdin();
  bool TryReap();
  void KillAndReap();
  bool Finished() const { return reaped_ && out_fd_ < 0 && err_fd_ < 0; }

  pid_t pid_ = -1;
  int in_fd_ = -1;
  int out_fd_ = -1;
  int err_fd_ = -1;
  std::string stdin_data_;
  size_t stdin_written_ = 0;
  bool reaped_ = false;
  SubprocessResult result_;
};

// Starts `options.argv`, waits for it (Subprocess::Wait) and returns what it did. A child that
// cannot be started fails the test and gives exit_code -1 with the reason in `err`.
SubprocessResult RunSubprocess(const SubprocessOptions& options,
                               std::chrono::milliseconds timeout = kDefaultSubprocessTimeout);

// RunSubprocess with just `argv` and optional stdin content.
SubprocessResult RunCommand(std::vector<std::string> argv,
                            std::optional<std::string> stdin_data = std::nullopt,
                            std::chrono::milliseconds timeout = kDefaultSubprocessTimeout);

}  // namespace fhirgw::testing

#endif  // FHIRGW_TESTS_TESTING_SUBPROCESS_H_
