#include "fhir/json.h"

#include <cctype>
#include <cmath>
#include <cstdint>
#include <cstring>
#include <filesystem>
#include <limits>
#include <random>
#include <string>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"
#include "tests/testing/files.h"
#include "tests/testing/json.h"

namespace fhirgw::fhir {
namespace {

using ::fhirgw::testing::ParseJsonOrFail;
using ::fhirgw::testing::ReadFile;
using ::testing::HasSubstr;
using ::testing::Not;

std::string Compact(Json& json) { return WriteJson(json.value(), JsonStyle::kCompact); }

// Json owns its value and is move-only. The setters return Json&, so a chain that starts from
// Json::Object(a) is moved into a named Json (`Json x = std::move(Json::Object(a).Str(...))`).
static_assert(!std::is_copy_constructible_v<Json>);
static_assert(!std::is_copy_assignable_v<Json>);
static_assert(std::is_move_constructible_v<Json>);

TEST(JsonTest, NewObjectAndArrayAreEmpty) {
  JsonDocument doc;
  JsonAlloc& a = doc.GetAllocator();
  Json object = Json::Object(a);
  Json array = Json::Array(a);
  EXPECT_TRUE(object.empty());
  EXPECT_TRUE(object.value().IsObject());
  EXPECT_TRUE(array.empty());
  EXPECT_TRUE(array.value().IsArray());
  EXPECT_EQ(&object.alloc(), &a);
  EXPECT_EQ(Compact(object), "{}");
  EXPECT_EQ(Compact(array), "[]");
}

TEST(JsonTest, StrSkipsEmptyStrings) {
  JsonDocument doc;
  Json object = Json::Object(doc.GetAllocator());
  object.Str("empty", "").Str("absent", absl::string_view()).Str("kept", "x");
  EXPECT_FALSE(object.empty());
  EXPECT_EQ(Compact(object), R"({"kept":"x"})");
}

TEST(JsonTest, StrOnlyWithEmptyValuesLeavesTheObjectEmpty) {
  JsonDocument doc;
  Json object = Json::Object(doc.GetAllocator());
  object.Str("a", "").Str("b", std::string());
  EXPECT_TRUE(object.empty());
  EXPECT_EQ(object.value().MemberCount(), 0u);
}

TEST(JsonTest, StrCopiesTheValue) {
  JsonDocument doc;
  Json object = Json::Object(doc.GetAllocator());
  {
    std::string temporary = "copied value";
    object.Str("k", temporary);
    temporary.assign("overwritten!");
  }
  EXPECT_EQ(Compact(object), R"({"k":"copied value"})");
}

TEST(JsonTest, ZeroAndFalseAreRealValuesAndAreWritten) {
  JsonDocument doc;
  Json object = Json::Object(doc.GetAllocator());
  object.Int("zero", 0).Dec("dzero", 0.0).Bool("no", false);
  EXPECT_FALSE(object.empty());
  rapidjson::Document parsed = ParseJsonOrFail(Compact(object));
  ASSERT_TRUE(parsed.HasMember("zero"));
  EXPECT_EQ(parsed["zero"].GetInt64(), 0);
  ASSERT_TRUE(parsed.HasMember("dzero"));
  EXPECT_EQ(parsed["dzero"].GetDouble(), 0.0);
  ASSERT_TRUE(parsed.HasMember("no"));
  ASSERT_TRUE(parsed["no"].IsBool());
  EXPECT_FALSE(parsed["no"].GetBool());
}

TEST(JsonTest, IntKeepsLargeAndNegativeValuesExactly) {
  JsonDocument doc;
  Json object = Json::Object(doc.GetAllocator());
  object.Int("big", INT64_C(9007199254740993)).Int("neg", -42).Int("min", INT64_MIN);
  EXPECT_EQ(Compact(object), R"({"big":9007199254740993,"neg":-42,"min":-9223372036854775808})");
}

TEST(JsonTest, PutOfEmptyObjectOrArrayIsANoOp) {
  JsonDocument doc;
  JsonAlloc& a = doc.GetAllocator();
  Json object = Json::Object(a);
  object.Put("emptyObject", Json::Object(a));
  object.Put("emptyArray", Json::Array(a));
  Json lvalue_empty = Json::Object(a);
  object.Put("lvalueEmpty", lvalue_empty);
  EXPECT_TRUE(object.empty());
  object.Put("objectOfEmpties", Json::Object(a).Str("x", "").Put("y", Json::Array(a)));
  EXPECT_TRUE(object.empty());
  EXPECT_EQ(Compact(object), "{}");
}

TEST(JsonTest, PutOfRawValueSkipsNullEmptyStringObjectAndArray) {
  JsonDocument doc;
  JsonAlloc& a = doc.GetAllocator();
  Json object = Json::Object(a);
  object.Put("null", JsonValue());
  object.Put("emptyString", JsonValue("", a));
  object.Put("emptyObject", JsonValue(rapidjson::kObjectType));
  object.Put("emptyArray", JsonValue(rapidjson::kArrayType));
  EXPECT_TRUE(object.empty());
  object.Put("string", JsonValue("s", a));
  object.Put("number", JsonValue(3));
  EXPECT_EQ(Compact(object), R"({"string":"s","number":3})");
}

TEST(JsonTest, PushOfEmptyChildrenIsANoOp) {
  JsonDocument doc;
  JsonAlloc& a = doc.GetAllocator();
  Json array = Json::Array(a);
  array.Push(Json::Object(a)).Push(Json::Array(a)).PushStr("");
  Json lvalue_empty = Json::Object(a);
  array.Push(lvalue_empty);
  EXPECT_TRUE(array.empty());
  EXPECT_EQ(array.value().Size(), 0u);
  array.PushStr("a").Push(Json::Object(a).Str("k", "v")).PushStr("");
  EXPECT_EQ(Compact(array), R"(["a",{"k":"v"}])");
}

TEST(JsonTest, BuildsNestedStructures) {
  JsonDocument doc;
  JsonAlloc& a = doc.GetAllocator();
  Json coding = std::move(Json::Object(a).Str("system", "http://loinc.org").Str("code", "8867-4"));
  Json code = std::move(Json::Object(a).Put("coding", Json::Array(a).Push(std::move(coding))));
  Json observation = std::move(Json::Object(a).Str("resourceType", "Observation"));
  observation.Put("code", std::move(code));
  observation.Put("valueQuantity", Json::Object(a).Dec("value", 72.0).Str("unit", "/min"));

  rapidjson::Document parsed = ParseJsonOrFail(Compact(observation));
  ASSERT_TRUE(parsed.IsObject());
  EXPECT_STREQ(parsed["resourceType"].GetString(), "Observation");
  ASSERT_TRUE(parsed["code"]["coding"].IsArray());
  ASSERT_EQ(parsed["code"]["coding"].Size(), 1u);
  const auto& c = parsed["code"]["coding"][0];
  EXPECT_STREQ(c["system"].GetString(), "http://loinc.org");
  EXPECT_STREQ(c["code"].GetString(), "8867-4");
  EXPECT_EQ(parsed["valueQuantity"]["value"].GetDouble(), 72.0);
  EXPECT_STREQ(parsed["valueQuantity"]["unit"].GetString(), "/min");
}

TEST(JsonTest, LvalueChildrenAreTakenSoChainsWork) {
  JsonDocument doc;
  JsonAlloc& a = doc.GetAllocator();
  Json first = std::move(Json::Object(a).Str("n", "1"));
  Json second = std::move(Json::Object(a).Str("n", "2"));
  Json list = std::move(Json::Array(a).Push(first).Push(second));
  Json root = Json::Object(a);
  root.Put("list", list);
  EXPECT_EQ(Compact(root), R"({"list":[{"n":"1"},{"n":"2"}]})");
  // The children's values were taken: the originals are now empty.
  EXPECT_TRUE(first.empty());
  EXPECT_TRUE(second.empty());
  EXPECT_TRUE(list.empty());
}

TEST(JsonTest, PreservesMemberAndElementOrder) {
  JsonDocument doc;
  JsonAlloc& a = doc.GetAllocator();
  Json object = std::move(Json::Object(a).Str("z", "1").Str("a", "2").Str("m", "3"));
  object.Put("arr", Json::Array(a).PushStr("c").PushStr("b").PushStr("a"));
  EXPECT_EQ(Compact(object), R"({"z":"1","a":"2","m":"3","arr":["c","b","a"]})");
}

TEST(JsonTest, MovedFromJsonIsEmptyAndPuttingOrPushingItIsANoOp) {
  JsonDocument doc;
  JsonAlloc& a = doc.GetAllocator();
  Json source = std::move(Json::Object(a).Str("k", "v"));
  Json target = std::move(source);
  EXPECT_FALSE(target.empty());
  EXPECT_TRUE(source.empty());  // NOLINT(bugprone-use-after-move): the point of the test.

  Json parent = Json::Object(a);
  parent.Put("moved", source);
  parent.Put("movedRvalue", std::move(source));
  EXPECT_TRUE(parent.empty());

  Json array = Json::Array(a);
  array.Push(source);
  EXPECT_TRUE(array.empty());

  parent.Put("target", target);
  EXPECT_EQ(Compact(parent), R"({"target":{"k":"v"}})");
  // `target` was taken by the Put; using it again adds nothing.
  EXPECT_TRUE(target.empty());
  parent.Put("again", target);
  EXPECT_EQ(Compact(parent), R"({"target":{"k":"v"}})");
}

TEST(JsonTest, MoveAssignmentTransfersTheValue) {
  JsonDocument doc;
  JsonAlloc& a = doc.GetAllocator();
  Json x = std::move(Json::Object(a).Str("x", "1"));
  Json y = std::move(Json::Array(a).PushStr("y"));
  y = std::move(x);
  ASSERT_TRUE(y.value().IsObject());
  EXPECT_EQ(Compact(y), R"({"x":"1"})");
  EXPECT_TRUE(x.empty());  // NOLINT(bugprone-use-after-move)
}

TEST(JsonTest, ReleaseMovesTheValueOutAndLeavesNull) {
  JsonDocument doc;
  JsonAlloc& a = doc.GetAllocator();
  Json object = std::move(Json::Object(a).Str("k", "v"));
  JsonValue released = object.Release();
  EXPECT_TRUE(object.value().IsNull());
  EXPECT_TRUE(object.empty());
  ASSERT_TRUE(released.IsObject());
  EXPECT_EQ(WriteJson(released, JsonStyle::kCompact), R"({"k":"v"})");
}

TEST(JsonTest, WriteJsonCompactHasNoWhitespace) {
  JsonDocument doc;
  JsonAlloc& a = doc.GetAllocator();
  Json object = std::move(Json::Object(a).Str("a", "x"));
  object.Put("b", Json::Array(a).PushStr("p").PushStr("q"));
  object.Put("c", Json::Object(a).Bool("d", true));
  EXPECT_EQ(WriteJson(object.value(), JsonStyle::kCompact),
            R"({"a":"x","b":["p","q"],"c":{"d":true}})");
}

TEST(JsonTest, WriteJsonPrettyIndentsWithTwoSpaces) {
  JsonDocument doc;
  JsonAlloc& a = doc.GetAllocator();
  Json object = std::move(Json::Object(a).Str("a", "x"));
  object.Put("b", Json::Array(a).PushStr("p").PushStr("q"));
  object.Put("c", Json::Object(a).Bool("d", true));
  const std::string expected =
      "{\n"
      "  \"a\": \"x\",\n"
      "  \"b\": [\n"
      "    \"p\",\n"
      "    \"q\"\n"
      "  ],\n"
      "  \"c\": {\n"
      "    \"d\": true\n"
      "  }\n"
      "}";
  const std::string pretty = WriteJson(object.value(), JsonStyle::kPretty);
  EXPECT_EQ(pretty, expected);
  EXPECT_THAT(pretty, Not(HasSubstr("\t")));
}

TEST(JsonTest, CompactAndPrettyParseToTheSameValue) {
  JsonDocument doc;
  JsonAlloc& a = doc.GetAllocator();
  Json object = std::move(Json::Object(a).Str("s", "t").Int("i", 7).Dec("d", 0.5));
  object.Put("nested", Json::Object(a).Put("arr", Json::Array(a).PushStr("e")));
  rapidjson::Document compact = ParseJsonOrFail(WriteJson(object.value(), JsonStyle::kCompact));
  rapidjson::Document pretty = ParseJsonOrFail(WriteJson(object.value(), JsonStyle::kPretty));
  EXPECT_TRUE(compact == pretty);
  EXPECT_EQ(compact.MemberCount(), 4u);
}

TEST(JsonTest, AppendJsonAppendsToExistingText) {
  JsonDocument doc;
  JsonAlloc& a = doc.GetAllocator();
  Json first = std::move(Json::Object(a).Str("n", "1"));
  Json second = std::move(Json::Array(a).PushStr("two"));
  std::string out = "prefix:";
  AppendJson(first.value(), JsonStyle::kCompact, out);
  EXPECT_EQ(out, R"(prefix:{"n":"1"})");
  out.push_back('\n');
  AppendJson(second.value(), JsonStyle::kCompact, out);
  EXPECT_EQ(out, "prefix:{\"n\":\"1\"}\n[\"two\"]");
  AppendJson(first.value(), JsonStyle::kPretty, out);
  EXPECT_EQ(out, "prefix:{\"n\":\"1\"}\n[\"two\"]{\n  \"n\": \"1\"\n}");
}

TEST(JsonTest, WriteJsonEqualsAppendJsonToEmptyString) {
  JsonDocument doc;
  JsonAlloc& a = doc.GetAllocator();
  Json object = std::move(Json::Object(a).Str("k", "v").Int("n", 12));
  for (JsonStyle style : {JsonStyle::kCompact, JsonStyle::kPretty}) {
    std::string appended;
    AppendJson(object.value(), style, appended);
    EXPECT_EQ(WriteJson(object.value(), style), appended);
  }
}

TEST(JsonTest, EscapesQuotesBackslashesAndControlCharacters) {
  JsonDocument doc;
  const std::string tricky =
      std::string("He said \"hi\" \\ back\nnew\tline\r") + '\x01' + '\x1f' + '\b' + '\f' + "/end";
  Json object = std::move(Json::Object(doc.GetAllocator()).Str("text", tricky));
  const std::string out = Compact(object);

  EXPECT_THAT(out, HasSubstr(R"(He said \"hi\" \\ back\nnew\tline\r)"));
  EXPECT_THAT(out, HasSubstr(R"(\u0001)"));
  std::string lower = out;
  for (char& c : lower) c = static_cast<char>(std::tolower(static_cast<unsigned char>(c)));
  EXPECT_THAT(lower, HasSubstr(R"(\u001f)"));
  // No raw control character may appear in JSON text.
  for (char c : out) {
    EXPECT_GE(static_cast<unsigned char>(c), 0x20u) << "raw control byte in " << out;
  }

  rapidjson::Document parsed = ParseJsonOrFail(out);
  ASSERT_TRUE(parsed.HasMember("text"));
  EXPECT_EQ(std::string(parsed["text"].GetString(), parsed["text"].GetStringLength()), tricky);
}

TEST(JsonTest, NonAsciiUtf8RoundTrips) {
  JsonDocument doc;
  // é, 日本, U+1F600 (a four-byte sequence), and a combining accent.
  const std::string text = "caf\xC3\xA9 \xE6\x97\xA5\xE6\x9C\xAC \xF0\x9F\x98\x80 e\xCC\x81";
  Json object = std::move(Json::Object(doc.GetAllocator()).Str("text", text));
  object.Put("list", Json::Array(doc.GetAllocator()).PushStr(text));
  for (JsonStyle style : {JsonStyle::kCompact, JsonStyle::kPretty}) {
    rapidjson::Document parsed = ParseJsonOrFail(WriteJson(object.value(), style));
    ASSERT_TRUE(parsed.HasMember("text"));
    EXPECT_EQ(std::string(parsed["text"].GetString(), parsed["text"].GetStringLength()), text);
    EXPECT_EQ(std::string(parsed["list"][0].GetString()), text);
  }
}

TEST(JsonTest, EmbeddedNulIsEscapedAndKept) {
  JsonDocument doc;
  const std::string text("a\0b", 3);
  Json object = std::move(Json::Object(doc.GetAllocator()).Str("t", text));
  const std::string out = Compact(object);
  EXPECT_EQ(out, R"({"t":"a\u0000b"})");
  rapidjson::Document parsed = ParseJsonOrFail(out);
  EXPECT_EQ(std::string(parsed["t"].GetString(), parsed["t"].GetStringLength()), text);
}

TEST(JsonTest, KeysAreEscapedToo) {
  JsonDocument doc;
  Json object = std::move(Json::Object(doc.GetAllocator()).Str("we\"ird\\key", "v"));
  const std::string out = Compact(object);
  EXPECT_EQ(out, R"({"we\"ird\\key":"v"})");
  rapidjson::Document parsed = ParseJsonOrFail(out);
  EXPECT_TRUE(parsed.HasMember("we\"ird\\key"));
}

TEST(JsonTest, DecimalsSerializeInShortestForm) {
  struct Case {
    double value;
    const char* text;
  };
  const Case cases[] = {
      {0.5, "0.5"},     {72.4, "72.4"}, {36.6, "36.6"},     {98.6, "98.6"},   {0.1, "0.1"},
      {-1.25, "-1.25"}, {1.5, "1.5"},   {120.75, "120.75"}, {0.001, "0.001"}, {99.9, "99.9"},
  };
  for (const Case& c : cases) {
    JsonDocument doc;
    Json object = std::move(Json::Object(doc.GetAllocator()).Dec("v", c.value));
    EXPECT_EQ(Compact(object), absl::StrCat(R"({"v":)", c.text, "}")) << c.text;
    rapidjson::Document parsed = ParseJsonOrFail(Compact(object));
    EXPECT_EQ(parsed["v"].GetDouble(), c.value) << c.text;
  }
}

TEST(JsonTest, DecimalsInPrettyOutputToo) {
  JsonDocument doc;
  Json object = std::move(Json::Object(doc.GetAllocator()).Dec("dose", 0.5).Dec("weight", 72.4));
  EXPECT_EQ(WriteJson(object.value(), JsonStyle::kPretty),
            "{\n  \"dose\": 0.5,\n  \"weight\": 72.4\n}");
}

TEST(JsonTest, WritesADocumentBuiltIntoAJsonDocument) {
  JsonDocument doc;
  doc.SetObject();
  JsonAlloc& a = doc.GetAllocator();
  Json child = std::move(Json::Object(a).Str("id", "p1"));
  doc.AddMember("resource", child.Release(), a);
  EXPECT_EQ(WriteJson(doc, JsonStyle::kCompact), R"({"resource":{"id":"p1"}})");
}

// ---- the compact writer against rapidjson::Writer ----
//
// Compact output has its own writer (faster than rapidjson::Writer); it must write the very same
// bytes, and stop where rapidjson's does (at a NaN or infinity).

std::string RapidJsonCompact(const JsonValue& value) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  value.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

void ExpectSameAsRapidJson(const JsonValue& value) {
  std::string ours = "prefix:";  // appends, keeping what was there
  AppendJson(value, JsonStyle::kCompact, ours);
  EXPECT_EQ(ours, "prefix:" + RapidJsonCompact(value));
}

TEST(CompactWriterTest, StringsAsRapidJsonWritesThem) {
  std::vector<std::string> texts = {
      "",
      "a",
      "plain ascii text that is longer than sixteen bytes, more than once over",
      "quote \" and backslash \\ and slash /",
      "\b\t\n\f\r",
      std::string("nul \0 inside", 13),
      "\x01\x02\x1f\x7f",
      "caf\xc3\xa9 \xe2\x82\xac \xf0\x9f\x98\x80",
      "\xff\xfe invalid utf-8",
  };
  // Short strings (the writer reads them in pieces of 8 and 4 bytes): every length, with an
  // escaped or boundary byte at every position.
  for (size_t length = 0; length <= 20; ++length) {
    texts.push_back(std::string(length, 'k'));
    for (size_t at = 0; at < length; ++at) {
      for (char c : {'\0', '\x1f', '\x20', '"', '\\', '\n', '\x7f', '\x80', '\xff'}) {
        std::string text(length, 'k');
        text[at] = c;
        texts.push_back(text);
      }
    }
  }
  // Every byte value, at every position of a sixteen-byte block and past it.
  for (int c = 0; c < 256; ++c) {
    for (size_t at : {0, 5, 15, 16, 17, 31, 40}) {
      std::string text(41, 'x');
      text[at] = static_cast<char>(c);
      texts.push_back(text);
    }
  }
  JsonDocument doc;
  JsonAlloc& a = doc.GetAllocator();
  for (const std::string& text : texts) {
    JsonValue value(text.data(), static_cast<rapidjson::SizeType>(text.size()), a);
    ExpectSameAsRapidJson(value);
    JsonValue object(rapidjson::kObjectType);
    object.AddMember(JsonValue(text.data(), static_cast<rapidjson::SizeType>(text.size()), a),
                     JsonValue(text.data(), static_cast<rapidjson::SizeType>(text.size()), a), a);
    ExpectSameAsRapidJson(object);
  }
}

TEST(CompactWriterTest, NumbersAsRapidJsonWritesThem) {
  JsonDocument doc;
  std::vector<JsonValue> values;
  for (int64_t i : {int64_t{0}, int64_t{1}, int64_t{-1}, int64_t{70}, int64_t{2147483647},
                    int64_t{-2147483648LL}, int64_t{4294967295LL}, int64_t{4294967296LL},
                    std::numeric_limits<int64_t>::max(), std::numeric_limits<int64_t>::min()}) {
    values.emplace_back(i);
  }
  values.emplace_back(std::numeric_limits<uint64_t>::max());
  values.emplace_back(uint64_t{9223372036854775808ULL});
  values.emplace_back(uint32_t{4000000000U});
  for (double d : {0.0, -0.0, 0.5, 72.4, 0.1, 1e-7, 1e21, 1e300, 5e-324, -1.25, 123456789.123,
                   std::numeric_limits<double>::max(), std::numeric_limits<double>::min()}) {
    values.emplace_back(d);
  }
  std::mt19937_64 random(7);
  for (int i = 0; i < 2000; ++i) {
    const uint64_t bits = random();
    double d;
    std::memcpy(&d, &bits, sizeof d);
    if (std::isfinite(d)) values.emplace_back(d);
  }
  for (const JsonValue& value : values) ExpectSameAsRapidJson(value);
}

TEST(CompactWriterTest, StopsAtNanOrInfinityAsRapidJsonDoes) {
  for (double bad : {std::nan(""), std::numeric_limits<double>::infinity(),
                     -std::numeric_limits<double>::infinity()}) {
    JsonDocument doc;
    JsonAlloc& a = doc.GetAllocator();
    doc.SetObject();
    doc.AddMember("a", 1, a);
    JsonValue list(rapidjson::kArrayType);
    list.PushBack(true, a).PushBack(bad, a).PushBack(false, a);
    doc.AddMember("b", list, a);
    doc.AddMember("c", "after", a);
    ExpectSameAsRapidJson(doc);
  }
}

TEST(CompactWriterTest, StructuresAsRapidJsonWritesThem) {
  const std::vector<std::string> texts = {
      "null",
      "true",
      "false",
      "{}",
      "[]",
      "[[],{},[{}],{\"a\":[]}]",
      R"({"resourceType":"Bundle","entry":[{"resource":{"a":[1,2.5,-3,null,true,"x"]}}]})",
  };
  for (const std::string& text : texts) {
    JsonDocument doc;
    doc.Parse(text.data(), text.size());
    ASSERT_FALSE(doc.HasParseError()) << text;
    ExpectSameAsRapidJson(doc);
  }
}

// Every Bundle and FHIR input the repository holds, written compactly both ways.
TEST(CompactWriterTest, RepositoryFhirJsonAsRapidJsonWritesIt) {
  namespace fs = std::filesystem;
  int files = 0;
  for (const auto& entry :
       fs::recursive_directory_iterator(fs::path(FHIRGW_SOURCE_DIR) / "tests" / "golden")) {
    const std::string name = entry.path().string();
    if (!name.ends_with(".bundle.json") && !name.ends_with(".fhir.json")) continue;
    const std::string text = ReadFile(entry.path());
    JsonDocument doc;
    doc.Parse(text.data(), text.size());
    ASSERT_FALSE(doc.HasParseError()) << name;
    ExpectSameAsRapidJson(doc);
    ++files;
  }
  EXPECT_GE(files, 50);  // the goldens were found
}

}  // namespace
}  // namespace fhirgw::fhir
