#include "gateway/ops/log.h"

#include <algorithm>
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fhirgw::gateway {
namespace {

TEST(EscapeControlCharactersTest, KeepsPrintableText) {
  EXPECT_EQ(EscapeControlCharacters("delivered tx-1 to ehr (é, \\path)"),
            "delivered tx-1 to ehr (é, \\path)");
}

TEST(EscapeControlCharactersTest, EscapesEveryControlCharacter) {
  EXPECT_EQ(EscapeControlCharacters("a\nb\rc\td"), "a\\nb\\rc\\td");
  EXPECT_EQ(EscapeControlCharacters(std::string("\0\x01\x1b[31m\x1f\x7f", 9)),
            "\\x00\\x01\\x1b[31m\\x1f\\x7f");
}

TEST(EscapeControlCharactersTest, ACallerCannotForgeALogLine) {
  const std::string id = "r1\n2026-11-27T10:00:00.000Z INFO forged";
  const std::string escaped = EscapeControlCharacters("unknown record " + id);
  EXPECT_EQ(escaped.find('\n'), std::string::npos);
  EXPECT_EQ(escaped, "unknown record r1\\n2026-11-27T10:00:00.000Z INFO forged");
}

TEST(LogTest, WritesOneEscapedLine) {
  ::testing::internal::CaptureStderr();
  LogWarning("bad id 'x\ny'\r");
  const std::string out = ::testing::internal::GetCapturedStderr();
  EXPECT_THAT(out, ::testing::EndsWith(" WARN bad id 'x\\ny'\\r\n"));
  EXPECT_EQ(std::count(out.begin(), out.end(), '\n'), 1);
}

}  // namespace
}  // namespace fhirgw::gateway
