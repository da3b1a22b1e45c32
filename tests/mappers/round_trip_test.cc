// Round trips record -> FHIR -> record for every valid golden case: each
// tests/golden/<kind>/<case>.record.json and each examples/*.json is mapped forward with MapToFhir
// (item Observations on when the case name contains "item-observations"), the Bundle is mapped back
// with MapFromFhir, and exactly one record must come back, equal to the input after Normalize().
#include <algorithm>
#include <cmath>
#include <filesystem>
#include <map>
#include <optional>
#include <ostream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "gtest/gtest.h"
#include "mappers/record_json.h"
#include "mappers/registry.h"
#include "mappers/reverse.h"
#include "mappers/safety.h"
#include "tests/testing/files.h"
#include "tests/testing/param_names.h"

namespace fhirgw::mappers {
namespace {

namespace fs = std::filesystem;
using ::fhirgw::testing::ParamName;
using ::fhirgw::testing::ReadFile;

struct RoundTripCase {
  std::string name;  // kind/case
  std::string kind;  // infusion, medication_statement, questionnaire, encounter, examples
  fs::path record;
};

std::vector<RoundTripCase> DiscoverCases() {
  std::vector<RoundTripCase> cases;
  const fs::path source(FHIRGW_SOURCE_DIR);
  const fs::path golden = source / "tests" / "golden";
  constexpr char kSuffix[] = ".record.json";
  for (const char* kind : {"infusion", "medication_statement", "questionnaire", "encounter"}) {
    if (!fs::exists(golden / kind)) continue;
    for (const auto& entry : fs::directory_iterator(golden / kind)) {
      const std::string file = entry.path().filename().string();
      if (!entry.is_regular_file() || !file.ends_with(kSuffix)) continue;
      const std::string base = file.substr(0, file.size() - (sizeof(kSuffix) - 1));
      cases.push_back({std::string(kind) + "/" + base, kind, entry.path()});
    }
  }
  if (fs::exists(source / "examples")) {
    for (const auto& entry : fs::directory_iterator(source / "examples")) {
      if (entry.path().extension() != ".json") continue;
      cases.push_back({"examples/" + entry.path().stem().string(), "examples", entry.path()});
    }
  }
  std::sort(cases.begin(), cases.end(),
            [](const RoundTripCase& a, const RoundTripCase& b) { return a.name < b.name; });
  return cases;
}

const std::vector<RoundTripCase>& Cases() {
  static const std::vector<RoundTripCase>* cases = new std::vector<RoundTripCase>(DiscoverCases());
  return *cases;
}

double RoundTo2(double value) { return std::round(value * 100.0) / 100.0; }

// Rewrites `record` into what FHIR can carry back. Each rule is a value the forward mapping does
// not write, or writes in a form that cannot be told apart from another:
v1::ClinicRecord Normalize(v1::ClinicRecord record) {
  const bool retracted = record.action() == v1::ClinicRecord::ENTERED_IN_ERROR;
  switch (record.body_case()) {
    case v1::ClinicRecord::kInfusion: {
      v1::InfusionRecord& infusion = *record.mutable_infusion();
      // 1. total_dose_mg: the forward mapping writes the total it derives (dose_mg_per_kg x
      //    patient_weight_kg) into dosage.dose, exactly like a total the clinic gave.
      //    A STOPPED infusion never gets the planned dose: its total is what the pump delivered.
      if (!infusion.has_total_dose_mg() && infusion.status() == v1::InfusionRecord::STOPPED) {
        if (std::optional<double> given = DoseFromRateMg(infusion)) {
          infusion.set_total_dose_mg(*given);
        }
      } else if (!infusion.has_total_dose_mg() && infusion.has_dose_mg_per_kg() &&
                 infusion.has_patient_weight_kg()) {
        infusion.set_total_dose_mg(
            RoundTo2(infusion.dose_mg_per_kg() * infusion.patient_weight_kg()));
      }
      // 2. vitals.time: a measurement without a time is written at start_time (its documented
      //    default), so it comes back with that time.
      for (v1::Vitals& vitals : *infusion.mutable_vitals()) {
        if (!vitals.has_time() && infusion.has_start_time()) {
          *vitals.mutable_time() = infusion.start_time();
        }
      }
      // 3. recorded_at: written (as effectiveDateTime) only when there is no start_time.
      if (infusion.has_start_time()) record.clear_recorded_at();
      // 4. A retraction writes status entered-in-error instead of the infusion's status, and
      //    deletes the AdverseEvents (R4 AdverseEvent has no status) instead of writing them.
      if (retracted) {
        infusion.set_status(v1::InfusionRecord::STATUS_UNSPECIFIED);
        infusion.clear_adverse_events();
      }
      break;
    }
    case v1::ClinicRecord::kMedicationStatement: {
      v1::MedicationStatementRecord& statement = *record.mutable_medication_statement();
      // 5. Status ENTERED_IN_ERROR and a retraction are both written as status entered-in-error:
      //    either comes back as a retraction with that status.
      if (retracted || statement.status() == v1::MedicationStatementRecord::ENTERED_IN_ERROR) {
        record.set_action(v1::ClinicRecord::ENTERED_IN_ERROR);
        statement.set_status(v1::MedicationStatementRecord::ENTERED_IN_ERROR);
      }
      break;
    }
    case v1::ClinicRecord::kQuestionnaire: {
      v1::QuestionnaireRecord& questionnaire = *record.mutable_questionnaire();
      // 6. reported_total: the total score Observation always carries the computed total.
      int total = 0;
      for (const v1::Answer& answer : questionnaire.answers()) total += answer.value();
      questionnaire.set_reported_total(total);
      // 3. recorded_at: a questionnaire has no place for it (authored is its own field).
      record.clear_recorded_at();
      break;
    }
    case v1::ClinicRecord::kEncounter:
      // 3. recorded_at: an Encounter has no place for it.
      record.clear_recorded_at();
      // 4. A retraction writes status entered-in-error instead of the encounter's status.
      if (retracted)
        record.mutable_encounter()->set_status(v1::EncounterRecord::STATUS_UNSPECIFIED);
      break;
    default:
      break;
  }
  return record;
}

const char* SourceTypeOf(v1::ClinicRecord::BodyCase body) {
  switch (body) {
    case v1::ClinicRecord::kInfusion:
      return "MedicationAdministration";
    case v1::ClinicRecord::kMedicationStatement:
      return "MedicationStatement";
    case v1::ClinicRecord::kQuestionnaire:
      return "QuestionnaireResponse";
    case v1::ClinicRecord::kEncounter:
      return "Encounter";
    default:
      return "";
  }
}

void PrintTo(const RoundTripCase& c, std::ostream* os) { *os << c.name; }

class RoundTripTest : public ::testing::TestWithParam<RoundTripCase> {};

TEST_P(RoundTripTest, RecordToFhirToRecordGivesTheRecordBack) {
  const RoundTripCase& c = GetParam();
  absl::StatusOr<v1::ClinicRecord> input = ParseRecordJson(ReadFile(c.record));
  ASSERT_TRUE(input.ok()) << input.status();
  MapContext forward = MapContext::ForTenant(input->clinic_id());
  forward.item_observations = c.name.find("item-observations") != std::string::npos;
  fhir::IssueList forward_issues;
  absl::StatusOr<MapOutput> mapped = MapToFhir(*input, forward, forward_issues);
  ASSERT_TRUE(mapped.ok()) << mapped.status();
  const std::string bundle = mapped->bundle.Write(fhir::JsonStyle::kCompact);

  fhir::IssueList issues;
  absl::StatusOr<std::vector<ReverseRecord>> records =
      MapFromFhir(bundle, ReverseContext::ForTenant(input->clinic_id()), issues);
  ASSERT_TRUE(records.ok()) << records.status() << "\n" << fhir::FormatIssues(issues);
  EXPECT_THAT(issues, ::testing::IsEmpty()) << fhir::FormatIssues(issues);
  ASSERT_EQ(records->size(), 1u) << "from " << bundle;

  const ReverseRecord& back = records->front();
  const v1::ClinicRecord expected = Normalize(*input);
  google::protobuf::util::MessageDifferencer differencer;
  std::string diff;
  differencer.ReportDifferencesToString(&diff);
  EXPECT_TRUE(differencer.Compare(expected, back.record))
      << diff << "\nexpected: " << RecordToJson(expected)
      << "\nactual:   " << RecordToJson(back.record);

  EXPECT_EQ(back.source_type, SourceTypeOf(input->body_case()));
  EXPECT_THAT(back.patient_identifiers,
              ::testing::Contains(IdentifierSystems::ForTenant(input->clinic_id()).patient + "|" +
                                  input->patient().clinic_patient_id()));

  // Offline (no tenant known), fhirgw's default identifier systems are still recognised.
  ReverseContext any_tenant;
  any_tenant.match_any_tenant = true;
  fhir::IssueList offline_issues;
  absl::StatusOr<std::vector<ReverseRecord>> offline =
      MapFromFhir(bundle, any_tenant, offline_issues);
  ASSERT_TRUE(offline.ok()) << offline.status();
  ASSERT_EQ(offline->size(), 1u);
  v1::ClinicRecord without_tenant = expected;
  without_tenant.clear_clinic_id();
  EXPECT_TRUE(
      google::protobuf::util::MessageDifferencer::Equals(without_tenant, offline->front().record))
      << RecordToJson(offline->front().record);
}

std::string TestName(const ::testing::TestParamInfo<RoundTripCase>& info) {
  return ParamName(info.param.name);
}

INSTANTIATE_TEST_SUITE_P(Golden, RoundTripTest, ::testing::ValuesIn(Cases()), TestName);

// Guards against a suite that passes because no golden files were found.
TEST(RoundTripSanity, EveryKindHasCases) {
  std::map<std::string, int> count;
  for (const RoundTripCase& c : Cases()) count[c.kind]++;
  for (const char* kind : {"infusion", "medication_statement", "questionnaire", "encounter"}) {
    EXPECT_GE(count[kind], 5) << kind;
  }
  EXPECT_GE(count["examples"], 6);
}

// The normalization must not hide a real difference: a record that differs in a value FHIR
// carries does not compare equal after a round trip.
TEST(RoundTripSanity, NormalizationKeepsRealDifferences) {
  absl::StatusOr<v1::ClinicRecord> input = ParseRecordJson(
      ReadFile(fs::path(FHIRGW_SOURCE_DIR) / "examples" / "ketamine-infusion.json"));
  ASSERT_TRUE(input.ok());
  fhir::IssueList issues;
  absl::StatusOr<MapOutput> mapped =
      MapToFhir(*input, MapContext::ForTenant("lakeside-ketamine"), issues);
  ASSERT_TRUE(mapped.ok());
  absl::StatusOr<std::vector<ReverseRecord>> records =
      MapFromFhir(mapped->bundle.Write(fhir::JsonStyle::kCompact),
                  ReverseContext::ForTenant("lakeside-ketamine"), issues);
  ASSERT_TRUE(records.ok());
  ASSERT_EQ(records->size(), 1u);
  v1::ClinicRecord changed = Normalize(*input);
  changed.mutable_infusion()->mutable_vitals(2)->set_heart_rate_bpm(80);
  EXPECT_FALSE(
      google::protobuf::util::MessageDifferencer::Equals(changed, records->front().record));
}

}  // namespace
}  // namespace fhirgw::mappers
