#include "fhir/json_parse.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace fhirgw::fhir {
namespace {

using ::fhirgw::testing::IsOk;
using ::fhirgw::testing::StatusIs;
using ::testing::HasSubstr;

std::string Nested(int depth) { return std::string(depth, '[') + std::string(depth, ']'); }

TEST(ParseJsonTest, ParsesAnObject) {
  JsonDocument doc;
  ASSERT_THAT(ParseJson(R"({"a":[1,"\u00e9",{"b":null}],"c":"é"})", doc), IsOk());
  ASSERT_TRUE(doc.IsObject());
  EXPECT_EQ(doc["a"].Size(), 3u);
  EXPECT_STREQ(doc["c"].GetString(), "é");
}

TEST(ParseJsonTest, RefusesDeepNestingWithoutCrashing) {
  const std::string hostile(200000, '[');
  JsonDocument doc;
  EXPECT_THAT(ParseJson(hostile, doc),
              StatusIs(absl::StatusCode::kInvalidArgument, "nesting deeper than 64 at offset 64"));
  EXPECT_TRUE(doc.IsNull());
  std::string buffer = hostile;
  EXPECT_THAT(ParseJsonInsitu(buffer.data(), doc),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("nesting deeper than 64")));
  EXPECT_THAT(CheckJsonLimits(hostile),
              StatusIs(absl::StatusCode::kInvalidArgument, "nesting deeper than 64 at offset 64"));
}

TEST(ParseJsonTest, AcceptsTheLimitAndRefusesOneMore) {
  JsonDocument doc;
  EXPECT_THAT(ParseJson(Nested(kMaxJsonDepth), doc), IsOk());
  EXPECT_THAT(CheckJsonLimits(Nested(kMaxJsonDepth)), IsOk());
  EXPECT_THAT(ParseJson(Nested(kMaxJsonDepth + 1), doc),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("nesting deeper than 64")));
  EXPECT_THAT(CheckJsonLimits(Nested(kMaxJsonDepth + 1)),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("nesting deeper than 64")));
  // Siblings do not add up: depth is what is open at once.
  std::string wide;
  for (int i = 0; i < 1000; ++i) wide += Nested(10) + ",";
  wide = "[" + wide + "0]";
  EXPECT_THAT(ParseJson(wide, doc), IsOk());
  EXPECT_THAT(CheckJsonLimits(wide), IsOk());
}

TEST(ParseJsonTest, RefusesInvalidUtf8) {
  JsonDocument doc;
  EXPECT_THAT(ParseJson("{\"id\":\"ab\xff\"}", doc),
              StatusIs(absl::StatusCode::kInvalidArgument, "invalid UTF-8 at offset 9"));
  EXPECT_THAT(ParseJson("{\"id\":\"\xc0\xaf\"}", doc),  // overlong '/'
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("invalid UTF-8")));
  EXPECT_THAT(CheckJsonLimits("{\"id\":\"ab\xff\"}"),
              StatusIs(absl::StatusCode::kInvalidArgument, "invalid UTF-8 at offset 9"));
}

TEST(ParseJsonTest, NamesSyntaxErrorsWithTheirOffset) {
  JsonDocument doc;
  EXPECT_THAT(ParseJson("[1,2", doc),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("at offset 4")));
  EXPECT_THAT(ParseJson("", doc),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("The document is empty")));
  // CheckJsonLimits leaves syntax to the parser that follows it.
  EXPECT_THAT(CheckJsonLimits("[1,2"), IsOk());
}

TEST(CheckJsonLimitsTest, BracketsInStringsDoNotCount) {
  const std::string brackets(1000, '[');
  EXPECT_THAT(CheckJsonLimits("[\"" + brackets + "\"]"), IsOk());
  EXPECT_THAT(CheckJsonLimits("['" + brackets + "']"), IsOk());
  EXPECT_THAT(CheckJsonLimits("[\"\\\"" + brackets + "\"]"), IsOk());
  // A quote inside the other kind of string does not end it.
  EXPECT_THAT(CheckJsonLimits("['\"'," + brackets + "]"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("nesting deeper than 64")));
}

TEST(FindInvalidUtf8Test, FindsTheFirstBadSequence) {
  EXPECT_EQ(FindInvalidUtf8("plain ascii"), absl::string_view::npos);
  EXPECT_EQ(FindInvalidUtf8("\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80"), absl::string_view::npos);
  EXPECT_EQ(FindInvalidUtf8("ab\x80"), 2u);            // a lone continuation byte
  EXPECT_EQ(FindInvalidUtf8("a\xc3"), 1u);             // truncated
  EXPECT_EQ(FindInvalidUtf8("\xe0\x80\xaf"), 0u);      // overlong
  EXPECT_EQ(FindInvalidUtf8("x\xed\xa0\x80"), 1u);     // a surrogate
  EXPECT_EQ(FindInvalidUtf8("\xf4\x90\x80\x80"), 0u);  // above U+10FFFF
  EXPECT_EQ(FindInvalidUtf8("\xf5\x80\x80\x80"), 0u);
  EXPECT_EQ(FindInvalidUtf8(absl::string_view("a\0b", 3)), absl::string_view::npos);
}

}  // namespace
}  // namespace fhirgw::fhir
