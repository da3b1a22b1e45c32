#include "fhir/datatypes.h"

#include <string>
#include <utility>

#include "fhir/codes.h"
#include "fhir/json.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "tests/testing/json.h"

namespace fhirgw::fhir {
namespace {

using ::fhirgw::testing::ParseJsonOrFail;
using ::fhirgw::testing::Str;

// Serializes `json` compactly and parses it back, so that the structure can be inspected.
rapidjson::Document ToDocument(Json& json) {
  return ParseJsonOrFail(WriteJson(json.value(), JsonStyle::kCompact));
}

class DatatypesTest : public ::testing::Test {
 protected:
  JsonAlloc& a() { return doc_.GetAllocator(); }

  JsonDocument doc_;
};

TEST_F(DatatypesTest, CodingHasSystemCodeAndDisplay) {
  Json coding = Coding(a(), kLoinc, "8867-4", "Heart rate");
  rapidjson::Document d = ToDocument(coding);
  EXPECT_EQ(d.MemberCount(), 3u);
  EXPECT_EQ(Str(d, "system"), "http://loinc.org");
  EXPECT_EQ(Str(d, "code"), "8867-4");
  EXPECT_EQ(Str(d, "display"), "Heart rate");
}

TEST_F(DatatypesTest, CodingOmitsEmptyParts) {
  Json no_display = Coding(a(), kSnomed, "47625008", "");
  rapidjson::Document d = ToDocument(no_display);
  EXPECT_EQ(d.MemberCount(), 2u);
  EXPECT_FALSE(d.HasMember("display"));
  EXPECT_EQ(Str(d, "code"), "47625008");

  Json no_system = Coding(a(), "", "abc", "Abc");
  rapidjson::Document d2 = ToDocument(no_system);
  EXPECT_FALSE(d2.HasMember("system"));
  EXPECT_EQ(d2.MemberCount(), 2u);

  EXPECT_TRUE(Coding(a(), "", "", "").empty());
}

TEST_F(DatatypesTest, CodeableConceptHasOneCodingAndTextFromDisplay) {
  Json concept_json = CodeableConcept(a(), kLoinc, "8867-4", "Heart rate");
  rapidjson::Document d = ToDocument(concept_json);
  ASSERT_TRUE(d.HasMember("coding"));
  ASSERT_TRUE(d["coding"].IsArray());
  ASSERT_EQ(d["coding"].Size(), 1u);
  const rapidjson::Value& coding = d["coding"][0];
  EXPECT_EQ(Str(coding, "system"), "http://loinc.org");
  EXPECT_EQ(Str(coding, "code"), "8867-4");
  EXPECT_EQ(Str(coding, "display"), "Heart rate");
  EXPECT_EQ(Str(d, "text"), "Heart rate");
  EXPECT_EQ(d.MemberCount(), 2u);
}

TEST_F(DatatypesTest, CodeableConceptWithOnlyDisplayGivesTextOnly) {
  Json concept_json = CodeableConcept(a(), "", "", "Ketamine infusion");
  rapidjson::Document d = ToDocument(concept_json);
  EXPECT_FALSE(d.HasMember("coding"));
  EXPECT_EQ(Str(d, "text"), "Ketamine infusion");
  EXPECT_EQ(d.MemberCount(), 1u);
}

TEST_F(DatatypesTest, CodeableConceptWithSystemButNoCodeHasNoCoding) {
  Json concept_json = CodeableConcept(a(), kRxNorm, "", "Sertraline");
  rapidjson::Document d = ToDocument(concept_json);
  EXPECT_FALSE(d.HasMember("coding"));
  EXPECT_EQ(Str(d, "text"), "Sertraline");
}

TEST_F(DatatypesTest, CodeableConceptWithCodeButNoDisplayHasNoText) {
  Json concept_json = CodeableConcept(a(), kRxNorm, "6130", "");
  rapidjson::Document d = ToDocument(concept_json);
  EXPECT_FALSE(d.HasMember("text"));
  ASSERT_TRUE(d.HasMember("coding"));
  ASSERT_EQ(d["coding"].Size(), 1u);
  EXPECT_FALSE(d["coding"][0].HasMember("display"));
  EXPECT_EQ(Str(d["coding"][0], "code"), "6130");
  EXPECT_EQ(Str(d["coding"][0], "system"), kRxNorm);
}

TEST_F(DatatypesTest, CodeableConceptOfNothingIsEmptyAndOmitted) {
  EXPECT_TRUE(CodeableConcept(a(), "", "", "").empty());
  EXPECT_TRUE(CodeableConcept(a(), kLoinc, "", "").empty());
  Json parent = Json::Object(a());
  parent.Put("code", CodeableConcept(a(), "", "", ""));
  EXPECT_TRUE(parent.empty());
  EXPECT_EQ(WriteJson(parent.value(), JsonStyle::kCompact), "{}");
}

TEST_F(DatatypesTest, CodeableConceptWithTextUsesTheGivenText) {
  Json concept_json =
      CodeableConceptWithText(a(), kSnomed, "6471006", "Suicidal thoughts", "PHQ-9 item 9 > 0");
  rapidjson::Document d = ToDocument(concept_json);
  EXPECT_EQ(Str(d, "text"), "PHQ-9 item 9 > 0");
  ASSERT_TRUE(d.HasMember("coding"));
  EXPECT_EQ(Str(d["coding"][0], "display"), "Suicidal thoughts");

  Json no_text = CodeableConceptWithText(a(), kSnomed, "6471006", "Suicidal thoughts", "");
  rapidjson::Document d2 = ToDocument(no_text);
  EXPECT_FALSE(d2.HasMember("text"));
  EXPECT_TRUE(d2.HasMember("coding"));

  Json text_only = CodeableConceptWithText(a(), kSnomed, "", "ignored display", "free text");
  rapidjson::Document d3 = ToDocument(text_only);
  EXPECT_FALSE(d3.HasMember("coding"));
  EXPECT_EQ(Str(d3, "text"), "free text");
  EXPECT_EQ(d3.MemberCount(), 1u);
}

TEST_F(DatatypesTest, CodeableTextHasTextOnly) {
  Json concept_json = CodeableText(a(), "Felt dizzy after the session");
  rapidjson::Document d = ToDocument(concept_json);
  EXPECT_EQ(d.MemberCount(), 1u);
  EXPECT_EQ(Str(d, "text"), "Felt dizzy after the session");
  EXPECT_TRUE(CodeableText(a(), "").empty());
}

TEST_F(DatatypesTest, QuantityHasAllParts) {
  Json quantity = Quantity(a(), 0.5, "mg/kg", kUcum, "mg/kg");
  const std::string text = WriteJson(quantity.value(), JsonStyle::kCompact);
  EXPECT_EQ(text, R"({"value":0.5,"unit":"mg/kg","system":"http://unitsofmeasure.org",)"
                  R"("code":"mg/kg"})");
}

TEST_F(DatatypesTest, QuantityOmitsEmptyStringsButKeepsAZeroValue) {
  Json quantity = Quantity(a(), 0, "", "", "");
  rapidjson::Document d = ToDocument(quantity);
  EXPECT_EQ(d.MemberCount(), 1u);
  ASSERT_TRUE(d.HasMember("value"));
  EXPECT_EQ(d["value"].GetDouble(), 0.0);

  Json unit_only = Quantity(a(), 3, "tablets", "", "");
  rapidjson::Document d2 = ToDocument(unit_only);
  EXPECT_EQ(Str(d2, "unit"), "tablets");
  EXPECT_FALSE(d2.HasMember("system"));
  EXPECT_FALSE(d2.HasMember("code"));
}

TEST_F(DatatypesTest, UcumQuantityDefaultsUnitToTheUcumCode) {
  Json quantity = UcumQuantity(a(), 72.4, kUcumKg);
  rapidjson::Document d = ToDocument(quantity);
  EXPECT_EQ(d["value"].GetDouble(), 72.4);
  EXPECT_EQ(Str(d, "unit"), "kg");
  EXPECT_EQ(Str(d, "system"), kUcum);
  EXPECT_EQ(Str(d, "system"), "http://unitsofmeasure.org");
  EXPECT_EQ(Str(d, "code"), "kg");
  EXPECT_EQ(WriteJson(quantity.value(), JsonStyle::kCompact),
            R"({"value":72.4,"unit":"kg","system":"http://unitsofmeasure.org","code":"kg"})");
}

TEST_F(DatatypesTest, UcumQuantityUsesTheReadableUnitWhenGiven) {
  Json quantity = UcumQuantity(a(), 72, kUcumPerMin, "beats/minute");
  rapidjson::Document d = ToDocument(quantity);
  EXPECT_EQ(d["value"].GetDouble(), 72.0);
  EXPECT_EQ(Str(d, "unit"), "beats/minute");
  EXPECT_EQ(Str(d, "code"), "/min");
  EXPECT_EQ(Str(d, "system"), kUcum);
}

TEST_F(DatatypesTest, IdentifierHasSystemAndValue) {
  Json identifier = Identifier(a(), "urn:fhirgw:clinic-a:patient", "p-123");
  rapidjson::Document d = ToDocument(identifier);
  EXPECT_EQ(d.MemberCount(), 2u);
  EXPECT_EQ(Str(d, "system"), "urn:fhirgw:clinic-a:patient");
  EXPECT_EQ(Str(d, "value"), "p-123");

  Json value_only = Identifier(a(), "", "p-123");
  rapidjson::Document d2 = ToDocument(value_only);
  EXPECT_EQ(d2.MemberCount(), 1u);
  EXPECT_EQ(Str(d2, "value"), "p-123");

  EXPECT_TRUE(Identifier(a(), "", "").empty());
}

TEST_F(DatatypesTest, ReferenceHasReferenceAndOptionalDisplay) {
  Json ref = Reference(a(), "urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e");
  rapidjson::Document d = ToDocument(ref);
  EXPECT_EQ(d.MemberCount(), 1u);
  EXPECT_EQ(Str(d, "reference"), "urn:uuid:0f8fad5b-d9cb-469f-a165-70867728950e");

  Json with_display = Reference(a(), "Patient/123", "Jane Doe");
  rapidjson::Document d2 = ToDocument(with_display);
  EXPECT_EQ(d2.MemberCount(), 2u);
  EXPECT_EQ(Str(d2, "reference"), "Patient/123");
  EXPECT_EQ(Str(d2, "display"), "Jane Doe");

  EXPECT_TRUE(Reference(a(), "").empty());
  EXPECT_TRUE(Reference(a(), "", "").empty());
}

TEST_F(DatatypesTest, IdentifierReferenceHasTypeIdentifierAndDisplay) {
  Json ref = IdentifierReference(a(), "Practitioner", kNpi, "1234567893", "Dr. Smith");
  rapidjson::Document d = ToDocument(ref);
  EXPECT_EQ(Str(d, "type"), "Practitioner");
  ASSERT_TRUE(d.HasMember("identifier"));
  EXPECT_EQ(Str(d["identifier"], "system"), "http://hl7.org/fhir/sid/us-npi");
  EXPECT_EQ(Str(d["identifier"], "value"), "1234567893");
  EXPECT_EQ(Str(d, "display"), "Dr. Smith");
  EXPECT_FALSE(d.HasMember("reference"));
  EXPECT_EQ(d.MemberCount(), 3u);
}

TEST_F(DatatypesTest, IdentifierReferenceWithoutValueHasNoIdentifier) {
  Json ref = IdentifierReference(a(), "Practitioner", kNpi, "", "Dr. Smith");
  rapidjson::Document d = ToDocument(ref);
  EXPECT_FALSE(d.HasMember("identifier"));
  EXPECT_EQ(Str(d, "type"), "Practitioner");
  EXPECT_EQ(Str(d, "display"), "Dr. Smith");

  Json no_display = IdentifierReference(a(), "", kNpi, "1234567893");
  rapidjson::Document d2 = ToDocument(no_display);
  EXPECT_FALSE(d2.HasMember("type"));
  EXPECT_FALSE(d2.HasMember("display"));
  EXPECT_TRUE(d2.HasMember("identifier"));
  EXPECT_EQ(d2.MemberCount(), 1u);

  EXPECT_TRUE(IdentifierReference(a(), "", "", "").empty());
  EXPECT_TRUE(IdentifierReference(a(), "", kNpi, "").empty());
}

TEST_F(DatatypesTest, PeriodHasEitherOrBothEnds) {
  Json both = Period(a(), "2026-11-20T14:05:00Z", "2026-11-20T14:50:00Z");
  EXPECT_EQ(WriteJson(both.value(), JsonStyle::kCompact),
            R"({"start":"2026-11-20T14:05:00Z","end":"2026-11-20T14:50:00Z"})");

  Json start_only = Period(a(), "2026-11-20", "");
  rapidjson::Document d = ToDocument(start_only);
  EXPECT_EQ(d.MemberCount(), 1u);
  EXPECT_EQ(Str(d, "start"), "2026-11-20");

  Json end_only = Period(a(), "", "2026-12");
  rapidjson::Document d2 = ToDocument(end_only);
  EXPECT_EQ(d2.MemberCount(), 1u);
  EXPECT_EQ(Str(d2, "end"), "2026-12");

  EXPECT_TRUE(Period(a(), "", "").empty());
}

TEST_F(DatatypesTest, AnnotationHasText) {
  Json note = Annotation(a(), "Tolerated well; mild dissociation resolved by 60 min.");
  rapidjson::Document d = ToDocument(note);
  EXPECT_EQ(d.MemberCount(), 1u);
  EXPECT_EQ(Str(d, "text"), "Tolerated well; mild dissociation resolved by 60 min.");
  EXPECT_TRUE(Annotation(a(), "").empty());
}

TEST_F(DatatypesTest, EmptyElementsAreOmittedFromAResource) {
  Json resource = std::move(Json::Object(a()).Str("resourceType", "Observation"));
  resource.Put("code", CodeableConcept(a(), kLoinc, kLoincHeartRate, "Heart rate"));
  resource.Put("valueQuantity", UcumQuantity(a(), 72, kUcumPerMin, "beats/minute"));
  resource.Put("effectivePeriod", Period(a(), "", ""));
  resource.Put("performer", Json::Array(a()).Push(Reference(a(), "")));
  resource.Put("note", Json::Array(a()).Push(Annotation(a(), "")));
  resource.Put("identifier", Json::Array(a()).Push(Identifier(a(), "", "")));
  rapidjson::Document d = ToDocument(resource);
  EXPECT_EQ(d.MemberCount(), 3u);
  EXPECT_TRUE(d.HasMember("code"));
  EXPECT_TRUE(d.HasMember("valueQuantity"));
  EXPECT_FALSE(d.HasMember("effectivePeriod"));
  EXPECT_FALSE(d.HasMember("performer"));
  EXPECT_FALSE(d.HasMember("note"));
  EXPECT_FALSE(d.HasMember("identifier"));
  EXPECT_EQ(Str(d["code"]["coding"][0], "code"), "8867-4");
}

TEST_F(DatatypesTest, StringsAreCopiedFromTheirInputs) {
  Json coding = Json::Object(a());
  {
    std::string system = "http://example.org/system";
    std::string code = "code-1";
    coding = Coding(a(), system, code, "");
    system.assign(system.size(), 'x');
    code.assign(code.size(), 'y');
  }
  rapidjson::Document d = ToDocument(coding);
  EXPECT_EQ(Str(d, "system"), "http://example.org/system");
  EXPECT_EQ(Str(d, "code"), "code-1");
}

}  // namespace
}  // namespace fhirgw::fhir
