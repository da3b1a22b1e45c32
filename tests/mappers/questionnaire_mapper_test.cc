// The suicidal-ideation Flag across versions of one questionnaire record (issue #13): a PHQ-9 with
// item 9 above 0 raises it; a correction that answers item 9 with 0 resolves that same Flag
// (inactive, period.end) when its previous version raised SUICIDAL_IDEATION; a correction that
// keeps item 9 above 0 keeps it active. The goldens in tests/golden/questionnaire/*correction*
// pin the full Bundles; these tests pin the identity and the lifecycle.
#include <optional>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "mappers/record_json.h"
#include "mappers/registry.h"
#include "rapidjson/document.h"
#include "tests/testing/files.h"
#include "tests/testing/json.h"

namespace fhirgw::mappers {
namespace {

using ::fhirgw::testing::ParseJsonOrFail;
using ::fhirgw::testing::ReadFile;
using ::fhirgw::testing::SourcePath;
using ::fhirgw::testing::Str;
using ::testing::ElementsAre;
using ::testing::IsEmpty;

// The Flag entry of a Bundle, as the EHR receives it.
struct FlagEntry {
  std::string full_url;
  std::string method;
  std::string url;  // the conditional update: Flag?identifier=SYSTEM|VALUE
  std::string identifier;
  std::string status;
  std::string start;
  std::string end;
};

// Returns the Flag of `out`'s Bundle; nullopt when it has none (a failure when it has two).
std::optional<FlagEntry> FlagOf(MapOutput& out) {
  const rapidjson::Document bundle = ParseJsonOrFail(out.bundle.Write(fhir::JsonStyle::kCompact));
  std::optional<FlagEntry> found;
  for (const rapidjson::Value& entry : bundle["entry"].GetArray()) {
    const rapidjson::Value& resource = entry["resource"];
    if (Str(resource, "resourceType") != "Flag") continue;
    EXPECT_FALSE(found.has_value()) << "two Flags in one Bundle";
    FlagEntry flag;
    flag.full_url = Str(entry, "fullUrl");
    flag.method = Str(entry["request"], "method");
    flag.url = Str(entry["request"], "url");
    const rapidjson::Value& identifier = resource["identifier"][0];
    flag.identifier = Str(identifier, "system") + "|" + Str(identifier, "value");
    flag.status = Str(resource, "status");
    const rapidjson::Value& period = resource["period"];
    flag.start = Str(period, "start");
    if (period.HasMember("end")) flag.end = Str(period, "end");
    found = flag;
  }
  return found;
}

std::optional<FlagEntry> FlagOf(MapOutput&& out) { return FlagOf(out); }

std::vector<v1::Alert::Kind> KindsOf(const std::vector<v1::Alert>& alerts) {
  std::vector<v1::Alert::Kind> kinds;
  for (const v1::Alert& alert : alerts) kinds.push_back(alert.kind());
  return kinds;
}

class QuestionnaireFlagTest : public ::testing::Test {
 protected:
  void SetUp() override {
    absl::StatusOr<v1::ClinicRecord> record =
        ParseRecordJson(ReadFile(SourcePath("examples/phq9-item9-positive.json")));
    ASSERT_TRUE(record.ok()) << record.status();
    positive_ = *std::move(record);
  }

  // `positive_` with item 9 answered `value` (the reported total follows), recorded at `recorded`.
  v1::ClinicRecord Correction(int value, int64_t recorded_seconds) const {
    v1::ClinicRecord record = positive_;
    int total = 0;
    for (v1::Answer& answer : *record.mutable_questionnaire()->mutable_answers()) {
      if (answer.item() == 9) answer.set_value(value);
      total += answer.value();
    }
    record.mutable_questionnaire()->set_reported_total(total);
    record.mutable_recorded_at()->set_seconds(recorded_seconds);
    return record;
  }

  MapOutput Map(const v1::ClinicRecord& record, const PreviousVersion& previous = {}) {
    fhir::IssueList issues;
    absl::StatusOr<MapOutput> out =
        MapToFhir(record, MapContext::ForTenant(record.clinic_id()), issues, previous);
    EXPECT_TRUE(out.ok()) << out.status() << "\n" << fhir::FormatIssues(issues);
    return out.ok() ? *std::move(out) : MapOutput();
  }

  v1::ClinicRecord positive_;  // PHQ-9, item 9 = 1, authored 2026-11-20T13:58:00Z
};

// 2026-11-20T16:30:00Z, after the questionnaire was authored.
constexpr int64_t kCorrectedAt = 1795192200;

TEST_F(QuestionnaireFlagTest, ACorrectionWithItem9ZeroResolvesTheSameFlag) {
  MapOutput first = Map(positive_);
  const std::optional<FlagEntry> raised = FlagOf(first);
  ASSERT_TRUE(raised.has_value());
  EXPECT_EQ(raised->status, "active");
  EXPECT_EQ(raised->end, "");
  ASSERT_THAT(KindsOf(first.alerts), ElementsAre(v1::Alert::SUICIDAL_IDEATION));

  MapOutput corrected = Map(Correction(0, kCorrectedAt), PreviousVersion{first.alerts});
  const std::optional<FlagEntry> resolved = FlagOf(corrected);
  ASSERT_TRUE(resolved.has_value()) << "the correction does not resolve the Flag";
  EXPECT_EQ(resolved->status, "inactive");
  EXPECT_EQ(resolved->start, raised->start);
  EXPECT_EQ(resolved->end, "2026-11-20T16:30:00Z");
  // The same Flag: same identifier, same fullUrl, the same conditional update.
  EXPECT_EQ(resolved->identifier, raised->identifier);
  EXPECT_EQ(resolved->full_url, raised->full_url);
  EXPECT_EQ(resolved->method, "PUT");
  EXPECT_EQ(resolved->url, raised->url);
  EXPECT_THAT(corrected.alerts, IsEmpty());
}

TEST_F(QuestionnaireFlagTest, ACorrectionWithItem9AboveZeroKeepsTheFlagActive) {
  MapOutput first = Map(positive_);
  MapOutput corrected = Map(Correction(2, kCorrectedAt), PreviousVersion{first.alerts});
  const std::optional<FlagEntry> flag = FlagOf(corrected);
  ASSERT_TRUE(flag.has_value());
  EXPECT_EQ(flag->status, "active");
  EXPECT_EQ(flag->end, "");
  EXPECT_EQ(flag->identifier, FlagOf(first)->identifier);
  EXPECT_THAT(KindsOf(corrected.alerts), ElementsAre(v1::Alert::SUICIDAL_IDEATION));
}

TEST_F(QuestionnaireFlagTest, WithoutAnEarlierSuicidalIdeationAlertNoFlagIsWritten) {
  const v1::ClinicRecord negative = Correction(0, kCorrectedAt);
  EXPECT_FALSE(FlagOf(Map(negative)).has_value());
  // Other alerts of the previous version do not make a Flag.
  v1::Alert other;
  other.set_kind(v1::Alert::UNSAFE_VITAL_SIGNS);
  EXPECT_FALSE(FlagOf(Map(negative, PreviousVersion{{other}})).has_value());
}

TEST_F(QuestionnaireFlagTest, TheResolvedPeriodNeverEndsBeforeItStarts) {
  const PreviousVersion previous{Map(positive_).alerts};
  // recorded_at before authored (a clock off at the clinic): the period ends when it starts.
  const std::optional<FlagEntry> early = FlagOf(Map(Correction(0, 1795100000), previous));
  ASSERT_TRUE(early.has_value());
  EXPECT_EQ(early->end, early->start);
  // No recorded_at at all: the same.
  v1::ClinicRecord unrecorded = Correction(0, kCorrectedAt);
  unrecorded.clear_recorded_at();
  const std::optional<FlagEntry> flag = FlagOf(Map(unrecorded, previous));
  ASSERT_TRUE(flag.has_value());
  EXPECT_EQ(flag->end, "2026-11-20T13:58:00Z");
}

TEST_F(QuestionnaireFlagTest, ARetractionAfterAPositiveVersionRetractsTheFlag) {
  v1::ClinicRecord retraction = Correction(0, kCorrectedAt);
  retraction.set_action(v1::ClinicRecord::ENTERED_IN_ERROR);
  const std::optional<FlagEntry> flag =
      FlagOf(Map(retraction, PreviousVersion{Map(positive_).alerts}));
  ASSERT_TRUE(flag.has_value());
  EXPECT_EQ(flag->status, "entered-in-error");
  EXPECT_EQ(flag->end, "");
}

}  // namespace
}  // namespace fhirgw::mappers
