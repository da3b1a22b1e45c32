// Golden tests for the clinic record -> FHIR R4 mappers.
//
// Every tests/golden/<kind>/<case>.record.json is mapped and compared byte for byte with
// <case>.bundle.json beside it (and its alerts with <case>.alerts.txt, absent when none). The
// examples in examples/ are golden cases too, with their Bundles in tests/golden/examples/. Invalid
// records live in tests/golden/<kind>/invalid/ with the expected "path: message" lines in
// <case>.errors.txt. A case whose name contains "item-observations" maps with item Observations on.
// A case with <case>.previous-alerts.txt (the alerts.txt format) is a later version of a record
// whose previous version raised those alerts (mappers::PreviousVersion).
//
// FHIRGW_UPDATE_GOLDENS=1 rewrites the expected files; review the diff before committing.
#include <algorithm>
#include <filesystem>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "mappers/record_json.h"
#include "mappers/registry.h"
#include "mappers/safety.h"
#include "tests/testing/files.h"
#include "tests/testing/param_names.h"

namespace fhirgw::mappers {
namespace {

namespace fs = std::filesystem;
using ::fhirgw::testing::ParamName;
using ::fhirgw::testing::ReadFile;
using ::fhirgw::testing::UpdateGoldens;
using ::fhirgw::testing::WriteFile;

struct GoldenCase {
  std::string name;  // kind/case, for the test name
  std::string kind;
  fs::path record;
  fs::path expected;  // .bundle.json or .errors.txt
  fs::path alerts;    // .alerts.txt (valid cases)
  fs::path previous;  // .previous-alerts.txt, when the case is a later version of a record
  bool invalid = false;
};

fs::path SourceDir() { return fs::path(FHIRGW_SOURCE_DIR); }

std::string StripSuffix(std::string name, const std::string& suffix) {
  if (name.size() >= suffix.size() &&
      name.compare(name.size() - suffix.size(), suffix.size(), suffix) == 0) {
    name.resize(name.size() - suffix.size());
  }
  return name;
}

std::vector<GoldenCase> DiscoverCases() {
  std::vector<GoldenCase> cases;
  const fs::path golden = SourceDir() / "tests" / "golden";
  if (!fs::exists(golden)) return cases;
  for (const auto& entry : fs::recursive_directory_iterator(golden)) {
    const std::string file = entry.path().filename().string();
    if (!entry.is_regular_file() || file.find(".record.json") == std::string::npos) continue;
    GoldenCase c;
    const std::string base = StripSuffix(file, ".record.json");
    const fs::path dir = entry.path().parent_path();
    c.invalid = dir.filename() == "invalid";
    c.kind = (c.invalid ? dir.parent_path() : dir).filename().string();
    c.name = c.kind + (c.invalid ? "/invalid/" : "/") + base;
    c.record = entry.path();
    c.expected = dir / (base + (c.invalid ? ".errors.txt" : ".bundle.json"));
    c.alerts = dir / (base + ".alerts.txt");
    c.previous = dir / (base + ".previous-alerts.txt");
    cases.push_back(c);
  }
  const fs::path examples = SourceDir() / "examples";
  if (fs::exists(examples)) {
    for (const auto& entry : fs::directory_iterator(examples)) {
      if (entry.path().extension() != ".json") continue;
      GoldenCase c;
      const std::string base = entry.path().stem().string();
      c.kind = "examples";
      c.name = "examples/" + base;
      c.record = entry.path();
      c.expected = golden / "examples" / (base + ".bundle.json");
      c.alerts = golden / "examples" / (base + ".alerts.txt");
      cases.push_back(c);
    }
  }
  std::sort(cases.begin(), cases.end(),
            [](const GoldenCase& a, const GoldenCase& b) { return a.name < b.name; });
  return cases;
}

const std::vector<GoldenCase>& Cases() {
  static const std::vector<GoldenCase>* cases = new std::vector<GoldenCase>(DiscoverCases());
  return *cases;
}

MapContext ContextFor(const GoldenCase& c, const v1::ClinicRecord& record) {
  MapContext context = MapContext::ForTenant(record.clinic_id());
  context.item_observations = c.name.find("item-observations") != std::string::npos;
  return context;
}

// The previous version of the case's record: the alerts in <case>.previous-alerts.txt, one
// "KIND: message" a line; none when the file is absent.
PreviousVersion PreviousFor(const GoldenCase& c) {
  PreviousVersion previous;
  if (c.previous.empty() || !fs::exists(c.previous)) return previous;
  std::istringstream lines(ReadFile(c.previous));
  std::string line;
  while (std::getline(lines, line)) {
    const size_t colon = line.find(": ");
    v1::Alert::Kind kind;
    if (colon == std::string::npos || !v1::Alert::Kind_Parse(line.substr(0, colon), &kind)) {
      ADD_FAILURE() << c.previous << ": '" << line << "' is not KIND: message";
      continue;
    }
    v1::Alert& alert = previous.alerts.emplace_back();
    alert.set_kind(kind);
    alert.set_message(line.substr(colon + 2));
  }
  return previous;
}

std::string FormatAlerts(const std::vector<v1::Alert>& alerts) {
  std::string out;
  for (const v1::Alert& alert : alerts) {
    out += v1::Alert::Kind_Name(alert.kind()) + ": " + alert.message() + "\n";
  }
  return out;
}

// Compares `actual` with the golden file, or rewrites the file when updating.
void ExpectGolden(const fs::path& path, const std::string& actual) {
  if (UpdateGoldens()) {
    fs::create_directories(path.parent_path());
    ASSERT_TRUE(WriteFile(path, actual)) << path;
    return;
  }
  ASSERT_TRUE(fs::exists(path)) << path << " is missing; run with FHIRGW_UPDATE_GOLDENS=1";
  EXPECT_EQ(ReadFile(path), actual) << "differs from " << path;
}

// Compares `alerts` with <case>.alerts.txt (absent when there are none), or rewrites it.
void ExpectAlerts(const fs::path& path, const std::string& alerts) {
  if (UpdateGoldens()) {
    if (alerts.empty()) {
      fs::remove(path);
    } else {
      WriteFile(path, alerts);
    }
  } else {
    EXPECT_EQ(fs::exists(path) ? ReadFile(path) : "", alerts) << "differs from " << path;
  }
}

class GoldenTest : public ::testing::TestWithParam<GoldenCase> {};

TEST_P(GoldenTest, MatchesGolden) {
  const GoldenCase& c = GetParam();
  absl::StatusOr<v1::ClinicRecord> record = ParseRecordJson(ReadFile(c.record));
  fhir::IssueList issues;
  if (c.invalid) {
    std::string errors;
    if (!record.ok()) {
      errors = std::string(record.status().message()) + "\n";
    } else {
      absl::StatusOr<MapOutput> out = MapToFhir(*record, ContextFor(c, *record), issues);
      ASSERT_FALSE(out.ok()) << c.name << " is under invalid/ but maps";
      EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
      errors = fhir::FormatIssues(issues);
      // The status message names every issue's path too (it becomes the gRPC error).
      for (const fhir::Issue& issue : issues) {
        EXPECT_THAT(std::string(out.status().message()), ::testing::HasSubstr(issue.path));
      }
      // A rejected record still raises its alerts, carried by the status.
      ExpectAlerts(c.alerts, FormatAlerts(AlertsOf(out.status())));
    }
    ASSERT_FALSE(errors.empty());
    ExpectGolden(c.expected, errors);
    return;
  }
  ASSERT_TRUE(record.ok()) << record.status();
  const PreviousVersion previous = PreviousFor(c);
  absl::StatusOr<MapOutput> out = MapToFhir(*record, ContextFor(c, *record), issues, previous);
  ASSERT_TRUE(out.ok()) << out.status() << "\n" << fhir::FormatIssues(issues);
  EXPECT_TRUE(issues.empty()) << fhir::FormatIssues(issues);
  const std::string bundle = out->bundle.Write(fhir::JsonStyle::kPretty) + "\n";
  ExpectGolden(c.expected, bundle);
  ExpectAlerts(c.alerts, FormatAlerts(out->alerts));

  // Determinism: mapping the same record again gives byte-identical output.
  fhir::IssueList again_issues;
  absl::StatusOr<MapOutput> again =
      MapToFhir(*record, ContextFor(c, *record), again_issues, previous);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(again->bundle.Write(fhir::JsonStyle::kPretty) + "\n", bundle);
}

std::string TestName(const ::testing::TestParamInfo<GoldenCase>& info) {
  return ParamName(info.param.name);
}

INSTANTIATE_TEST_SUITE_P(Golden, GoldenTest, ::testing::ValuesIn(Cases()), TestName);

// Guards against a suite that passes because no files were found: every kind has valid and
// invalid cases, and the examples are there.
TEST(GoldenSanity, EveryKindHasCases) {
  std::map<std::string, int> valid, invalid;
  for (const GoldenCase& c : Cases()) (c.invalid ? invalid : valid)[c.kind]++;
  for (const char* kind : {"infusion", "medication_statement", "questionnaire", "encounter"}) {
    EXPECT_GE(valid[kind], 5) << kind;
    EXPECT_GE(invalid[kind], 3) << kind;
  }
  EXPECT_GE(valid["examples"], 6);
}

// The alert for suicidal ideation must never go missing: the PHQ-9 example raises it, and a
// retraction of the same record does not.
TEST(GoldenSanity, Phq9Item9RaisesAlertUnlessRetracted) {
  absl::StatusOr<v1::ClinicRecord> record =
      ParseRecordJson(ReadFile(SourceDir() / "examples" / "phq9-item9-positive.json"));
  ASSERT_TRUE(record.ok());
  fhir::IssueList issues;
  absl::StatusOr<MapOutput> out =
      MapToFhir(*record, MapContext::ForTenant(record->clinic_id()), issues);
  ASSERT_TRUE(out.ok());
  ASSERT_EQ(out->alerts.size(), 1u);
  EXPECT_EQ(out->alerts[0].kind(), v1::Alert::SUICIDAL_IDEATION);
  EXPECT_THAT(out->bundle.Write(fhir::JsonStyle::kCompact),
              ::testing::HasSubstr("\"resourceType\":\"Flag\""));

  record->set_action(v1::ClinicRecord::ENTERED_IN_ERROR);
  absl::StatusOr<MapOutput> retracted =
      MapToFhir(*record, MapContext::ForTenant(record->clinic_id()), issues);
  ASSERT_TRUE(retracted.ok());
  EXPECT_TRUE(retracted->alerts.empty());
  EXPECT_THAT(retracted->bundle.Write(fhir::JsonStyle::kCompact),
              ::testing::HasSubstr("\"status\":\"entered-in-error\""));
}

// The suicidal-ideation alert survives a rejection: the status carries it (payload and message).
TEST(GoldenSanity, RejectedPhq9StillRaisesSuicidalIdeation) {
  absl::StatusOr<v1::ClinicRecord> record =
      ParseRecordJson(ReadFile(SourceDir() / "tests" / "golden" / "questionnaire" / "invalid" /
                               "item9-positive-but-rejected.record.json"));
  ASSERT_TRUE(record.ok());
  fhir::IssueList issues;
  absl::StatusOr<MapOutput> out =
      MapToFhir(*record, MapContext::ForTenant(record->clinic_id()), issues);
  ASSERT_FALSE(out.ok());
  EXPECT_EQ(out.status().code(), absl::StatusCode::kInvalidArgument);
  const std::vector<v1::Alert> alerts = AlertsOf(out.status());
  ASSERT_EQ(alerts.size(), 1u);
  EXPECT_EQ(alerts[0].kind(), v1::Alert::SUICIDAL_IDEATION);
  EXPECT_THAT(std::string(out.status().message()), ::testing::HasSubstr("SUICIDAL_IDEATION"));
  // A valid item 9 = 0 raises nothing.
  for (v1::Answer& answer : *record->mutable_questionnaire()->mutable_answers()) {
    if (answer.item() == 9) answer.set_value(0);
  }
  EXPECT_TRUE(SafetyAlerts(*record).empty());
}

// Each safe-infusion limit raises UNSAFE_VITAL_SIGNS at its edge, and not just inside it.
TEST(GoldenSanity, VitalSignLimits) {
  const auto unsafe = [](auto set) {
    v1::Vitals v;
    set(v);
    return !UnsafeVitals(v).empty();
  };
  EXPECT_TRUE(unsafe([](v1::Vitals& v) {
    v.set_systolic_mmhg(180);
    v.set_diastolic_mmhg(90);
  }));
  EXPECT_FALSE(unsafe([](v1::Vitals& v) {
    v.set_systolic_mmhg(179);
    v.set_diastolic_mmhg(109);
  }));
  EXPECT_TRUE(unsafe([](v1::Vitals& v) {
    v.set_systolic_mmhg(150);
    v.set_diastolic_mmhg(110);
  }));
  EXPECT_TRUE(unsafe([](v1::Vitals& v) { v.set_heart_rate_bpm(131); }));
  EXPECT_FALSE(unsafe([](v1::Vitals& v) { v.set_heart_rate_bpm(130); }));
  EXPECT_TRUE(unsafe([](v1::Vitals& v) { v.set_spo2_percent(89.5); }));
  EXPECT_FALSE(unsafe([](v1::Vitals& v) { v.set_spo2_percent(90); }));
  EXPECT_TRUE(unsafe([](v1::Vitals& v) { v.set_respiratory_rate(9); }));
  EXPECT_TRUE(unsafe([](v1::Vitals& v) { v.set_respiratory_rate(31); }));
  EXPECT_FALSE(unsafe([](v1::Vitals& v) { v.set_respiratory_rate(20); }));
}

TEST(GoldenSanity, KetamineProductsByCodeOrText) {
  v1::Code code;
  code.set_display("Spravato 28 mg nasal spray");
  EXPECT_EQ(KetamineProductOf(code), KetamineProduct::kEsketamine);
  code.set_display("KETAMINE HCL 50 MG/ML");
  EXPECT_EQ(KetamineProductOf(code), KetamineProduct::kKetamine);
  code.set_display("sertraline");
  EXPECT_EQ(KetamineProductOf(code), KetamineProduct::kNone);
}

}  // namespace
}  // namespace fhirgw::mappers
