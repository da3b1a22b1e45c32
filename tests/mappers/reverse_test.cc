// Tests of MapFromFhir (FHIR R4 -> clinic records) with hospital-style input: contained and
// Bundle-resolved Medications, CodeableConcepts with several codings, partial dates, offsets and
// fractional seconds, the ways QuestionnaireResponses write PHQ-9/GAD-7/PHQ-2, unknown
// extensions, unsupported resources, malformed input, grouping, and record ids.
//
// Bigger inputs live in tests/golden/reverse/<case>.fhir.json with the expected records
// (<case>.records.ndjson, protobuf JSON one a line) and issues (<case>.issues.txt);
// FHIRGW_UPDATE_GOLDENS=1 rewrites the expectations, review the diff.
#include "mappers/reverse.h"

#include <filesystem>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "google/protobuf/util/time_util.h"
#include "gtest/gtest.h"
#include "mappers/record_json.h"
#include "tests/testing/files.h"
#include "tests/testing/param_names.h"

namespace fhirgw::mappers {
namespace {

namespace fs = std::filesystem;
using ::fhirgw::testing::ParamName;
using ::fhirgw::testing::ReadFile;
using ::fhirgw::testing::UpdateGoldens;
using ::fhirgw::testing::WriteFile;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::SizeIs;
using TimeUtil = google::protobuf::util::TimeUtil;

constexpr char kClinic[] = "lakeside-ketamine";
constexpr char kRxNorm[] = "http://www.nlm.nih.gov/research/umls/rxnorm";

struct Result {
  absl::StatusOr<std::vector<ReverseRecord>> records = std::vector<ReverseRecord>();
  fhir::IssueList issues;

  // The one record mapped; nullptr (and a test failure) otherwise.
  const ReverseRecord* One() const {
    EXPECT_TRUE(records.ok()) << records.status() << "\n" << fhir::FormatIssues(issues);
    if (!records.ok()) return nullptr;
    EXPECT_THAT(*records, SizeIs(1)) << fhir::FormatIssues(issues);
    return records->size() == 1 ? &records->front() : nullptr;
  }
  std::string Issues() const { return fhir::FormatIssues(issues); }
};

Result Map(absl::string_view json,
           const ReverseContext& context = ReverseContext::ForTenant(kClinic)) {
  Result result;
  result.records = MapFromFhir(json, context, result.issues);
  return result;
}

auto IssueAt(const std::string& path, const std::string& text) {
  return AllOf(Field(&fhir::Issue::path, path), Field(&fhir::Issue::message, HasSubstr(text)));
}
auto WarningAt(const std::string& path) {
  return AllOf(Field(&fhir::Issue::path, path),
               Field(&fhir::Issue::severity, fhir::Issue::Severity::kWarning));
}
auto ErrorAt(const std::string& path) {
  return AllOf(Field(&fhir::Issue::path, path),
               Field(&fhir::Issue::severity, fhir::Issue::Severity::kError));
}

// Wraps resources (JSON texts) in a Bundle of `type`, each entry with the fullUrl given before it
// ("" for none).
std::string Bundle(const std::string& type,
                   const std::vector<std::pair<std::string, std::string>>& entries) {
  std::string json = absl::StrCat(R"({"resourceType":"Bundle","type":")", type, R"(","entry":[)");
  for (size_t i = 0; i < entries.size(); ++i) {
    absl::StrAppend(&json, i == 0 ? "" : ",", "{");
    if (!entries[i].first.empty())
      absl::StrAppend(&json, R"("fullUrl":")", entries[i].first, R"(",)");
    absl::StrAppend(&json, R"("resource":)", entries[i].second, "}");
  }
  return json + "]}";
}

// A hospital MedicationRequest around `medication` (the medication[x] members).
std::string Request(const std::string& medication, const std::string& more = "") {
  return absl::StrCat(R"({"resourceType":"MedicationRequest","id":"rx1","status":"active",)",
                      R"("intent":"order","subject":{"reference":"Patient/p1"},)", medication,
                      more.empty() ? "" : ",", more, "}");
}

// ---- medications ----

TEST(ReverseMedicationTest, ContainedMedication) {
  const Result r = Map(R"({
    "resourceType": "MedicationRequest", "id": "rx1", "status": "active", "intent": "order",
    "contained": [{"resourceType": "Medication", "id": "med1", "code": {"coding": [
      {"system": "http://snomed.info/sct", "code": "407294002", "display": "Sertraline 100 mg tablet"},
      {"system": "http://www.nlm.nih.gov/research/umls/rxnorm", "code": "36437", "display": "sertraline"}]}}],
    "medicationReference": {"reference": "#med1"},
    "subject": {"reference": "Patient/p1"}})");
  const ReverseRecord* record = r.One();
  ASSERT_NE(record, nullptr);
  const v1::Code& medication = record->record.medication_statement().medication();
  EXPECT_EQ(medication.system(), kRxNorm);
  EXPECT_EQ(medication.code(), "36437");
  EXPECT_EQ(medication.display(), "sertraline");
  EXPECT_THAT(r.issues, IsEmpty()) << r.Issues();
}

TEST(ReverseMedicationTest, MedicationElsewhereInTheBundleByFullUrl) {
  const Result r = Map(Bundle(
      "transaction",
      {{"urn:uuid:8c1c1b9e-0000-4000-8000-000000000001",
        R"({"resourceType":"Medication","code":{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"42347","display":"bupropion"}]}})"},
       {"urn:uuid:8c1c1b9e-0000-4000-8000-000000000002",
        R"({"resourceType":"MedicationStatement","status":"active","subject":{"reference":"Patient/p1"},
            "medicationReference":{"reference":"urn:uuid:8c1c1b9e-0000-4000-8000-000000000001"}})"}}));
  const ReverseRecord* record = r.One();
  ASSERT_NE(record, nullptr);
  EXPECT_EQ(record->record.medication_statement().medication().code(), "42347");
  // No id: the fullUrl stands in for it.
  EXPECT_EQ(record->source_id, "urn:uuid:8c1c1b9e-0000-4000-8000-000000000002");
  EXPECT_EQ(record->record.record_id(), "urn:uuid:8c1c1b9e-0000-4000-8000-000000000002");
}

TEST(ReverseMedicationTest, MedicationElsewhereInTheBundleByTypeAndId) {
  for (const char* reference : {"Medication/m1", "https://ehr.example.org/fhir/Medication/m1",
                                "Medication/m1/_history/3"}) {
    SCOPED_TRACE(reference);
    const Result r = Map(Bundle(
        "collection",
        {{"https://ehr.example.org/fhir/MedicationRequest/rx1",
          Request(absl::StrCat(R"("medicationReference":{"reference":")", reference, R"("})"))},
         {"https://ehr.example.org/fhir/Medication/m1",
          R"({"resourceType":"Medication","id":"m1","code":{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"321988","display":"escitalopram"}]}})"}}));
    const ReverseRecord* record = r.One();
    ASSERT_NE(record, nullptr);
    EXPECT_EQ(record->record.medication_statement().medication().code(), "321988");
    EXPECT_THAT(r.issues, IsEmpty()) << r.Issues();
  }
}

TEST(ReverseMedicationTest, UnresolvedMedicationIsAnErrorNamingTheElement) {
  const Result r = Map(Request(R"("medicationReference":{"reference":"Medication/gone"})"));
  ASSERT_FALSE(r.records.ok());
  EXPECT_EQ(r.records.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.issues, ElementsAre(IssueAt("MedicationRequest.medicationReference",
                                            "'Medication/gone' is neither contained")));
  EXPECT_THAT(std::string(r.records.status().message()),
              HasSubstr("MedicationRequest.medicationReference"));
}

TEST(ReverseMedicationTest, UnresolvedMedicationWithDisplayKeepsTheDisplay) {
  const Result r = Map(
      Request(R"("medicationReference":{"reference":"Medication/gone","display":"Zoloft 50 mg"})"));
  const ReverseRecord* record = r.One();
  ASSERT_NE(record, nullptr);
  EXPECT_EQ(record->record.medication_statement().medication().display(), "Zoloft 50 mg");
  EXPECT_THAT(r.issues, ElementsAre(WarningAt("MedicationRequest.medicationReference")));
}

TEST(ReverseMedicationTest, MissingMedicationNamesMedicationCodeableConcept) {
  const Result r = Map(Request(R"("note":[{"text":"no drug"}])"));
  ASSERT_FALSE(r.records.ok());
  EXPECT_THAT(r.issues, ElementsAre(ErrorAt("MedicationRequest.medicationCodeableConcept")));
}

TEST(ReverseMedicationTest, ReferenceToAnotherTypeIsAnError) {
  const Result r = Map(
      Bundle("collection", {{"", Request(R"("medicationReference":{"reference":"Patient/p1"})")},
                            {"", R"({"resourceType":"Patient","id":"p1"})"}}));
  ASSERT_FALSE(r.records.ok());
  EXPECT_THAT(r.issues, Contains(IssueAt("Bundle.entry[0].resource.medicationReference",
                                         "is a Patient, not a Medication")));
}

// ---- CodeableConcepts ----

TEST(ReverseCodeTest, PrefersRxNormAmongSeveralCodings) {
  const Result r = Map(Request(R"("medicationCodeableConcept":{"coding":[
      {"system":"http://hl7.org/fhir/sid/ndc","code":"0049-4960-50","display":"Zoloft 50mg"},
      {"system":"http://snomed.info/sct","code":"407293008"},
      {"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"36437"}],"text":"Sertraline"})"));
  const ReverseRecord* record = r.One();
  ASSERT_NE(record, nullptr);
  const v1::Code& medication = record->record.medication_statement().medication();
  EXPECT_EQ(medication.system(), kRxNorm);
  EXPECT_EQ(medication.code(), "36437");
  // The chosen coding has no display: the concept's text is kept.
  EXPECT_EQ(medication.display(), "Sertraline");
}

TEST(ReverseCodeTest, WithoutThePreferredSystemTakesTheFirstCoding) {
  const Result r = Map(Request(R"("medicationCodeableConcept":{"coding":[
      {"system":"http://hl7.org/fhir/sid/ndc","code":"0049-4960-50","display":"Zoloft 50mg"},
      {"system":"http://snomed.info/sct","code":"407293008"}]})"));
  const ReverseRecord* record = r.One();
  ASSERT_NE(record, nullptr);
  EXPECT_EQ(record->record.medication_statement().medication().code(), "0049-4960-50");
  EXPECT_EQ(record->record.medication_statement().medication().display(), "Zoloft 50mg");
}

TEST(ReverseCodeTest, TextOnlyConceptGivesADisplayOnlyCode) {
  const Result r = Map(
      Request(R"json("medicationCodeableConcept":{"text":"Ketamine lozenge (compounded)"})json"));
  const ReverseRecord* record = r.One();
  ASSERT_NE(record, nullptr);
  const v1::Code& medication = record->record.medication_statement().medication();
  EXPECT_EQ(medication.code(), "");
  EXPECT_EQ(medication.display(), "Ketamine lozenge (compounded)");
}

TEST(ReverseCodeTest, ReasonsAndRoutesPreferSnomed) {
  const Result r = Map(Request(
      R"("medicationCodeableConcept":{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"36437"}]})",
      R"("reasonCode":[{"coding":[{"system":"http://hl7.org/fhir/sid/icd-10-cm","code":"F33.2"},
          {"system":"http://snomed.info/sct","code":"268621008","display":"Recurrent major depressive episodes"}]}],
         "dosageInstruction":[{"route":{"coding":[{"system":"urn:oid:2.16.840.1.113883.3.26.1.1","code":"C38288"},
          {"system":"http://snomed.info/sct","code":"26643006"}]}}])"));
  const ReverseRecord* record = r.One();
  ASSERT_NE(record, nullptr);
  const v1::MedicationStatementRecord& s = record->record.medication_statement();
  ASSERT_EQ(s.reasons_size(), 1);
  EXPECT_EQ(s.reasons(0).code(), "268621008");
  EXPECT_EQ(s.route(), v1::Route::ORAL);
}

TEST(ReverseCodeTest, RouteFromWordsWhenNoCodeIsKnown) {
  for (const auto& [route, expected] : std::vector<std::pair<std::string, v1::Route::Value>>{
           {R"({"text":"by mouth"})", v1::Route::ORAL},
           {R"({"text":"IV push"})", v1::Route::INTRAVENOUS},
           {R"({"coding":[{"system":"http://ncimeta.nci.nih.gov","code":"C38284"}]})",
            v1::Route::INTRANASAL},
           {R"({"coding":[{"display":"Subcutaneous"}]})", v1::Route::SUBCUTANEOUS}}) {
    SCOPED_TRACE(route);
    const Result r = Map(Request(R"("medicationCodeableConcept":{"text":"x"})",
                                 absl::StrCat(R"("dosageInstruction":[{"route":)", route, "}]")));
    const ReverseRecord* record = r.One();
    ASSERT_NE(record, nullptr);
    EXPECT_EQ(record->record.medication_statement().route(), expected);
  }
  const Result unknown = Map(Request(R"("medicationCodeableConcept":{"text":"x"})",
                                     R"("dosageInstruction":[{"route":{"text":"topical"}}])"));
  EXPECT_THAT(unknown.issues,
              ElementsAre(WarningAt("MedicationRequest.dosageInstruction[0].route")));
}

// ---- dates and times ----

TEST(ReverseDateTest, PartialEffectiveDatesAreKeptAsText) {
  const Result r = Map(R"({"resourceType":"MedicationStatement","id":"ms1","status":"active",
      "medicationCodeableConcept":{"text":"sertraline"},"subject":{"reference":"Patient/p1"},
      "effectivePeriod":{"start":"2025","end":"2025-03"}})");
  const ReverseRecord* record = r.One();
  ASSERT_NE(record, nullptr);
  EXPECT_EQ(record->record.medication_statement().effective_start(), "2025");
  EXPECT_EQ(record->record.medication_statement().effective_end(), "2025-03");
  EXPECT_THAT(r.issues, IsEmpty()) << r.Issues();
}

TEST(ReverseDateTest, MalformedEffectiveDateIsDroppedWithAWarning) {
  const Result r = Map(R"({"resourceType":"MedicationStatement","id":"ms1","status":"active",
      "medicationCodeableConcept":{"text":"sertraline"},"subject":{"reference":"Patient/p1"},
      "effectiveDateTime":"03/2025"})");
  const ReverseRecord* record = r.One();
  ASSERT_NE(record, nullptr);
  EXPECT_EQ(record->record.medication_statement().effective_start(), "");
  EXPECT_THAT(r.issues, ElementsAre(WarningAt("MedicationStatement.effectiveDateTime")));
}

TEST(ReverseDateTest, OffsetsAndFractionalSecondsBecomeUtc) {
  const Result r = Map(R"({"resourceType":"Encounter","id":"e1","status":"finished",
      "subject":{"reference":"Patient/p1"},
      "period":{"start":"2026-11-20T09:10:00.25-05:00","end":"2026-11-21T01:30:00.123456+05:30"}})");
  const ReverseRecord* record = r.One();
  ASSERT_NE(record, nullptr);
  const v1::EncounterRecord& e = record->record.encounter();
  EXPECT_EQ(TimeUtil::ToString(e.start_time()), "2026-11-20T14:10:00.250Z");
  EXPECT_EQ(TimeUtil::ToString(e.end_time()), "2026-11-20T20:00:00.123456Z");
  EXPECT_THAT(r.issues, IsEmpty()) << r.Issues();
}

TEST(ReverseDateTest, PartialDateForATimestampIsMidnightUtcWithAWarning) {
  const Result r = Map(R"({"resourceType":"QuestionnaireResponse","id":"q1","status":"completed",
      "questionnaire":"http://loinc.org/q/55757-9","subject":{"reference":"Patient/p1"},
      "authored":"2026-03","item":[{"linkId":"1","answer":[{"valueInteger":1}]},
      {"linkId":"2","answer":[{"valueInteger":0}]}]})");
  const ReverseRecord* record = r.One();
  ASSERT_NE(record, nullptr);
  EXPECT_EQ(TimeUtil::ToString(record->record.questionnaire().authored()), "2026-03-01T00:00:00Z");
  EXPECT_THAT(r.issues, ElementsAre(IssueAt("QuestionnaireResponse.authored",
                                            "has no time of day; taken as 2026-03-01T00:00:00Z")));
  EXPECT_EQ(r.issues[0].severity, fhir::Issue::Severity::kWarning);
}

TEST(ReverseDateTest, MalformedRequiredTimeIsAnError) {
  const Result r = Map(R"({"resourceType":"QuestionnaireResponse","id":"q1","status":"completed",
      "questionnaire":"http://loinc.org/q/55757-9","subject":{"reference":"Patient/p1"},
      "authored":"20.11.2026 09:00"})");
  ASSERT_FALSE(r.records.ok());
  EXPECT_THAT(r.issues, ElementsAre(ErrorAt("QuestionnaireResponse.authored")));
}

TEST(ReverseDateTest, MalformedOptionalTimeIsAWarning) {
  const Result r = Map(R"({"resourceType":"Encounter","id":"e1","status":"finished",
      "subject":{"reference":"Patient/p1"},"period":{"start":"2026-11-20T09:10"}})");
  const ReverseRecord* record = r.One();
  ASSERT_NE(record, nullptr);
  EXPECT_FALSE(record->record.encounter().has_start_time());
  EXPECT_THAT(r.issues, ElementsAre(IssueAt("Encounter.period.start", "left unset")));
}

// ---- questionnaires ----

// A QuestionnaireResponse with `items` (JSON array members) and `questionnaire` ("" for none).
std::string Response(const std::string& questionnaire, const std::string& items) {
  return absl::StrCat(
      R"({"resourceType":"QuestionnaireResponse","id":"q1","status":"completed",)",
      questionnaire.empty() ? "" : absl::StrCat(R"("questionnaire":")", questionnaire, R"(",)"),
      R"("subject":{"reference":"Patient/p1"},"authored":"2026-11-20T09:00:00Z",)", R"("item":[)",
      items, "]}");
}

std::vector<std::pair<int, int>> Answers(const ReverseRecord& record) {
  std::vector<std::pair<int, int>> answers;
  for (const v1::Answer& answer : record.record.questionnaire().answers()) {
    answers.emplace_back(answer.item(), answer.value());
  }
  return answers;
}

TEST(ReverseQuestionnaireTest, LoincLinkIdsWithLaCodesIdentifyPhq9) {
  const char* kItems[] = {"44250-9", "44255-8", "44259-0", "44254-1", "44251-7",
                          "44258-2", "44252-5", "44253-3", "44260-8"};
  const char* kAnswers[] = {"LA6568-5", "LA6569-3", "LA6570-1", "LA6571-9"};
  std::string items;
  for (int i = 0; i < 9; ++i) {
    absl::StrAppend(&items, i == 0 ? "" : ",", R"({"linkId":")", kItems[i],
                    R"(","answer":[{"valueCoding":{"system":"http://loinc.org","code":")",
                    kAnswers[i % 4], R"("}}]})");
  }
  const Result r = Map(Response("", items));  // no questionnaire canonical
  const ReverseRecord* record = r.One();
  ASSERT_NE(record, nullptr);
  EXPECT_EQ(record->record.questionnaire().instrument(), v1::QuestionnaireRecord::PHQ9);
  EXPECT_THAT(Answers(*record), ElementsAre(std::pair(1, 0), std::pair(2, 1), std::pair(3, 2),
                                            std::pair(4, 3), std::pair(5, 0), std::pair(6, 1),
                                            std::pair(7, 2), std::pair(8, 3), std::pair(9, 0)));
  EXPECT_THAT(r.issues, IsEmpty()) << r.Issues();
}

TEST(ReverseQuestionnaireTest, SlashLoincLinkIdsAndIntegers) {
  const Result r = Map(Response("http://loinc.org/q/55757-9",
                                R"({"linkId":"/44250-9","answer":[{"valueInteger":3}]},
                                   {"linkId":"/55757-9/44255-8","answer":[{"valueInteger":2}]},
                                   {"linkId":"/55758-7","answer":[{"valueInteger":5}]})"));
  const ReverseRecord* record = r.One();
  ASSERT_NE(record, nullptr);
  EXPECT_EQ(record->record.questionnaire().instrument(), v1::QuestionnaireRecord::PHQ2);
  EXPECT_THAT(Answers(*record), ElementsAre(std::pair(1, 3), std::pair(2, 2)));
  EXPECT_EQ(record->record.questionnaire().reported_total(), 5);
}

TEST(ReverseQuestionnaireTest, ItemNumbersWithAKnownQuestionnaire) {
  std::string items;
  for (int i = 1; i <= 7; ++i) {
    absl::StrAppend(&items, i == 1 ? "" : ",", R"({"linkId":")", i,
                    R"(","answer":[{"valueInteger":)", i % 4, "}]}");
  }
  const Result r = Map(Response("https://ehr.example.org/fhir/Questionnaire/GAD-7", items));
  const ReverseRecord* record = r.One();
  ASSERT_NE(record, nullptr);
  EXPECT_EQ(record->record.questionnaire().instrument(), v1::QuestionnaireRecord::GAD7);
  EXPECT_THAT(Answers(*record),
              ElementsAre(std::pair(1, 1), std::pair(2, 2), std::pair(3, 3), std::pair(4, 0),
                          std::pair(5, 1), std::pair(6, 2), std::pair(7, 3)));
}

TEST(ReverseQuestionnaireTest, PrefixedItemNumbersInNestedGroups) {
  const Result r = Map(Response("Questionnaire/phq-9",
                                R"({"linkId":"phq9","item":[
                                     {"linkId":"phq9-1","answer":[{"valueInteger":1}]},
                                     {"linkId":"q2","answer":[{"valueInteger":1}]},
                                     {"linkId":"item-3","answer":[{"valueInteger":1}]},
                                     {"linkId":"PHQ9_item4","answer":[{"valueInteger":1}]},
                                     {"linkId":"phq-9.5","answer":[{"valueInteger":1}]},
                                     {"linkId":"6","answer":[{"valueInteger":1}]},
                                     {"linkId":"7","answer":[{"valueInteger":1}]},
                                     {"linkId":"8","answer":[{"valueInteger":1}]},
                                     {"linkId":"9","answer":[{"valueInteger":1}]}]},
                                   {"linkId":"phq9-10","answer":[{"valueCoding":{"code":"LA6573-5"}}]})"));
  const ReverseRecord* record = r.One();
  ASSERT_NE(record, nullptr);
  EXPECT_THAT(Answers(*record), SizeIs(9));
  EXPECT_EQ(record->record.questionnaire().difficulty(), 1);
  EXPECT_THAT(r.issues, IsEmpty()) << r.Issues();
}

TEST(ReverseQuestionnaireTest, DifficultyByLoincAndOrdinalAndDigitCodes) {
  const Result r = Map(Response(
      "", R"({"linkId":"44250-9","answer":[{"valueCoding":{"system":"urn:local","code":"2"}}]},
      {"linkId":"44255-8","answer":[{"valueCoding":{"system":"urn:local","code":"x",
         "extension":[{"url":"http://hl7.org/fhir/StructureDefinition/ordinalValue","valueDecimal":3}]}}]},
      {"linkId":"44259-0","answer":[{"valueDecimal":1}]},
      {"linkId":"69722-7","answer":[{"valueCoding":{"system":"http://loinc.org","code":"LA6574-3"}}]})"));
  const ReverseRecord* record = r.One();
  ASSERT_NE(record, nullptr);
  EXPECT_EQ(record->record.questionnaire().instrument(), v1::QuestionnaireRecord::PHQ9);
  EXPECT_THAT(Answers(*record), ElementsAre(std::pair(1, 2), std::pair(2, 3), std::pair(3, 1)));
  EXPECT_EQ(record->record.questionnaire().difficulty(), 3);
  // Items 4..9 are missing: said, not invented.
  EXPECT_THAT(r.issues, ElementsAre(IssueAt("QuestionnaireResponse.item",
                                            "no answer for PHQ-9 item(s) 4, 5, 6, 7, 8, 9")));
}

TEST(ReverseQuestionnaireTest, BadAndDuplicateAnswersAreReportedNotGuessed) {
  const Result r = Map(Response("http://loinc.org/q/55757-9",
                                R"({"linkId":"1","answer":[{"valueInteger":4}]},
                                   {"linkId":"2","answer":[{"valueString":"often"}]},
                                   {"linkId":"2","answer":[{"valueInteger":1}]},
                                   {"linkId":"1","answer":[{"valueInteger":0}]},
                                   {"linkId":"1","answer":[{"valueInteger":2}]})"));
  const ReverseRecord* record = r.One();
  ASSERT_NE(record, nullptr);
  EXPECT_THAT(Answers(*record), ElementsAre(std::pair(1, 0), std::pair(2, 1)));
  EXPECT_THAT(r.issues,
              ElementsAre(IssueAt("QuestionnaireResponse.item[0].answer[0]", "outside 0..3"),
                          IssueAt("QuestionnaireResponse.item[1].answer[0]", "has no answer value"),
                          IssueAt("QuestionnaireResponse.item[4].answer[0]", "a second answer")));
}

TEST(ReverseQuestionnaireTest, OtherQuestionnairesAreErrors) {
  for (const std::string& json :
       {Response("Questionnaire/gcs", R"({"linkId":"1","answer":[{"valueInteger":1}]})"),
        // Item numbers alone do not say which instrument it is.
        Response("", R"({"linkId":"1","answer":[{"valueInteger":1}]})")}) {
    const Result r = Map(json);
    ASSERT_FALSE(r.records.ok());
    EXPECT_THAT(r.issues, ElementsAre(IssueAt("QuestionnaireResponse.questionnaire",
                                              "only those questionnaires map")));
  }
}

TEST(ReverseQuestionnaireTest, AbsorbsItsScoreObservationAndFlag) {
  const Result r = Map(Bundle(
      "collection",
      {{"urn:uuid:00000000-0000-4000-8000-00000000000a",
        Response(
            "http://loinc.org/q/55757-9",
            R"({"linkId":"1","answer":[{"valueInteger":2}]},{"linkId":"2","answer":[{"valueInteger":2}]})")},
       {"", R"({"resourceType":"Observation","status":"final",
                "code":{"coding":[{"system":"http://loinc.org","code":"55758-7"}]},
                "derivedFrom":[{"reference":"urn:uuid:00000000-0000-4000-8000-00000000000a"}],
                "valueInteger":4})"},
       {"", R"({"resourceType":"Flag","status":"active","code":{"text":"Positive screen"}})"}}));
  const ReverseRecord* record = r.One();
  ASSERT_NE(record, nullptr);
  EXPECT_EQ(record->record.questionnaire().reported_total(), 4);
  EXPECT_THAT(r.issues, IsEmpty()) << r.Issues();
}

TEST(ReverseQuestionnaireTest, TimingAndEncounterFromFhirgwElements) {
  const Result r =
      Map(R"({"resourceType":"QuestionnaireResponse","id":"q1","status":"entered-in-error",
      "extension":[{"url":"urn:fhirgw:extension:questionnaire-timing",
                    "valueCoding":{"system":"urn:fhirgw:code-system:questionnaire-timing","code":"post-infusion"}}],
      "questionnaire":"http://loinc.org/q/55757-9","subject":{"reference":"Patient/p1"},
      "encounter":{"type":"Encounter","identifier":{"system":"urn:fhirgw:lakeside-ketamine:encounter","value":"enc-7"}},
      "authored":"2026-11-20T09:00:00Z",
      "item":[{"linkId":"1","answer":[{"valueInteger":0}]},{"linkId":"2","answer":[{"valueInteger":0}]}]})");
  const ReverseRecord* record = r.One();
  ASSERT_NE(record, nullptr);
  EXPECT_EQ(record->record.questionnaire().timing(), v1::QuestionnaireRecord::POST_INFUSION);
  EXPECT_EQ(record->record.questionnaire().encounter_id(), "enc-7");
  EXPECT_EQ(record->record.action(), v1::ClinicRecord::ENTERED_IN_ERROR);
}

// ---- score Observations without a QuestionnaireResponse ----

TEST(ReverseSurveyObservationTest, TotalAloneGivesReportedTotal) {
  const Result r = Map(R"({"resourceType":"Observation","id":"o1","status":"final",
      "code":{"coding":[{"system":"http://loinc.org","code":"44261-6"}]},
      "subject":{"reference":"Patient/p1"},"effectiveDateTime":"2026-11-20T09:00:00+01:00",
      "valueQuantity":{"value":12,"unit":"{score}"}})");
  const ReverseRecord* record = r.One();
  ASSERT_NE(record, nullptr);
  const v1::QuestionnaireRecord& q = record->record.questionnaire();
  EXPECT_EQ(q.instrument(), v1::QuestionnaireRecord::PHQ9);
  EXPECT_EQ(q.reported_total(), 12);
  EXPECT_THAT(q.answers(), IsEmpty());
  EXPECT_EQ(TimeUtil::ToString(q.authored()), "2026-11-20T08:00:00Z");
  EXPECT_EQ(record->source_type, "Observation");
}

TEST(ReverseSurveyObservationTest, PanelWithComponents) {
  const Result r = Map(R"({"resourceType":"Observation","id":"o1","status":"final",
      "code":{"coding":[{"system":"http://loinc.org","code":"55757-9"}]},
      "subject":{"reference":"Patient/p1"},"effectiveDateTime":"2026-11-20T09:00:00Z",
      "component":[
        {"code":{"coding":[{"system":"http://loinc.org","code":"44250-9"}]},"valueCodeableConcept":{"coding":[{"system":"http://loinc.org","code":"LA6571-9"}]}},
        {"code":{"coding":[{"system":"http://loinc.org","code":"44255-8"}]},"valueInteger":2},
        {"code":{"coding":[{"system":"http://loinc.org","code":"55758-7"}]},"valueInteger":5}]})");
  const ReverseRecord* record = r.One();
  ASSERT_NE(record, nullptr);
  EXPECT_EQ(record->record.questionnaire().instrument(), v1::QuestionnaireRecord::PHQ2);
  EXPECT_THAT(Answers(*record), ElementsAre(std::pair(1, 3), std::pair(2, 2)));
  EXPECT_EQ(record->record.questionnaire().reported_total(), 5);
}

TEST(ReverseSurveyObservationTest, TotalWithoutScoreOrAnswersIsAnError) {
  const Result r = Map(R"({"resourceType":"Observation","id":"o1","status":"final",
      "code":{"coding":[{"system":"http://loinc.org","code":"70274-6"}]},
      "subject":{"reference":"Patient/p1"},"effectiveDateTime":"2026-11-20T09:00:00Z",
      "hasMember":[{"reference":"Observation/elsewhere"}]})");
  ASSERT_FALSE(r.records.ok());
  EXPECT_THAT(r.issues, Contains(ErrorAt("Observation.valueQuantity")));
  EXPECT_THAT(r.issues, Contains(IssueAt("Observation.hasMember", "1 of 1 members are not in")));
}

TEST(ReverseSurveyObservationTest, ItemObservationAloneIsAnError) {
  const Result r = Map(R"({"resourceType":"Observation","id":"o1","status":"final",
      "code":{"coding":[{"system":"http://loinc.org","code":"44260-8"}]},
      "subject":{"reference":"Patient/p1"},"valueInteger":2})");
  ASSERT_FALSE(r.records.ok());
  EXPECT_THAT(r.issues, ElementsAre(IssueAt("Observation.code", "hasMember")));
}

// ---- extensions ----

TEST(ReverseExtensionTest, UnknownExtensionsAreIgnored) {
  const Result r = Map(R"({"resourceType":"MedicationStatement","id":"ms1",
      "extension":[{"url":"https://ehr.example.org/ext/reviewed","valueBoolean":true},
                   {"url":"https://ehr.example.org/ext/nested","extension":[{"url":"a","valueString":"b"}]}],
      "status":"active","_status":{"extension":[{"url":"https://ehr.example.org/ext/why","valueString":"x"}]},
      "medicationCodeableConcept":{"extension":[{"url":"https://ehr.example.org/ext/src","valueString":"pharmacy"}],
        "coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"36437","display":"sertraline"}]},
      "subject":{"reference":"Patient/p1"},
      "dosage":[{"extension":[{"url":"https://ehr.example.org/ext/slot","valueCode":"am"}],"text":"daily"}]})");
  const ReverseRecord* record = r.One();
  ASSERT_NE(record, nullptr);
  EXPECT_EQ(record->record.medication_statement().medication().code(), "36437");
  EXPECT_EQ(record->record.medication_statement().dosage_text(), "daily");
  EXPECT_EQ(record->record.medication_statement().adherence(),
            v1::Adherence::ADHERENCE_UNSPECIFIED);
  EXPECT_THAT(r.issues, IsEmpty()) << r.Issues();
}

TEST(ReverseExtensionTest, ModifierExtensionIsNotMapped) {
  const Result r = Map(R"({"resourceType":"MedicationStatement","id":"ms1","status":"active",
      "modifierExtension":[{"url":"https://ehr.example.org/ext/not-actually-taken","valueBoolean":true}],
      "medicationCodeableConcept":{"text":"sertraline"},"subject":{"reference":"Patient/p1"}})");
  ASSERT_FALSE(r.records.ok());
  EXPECT_THAT(r.issues, ElementsAre(IssueAt("MedicationStatement.modifierExtension[0]",
                                            "not-actually-taken")));
}

// ---- unsupported resources ----

TEST(ReverseUnsupportedTest, SingleResourceNamesTheSupportedTypes) {
  const Result r = Map(R"({"resourceType":"Condition","id":"c1","code":{"text":"Depression"}})");
  ASSERT_FALSE(r.records.ok());
  EXPECT_EQ(r.records.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(r.issues, ElementsAre(IssueAt("Condition.resourceType", kSupportedResourceTypes)));
  EXPECT_THAT(std::string(r.records.status().message()), HasSubstr(kSupportedResourceTypes));
}

TEST(ReverseUnsupportedTest, InABundleTheOthersStillMap) {
  const Result r =
      Map(Bundle("batch", {{"", R"({"resourceType":"AllergyIntolerance","id":"a1"})"},
                           {"", Request(R"("medicationCodeableConcept":{"text":"sertraline"})")},
                           {"", R"({"resourceType":"Practitioner","id":"pr1"})"},
                           {"", R"({"resourceType":"Organization","id":"org1"})"}}));
  ASSERT_NE(r.One(), nullptr);
  // Practitioner and Organization are reference targets and pass quietly.
  EXPECT_THAT(r.issues, ElementsAre(IssueAt("Bundle.entry[0].resource.resourceType",
                                            "'AllergyIntolerance' is not supported")));
}

TEST(ReverseUnsupportedTest, FlagOrAdverseEventAloneIsAnError) {
  const Result flag = Map(R"({"resourceType":"Flag","id":"f1","status":"active"})");
  ASSERT_FALSE(flag.records.ok());
  EXPECT_THAT(flag.issues, ElementsAre(ErrorAt("Flag.resourceType")));
  const Result event = Map(R"({"resourceType":"AdverseEvent","id":"ae1",
      "suspectEntity":[{"instance":{"reference":"MedicationAdministration/gone"}}]})");
  ASSERT_FALSE(event.records.ok());
  EXPECT_THAT(event.issues, ElementsAre(ErrorAt("AdverseEvent.suspectEntity")));
}

// ---- malformed input ----

TEST(ReverseMalformedTest, ClearIssueAndNoCrash) {
  const std::string deep(100000, '[');
  for (const std::string& json :
       {std::string(""), std::string("not json"), std::string(R"({"resourceType":"Patient",)"),
        std::string("[]"), std::string("42"), std::string("null"), std::string(R"({"id":"x"})"),
        std::string(R"({"resourceType":7})"), deep, std::string("{\"a\":\"\\ud800\"}"),
        std::string(R"({"resourceType":"Patient"} {"resourceType":"Patient"})")}) {
    SCOPED_TRACE(json.substr(0, 60));
    const Result r = Map(json);
    ASSERT_FALSE(r.records.ok());
    EXPECT_EQ(r.records.status().code(), absl::StatusCode::kInvalidArgument);
    ASSERT_THAT(r.issues, SizeIs(1));
    EXPECT_THAT(r.issues[0].path, ::testing::AnyOf("input", "resourceType"));
  }
}

TEST(ReverseMalformedTest, WrongJsonTypesReadAsAbsent) {
  const Result r = Map(R"({"resourceType":"MedicationRequest","id":5,"status":7,"identifier":"x",
      "medicationCodeableConcept":{"coding":{"code":"1"},"text":["a"]},
      "subject":"Patient/p1","dosageInstruction":{"text":"x"},"note":"n","meta":[]})");
  // Nothing usable names the medication: an error, not a crash.
  ASSERT_FALSE(r.records.ok());
  EXPECT_THAT(r.issues, Contains(ErrorAt("MedicationRequest.medicationCodeableConcept")));

  const Result r2 = Map(R"({"resourceType":"Encounter","status":["finished"],"period":"today",
      "participant":{"individual":1},"location":[1,2],"reasonCode":"x","type":[{"coding":5}],
      "subject":{"reference":7,"identifier":"x"}})");
  ASSERT_TRUE(r2.records.ok()) << r2.Issues();
  EXPECT_THAT(r2.issues, Contains(WarningAt("Encounter.status")));
}

TEST(ReverseMalformedTest, BundleProblems) {
  const Result empty = Map(R"({"resourceType":"Bundle","type":"collection"})");
  ASSERT_FALSE(empty.records.ok());
  EXPECT_THAT(empty.issues, ElementsAre(IssueAt("Bundle.entry", "holds no resources")));

  const Result response =
      Map(Bundle("transaction-response", {{"", R"({"resourceType":"Patient"})"}}));
  ASSERT_FALSE(response.records.ok());
  EXPECT_THAT(response.issues, ElementsAre(IssueAt("Bundle.type", "server's answer")));

  const Result odd = Map(R"({"resourceType":"Bundle","type":"batch","entry":[
      7, {"request":{"method":"GET","url":"Patient"}}, {"resource":"Patient"},
      {"resource":{"id":"x"}}, {"resource":{"resourceType":"Patient","id":"p1"}}]})");
  ASSERT_NE(odd.One(), nullptr);
  EXPECT_THAT(odd.issues,
              ElementsAre(ErrorAt("Bundle.entry[0]"), WarningAt("Bundle.entry[1].resource"),
                          ErrorAt("Bundle.entry[2].resource"),
                          ErrorAt("Bundle.entry[3].resource.resourceType")));
}

// Every prefix of a real Bundle, and every one-byte corruption of a stretch of it, either maps or
// fails with an issue: never a crash, never nothing silently.
TEST(ReverseMalformedTest, TruncationsAndCorruptionsOfARealBundle) {
  const std::string json =
      ReadFile(fs::path(FHIRGW_SOURCE_DIR) / "tests/golden/reverse/hospital-infusion.fhir.json");
  ASSERT_GT(json.size(), 1000u);
  for (size_t length = 0; length < json.size(); length += 13) {
    const Result r = Map(json.substr(0, length));
    EXPECT_TRUE(!r.records.ok() || !r.records->empty());
    if (!r.records.ok()) {
      EXPECT_TRUE(fhir::HasErrors(r.issues)) << length;
    }
  }
  for (size_t at = 0; at < 3000 && at < json.size(); at += 7) {
    std::string corrupted = json;
    corrupted[at] = corrupted[at] == '"' ? '}' : '"';
    const Result r = Map(corrupted);
    if (!r.records.ok()) {
      EXPECT_TRUE(fhir::HasErrors(r.issues)) << at;
    }
  }
}

// ---- infusions ----

// A hospital MedicationAdministration "ma1" with `more` members, in a collection with `others`.
std::string Administration(const std::string& more,
                           const std::vector<std::pair<std::string, std::string>>& others = {}) {
  std::vector<std::pair<std::string, std::string>> entries = {
      {"https://ehr.example.org/fhir/MedicationAdministration/ma1",
       absl::StrCat(
           R"({"resourceType":"MedicationAdministration","id":"ma1",)",
           R"("medicationCodeableConcept":{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"6130","display":"ketamine"}]},)",
           R"("subject":{"reference":"Patient/p1"},)", more, "}")}};
  entries.insert(entries.end(), others.begin(), others.end());
  return Bundle("collection", entries);
}

std::string Vital(const std::string& code, const std::string& time, const std::string& value,
                  const std::string& identifier = "") {
  return absl::StrCat(R"({"resourceType":"Observation","status":"final",)", identifier,
                      R"("partOf":[{"reference":"MedicationAdministration/ma1"}],)",
                      R"("code":{"coding":[{"system":"http://loinc.org","code":")", code,
                      R"("}]},"effectiveDateTime":")", time, R"(",)", value, "}");
}

TEST(ReverseInfusionTest, VitalsWithoutIdentifiersAreGroupedByTime) {
  const Result r = Map(Administration(
      R"("status":"completed","effectivePeriod":{"start":"2026-11-20T14:00:00Z","end":"2026-11-20T14:40:00Z"})",
      {{"", Vital("8867-4", "2026-11-20T14:20:00Z", R"("valueQuantity":{"value":88})")},
       {"", Vital("8480-6", "2026-11-20T15:20:00+01:00", R"("valueQuantity":{"value":131})")},
       {"", Vital("8462-4", "2026-11-20T14:20:00.000Z", R"("valueQuantity":{"value":84})")},
       {"", Vital("9279-1", "2026-11-20T13:55:00Z", R"("valueQuantity":{"value":14})")},
       {"", Vital("2708-6", "2026-11-20T13:55:00Z", R"("valueQuantity":{"value":98.5})")}}));
  const ReverseRecord* record = r.One();
  ASSERT_NE(record, nullptr);
  const v1::InfusionRecord& infusion = record->record.infusion();
  ASSERT_EQ(infusion.vitals_size(), 2);
  EXPECT_EQ(TimeUtil::ToString(infusion.vitals(0).time()), "2026-11-20T13:55:00Z");
  EXPECT_EQ(infusion.vitals(0).respiratory_rate(), 14);
  EXPECT_EQ(infusion.vitals(0).spo2_percent(), 98.5);
  EXPECT_FALSE(infusion.vitals(0).has_heart_rate_bpm());
  EXPECT_EQ(TimeUtil::ToString(infusion.vitals(1).time()), "2026-11-20T14:20:00Z");
  EXPECT_EQ(infusion.vitals(1).heart_rate_bpm(), 88);
  EXPECT_EQ(infusion.vitals(1).systolic_mmhg(), 131);
  EXPECT_EQ(infusion.vitals(1).diastolic_mmhg(), 84);
  EXPECT_THAT(r.issues, IsEmpty()) << r.Issues();
}

TEST(ReverseInfusionTest, FhirgwVitalsIndexKeepsSameTimeMeasurementsApart) {
  auto id = [](int index, const char* kind) {
    return absl::StrCat(R"("identifier":[{"system":"urn:fhirgw:lakeside-ketamine:observation",)",
                        R"("value":"inf-1/vitals/)", index, "/", kind, R"("}],)");
  };
  const Result r = Map(Administration(
      R"("status":"completed","effectivePeriod":{"start":"2026-11-20T14:00:00Z","end":"2026-11-20T14:40:00Z"})",
      {{"", Vital("8867-4", "2026-11-20T14:00:00Z", R"("valueQuantity":{"value":70})",
                  id(1, "heart-rate"))},
       {"", Vital("8867-4", "2026-11-20T14:00:00Z", R"("valueQuantity":{"value":90})",
                  id(0, "heart-rate"))}}));
  const ReverseRecord* record = r.One();
  ASSERT_NE(record, nullptr);
  ASSERT_EQ(record->record.infusion().vitals_size(), 2);
  EXPECT_EQ(record->record.infusion().vitals(0).heart_rate_bpm(), 90);
  EXPECT_EQ(record->record.infusion().vitals(1).heart_rate_bpm(), 70);
}

TEST(ReverseInfusionTest, EncounterByContextIsAbsorbedOthersAreRecords) {
  const Result r = Map(Administration(
      R"("status":"completed","context":{"reference":"Encounter/e1"},"effectiveDateTime":"2026-11-20T14:00:00Z")",
      {{"", R"({"resourceType":"Encounter","id":"e1","status":"finished",
                "identifier":[{"system":"urn:fhirgw:lakeside-ketamine:encounter","value":"enc-1"}]})"},
       {"", R"({"resourceType":"Encounter","id":"e2","status":"planned",
                "type":[{"text":"Psychotherapy session"}],"subject":{"reference":"Patient/p1"}})"}}));
  ASSERT_TRUE(r.records.ok()) << r.Issues();
  ASSERT_THAT(*r.records, SizeIs(2));
  const v1::InfusionRecord& infusion = (*r.records)[0].record.infusion();
  EXPECT_EQ(infusion.encounter_id(), "enc-1");
  // A single time is the start of the infusion.
  EXPECT_EQ(TimeUtil::ToString(infusion.start_time()), "2026-11-20T14:00:00Z");
  const v1::EncounterRecord& encounter = (*r.records)[1].record.encounter();
  EXPECT_EQ(encounter.encounter_id(), "Encounter/e2");
  EXPECT_EQ(encounter.kind(), v1::EncounterRecord::PSYCHOTHERAPY);
  EXPECT_EQ(encounter.status(), v1::EncounterRecord::PLANNED);
}

TEST(ReverseInfusionTest, EncounterByLogicalIdentifier) {
  const Result r = Map(Administration(
      R"("status":"in-progress","effectivePeriod":{"start":"2026-11-20T14:00:00Z"},
         "context":{"identifier":{"system":"https://ehr.example.org/visits","value":"V-1"}})"));
  const ReverseRecord* record = r.One();
  ASSERT_NE(record, nullptr);
  EXPECT_EQ(record->record.infusion().encounter_id(), "https://ehr.example.org/visits|V-1");
  EXPECT_EQ(record->record.infusion().status(), v1::InfusionRecord::IN_PROGRESS);
}

TEST(ReverseInfusionTest, NotDoneTimeIsWhenItWasRecorded) {
  const Result r = Map(Administration(
      R"("status":"not-done","statusReason":[{"text":"Patient declined"}],"effectiveDateTime":"2026-11-20T14:00:00Z")"));
  const ReverseRecord* record = r.One();
  ASSERT_NE(record, nullptr);
  EXPECT_FALSE(record->record.infusion().has_start_time());
  EXPECT_EQ(TimeUtil::ToString(record->record.recorded_at()), "2026-11-20T14:00:00Z");
  EXPECT_EQ(record->record.infusion().status_reason().display(), "Patient declined");
}

TEST(ReverseInfusionTest, DoseUnitsRatesAndWeight) {
  const Result r = Map(Administration(
      R"("status":"completed","effectivePeriod":{"start":"2026-11-20T14:00:00Z","end":"2026-11-20T14:40:00Z"},
         "dosage":{"text":"ketamine 0.75 mg/kg/h, 10 mg/mL","dose":{"value":0.05,"unit":"g"},
                   "rateRatio":{"numerator":{"value":1.5,"code":"mL"},"denominator":{"value":1,"code":"min"}}})",
      {{"", Vital("29463-7", "2026-11-20T14:00:00Z",
                  R"("valueQuantity":{"value":81500,"unit":"g","code":"g"})")}}));
  const ReverseRecord* record = r.One();
  ASSERT_NE(record, nullptr);
  const v1::InfusionRecord& infusion = record->record.infusion();
  EXPECT_EQ(infusion.total_dose_mg(), 50);
  EXPECT_EQ(infusion.rate_ml_per_hour(), 90);
  EXPECT_EQ(infusion.patient_weight_kg(), 81.5);
  EXPECT_EQ(infusion.concentration_mg_per_ml(), 10);
  EXPECT_FALSE(infusion.has_dose_mg_per_kg());  // "mg/kg/h" is a rate, not a dose
}

TEST(ReverseInfusionTest, EnteredInErrorIsARetraction) {
  const Result r = Map(Administration(
      R"("status":"entered-in-error","effectivePeriod":{"start":"2026-11-20T14:00:00Z"})"));
  const ReverseRecord* record = r.One();
  ASSERT_NE(record, nullptr);
  EXPECT_EQ(record->record.action(), v1::ClinicRecord::ENTERED_IN_ERROR);
}

// ---- medication requests and statements ----

TEST(ReverseMedicationRequestTest, StatusMapping) {
  const std::pair<const char*, v1::MedicationStatementRecord::Status> kCases[] = {
      {"active", v1::MedicationStatementRecord::ACTIVE},
      {"completed", v1::MedicationStatementRecord::COMPLETED},
      {"stopped", v1::MedicationStatementRecord::STOPPED},
      {"on-hold", v1::MedicationStatementRecord::ON_HOLD},
      {"cancelled", v1::MedicationStatementRecord::NOT_TAKEN},
      {"draft", v1::MedicationStatementRecord::INTENDED},
      {"entered-in-error", v1::MedicationStatementRecord::ENTERED_IN_ERROR},
      {"unknown", v1::MedicationStatementRecord::UNKNOWN}};
  for (const auto& [status, expected] : kCases) {
    SCOPED_TRACE(status);
    std::string json = Request(R"("medicationCodeableConcept":{"text":"x"})");
    json = absl::StrReplaceAll(
        json, {{R"("status":"active")", absl::StrCat(R"("status":")", status, R"(")")}});
    const Result r = Map(json);
    const ReverseRecord* record = r.One();
    ASSERT_NE(record, nullptr);
    EXPECT_EQ(record->record.medication_statement().status(), expected);
    EXPECT_EQ(record->record.medication_statement().information_source(),
              v1::InformationSource::HOSPITAL_RECORD);
    EXPECT_EQ(record->record.action(), expected == v1::MedicationStatementRecord::ENTERED_IN_ERROR
                                           ? v1::ClinicRecord::ENTERED_IN_ERROR
                                           : v1::ClinicRecord::UPSERT);
  }
}

TEST(ReverseMedicationRequestTest, EffectiveFromBoundsElseAuthoredOn) {
  const Result bounded = Map(Request(
      R"("medicationCodeableConcept":{"text":"x"},"authoredOn":"2025-01-10")",
      R"("dosageInstruction":[{"timing":{"repeat":{"boundsPeriod":{"start":"2025-02","end":"2025-08-31"}}}}])"));
  ASSERT_NE(bounded.One(), nullptr);
  EXPECT_EQ(bounded.One()->record.medication_statement().effective_start(), "2025-02");
  EXPECT_EQ(bounded.One()->record.medication_statement().effective_end(), "2025-08-31");
  const Result authored = Map(Request(
      R"("medicationCodeableConcept":{"text":"x"},"authoredOn":"2025-01-10T08:00:00+01:00")"));
  ASSERT_NE(authored.One(), nullptr);
  EXPECT_EQ(authored.One()->record.medication_statement().effective_start(),
            "2025-01-10T08:00:00+01:00");
}

TEST(ReverseMedicationStatementTest, AdherenceAndInformationSource) {
  const std::pair<const char*, v1::Adherence::Value> kAdherence[] = {
      {"taking-as-directed", v1::Adherence::TAKING_AS_DIRECTED},
      {"taking-not-as-directed", v1::Adherence::TAKING_NOT_AS_DIRECTED},
      {"not-taking", v1::Adherence::NOT_TAKING},
      {"stopped-as-directed", v1::Adherence::NOT_TAKING},
      {"unknown", v1::Adherence::UNKNOWN}};
  for (const auto& [code, expected] : kAdherence) {
    SCOPED_TRACE(code);
    const Result r = Map(absl::StrCat(
        R"({"resourceType":"MedicationStatement","id":"ms1","status":"active",)",
        R"("extension":[{"url":"http://hl7.org/fhir/5.0/StructureDefinition/extension-MedicationStatement.adherence",)",
        R"("valueCodeableConcept":{"coding":[{"code":")", code, R"("}]}}],)",
        R"("medicationCodeableConcept":{"text":"x"},"subject":{"reference":"Patient/p1"}})"));
    ASSERT_NE(r.One(), nullptr);
    EXPECT_EQ(r.One()->record.medication_statement().adherence(), expected);
  }
  const std::pair<const char*, v1::InformationSource::Value> kSources[] = {
      {R"({"reference":"Patient/p1"})", v1::InformationSource::PATIENT_REPORTED},
      {R"({"reference":"RelatedPerson/r1"})", v1::InformationSource::PATIENT_REPORTED},
      {R"({"reference":"https://ehr.example.org/fhir/Practitioner/pr1"})",
       v1::InformationSource::CLINICIAN},
      {R"({"type":"PractitionerRole","display":"Dr. X"})", v1::InformationSource::CLINICIAN},
      {R"({"reference":"Organization/o1"})", v1::InformationSource::HOSPITAL_RECORD},
      {R"({"display":"Hospital record"})", v1::InformationSource::HOSPITAL_RECORD},
      {R"({"display":"Patient reported"})", v1::InformationSource::PATIENT_REPORTED}};
  for (const auto& [source, expected] : kSources) {
    SCOPED_TRACE(source);
    const Result r = Map(absl::StrCat(
        R"({"resourceType":"MedicationStatement","id":"ms1","status":"active",)",
        R"("medicationCodeableConcept":{"text":"x"},"subject":{"reference":"Patient/p1"},)",
        R"("informationSource":)", source, "}"));
    ASSERT_NE(r.One(), nullptr);
    EXPECT_EQ(r.One()->record.medication_statement().information_source(), expected);
  }
}

// ---- patients, ids and routing ----

TEST(ReversePatientTest, UnreferencedPatientBecomesAPatientRecord) {
  const Result r = Map(Bundle(
      "collection",
      {{"", R"({"resourceType":"Patient","id":"p1","active":false,"deceasedDateTime":"2026-01-02",
                "identifier":[{"system":"urn:fhirgw:lakeside-ketamine:patient","value":"P-1"}]})"},
       {"", R"({"resourceType":"Patient","id":"p2","name":[{"family":"Ng"}]})"},
       {"", Request(R"("medicationCodeableConcept":{"text":"x"})")}}));
  ASSERT_TRUE(r.records.ok()) << r.Issues();
  ASSERT_THAT(*r.records, SizeIs(2));  // p1 is the request's subject
  const ReverseRecord& patient = (*r.records)[0];
  EXPECT_EQ(patient.source_id, "p2");
  EXPECT_EQ(patient.record.record_id(), "Patient/p2");
  EXPECT_EQ(patient.record.patient().family_name(), "Ng");
  EXPECT_TRUE(patient.record.has_patient_record());
  EXPECT_THAT(patient.patient_identifiers, ElementsAre("Patient/p2"));
  const ReverseRecord& request = (*r.records)[1];
  EXPECT_EQ(request.record.patient().clinic_patient_id(), "P-1");
  EXPECT_THAT(request.patient_identifiers, ElementsAre("urn:fhirgw:lakeside-ketamine:patient|P-1"));

  const Result alone = Map(R"({"resourceType":"Patient","id":"p1","active":false,
      "deceasedDateTime":"2026-01-02"})");
  ASSERT_NE(alone.One(), nullptr);
  EXPECT_FALSE(alone.One()->record.patient_record().active());
  EXPECT_TRUE(alone.One()->record.patient_record().deceased());
}

TEST(ReversePatientTest, ContainedAndLogicalAndLiteralSubjects) {
  const Result contained = Map(Request(R"("medicationCodeableConcept":{"text":"x"},
      "contained":[{"resourceType":"Patient","id":"pt","gender":"female","birthDate":"1990-02-03",
                    "identifier":[{"system":"urn:oid:1.2.3","value":"MRN-1"}]}])"));
  ASSERT_NE(contained.One(), nullptr);
  // The request names Patient/p1, not "#pt": nothing resolves.
  EXPECT_THAT(contained.One()->patient_identifiers, ElementsAre("Patient/p1"));
  EXPECT_FALSE(contained.One()->record.has_patient());

  const Result resolved =
      Map(absl::StrReplaceAll(Request(R"("medicationCodeableConcept":{"text":"x"},
      "contained":[{"resourceType":"Patient","id":"pt","gender":"female","birthDate":"1990-02-03",
                    "identifier":[{"system":"urn:oid:1.2.3","value":"MRN-1"}]}])"),
                              {{R"("reference":"Patient/p1")", R"("reference":"#pt")"}}));
  ASSERT_NE(resolved.One(), nullptr);
  const v1::PatientRef& patient = resolved.One()->record.patient();
  EXPECT_EQ(patient.gender(), v1::PatientRef::FEMALE);
  EXPECT_EQ(patient.birth_date(), "1990-02-03");
  EXPECT_THAT(resolved.One()->patient_identifiers, ElementsAre("urn:oid:1.2.3|MRN-1"));

  const Result logical = Map(absl::StrReplaceAll(
      Request(R"("medicationCodeableConcept":{"text":"x"})"),
      {{R"({"reference":"Patient/p1"})",
        R"({"identifier":{"system":"urn:fhirgw:lakeside-ketamine:patient","value":"P-9"}})"}}));
  ASSERT_NE(logical.One(), nullptr);
  EXPECT_EQ(logical.One()->record.patient().clinic_patient_id(), "P-9");
}

TEST(ReversePatientTest, AnotherTenantsPatientIdIsNotTheClinicPatientId) {
  const std::string json = absl::StrReplaceAll(
      Request(R"("medicationCodeableConcept":{"text":"x"})"),
      {{R"({"reference":"Patient/p1"})",
        R"({"identifier":{"system":"urn:fhirgw:other-clinic:patient","value":"P-9"}})"}});
  const Result r = Map(json);
  ASSERT_NE(r.One(), nullptr);
  EXPECT_EQ(r.One()->record.patient().clinic_patient_id(), "");
  ASSERT_EQ(r.One()->record.patient().identifiers_size(), 1);
  EXPECT_EQ(r.One()->record.patient().identifiers(0).system(), "urn:fhirgw:other-clinic:patient");
  // Without a tenant nothing is taken for a clinic's own id...
  const Result unknown = Map(json, ReverseContext{});
  ASSERT_NE(unknown.One(), nullptr);
  EXPECT_EQ(unknown.One()->record.patient().clinic_patient_id(), "");
  EXPECT_EQ(unknown.One()->record.record_id(), "MedicationRequest/rx1");
  // ...unless offline translation asks for any tenant's default systems.
  ReverseContext any_tenant;
  any_tenant.match_any_tenant = true;
  const Result offline = Map(json, any_tenant);
  ASSERT_NE(offline.One(), nullptr);
  EXPECT_EQ(offline.One()->record.patient().clinic_patient_id(), "P-9");
}

TEST(ReverseRecordIdTest, FhirgwIdentifierThenFirstIdentifierThenTypeIdThenFullUrl) {
  const std::string medication = R"("medicationCodeableConcept":{"text":"x"})";
  const auto statement = [&](const std::string& more) {
    return absl::StrCat(R"({"resourceType":"MedicationStatement","status":"active",)", medication,
                        R"(,"subject":{"reference":"Patient/p1"})", more, "}");
  };
  EXPECT_EQ(Map(statement(R"(,"id":"ms1","identifier":[{"system":"urn:a","value":"A-1"},
                {"system":"urn:fhirgw:lakeside-ketamine:medication-statement","value":"med-1"}])"))
                .One()
                ->record.record_id(),
            "med-1");
  EXPECT_EQ(
      Map(statement(
              R"(,"id":"ms1","identifier":[{"system":"urn:a"},{"system":"urn:a","value":"A-1"}])"))
          .One()
          ->record.record_id(),
      "urn:a|A-1");
  EXPECT_EQ(Map(statement(R"(,"id":"ms1")")).One()->record.record_id(), "MedicationStatement/ms1");
  EXPECT_EQ(Map(Bundle("collection", {{"urn:uuid:1", statement("")}})).One()->record.record_id(),
            "urn:uuid:1");
}

TEST(ReverseRecordIdTest, SourceFieldsAndClinic) {
  const Result r = Map(R"({"resourceType":"Encounter","id":"e1","status":"finished",
      "meta":{"versionId":"3","lastUpdated":"2026-11-20T10:00:00.5+01:00"},
      "subject":{"reference":"https://ehr.example.org/fhir/Patient/p1/_history/2"}})");
  const ReverseRecord* record = r.One();
  ASSERT_NE(record, nullptr);
  EXPECT_EQ(record->source_type, "Encounter");
  EXPECT_EQ(record->source_id, "e1");
  EXPECT_EQ(record->source_version, "3");
  EXPECT_EQ(record->record.clinic_id(), kClinic);
  EXPECT_EQ(TimeUtil::ToString(record->record.recorded_at()), "2026-11-20T09:00:00.500Z");
  EXPECT_THAT(record->patient_identifiers, ElementsAre("Patient/p1"));
}

// ---- bigger hospital inputs with expected records ----

struct ReverseGolden {
  std::string name;
  fs::path input;
};

std::vector<ReverseGolden> DiscoverReverseGoldens() {
  std::vector<ReverseGolden> cases;
  const fs::path dir = fs::path(FHIRGW_SOURCE_DIR) / "tests" / "golden" / "reverse";
  if (!fs::exists(dir)) return cases;
  constexpr char kSuffix[] = ".fhir.json";
  for (const auto& entry : fs::directory_iterator(dir)) {
    const std::string file = entry.path().filename().string();
    if (!file.ends_with(kSuffix)) continue;
    cases.push_back({file.substr(0, file.size() - (sizeof(kSuffix) - 1)), entry.path()});
  }
  std::sort(cases.begin(), cases.end(),
            [](const ReverseGolden& a, const ReverseGolden& b) { return a.name < b.name; });
  return cases;
}

void PrintTo(const ReverseGolden& c, std::ostream* os) { *os << c.name; }

class ReverseGoldenTest : public ::testing::TestWithParam<ReverseGolden> {};

TEST_P(ReverseGoldenTest, MapsToTheExpectedRecords) {
  const ReverseGolden& c = GetParam();
  const Result r = Map(ReadFile(c.input));
  ASSERT_TRUE(r.records.ok()) << r.records.status();
  std::string records;
  for (const ReverseRecord& record : *r.records) records += RecordToJson(record.record) + "\n";
  const fs::path records_path = c.input.parent_path() / (c.name + ".records.ndjson");
  const fs::path issues_path = c.input.parent_path() / (c.name + ".issues.txt");
  if (UpdateGoldens()) {
    ASSERT_TRUE(WriteFile(records_path, records)) << records_path;
    ASSERT_TRUE(WriteFile(issues_path, r.Issues())) << issues_path;
    return;
  }
  ASSERT_TRUE(fs::exists(records_path)) << records_path << ": run with FHIRGW_UPDATE_GOLDENS=1";
  const std::vector<std::string> expected =
      absl::StrSplit(ReadFile(records_path), '\n', absl::SkipEmpty());
  ASSERT_EQ(expected.size(), r.records->size()) << records;
  for (size_t i = 0; i < expected.size(); ++i) {
    absl::StatusOr<v1::ClinicRecord> want = ParseRecordJson(expected[i]);
    ASSERT_TRUE(want.ok()) << want.status();
    google::protobuf::util::MessageDifferencer differencer;
    std::string diff;
    differencer.ReportDifferencesToString(&diff);
    EXPECT_TRUE(differencer.Compare(*want, (*r.records)[i].record)) << "record " << i << ":\n"
                                                                    << diff;
  }
  EXPECT_EQ(ReadFile(issues_path), r.Issues());
}

INSTANTIATE_TEST_SUITE_P(Hospital, ReverseGoldenTest, ::testing::ValuesIn(DiscoverReverseGoldens()),
                         [](const ::testing::TestParamInfo<ReverseGolden>& info) {
                           return ParamName(info.param.name);
                         });

TEST(ReverseGoldenSanity, HospitalCasesArePresent) {
  EXPECT_GE(DiscoverReverseGoldens().size(), 4u);
}

// ---- clinical safety (issue #13) ----

std::string SertralineRequest(absl::string_view extra) {
  return absl::StrCat(
      R"({"resourceType":"MedicationRequest","id":"mr1","status":"active",)"
      R"("subject":{"reference":"Patient/p1"},)"
      R"("medicationCodeableConcept":{"coding":[{"system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"36437","display":"sertraline"}]})",
      extra, "}");
}

TEST(ReverseSafetyTest, DoNotPerformNeverBecomesActive) {
  const Result r = Map(SertralineRequest(R"(,"intent":"order","doNotPerform":true)"));
  const ReverseRecord* one = r.One();
  ASSERT_NE(one, nullptr);
  EXPECT_EQ(one->record.medication_statement().status(), v1::MedicationStatementRecord::NOT_TAKEN);
  EXPECT_THAT(r.Issues(), HasSubstr("MedicationRequest.doNotPerform"));
}

TEST(ReverseSafetyTest, ProposalOrPlanNeverBecomesActive) {
  for (const char* intent : {"proposal", "plan"}) {
    const Result r = Map(SertralineRequest(absl::StrCat(R"(,"intent":")", intent, R"(")")));
    const ReverseRecord* one = r.One();
    ASSERT_NE(one, nullptr);
    EXPECT_EQ(one->record.medication_statement().status(), v1::MedicationStatementRecord::INTENDED)
        << intent;
  }
  const Result order = Map(SertralineRequest(R"(,"intent":"order")"));
  ASSERT_NE(order.One(), nullptr);
  EXPECT_EQ(order.One()->record.medication_statement().status(),
            v1::MedicationStatementRecord::ACTIVE);
}

TEST(ReverseSafetyTest, UnitlessDoseIsRefusedAndTextIsNeverADose) {
  const Result r = Map(SertralineRequest(
      R"(,"intent":"order","dosageInstruction":[{"text":"50 mg daily","doseAndRate":[{"doseQuantity":{"value":50}}]}])"));
  EXPECT_THAT(r.Issues(),
              HasSubstr("MedicationRequest.dosageInstruction[0].doseAndRate[0].doseQuantity.unit"));
  const Result text_only =
      Map(SertralineRequest(R"(,"intent":"order","dosageInstruction":[{"text":"50 mg daily"}])"));
  ASSERT_NE(text_only.One(), nullptr);
  EXPECT_FALSE(text_only.One()->record.medication_statement().has_dose());
}

std::string Phq9Total(absl::string_view status, absl::string_view value) {
  return absl::StrCat(
      R"({"resourceType":"Observation","id":"o1","status":")", status,
      R"(","code":{"coding":[{"system":"http://loinc.org","code":"44261-6"}]},)"
      R"("subject":{"reference":"Patient/p1"},"effectiveDateTime":"2026-11-20T13:58:00Z",)",
      value, "}");
}

TEST(ReverseSafetyTest, OnlyFinalObservationsCountAsScores) {
  for (const char* status : {"final", "amended", "corrected"}) {
    const Result r = Map(Phq9Total(status, R"("valueInteger":12)"));
    ASSERT_NE(r.One(), nullptr) << status;
    EXPECT_EQ(r.One()->record.questionnaire().reported_total(), 12);
  }
  for (const char* status : {"preliminary", "registered", "cancelled"}) {
    const Result r = Map(Phq9Total(status, R"("valueInteger":12)"));
    EXPECT_FALSE(r.records.ok()) << status;
    EXPECT_THAT(r.Issues(), HasSubstr("Observation.status: is '")) << status;
  }
}

TEST(ReverseSafetyTest, NumericValueStringIsAScoreButWordsAreNot) {
  const Result r = Map(Phq9Total("final", R"("valueString":" 14 ")"));
  ASSERT_NE(r.One(), nullptr);
  EXPECT_EQ(r.One()->record.questionnaire().reported_total(), 14);
  EXPECT_FALSE(Map(Phq9Total("final", R"("valueString":"moderate")")).records.ok());
}

TEST(ReverseSafetyTest, InProgressQuestionnaireResponseIsNotAScore) {
  const Result r =
      Map(R"({"resourceType":"QuestionnaireResponse","id":"q1","status":"in-progress",)"
          R"("questionnaire":"http://loinc.org/q/44249-1","subject":{"reference":"Patient/p1"},)"
          R"("authored":"2026-11-20T13:58:00Z","item":[]})");
  EXPECT_FALSE(r.records.ok());
  EXPECT_THAT(r.Issues(), HasSubstr("QuestionnaireResponse.status: is 'in-progress'"));
}

}  // namespace
}  // namespace fhirgw::mappers
