// The official FHIR R4 examples (the copy in tests/data/fhir-r4-examples) through MapFromFhir:
// every MedicationStatement, MedicationRequest, MedicationAdministration, QuestionnaireResponse,
// Observation, Encounter and Patient example either maps or fails with an error naming an element
// path; never a crash, never nothing without an issue. Named examples check the content mapped.
// A missing folder fails the tests: the examples are part of the repository.
#include <algorithm>
#include <filesystem>
#include <map>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "mappers/record_json.h"
#include "mappers/reverse.h"
#include "tests/testing/files.h"
#include "tests/testing/param_names.h"

namespace fhirgw::mappers {
namespace {

namespace fs = std::filesystem;
using ::fhirgw::testing::ParamName;
using ::fhirgw::testing::ReadFile;
using ::testing::AllOf;
using ::testing::Contains;
using ::testing::ElementsAre;
using ::testing::Field;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr const char* kTypes[] = {"MedicationStatement",
                                  "MedicationRequest",
                                  "MedicationAdministration",
                                  "QuestionnaireResponse",
                                  "Observation",
                                  "Encounter",
                                  "Patient"};

fs::path ExamplesDir() { return fs::path(FHIRGW_SOURCE_DIR "/tests/data/fhir-r4-examples"); }

// "MedicationRequest-medrx0302" for MedicationRequest-medrx0302.json.
std::vector<std::string> DiscoverExamples() {
  std::vector<std::string> names;
  std::error_code ec;
  if (!fs::is_directory(ExamplesDir(), ec)) return names;
  for (const auto& entry : fs::directory_iterator(ExamplesDir())) {
    if (entry.path().extension() != ".json") continue;
    const std::string stem = entry.path().stem().string();
    const std::string type = stem.substr(0, stem.find('-'));
    if (std::find(std::begin(kTypes), std::end(kTypes), type) != std::end(kTypes)) {
      names.push_back(stem);
    }
  }
  std::sort(names.begin(), names.end());
  return names;
}

const std::vector<std::string>& Examples() {
  static const std::vector<std::string>* examples =
      new std::vector<std::string>(DiscoverExamples());
  return *examples;
}

struct Mapped {
  absl::StatusOr<std::vector<ReverseRecord>> records = std::vector<ReverseRecord>();
  fhir::IssueList issues;
};

Mapped MapJson(const std::string& json) {
  Mapped mapped;
  mapped.records = MapFromFhir(json, ReverseContext::ForTenant("lakeside-ketamine"), mapped.issues);
  return mapped;
}

// Maps the example `name`; fails the test unless it gave exactly one record.
const ReverseRecord* MapOne(const std::string& name, Mapped& mapped) {
  mapped = MapJson(ReadFile(ExamplesDir() / (name + ".json")));
  EXPECT_TRUE(mapped.records.ok()) << name << ": " << mapped.records.status() << "\n"
                                   << fhir::FormatIssues(mapped.issues);
  if (!mapped.records.ok()) return nullptr;
  EXPECT_EQ(mapped.records->size(), 1u) << name;
  if (mapped.records->size() != 1) return nullptr;
  return &mapped.records->front();
}

// ---- every example ----

class OfficialExampleTest : public ::testing::TestWithParam<std::string> {};
GTEST_ALLOW_UNINSTANTIATED_PARAMETERIZED_TEST(OfficialExampleTest);

TEST_P(OfficialExampleTest, MapsOrFailsWithAnElementPath) {
  const std::string& name = GetParam();
  const std::string type = name.substr(0, name.find('-'));
  const Mapped mapped = MapJson(ReadFile(ExamplesDir() / (name + ".json")));
  for (const fhir::Issue& issue : mapped.issues) {
    EXPECT_THAT(issue.path, StartsWith(type)) << "every issue names an element of the resource";
    EXPECT_FALSE(issue.message.empty());
  }
  if (!mapped.records.ok()) {
    EXPECT_EQ(mapped.records.status().code(), absl::StatusCode::kInvalidArgument);
    ASSERT_TRUE(fhir::HasErrors(mapped.issues)) << "failed without an error issue";
    for (const fhir::Issue& issue : mapped.issues) {
      if (issue.severity != fhir::Issue::Severity::kError) continue;
      EXPECT_THAT(std::string(mapped.records.status().message()), HasSubstr(issue.path));
    }
    return;
  }
  ASSERT_FALSE(mapped.records->empty()) << "no records and no error";
  EXPECT_FALSE(fhir::HasErrors(mapped.issues)) << fhir::FormatIssues(mapped.issues);
  for (const ReverseRecord& record : *mapped.records) {
    EXPECT_NE(record.record.body_case(), v1::ClinicRecord::BODY_NOT_SET);
    EXPECT_FALSE(record.record.record_id().empty());
    EXPECT_EQ(record.record.clinic_id(), "lakeside-ketamine");
    EXPECT_EQ(record.source_type, type);
    // The record is valid protobuf JSON for clinics.
    EXPECT_TRUE(ParseRecordJson(RecordToJson(record.record)).ok());
  }
}

INSTANTIATE_TEST_SUITE_P(R4, OfficialExampleTest, ::testing::ValuesIn(Examples()),
                         [](const ::testing::TestParamInfo<std::string>& info) {
                           return ParamName(info.param);
                         });

// Guards against a suite that passes because no example was found.
TEST(OfficialExamplesSanity, EveryTypeHasExamples) {
  ASSERT_TRUE(fs::is_directory(ExamplesDir())) << ExamplesDir() << " is missing";
  std::map<std::string, int> count;
  for (const std::string& name : Examples()) count[name.substr(0, name.find('-'))]++;
  for (const char* type : kTypes) EXPECT_GE(count[type], 1) << type;
  EXPECT_GE(Examples().size(), 150u);
  // Most examples of the medication and encounter types map.
  int mapped = 0;
  for (const std::string& name : Examples()) {
    if (name.starts_with("Observation-") || name.starts_with("QuestionnaireResponse-")) continue;
    if (MapJson(ReadFile(ExamplesDir() / (name + ".json"))).records.ok()) ++mapped;
  }
  EXPECT_GE(mapped, 90);
}

// ---- named examples, content checked ----

TEST(OfficialExamples, MedicationRequestMedrx0302) {
  Mapped mapped;
  const ReverseRecord* r = MapOne("MedicationRequest-medrx0302", mapped);
  ASSERT_NE(r, nullptr);
  const v1::MedicationStatementRecord& s = r->record.medication_statement();
  // The contained Medication "#med0320".
  EXPECT_EQ(s.medication().system(), "http://snomed.info/sct");
  EXPECT_EQ(s.medication().code(), "324252006");
  EXPECT_EQ(s.medication().display(), "Azithromycin 250mg capsule (product)");
  EXPECT_EQ(s.status(), v1::MedicationStatementRecord::ACTIVE);
  EXPECT_EQ(s.information_source(), v1::InformationSource::HOSPITAL_RECORD);
  EXPECT_EQ(s.effective_start(), "2015-01-15");  // authoredOn
  EXPECT_EQ(s.dosage_text(), "Two tablets at once");
  EXPECT_EQ(s.dose().value(), 2);
  EXPECT_EQ(s.dose().unit(), "TAB");
  EXPECT_EQ(s.frequency().times(), 1);
  EXPECT_EQ(s.frequency().period_unit(), "d");
  EXPECT_EQ(s.route(), v1::Route::ORAL);
  ASSERT_EQ(s.reasons_size(), 1);
  EXPECT_EQ(s.reasons(0).code(), "11840006");
  EXPECT_EQ(s.note(), "Patient told to take with food");
  EXPECT_EQ(r->record.record_id(), "http://www.bmc.nl/portal/prescriptions|12345689");
  EXPECT_THAT(r->patient_identifiers, ElementsAre("Patient/pat1"));
  EXPECT_EQ(r->source_id, "medrx0302");
  // The second dosage instruction is not mapped, and that is said.
  EXPECT_THAT(mapped.issues,
              Contains(Field(&fhir::Issue::path, "MedicationRequest.dosageInstruction[1]")));
}

TEST(OfficialExamples, MedicationRequestMedrx0301Completed) {
  Mapped mapped;
  const ReverseRecord* r = MapOne("MedicationRequest-medrx0301", mapped);
  ASSERT_NE(r, nullptr);
  const v1::MedicationStatementRecord& s = r->record.medication_statement();
  EXPECT_EQ(s.medication().code(), "430127000");
  EXPECT_EQ(s.status(), v1::MedicationStatementRecord::COMPLETED);
  EXPECT_EQ(s.status_reason().code(), "altchoice");
}

TEST(OfficialExamples, MedicationRequestMedrx002UnresolvedMedicationKeepsDisplay) {
  Mapped mapped;
  const ReverseRecord* r = MapOne("MedicationRequest-medrx002", mapped);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->record.medication_statement().medication().display(), "prescribed medication");
  EXPECT_THAT(mapped.issues,
              Contains(AllOf(Field(&fhir::Issue::path, "MedicationRequest.medicationReference"),
                             Field(&fhir::Issue::severity, fhir::Issue::Severity::kWarning))));
}

TEST(OfficialExamples, PatientExample) {
  Mapped mapped;
  const ReverseRecord* r = MapOne("Patient-example", mapped);
  ASSERT_NE(r, nullptr);
  const v1::PatientRef& p = r->record.patient();
  EXPECT_EQ(p.family_name(), "Chalmers");  // the official name, not the usual or maiden one
  EXPECT_THAT(p.given_names(), ElementsAre("Peter", "James"));
  EXPECT_EQ(p.gender(), v1::PatientRef::MALE);
  EXPECT_EQ(p.birth_date(), "1974-12-25");
  ASSERT_EQ(p.identifiers_size(), 1);
  EXPECT_EQ(p.identifiers(0).system(), "urn:oid:1.2.36.146.595.217.0.1");
  EXPECT_EQ(p.identifiers(0).value(), "12345");
  EXPECT_TRUE(p.clinic_patient_id().empty());
  ASSERT_TRUE(r->record.has_patient_record());
  EXPECT_TRUE(r->record.patient_record().active());
  ASSERT_TRUE(r->record.patient_record().has_deceased());
  EXPECT_FALSE(r->record.patient_record().deceased());
  EXPECT_THAT(r->patient_identifiers, ElementsAre("urn:oid:1.2.36.146.595.217.0.1|12345"));
}

TEST(OfficialExamples, PatientPat3Deceased) {
  Mapped mapped;
  const ReverseRecord* r = MapOne("Patient-pat3", mapped);
  ASSERT_NE(r, nullptr);
  EXPECT_TRUE(r->record.patient_record().deceased());  // deceasedDateTime
}

TEST(OfficialExamples, EncounterExample) {
  Mapped mapped;
  const ReverseRecord* r = MapOne("Encounter-example", mapped);
  ASSERT_NE(r, nullptr);
  const v1::EncounterRecord& e = r->record.encounter();
  EXPECT_EQ(e.status(), v1::EncounterRecord::IN_PROGRESS);
  // class IMP (inpatient) and no type: no clinic encounter kind fits.
  EXPECT_EQ(e.kind(), v1::EncounterRecord::KIND_UNSPECIFIED);
  EXPECT_EQ(e.encounter_id(), "Encounter/example");
  EXPECT_EQ(r->record.record_id(), "Encounter/example");
  EXPECT_THAT(r->patient_identifiers, ElementsAre("Patient/example"));
}

TEST(OfficialExamples, EncounterF001) {
  Mapped mapped;
  const ReverseRecord* r = MapOne("Encounter-f001", mapped);
  ASSERT_NE(r, nullptr);
  const v1::EncounterRecord& e = r->record.encounter();
  EXPECT_EQ(e.status(), v1::EncounterRecord::FINISHED);
  EXPECT_EQ(e.encounter_id(), "http://www.amc.nl/zorgportal/identifiers/visits|v1451");
  EXPECT_EQ(e.practitioner().name(), "P. Voigt");
  ASSERT_EQ(e.reasons_size(), 1);
  EXPECT_EQ(e.reasons(0).code(), "34068001");
}

TEST(OfficialExamples, MedicationStatementExample001) {
  Mapped mapped;
  const ReverseRecord* r = MapOne("MedicationStatement-example001", mapped);
  ASSERT_NE(r, nullptr);
  const v1::MedicationStatementRecord& s = r->record.medication_statement();
  EXPECT_EQ(s.medication().code(), "50580-506-02");  // contained "#med0309"
  EXPECT_EQ(s.medication().display(), "Tylenol PM");
  EXPECT_EQ(s.status(), v1::MedicationStatementRecord::ACTIVE);
  EXPECT_EQ(s.effective_start(), "2015-01-23");
  EXPECT_EQ(s.information_source(), v1::InformationSource::PATIENT_REPORTED);  // Patient/pat1
  EXPECT_EQ(s.route(), v1::Route::ORAL);
  EXPECT_EQ(s.frequency().times(), 1);
  EXPECT_EQ(s.note(), "Patient indicates they miss the occasional dose");
  // dateAsserted "2015-02-22" is a date: midnight UTC, with a warning.
  EXPECT_EQ(r->record.recorded_at().seconds(), 1424563200);
  EXPECT_THAT(mapped.issues,
              Contains(AllOf(Field(&fhir::Issue::path, "MedicationStatement.dateAsserted"),
                             Field(&fhir::Issue::severity, fhir::Issue::Severity::kWarning))));
}

TEST(OfficialExamples, MedicationStatementExample005EnteredInError) {
  Mapped mapped;
  const ReverseRecord* r = MapOne("MedicationStatement-example005", mapped);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->record.action(), v1::ClinicRecord::ENTERED_IN_ERROR);
  EXPECT_EQ(r->record.medication_statement().status(),
            v1::MedicationStatementRecord::ENTERED_IN_ERROR);
}

TEST(OfficialExamples, MedicationAdministrationMedadmin0301) {
  Mapped mapped;
  const ReverseRecord* r = MapOne("MedicationAdministration-medadmin0301", mapped);
  ASSERT_NE(r, nullptr);
  const v1::InfusionRecord& i = r->record.infusion();
  EXPECT_EQ(i.medication().code(), "0069-2587-10");
  EXPECT_EQ(i.status(), v1::InfusionRecord::IN_PROGRESS);
  EXPECT_EQ(i.route(), v1::Route::INTRAVENOUS);
  EXPECT_EQ(i.total_dose_mg(), 500);
  // "2015-01-15T14:30:00+01:00" in UTC.
  EXPECT_EQ(i.start_time().seconds(), 1421328600);
  EXPECT_FALSE(i.has_end_time());
  EXPECT_EQ(i.encounter_id(), "Encounter/f001");
  EXPECT_EQ(i.performer().name(), "Patrick Pump");
}

TEST(OfficialExamples, MedicationAdministrationMedadmin0302RateRatio) {
  Mapped mapped;
  const ReverseRecord* r = MapOne("MedicationAdministration-medadmin0302", mapped);
  ASSERT_NE(r, nullptr);
  const v1::InfusionRecord& i = r->record.infusion();
  EXPECT_EQ(i.rate_ml_per_hour(), 100);  // rateRatio 100 mL / 1 h
  EXPECT_FALSE(i.has_total_dose_mg());   // 20 meq is not a mass
  // A compounded Medication without a code: its ingredients as text.
  EXPECT_EQ(i.medication().display(),
            "Potassium Chloride + Sodium Chloride 0.9% injectable solution");
}

TEST(OfficialExamples, MedicationAdministrationMedadmin0303EnteredInErrorInGrams) {
  Mapped mapped;
  const ReverseRecord* r = MapOne("MedicationAdministration-medadmin0303", mapped);
  ASSERT_NE(r, nullptr);
  EXPECT_EQ(r->record.action(), v1::ClinicRecord::ENTERED_IN_ERROR);
  EXPECT_EQ(r->record.infusion().total_dose_mg(), 4500);  // 4.5 g
}

TEST(OfficialExamples, QuestionnaireResponseF201IsNotAScreeningInstrument) {
  const Mapped mapped = MapJson(ReadFile(ExamplesDir() / "QuestionnaireResponse-f201.json"));
  ASSERT_FALSE(mapped.records.ok());
  EXPECT_EQ(mapped.records.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(std::string(mapped.records.status().message()),
              AllOf(HasSubstr("QuestionnaireResponse.questionnaire"), HasSubstr("PHQ-9")));
}

TEST(OfficialExamples, ObservationHeartRateIsAVitalSignOnItsOwn) {
  const Mapped mapped = MapJson(ReadFile(ExamplesDir() / "Observation-heart-rate.json"));
  ASSERT_FALSE(mapped.records.ok());
  ASSERT_EQ(mapped.issues.size(), 1u);
  EXPECT_EQ(mapped.issues[0].path, "Observation.code");
  EXPECT_THAT(mapped.issues[0].message, AllOf(HasSubstr("8867-4"), HasSubstr("vital sign")));
}

TEST(OfficialExamples, ObservationGlasgowIsNotSupported) {
  const Mapped mapped = MapJson(ReadFile(ExamplesDir() / "Observation-glasgow.json"));
  ASSERT_FALSE(mapped.records.ok());
  EXPECT_THAT(std::string(mapped.records.status().message()),
              AllOf(HasSubstr("Observation.code"), HasSubstr("9269-2"),
                    HasSubstr(kSupportedResourceTypes)));
}

// The examples together in one collection Bundle: references between them resolve (the Patient
// of a MedicationRequest is then in the input), and a Patient that others name is no record of
// its own.
TEST(OfficialExamples, CollectionBundleResolvesReferencesBetweenExamples) {
  std::string bundle = R"({"resourceType":"Bundle","type":"collection","entry":[)";
  bool first = true;
  for (const char* name : {"Patient-pat1", "MedicationRequest-medrx0302",
                           "MedicationStatement-example001", "Encounter-f001"}) {
    bundle += std::string(first ? "" : ",") + R"({"resource":)" +
              ReadFile(ExamplesDir() / (std::string(name) + ".json")) + "}";
    first = false;
  }
  bundle += "]}";
  const Mapped mapped = MapJson(bundle);
  ASSERT_TRUE(mapped.records.ok()) << mapped.records.status();
  ASSERT_EQ(mapped.records->size(), 3u);  // Patient-pat1 is the others' subject
  const ReverseRecord& request = (*mapped.records)[0];
  EXPECT_EQ(request.source_type, "MedicationRequest");
  EXPECT_EQ(request.record.patient().family_name(), "Donald");
  EXPECT_THAT(request.patient_identifiers, ElementsAre("urn:oid:0.1.2.3.4.5.6.7|654321"));
  for (const fhir::Issue& issue : mapped.issues) {
    EXPECT_THAT(issue.path, StartsWith("Bundle.entry[")) << issue.message;
  }
}

}  // namespace
}  // namespace fhirgw::mappers
