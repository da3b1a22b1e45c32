// A fresh directory under the test's temporary directory, removed with everything in it when the
// object goes out of scope.
//
//   TempDir dir("fhirgw_config");
//   std::string path = dir.File("gw.textproto");
#ifndef FHIRGW_TESTS_TESTING_TEMP_DIR_H_
#define FHIRGW_TESTS_TESTING_TEMP_DIR_H_

#include <stdlib.h>

#include <filesystem>
#include <string>
#include <system_error>

#include "gtest/gtest.h"

namespace fhirgw::testing {

class TempDir {
 public:
  explicit TempDir(const std::string& prefix = "fhirgw") {
    std::string pattern = ::testing::TempDir() + prefix + "_XXXXXX";
    if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
    EXPECT_FALSE(path_.empty()) << "mkdtemp failed for " << pattern;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // `name` inside the directory.
  std::string File(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace fhirgw::testing

#endif  // FHIRGW_TESTS_TESTING_TEMP_DIR_H_
