// Whole-file reads and writes and temporary directories for tests.
//
//   std::string config = ReadFile(SourcePath("deploy/k8s/configmap.yaml"));  // fails the test if
//   absent ASSERT_TRUE(WriteFile(dir.File("ca.pem"), ca->cert_pem())); std::string log =
//   ReadFileOrEmpty(log_path);  // a log that may not exist yet
//
// For a directory removed at the end of the test see temp_dir.h; MakeTempDir is for directories
// that outlive one scope (a server's working directory).
#ifndef FHIRGW_TESTS_TESTING_FILES_H_
#define FHIRGW_TESTS_TESTING_FILES_H_

#include <filesystem>
#include <string>
#include <string_view>

namespace fhirgw::testing {

// Returns the content of `path`; adds a test failure naming `path` and returns "" when it cannot
// be read.
std::string ReadFile(const std::filesystem::path& path);
// Returns the content of `path`, or "" when it cannot be read (no test failure).
std::string ReadFileOrEmpty(const std::filesystem::path& path);
// Writes `content` to `path`, replacing it; false on failure.
bool WriteFile(const std::filesystem::path& path, std::string_view content);
// Makes a fresh directory under $TMPDIR (or /tmp) whose name starts with `prefix`; empty on error.
std::string MakeTempDir(const std::string& prefix);

// Returns the path of `relative` in the source tree. Every test target defines FHIRGW_SOURCE_DIR.
inline std::string SourcePath(std::string_view relative) {
  return std::string(FHIRGW_SOURCE_DIR) + "/" + std::string(relative);
}

}  // namespace fhirgw::testing

#endif  // FHIRGW_TESTS_TESTING_FILES_H_
