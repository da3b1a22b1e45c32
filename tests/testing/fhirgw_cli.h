// Runs the `fhirgw` binary under test (FHIRGW_BINARY, defined for every test target) to completion.
//
//   SubprocessResult r = RunFhirgw({"translate", "examples/gad7.json"});
//   EXPECT_TRUE(r.ExitedWith(0)) << r.Describe();
#ifndef FHIRGW_TESTS_TESTING_FHIRGW_CLI_H_
#define FHIRGW_TESTS_TESTING_FHIRGW_CLI_H_

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tests/testing/subprocess.h"

namespace fhirgw::testing {

// Runs `fhirgw ARGS...` in the source directory (so that paths such as examples/x.json work
// wherever the test binary is started from), with `stdin_data` as its stdin.
inline SubprocessResult RunFhirgw(const std::vector<std::string>& args,
                                  std::optional<std::string> stdin_data = std::nullopt) {
  SubprocessOptions options;
  options.argv = {FHIRGW_BINARY};
  options.argv.insert(options.argv.end(), args.begin(), args.end());
  options.stdin_data = std::move(stdin_data);
  options.working_dir = FHIRGW_SOURCE_DIR;
  return RunSubprocess(options);
}

}  // namespace fhirgw::testing

#endif  // FHIRGW_TESTS_TESTING_FHIRGW_CLI_H_
