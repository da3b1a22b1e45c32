#include "base/file.h"

#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/files.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fhirgw::base {
namespace {

using ::fhirgw::testing::StatusIs;
using ::fhirgw::testing::TempDir;
using ::testing::HasSubstr;

TEST(ReadFileTest, ReadsEveryByte) {
  TempDir dir("base_file");
  std::string bytes("line one\n\0binary\r\n", 18);
  for (int i = 0; i < 100'000; ++i) bytes.push_back(static_cast<char>(i % 251));
  ASSERT_TRUE(::fhirgw::testing::WriteFile(dir.File("data.bin"), bytes));
  absl::StatusOr<std::string> read = ReadFile(dir.File("data.bin"));
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(read->size(), bytes.size());
  EXPECT_EQ(*read, bytes);
}

TEST(ReadFileTest, ReadsAnEmptyFile) {
  TempDir dir("base_file");
  ASSERT_TRUE(::fhirgw::testing::WriteFile(dir.File("empty"), ""));
  absl::StatusOr<std::string> read = ReadFile(dir.File("empty"));
  ASSERT_TRUE(read.ok()) << read.status();
  EXPECT_EQ(*read, "");
}

TEST(ReadFileTest, MissingFileIsNotFoundNamingThePath) {
  TempDir dir("base_file");
  const std::string path = dir.File("missing.pem");
  EXPECT_THAT(ReadFile(path).status(),
              StatusIs(absl::StatusCode::kNotFound,
                       HasSubstr("cannot read '" + path + "': No such file or directory")));
}

TEST(ReadFileTest, DirectoryIsAnErrorNamingThePath) {
  TempDir dir("base_file");
  absl::StatusOr<std::string> read = ReadFile(dir.path());
  ASSERT_FALSE(read.ok());
  EXPECT_THAT(read.status().message(), HasSubstr("cannot read '" + dir.path() + "': "));
}

TEST(ReadFileTest, UnreadableFileIsPermissionDenied) {
  if (::geteuid() == 0) GTEST_SKIP() << "root reads files whatever their mode";
  TempDir dir("base_file");
  const std::string path = dir.File("secret");
  ASSERT_TRUE(::fhirgw::testing::WriteFile(path, "x"));
  ASSERT_EQ(::chmod(path.c_str(), 0), 0);
  EXPECT_THAT(ReadFile(path).status(),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("cannot read '" + path)));
}

}  // namespace
}  // namespace fhirgw::base
