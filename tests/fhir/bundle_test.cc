#include "fhir/bundle.h"

#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "fhir/json.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "tests/testing/json.h"

namespace fhirgw::fhir {
namespace {

using ::fhirgw::testing::ParseJsonOrFail;
using ::fhirgw::testing::Str;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kPatientSystem[] = "urn:fhirgw:clinic-a:patient";
constexpr char kStatementSystem[] = "urn:fhirgw:clinic-a:medication-statement";

int CountMembers(const rapidjson::Value& object, const char* name) {
  int count = 0;
  for (auto it = object.MemberBegin(); it != object.MemberEnd(); ++it) {
    if (std::string(it->name.GetString()) == name) ++count;
  }
  return count;
}

Json Resource(TransactionBundle& bundle, const char* type, const char* id) {
  return std::move(Json::Object(bundle.alloc()).Str("resourceType", type).Str("id", id));
}

TEST(TransactionBundleTest, IsATransactionBundle) {
  TransactionBundle bundle;
  bundle.AddConditionalCreate("urn:uuid:1", Resource(bundle, "Patient", "p"), "Patient",
                              kPatientSystem, "123");
  rapidjson::Document d = ParseJsonOrFail(bundle.Write(JsonStyle::kCompact));
  EXPECT_EQ(Str(d, "resourceType"), "Bundle");
  EXPECT_EQ(Str(d, "type"), "transaction");
  ASSERT_TRUE(d.HasMember("entry"));
  ASSERT_TRUE(d["entry"].IsArray());
  EXPECT_EQ(d["entry"].Size(), 1u);
}

// FHIR JSON never holds an empty array (DESIGN.md, json.h), so a Bundle with no entries must not
// carry "entry": [].
TEST(TransactionBundleTest, EmptyBundleHasNoEmptyEntryArray) {
  TransactionBundle bundle;
  EXPECT_EQ(bundle.entry_count(), 0);
  rapidjson::Document d = ParseJsonOrFail(bundle.Write(JsonStyle::kCompact));
  EXPECT_EQ(Str(d, "resourceType"), "Bundle");
  EXPECT_EQ(Str(d, "type"), "transaction");
  if (d.HasMember("entry")) {
    ASSERT_TRUE(d["entry"].IsArray());
    EXPECT_FALSE(d["entry"].Empty()) << "an empty Bundle must not emit \"entry\": []";
  }
}

TEST(TransactionBundleTest, ConditionalCreatePostsWithIfNoneExist) {
  TransactionBundle bundle;
  Json patient = Resource(bundle, "Patient", "p1");
  patient.Str("gender", "female");
  bundle.AddConditionalCreate("urn:uuid:aaaa", std::move(patient), "Patient", kPatientSystem,
                              "MRN-42");
  EXPECT_EQ(bundle.entry_count(), 1);

  rapidjson::Document d = ParseJsonOrFail(bundle.Write(JsonStyle::kCompact));
  const rapidjson::Value& entry = d["entry"][0];
  EXPECT_EQ(Str(entry, "fullUrl"), "urn:uuid:aaaa");
  ASSERT_TRUE(entry.HasMember("resource"));
  EXPECT_EQ(Str(entry["resource"], "resourceType"), "Patient");
  EXPECT_EQ(Str(entry["resource"], "id"), "p1");
  EXPECT_EQ(Str(entry["resource"], "gender"), "female");
  ASSERT_TRUE(entry.HasMember("request"));
  const rapidjson::Value& request = entry["request"];
  EXPECT_EQ(Str(request, "method"), "POST");
  EXPECT_EQ(Str(request, "url"), "Patient");
  EXPECT_EQ(Str(request, "ifNoneExist"), "identifier=urn:fhirgw:clinic-a:patient|MRN-42");
  EXPECT_EQ(request.MemberCount(), 3u);
}

TEST(TransactionBundleTest, ConditionalUpdatePutsToAConditionalUrl) {
  TransactionBundle bundle;
  bundle.AddConditionalUpdate("urn:uuid:bbbb", Resource(bundle, "MedicationStatement", "ms"),
                              "MedicationStatement", kStatementSystem, "rec-7");
  rapidjson::Document d = ParseJsonOrFail(bundle.Write(JsonStyle::kCompact));
  const rapidjson::Value& entry = d["entry"][0];
  EXPECT_EQ(Str(entry, "fullUrl"), "urn:uuid:bbbb");
  ASSERT_TRUE(entry.HasMember("resource"));
  EXPECT_EQ(Str(entry["resource"], "resourceType"), "MedicationStatement");
  const rapidjson::Value& request = entry["request"];
  EXPECT_EQ(Str(request, "method"), "PUT");
  EXPECT_EQ(Str(request, "url"),
            "MedicationStatement?identifier=urn:fhirgw:clinic-a:medication-statement|rec-7");
  EXPECT_FALSE(request.HasMember("ifNoneExist"));
  EXPECT_EQ(request.MemberCount(), 2u);
}

TEST(TransactionBundleTest, ConditionalDeleteHasNoFullUrlAndNoResource) {
  TransactionBundle bundle;
  bundle.AddConditionalDelete("Observation", "urn:fhirgw:clinic-a:observation", "obs-1");
  EXPECT_EQ(bundle.entry_count(), 1);
  rapidjson::Document d = ParseJsonOrFail(bundle.Write(JsonStyle::kCompact));
  const rapidjson::Value& entry = d["entry"][0];
  EXPECT_FALSE(entry.HasMember("fullUrl"));
  EXPECT_FALSE(entry.HasMember("resource"));
  ASSERT_TRUE(entry.HasMember("request"));
  EXPECT_EQ(entry.MemberCount(), 1u);
  const rapidjson::Value& request = entry["request"];
  EXPECT_EQ(Str(request, "method"), "DELETE");
  EXPECT_EQ(Str(request, "url"), "Observation?identifier=urn:fhirgw:clinic-a:observation|obs-1");
  EXPECT_FALSE(request.HasMember("ifNoneExist"));
}

TEST(TransactionBundleTest, EntryOrderIsKept) {
  TransactionBundle bundle;
  bundle.AddConditionalCreate("urn:uuid:1", Resource(bundle, "Patient", "a"), "Patient",
                              kPatientSystem, "p");
  bundle.AddConditionalUpdate("urn:uuid:2", Resource(bundle, "Encounter", "b"), "Encounter",
                              "urn:enc", "e");
  bundle.AddConditionalDelete("Observation", "urn:obs", "o");
  bundle.AddConditionalUpdate("urn:uuid:4", Resource(bundle, "MedicationAdministration", "c"),
                              "MedicationAdministration", "urn:ma", "m");
  bundle.AddConditionalCreate("urn:uuid:5", Resource(bundle, "Patient", "d"), "Patient",
                              kPatientSystem, "q");
  EXPECT_EQ(bundle.entry_count(), 5);

  rapidjson::Document d = ParseJsonOrFail(bundle.Write(JsonStyle::kCompact));
  const rapidjson::Value& entries = d["entry"];
  ASSERT_EQ(entries.Size(), 5u);
  EXPECT_EQ(Str(entries[0]["request"], "method"), "POST");
  EXPECT_EQ(Str(entries[0]["resource"], "id"), "a");
  EXPECT_EQ(Str(entries[1]["request"], "method"), "PUT");
  EXPECT_EQ(Str(entries[1]["request"], "url"), "Encounter?identifier=urn:enc|e");
  EXPECT_EQ(Str(entries[2]["request"], "method"), "DELETE");
  EXPECT_EQ(Str(entries[2]["request"], "url"), "Observation?identifier=urn:obs|o");
  EXPECT_EQ(Str(entries[3]["request"], "method"), "PUT");
  EXPECT_EQ(Str(entries[3]["resource"], "id"), "c");
  EXPECT_EQ(Str(entries[4]["request"], "method"), "POST");
  EXPECT_EQ(Str(entries[4]["request"], "ifNoneExist"), "identifier=urn:fhirgw:clinic-a:patient|q");
  EXPECT_EQ(Str(entries[0], "fullUrl"), "urn:uuid:1");
  EXPECT_EQ(Str(entries[1], "fullUrl"), "urn:uuid:2");
  EXPECT_EQ(Str(entries[3], "fullUrl"), "urn:uuid:4");
  EXPECT_EQ(Str(entries[4], "fullUrl"), "urn:uuid:5");
}

TEST(TransactionBundleTest, DocumentCanBeCalledTwiceWithoutDuplicatingEntry) {
  TransactionBundle bundle;
  bundle.AddConditionalCreate("urn:uuid:1", Resource(bundle, "Patient", "a"), "Patient",
                              kPatientSystem, "p");
  bundle.AddConditionalDelete("Observation", "urn:obs", "o");

  const JsonDocument& first = bundle.document();
  const std::string first_text = WriteJson(first, JsonStyle::kCompact);
  const JsonDocument& second = bundle.document();
  EXPECT_EQ(&first, &second);
  EXPECT_EQ(CountMembers(second, "entry"), 1);
  ASSERT_TRUE(second["entry"].IsArray());
  EXPECT_EQ(second["entry"].Size(), 2u);
  EXPECT_EQ(WriteJson(second, JsonStyle::kCompact), first_text);

  // Write() goes through document() too.
  const std::string written = bundle.Write(JsonStyle::kCompact);
  EXPECT_EQ(written, first_text);
  EXPECT_EQ(bundle.Write(JsonStyle::kCompact), first_text);
  rapidjson::Document d = ParseJsonOrFail(written);
  EXPECT_EQ(CountMembers(d, "entry"), 1);
  EXPECT_EQ(d["entry"].Size(), 2u);
}

TEST(TransactionBundleTest, WriteStylesDifferInLayoutOnly) {
  TransactionBundle bundle;
  bundle.AddConditionalCreate("urn:uuid:1", Resource(bundle, "Patient", "a"), "Patient",
                              kPatientSystem, "p");
  const std::string compact = bundle.Write(JsonStyle::kCompact);
  const std::string pretty = bundle.Write(JsonStyle::kPretty);
  EXPECT_THAT(compact, Not(HasSubstr("\n")));
  EXPECT_THAT(pretty, HasSubstr("\n  \"resourceType\": \"Bundle\""));
  EXPECT_TRUE(ParseJsonOrFail(compact) == ParseJsonOrFail(pretty));
  EXPECT_EQ(compact.rfind(R"({"resourceType":"Bundle","type":"transaction","entry":[)", 0), 0u)
      << compact;
}

TEST(TransactionBundleTest, ConditionalUrlsArePercentEncoded) {
  TransactionBundle bundle;
  bundle.AddConditionalCreate("urn:uuid:1", Resource(bundle, "Patient", "a"), "Patient",
                              kPatientSystem, "a b&c");
  bundle.AddConditionalUpdate("urn:uuid:2", Resource(bundle, "Encounter", "b"), "Encounter",
                              "urn:enc", "x#y=z");
  bundle.AddConditionalDelete("Observation", "urn:obs", "1+1%");
  rapidjson::Document d = ParseJsonOrFail(bundle.Write(JsonStyle::kCompact));
  EXPECT_EQ(Str(d["entry"][0]["request"], "ifNoneExist"),
            "identifier=urn:fhirgw:clinic-a:patient|a%20b%26c");
  EXPECT_EQ(Str(d["entry"][0]["request"], "url"), "Patient");
  EXPECT_EQ(Str(d["entry"][1]["request"], "url"), "Encounter?identifier=urn:enc|x%23y%3Dz");
  EXPECT_EQ(Str(d["entry"][2]["request"], "url"), "Observation?identifier=urn:obs|1%2B1%25");
}

TEST(TransactionBundleTest, EmptyResourceIsOmitted) {
  TransactionBundle bundle;
  bundle.AddConditionalUpdate("urn:uuid:1", Json::Object(bundle.alloc()), "Encounter", "urn:enc",
                              "e");
  rapidjson::Document d = ParseJsonOrFail(bundle.Write(JsonStyle::kCompact));
  EXPECT_FALSE(d["entry"][0].HasMember("resource"));
  EXPECT_EQ(Str(d["entry"][0], "fullUrl"), "urn:uuid:1");
}

TEST(TransactionBundleTest, SurvivesAMove) {
  TransactionBundle bundle;
  bundle.AddConditionalCreate("urn:uuid:1", Resource(bundle, "Patient", "a"), "Patient",
                              kPatientSystem, "p");
  TransactionBundle moved = std::move(bundle);
  moved.AddConditionalDelete("Observation", "urn:obs", "o");
  EXPECT_EQ(moved.entry_count(), 2);
  rapidjson::Document d = ParseJsonOrFail(moved.Write(JsonStyle::kCompact));
  ASSERT_EQ(d["entry"].Size(), 2u);
  EXPECT_EQ(Str(d["entry"][0]["resource"], "id"), "a");
  EXPECT_EQ(Str(d["entry"][1]["request"], "method"), "DELETE");
}

TEST(IdentifierSearchTest, JoinsSystemAndValueWithABar) {
  EXPECT_EQ(IdentifierSearch("urn:fhirgw:clinic-a:patient", "123"),
            "identifier=urn:fhirgw:clinic-a:patient|123");
  EXPECT_EQ(IdentifierSearch("http://hospital.example.org/mrn", "A-1"),
            "identifier=http://hospital.example.org/mrn|A-1");
}

TEST(IdentifierSearchTest, KeepsUnreservedAndFhirReadableCharactersLiteral) {
  const std::string kept =
      "abcxyzABCXYZ0189:/|.-_~";  // letters, digits, ':', '/', '|', '.', '-', '_', '~'
  EXPECT_EQ(IdentifierSearch(kept, kept), "identifier=" + kept + "|" + kept);
}

TEST(IdentifierSearchTest, PercentEncodesReservedCharacters) {
  struct Case {
    const char* raw;
    const char* encoded;
  };
  const Case cases[] = {
      {"&", "%26"}, {"#", "%23"}, {"+", "%2B"}, {"%", "%25"},  {" ", "%20"},
      {"=", "%3D"}, {"?", "%3F"}, {",", "%2C"}, {"\"", "%22"},
  };
  for (const Case& c : cases) {
    EXPECT_EQ(IdentifierSearch("urn:s", c.raw), absl::StrCat("identifier=urn:s|", c.encoded))
        << "value " << c.raw;
    EXPECT_EQ(IdentifierSearch(c.raw, "v"), absl::StrCat("identifier=", c.encoded, "|v"))
        << "system " << c.raw;
  }
  EXPECT_EQ(IdentifierSearch("urn:s", "a&b=c d+e#f%g"),
            "identifier=urn:s|a%26b%3Dc%20d%2Be%23f%25g");
}

TEST(IdentifierSearchTest, PercentEncodesNonAsciiAsUppercaseUtf8Bytes) {
  // "é" is C3 A9, "日" is E6 97 A5, "ß" is C3 9F.
  EXPECT_EQ(IdentifierSearch("urn:s", "Jos\xC3\xA9"), "identifier=urn:s|Jos%C3%A9");
  EXPECT_EQ(IdentifierSearch("urn:s", "\xE6\x97\xA5"), "identifier=urn:s|%E6%97%A5");
  EXPECT_EQ(IdentifierSearch("urn:\xC3\x9F", "x"), "identifier=urn:%C3%9F|x");
  EXPECT_EQ(IdentifierSearch("urn:s", "\xFF"), "identifier=urn:s|%FF");
}

TEST(IdentifierSearchTest, PercentEncodesControlBytes) {
  EXPECT_EQ(IdentifierSearch("urn:s", std::string("a\0b", 3)), "identifier=urn:s|a%00b");
  EXPECT_EQ(IdentifierSearch("urn:s", "\n\t\x7F"), "identifier=urn:s|%0A%09%7F");
}

TEST(IdentifierSearchTest, EmptyPartsStillGiveTheBar) {
  EXPECT_EQ(IdentifierSearch("", "123"), "identifier=|123");
  EXPECT_EQ(IdentifierSearch("urn:s", ""), "identifier=urn:s|");
}

}  // namespace
}  // namespace fhirgw::fhir
