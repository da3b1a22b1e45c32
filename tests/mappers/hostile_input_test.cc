// Hostile input to the mappers' readers: deep nesting and invalid UTF-8 give errors, never a crash,
// from the inbound FHIR reader (MapFromFhir) and both clinic record readers.
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "mappers/record_json.h"
#include "mappers/reverse.h"
#include "tests/testing/status_matchers.h"

namespace fhirgw::mappers {
namespace {

using ::fhirgw::testing::StatusIs;
using ::testing::HasSubstr;

const std::string& DeepArrays() {
  static const std::string* text = new std::string(200000, '[');
  return *text;
}

std::string AllIssues(const fhir::IssueList& issues) {
  std::string text;
  for (const fhir::Issue& issue : issues) text += issue.path + ": " + issue.message + "\n";
  return text;
}

TEST(HostileInputTest, MapFromFhirRefusesDeepNesting) {
  fhir::IssueList issues;
  const auto records = MapFromFhir(DeepArrays(), ReverseContext::ForTenant("clinic-a"), issues);
  EXPECT_THAT(records, StatusIs(absl::StatusCode::kInvalidArgument, ::testing::_));
  EXPECT_THAT(AllIssues(issues), HasSubstr("input: is not valid JSON: nesting deeper than 64"));

  issues.clear();
  const std::string resource = R"({"resourceType":"Patient","extension":)" +
                               std::string(100000, '[') + std::string(100000, ']') + "}";
  EXPECT_FALSE(MapFromFhir(resource, ReverseContext::ForTenant("clinic-a"), issues).ok());
  EXPECT_THAT(AllIssues(issues), HasSubstr("nesting deeper than 64"));
}

TEST(HostileInputTest, MapFromFhirRefusesInvalidUtf8) {
  fhir::IssueList issues;
  const std::string json = "{\"resourceType\":\"Patient\",\"id\":\"p\xff\"}";
  EXPECT_FALSE(MapFromFhir(json, ReverseContext::ForTenant("clinic-a"), issues).ok());
  EXPECT_THAT(AllIssues(issues), HasSubstr("invalid UTF-8 at offset 33"));
}

TEST(HostileInputTest, RecordReadersRefuseDeepNesting) {
  EXPECT_THAT(ParseRecordJson(DeepArrays()),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "record: invalid JSON: nesting deeper than 64 at offset 64"));
  EXPECT_THAT(ParseRecordJsonWithProtobuf(DeepArrays()),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("nesting deeper than 64")));
  // Deep inside a field the fast path gives up on, so that protobuf's parser would read it.
  const std::string nested_value =
      R"({"recordId":"r","patient":)" + std::string(100000, '[') + std::string(100000, ']') + "}";
  EXPECT_THAT(ParseRecordJson(nested_value),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("nesting deeper than 64")));
}

TEST(HostileInputTest, RecordReadersRefuseInvalidUtf8) {
  const std::string json = "{\"recordId\":\"\xff\"}";
  EXPECT_THAT(ParseRecordJson(json), StatusIs(absl::StatusCode::kInvalidArgument,
                                              "record: invalid JSON: invalid UTF-8 at offset 13"));
  EXPECT_THAT(ParseRecordJsonWithProtobuf(json),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("invalid UTF-8")));
}

}  // namespace
}  // namespace fhirgw::mappers
