#include "fhir/issues.h"

#include <ostream>
#include <string>
#include <utility>

#include "absl/status/status.h"
#include "fhir/json.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "tests/testing/json.h"
#include "tests/testing/status_matchers.h"

namespace fhirgw::fhir {
namespace {

using ::fhirgw::testing::ParseJsonOrFail;
using ::fhirgw::testing::StatusIs;
using ::fhirgw::testing::Str;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

TEST(IssueScopeTest, BuildsDottedPathsWithIndexes) {
  IssueList issues;
  IssueScope infusion = IssueScope(issues).Field("infusion");
  infusion.Field("vitals", 1).Error("spo2_percent", "140 is outside 50..100");
  ASSERT_EQ(issues.size(), 1u);
  EXPECT_EQ(issues[0].path, "infusion.vitals[1].spo2_percent");
  EXPECT_EQ(issues[0].message, "140 is outside 50..100");
  EXPECT_EQ(issues[0].severity, Issue::Severity::kError);
}

TEST(IssueScopeTest, RootScopeHasAnEmptyPathAndNoLeadingDot) {
  IssueList issues;
  IssueScope root(issues);
  EXPECT_EQ(root.path(), "");
  EXPECT_EQ(root.Field("record_id").path(), "record_id");
  EXPECT_EQ(root.Field("answers", 0).path(), "answers[0]");
  root.Error("record_id", "is required");
  ASSERT_EQ(issues.size(), 1u);
  EXPECT_EQ(issues[0].path, "record_id");
}

TEST(IssueScopeTest, NestedIndexes) {
  IssueList issues;
  IssueScope scope = IssueScope(issues).Field("a", 0).Field("b", 2).Field("c", 10);
  EXPECT_EQ(scope.path(), "a[0].b[2].c[10]");
  scope.Field("d").Error("e", "bad");
  scope.Error("f", "bad too");
  ASSERT_EQ(issues.size(), 2u);
  EXPECT_EQ(issues[0].path, "a[0].b[2].c[10].d.e");
  EXPECT_EQ(issues[1].path, "a[0].b[2].c[10].f");
}

TEST(IssueScopeTest, PrefixGivenAtConstruction) {
  IssueList issues;
  IssueScope scope(issues, "questionnaire");
  EXPECT_EQ(scope.path(), "questionnaire");
  EXPECT_EQ(scope.Field("answers", 3).path(), "questionnaire.answers[3]");
  scope.Field("answers", 3).Error("value", "must be 0..3");
  ASSERT_EQ(issues.size(), 1u);
  EXPECT_EQ(issues[0].path, "questionnaire.answers[3].value");
}

TEST(IssueScopeTest, ErrorWithEmptyFieldUsesTheScopesOwnPath) {
  IssueList issues;
  IssueScope vitals = IssueScope(issues).Field("infusion").Field("vitals", 2);
  vitals.Error("", "has no measurement");
  IssueScope(issues).Error("", "is empty");
  IssueScope(issues).Field("patient").Warning("", "has no name");
  ASSERT_EQ(issues.size(), 3u);
  EXPECT_EQ(issues[0].path, "infusion.vitals[2]");
  EXPECT_EQ(issues[0].message, "has no measurement");
  EXPECT_EQ(issues[1].path, "");
  EXPECT_EQ(issues[2].path, "patient");
  EXPECT_EQ(issues[2].severity, Issue::Severity::kWarning);
}

TEST(IssueScopeTest, FieldDoesNotChangeTheParentScope) {
  IssueList issues;
  IssueScope parent = IssueScope(issues).Field("infusion");
  IssueScope child = parent.Field("vitals", 0);
  EXPECT_EQ(parent.path(), "infusion");
  EXPECT_EQ(child.path(), "infusion.vitals[0]");
  parent.Error("route", "unknown");
  ASSERT_EQ(issues.size(), 1u);
  EXPECT_EQ(issues[0].path, "infusion.route");
}

TEST(IssueScopeTest, CopiesWriteIntoTheSameListInOrder) {
  IssueList issues;
  IssueScope scope = IssueScope(issues).Field("encounter");
  IssueScope copy = scope;
  scope.Error("status", "first");
  copy.Warning("end_time", "second");
  scope.Field("reasons", 0).Error("code", "third");
  ASSERT_EQ(issues.size(), 3u);
  EXPECT_EQ(issues[0].message, "first");
  EXPECT_EQ(issues[1].message, "second");
  EXPECT_EQ(issues[1].path, "encounter.end_time");
  EXPECT_EQ(issues[1].severity, Issue::Severity::kWarning);
  EXPECT_EQ(issues[2].path, "encounter.reasons[0].code");
}

TEST(HasErrorsTest, IgnoresWarningsAndInformation) {
  IssueList issues;
  EXPECT_FALSE(HasErrors(issues));
  IssueScope(issues).Warning("a", "w");
  issues.push_back(Issue{"b", "info", Issue::Severity::kInformation});
  EXPECT_FALSE(HasErrors(issues));
  IssueScope(issues).Error("c", "e");
  EXPECT_TRUE(HasErrors(issues));
}

TEST(FormatIssuesTest, OneLinePerIssue) {
  IssueList issues;
  IssueScope(issues)
      .Field("infusion")
      .Field("vitals", 2)
      .Error("spo2_percent", "140 is outside 50..100");
  IssueScope(issues).Error("record_id", "is required");
  EXPECT_EQ(FormatIssues(issues),
            "infusion.vitals[2].spo2_percent: 140 is outside 50..100\n"
            "record_id: is required\n");
}

TEST(FormatIssuesTest, EmptyPathIsPrintedAsRecord) {
  IssueList issues;
  IssueScope(issues).Error("", "has no body");
  EXPECT_EQ(FormatIssues(issues), "record: has no body\n");
}

TEST(FormatIssuesTest, IncludesWarnings) {
  IssueList issues;
  IssueScope(issues).Warning("patient.gender", "unknown value");
  EXPECT_THAT(FormatIssues(issues), HasSubstr("patient.gender: unknown value"));
}

TEST(FormatIssuesTest, NoIssuesGivesNoText) { EXPECT_EQ(FormatIssues({}), ""); }

TEST(IssuesToStatusTest, OkWithoutErrors) {
  IssueList issues;
  EXPECT_TRUE(IssuesToStatus(issues).ok());
  IssueScope(issues).Warning("a", "just a warning");
  issues.push_back(Issue{"b", "info", Issue::Severity::kInformation});
  EXPECT_TRUE(IssuesToStatus(issues).ok());
}

TEST(IssuesToStatusTest, InvalidArgumentListingEveryError) {
  IssueList issues;
  IssueScope infusion = IssueScope(issues).Field("infusion");
  infusion.Field("vitals", 2).Error("spo2_percent", "140 is outside 50..100");
  infusion.Warning("note", "is long");
  infusion.Error("medication", "is required");
  IssueScope(issues).Error("", "has two bodies");

  const absl::Status status = IssuesToStatus(issues);
  EXPECT_THAT(status,
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("infusion.vitals[2].spo2_percent: 140 is outside 50..100"),
                             HasSubstr("infusion.medication: is required"),
                             HasSubstr("record: has two bodies"), Not(HasSubstr("note")),
                             Not(HasSubstr("is long")))));
}

TEST(IssuesToStatusTest, SeparatesErrorsWithSemicolons) {
  IssueList issues;
  IssueScope(issues).Error("a", "m1");
  IssueScope(issues).Warning("w", "skipped");
  IssueScope(issues).Error("b", "m2");
  EXPECT_THAT(IssuesToStatus(issues),
              StatusIs(absl::StatusCode::kInvalidArgument, ::testing::Eq("a: m1; b: m2")));
}

TEST(IssuesToStatusTest, SingleErrorMessage) {
  IssueList issues;
  IssueScope(issues).Field("patient").Error("clinic_patient_id", "is required");
  const absl::Status status = IssuesToStatus(issues);
  EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(std::string(status.message()), "patient.clinic_patient_id: is required");
}

TEST(OperationOutcomeTest, HasOneIssuePerEntry) {
  IssueList issues;
  IssueScope(issues).Field("infusion").Field("vitals", 1).Error("spo2_percent", "too high");
  IssueScope(issues).Warning("patient.gender", "unknown");
  issues.push_back(Issue{"note", "fyi", Issue::Severity::kInformation});

  JsonDocument doc;
  Json outcome = OperationOutcome(issues, "invalid", doc.GetAllocator());
  rapidjson::Document d = ParseJsonOrFail(WriteJson(outcome.value(), JsonStyle::kCompact));
  EXPECT_EQ(Str(d, "resourceType"), "OperationOutcome");
  ASSERT_TRUE(d.HasMember("issue"));
  ASSERT_TRUE(d["issue"].IsArray());
  ASSERT_EQ(d["issue"].Size(), 3u);

  const rapidjson::Value& first = d["issue"][0];
  EXPECT_EQ(Str(first, "severity"), "error");
  EXPECT_EQ(Str(first, "code"), "invalid");
  EXPECT_EQ(Str(first, "diagnostics"), "too high");
  ASSERT_TRUE(first.HasMember("expression"));
  ASSERT_TRUE(first["expression"].IsArray());
  ASSERT_EQ(first["expression"].Size(), 1u);
  EXPECT_STREQ(first["expression"][0].GetString(), "infusion.vitals[1].spo2_percent");

  EXPECT_EQ(Str(d["issue"][1], "severity"), "warning");
  EXPECT_EQ(Str(d["issue"][1], "diagnostics"), "unknown");
  EXPECT_STREQ(d["issue"][1]["expression"][0].GetString(), "patient.gender");
  EXPECT_EQ(Str(d["issue"][2], "severity"), "information");
  EXPECT_EQ(Str(d["issue"][2], "code"), "invalid");
}

TEST(OperationOutcomeTest, UsesTheGivenIssueTypeCode) {
  IssueList issues;
  IssueScope(issues).Error("body", "Device is not supported");
  JsonDocument doc;
  Json outcome = OperationOutcome(issues, "not-supported", doc.GetAllocator());
  rapidjson::Document d = ParseJsonOrFail(WriteJson(outcome.value(), JsonStyle::kCompact));
  EXPECT_EQ(Str(d["issue"][0], "code"), "not-supported");
}

TEST(OperationOutcomeTest, EmptyPathHasNoExpression) {
  IssueList issues;
  IssueScope(issues).Error("", "record is empty");
  JsonDocument doc;
  Json outcome = OperationOutcome(issues, "required", doc.GetAllocator());
  rapidjson::Document d = ParseJsonOrFail(WriteJson(outcome.value(), JsonStyle::kCompact));
  ASSERT_EQ(d["issue"].Size(), 1u);
  EXPECT_FALSE(d["issue"][0].HasMember("expression"));
  EXPECT_EQ(Str(d["issue"][0], "diagnostics"), "record is empty");
  EXPECT_EQ(Str(d["issue"][0], "code"), "required");
}

TEST(OperationOutcomeTest, NeverEmitsAnEmptyIssueArray) {
  JsonDocument doc;
  Json outcome = OperationOutcome({}, "invalid", doc.GetAllocator());
  rapidjson::Document d = ParseJsonOrFail(WriteJson(outcome.value(), JsonStyle::kCompact));
  EXPECT_EQ(Str(d, "resourceType"), "OperationOutcome");
  if (d.HasMember("issue")) {
    ASSERT_TRUE(d["issue"].IsArray());
    EXPECT_FALSE(d["issue"].Empty());
  }
}

}  // namespace
}  // namespace fhirgw::fhir
