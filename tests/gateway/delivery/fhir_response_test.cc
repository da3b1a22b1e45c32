#include "gateway/delivery/fhir_response.h"

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "fhirgw/v1/gateway.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fhirgw::gateway {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;

MATCHER_P5(RefIs, type, id, version, status, full_url, "") {
  return ::testing::ExplainMatchResult(type, arg.resource_type(), result_listener) &&
         ::testing::ExplainMatchResult(id, arg.id(), result_listener) &&
         ::testing::ExplainMatchResult(version, arg.version_id(), result_listener) &&
         ::testing::ExplainMatchResult(status, arg.status(), result_listener) &&
         ::testing::ExplainMatchResult(full_url, arg.full_url(), result_listener);
}

MATCHER_P3(IssueIs, severity, path, message, "") {
  return arg.severity() == severity &&
         ::testing::ExplainMatchResult(path, arg.path(), result_listener) &&
         ::testing::ExplainMatchResult(message, arg.message(), result_listener);
}

constexpr char kRequest[] = R"({
  "resourceType": "Bundle", "type": "transaction",
  "entry": [
    {"fullUrl": "urn:uuid:11111111-1111-5111-8111-111111111111",
     "resource": {"resourceType": "Patient"},
     "request": {"method": "POST", "url": "Patient", "ifNoneExist": "identifier=urn:x|1"}},
    {"fullUrl": "urn:uuid:22222222-2222-5222-8222-222222222222",
     "resource": {"resourceType": "MedicationAdministration"},
     "request": {"method": "PUT", "url": "MedicationAdministration?identifier=urn:x|2"}},
    {"fullUrl": "urn:uuid:33333333-3333-5333-8333-333333333333",
     "resource": {"resourceType": "Observation"},
     "request": {"method": "POST", "url": "Observation"}}
  ]})";

TEST(ParseTransactionResponseTest, ReadsRelativeLocationsAndPairsFullUrlsByIndex) {
  constexpr char kResponse[] = R"({
    "resourceType": "Bundle", "type": "transaction-response",
    "entry": [
      {"response": {"status": "201 Created", "location": "Patient/123/_history/1"}},
      {"response": {"status": "200 OK", "location": "MedicationAdministration/ma-9/_history/4"}},
      {"response": {"status": "201 Created", "location": "Observation/obs1"}}
    ]})";
  absl::StatusOr<std::vector<v1::ResourceRef>> refs = ParseTransactionResponse(kResponse, kRequest);
  ASSERT_TRUE(refs.ok()) << refs.status();
  EXPECT_THAT(*refs, ElementsAre(RefIs("Patient", "123", "1", "201 Created",
                                       "urn:uuid:11111111-1111-5111-8111-111111111111"),
                                 RefIs("MedicationAdministration", "ma-9", "4", "200 OK",
                                       "urn:uuid:22222222-2222-5222-8222-222222222222"),
                                 RefIs("Observation", "obs1", "", "201 Created",
                                       "urn:uuid:33333333-3333-5333-8333-333333333333")));
}

TEST(ParseTransactionResponseTest, TakesTheResourceFromAbsoluteLocations) {
  constexpr char kResponse[] = R"({
    "resourceType": "Bundle", "type": "transaction-response",
    "entry": [
      {"response": {"status": "201 Created",
                    "location": "https://ehr.example.org/fhir/R4/Patient/123/_history/2"}},
      {"response": {"status": "201",
                    "location": "http://ehr.example.org:8080/MedicationAdministration/77?x=1"}},
      {"response": {"status": "201 Created",
                    "location": "https://ehr.example.org/baseR4/Observation/o-5/_history/3#frag"}}
    ]})";
  absl::StatusOr<std::vector<v1::ResourceRef>> refs = ParseTransactionResponse(kResponse, kRequest);
  ASSERT_TRUE(refs.ok()) << refs.status();
  EXPECT_THAT(*refs,
              ElementsAre(RefIs("Patient", "123", "2", "201 Created", HasSubstr("1111")),
                          RefIs("MedicationAdministration", "77", "", "201", HasSubstr("2222")),
                          RefIs("Observation", "o-5", "3", "201 Created", HasSubstr("3333"))));
}

TEST(ParseTransactionResponseTest, FallsBackToEtagAndReturnedResource) {
  constexpr char kResponse[] = R"({
    "resourceType": "Bundle", "type": "transaction-response",
    "entry": [
      {"response": {"status": "200 OK", "location": "Patient/123", "etag": "W/\"7\""}},
      {"resource": {"resourceType": "MedicationAdministration", "id": "ma-1",
                    "meta": {"versionId": "3"}},
       "response": {"status": "200 OK"}},
      {"response": {"status": "201 Created", "location": "not a location"}}
    ]})";
  absl::StatusOr<std::vector<v1::ResourceRef>> refs = ParseTransactionResponse(kResponse, kRequest);
  ASSERT_TRUE(refs.ok()) << refs.status();
  EXPECT_THAT(*refs, ElementsAre(RefIs("Patient", "123", "7", "200 OK", HasSubstr("1111")),
                                 RefIs("MedicationAdministration", "ma-1", "3", "200 OK",
                                       HasSubstr("2222")),
                                 RefIs("", "", "", "201 Created", HasSubstr("3333"))));
}

TEST(ParseTransactionResponseTest, WorksWithoutTheRequest) {
  absl::StatusOr<std::vector<v1::ResourceRef>> refs = ParseTransactionResponse(
      R"({"resourceType":"Bundle","type":"transaction-response",
          "entry":[{"response":{"status":"201 Created","location":"Encounter/e1/_history/1"}}]})",
      "");
  ASSERT_TRUE(refs.ok()) << refs.status();
  EXPECT_THAT(*refs, ElementsAre(RefIs("Encounter", "e1", "1", "201 Created", "")));
}

TEST(ParseTransactionResponseTest, RejectsAnEntryCountThatDiffersFromTheRequest) {
  absl::StatusOr<std::vector<v1::ResourceRef>> refs = ParseTransactionResponse(
      R"({"resourceType":"Bundle","type":"transaction-response",
          "entry":[{"response":{"status":"201 Created","location":"Patient/1"}}]})",
      kRequest);
  ASSERT_FALSE(refs.ok());
  EXPECT_EQ(refs.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refs.status().message(), HasSubstr("has 1 entries but the request had 3"));
}

TEST(ParseTransactionResponseTest, RejectsWhatIsNotATransactionResponse) {
  absl::StatusOr<std::vector<v1::ResourceRef>> outcome =
      ParseTransactionResponse(R"({"resourceType":"OperationOutcome","issue":[]})", kRequest);
  ASSERT_FALSE(outcome.ok());
  EXPECT_EQ(outcome.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(outcome.status().message(), HasSubstr("resourceType 'OperationOutcome'"));

  absl::StatusOr<std::vector<v1::ResourceRef>> searchset =
      ParseTransactionResponse(R"({"resourceType":"Bundle","type":"searchset"})", "");
  ASSERT_FALSE(searchset.ok());
  EXPECT_THAT(searchset.status().message(), HasSubstr("type 'searchset'"));

  absl::StatusOr<std::vector<v1::ResourceRef>> garbage =
      ParseTransactionResponse("<html>502 Bad Gateway</html>", kRequest);
  ASSERT_FALSE(garbage.ok());
  EXPECT_THAT(garbage.status().message(), HasSubstr("not a JSON object"));

  absl::StatusOr<std::vector<v1::ResourceRef>> bad_request = ParseTransactionResponse(
      R"({"resourceType":"Bundle","type":"transaction-response"})", "{oops");
  ASSERT_FALSE(bad_request.ok());
  EXPECT_THAT(bad_request.status().message(), HasSubstr("request Bundle"));
}

TEST(ParseOperationOutcomeTest, ReadsSeverityMessageAndPath) {
  constexpr char kOutcome[] = R"({
    "resourceType": "OperationOutcome",
    "issue": [
      {"severity": "error", "code": "required", "diagnostics": "subject is required",
       "expression": ["MedicationAdministration.subject", "ignored"]},
      {"severity": "fatal", "code": "structure", "details": {"text": "bad JSON"},
       "location": ["/f:Bundle/f:entry[2]"]},
      {"severity": "warning", "code": "code-invalid",
       "details": {"coding": [{"system": "x", "code": "y", "display": "Unknown code"}]}},
      {"severity": "information", "code": "informational"}
    ]})";
  EXPECT_THAT(ParseOperationOutcome(kOutcome),
              ElementsAre(IssueIs(v1::Issue::ERROR, "MedicationAdministration.subject",
                                  "subject is required"),
                          IssueIs(v1::Issue::ERROR, "/f:Bundle/f:entry[2]", "bad JSON"),
                          IssueIs(v1::Issue::WARNING, "", "Unknown code"),
                          IssueIs(v1::Issue::INFORMATION, "", "informational")));
}

TEST(ParseOperationOutcomeTest, IsEmptyForAnythingElse) {
  EXPECT_THAT(ParseOperationOutcome(R"({"resourceType":"Bundle","type":"transaction-response"})"),
              IsEmpty());
  EXPECT_THAT(ParseOperationOutcome("Service Unavailable"), IsEmpty());
  EXPECT_THAT(ParseOperationOutcome(""), IsEmpty());
  EXPECT_THAT(ParseOperationOutcome(R"({"resourceType":"OperationOutcome"})"), IsEmpty());
}

// 1994-11-06T08:49:37Z, the example date of RFC 9110.
constexpr int64_t kExampleDateMs = 784111777000;

TEST(ParseRetryAfterTest, ReadsDeltaSeconds) {
  EXPECT_EQ(ParseRetryAfter("2", 0), 2000);
  EXPECT_EQ(ParseRetryAfter(" 120 ", kExampleDateMs), 120000);
  EXPECT_EQ(ParseRetryAfter("0", 0), 0);
}

TEST(ParseRetryAfterTest, ReadsHttpDatesRelativeToNow) {
  const int64_t now_ms = kExampleDateMs - 5000;
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:49:37 GMT", now_ms), 5000);
  EXPECT_EQ(ParseRetryAfter("Sunday, 06-Nov-94 08:49:37 GMT", now_ms), 5000);  // RFC 850
  EXPECT_EQ(ParseRetryAfter("Sun Nov  6 08:49:37 1994", now_ms), 5000);        // asctime
  // A date in the past means "now".
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:49:37 GMT", kExampleDateMs + 60000), 0);
}

TEST(ParseRetryAfterTest, RejectsGarbage) {
  EXPECT_EQ(ParseRetryAfter("", 0), -1);
  EXPECT_EQ(ParseRetryAfter("soon", 0), -1);
  EXPECT_EQ(ParseRetryAfter("-5", 0), -1);
  EXPECT_EQ(ParseRetryAfter("1.5", 0), -1);
  EXPECT_EQ(ParseRetryAfter("12abc", 0), -1);
  EXPECT_EQ(ParseRetryAfter("99999999999999999999", 0), -1);
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:49:37 CET", 0), -1);
  EXPECT_EQ(ParseRetryAfter("Sun, 32 Nov 1994 08:49:37 GMT", 0), -1);
}

}  // namespace
}  // namespace fhirgw::gateway
