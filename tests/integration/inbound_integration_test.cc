// Integration tests of the hospital -> clinic half of the gateway (the issue "Hospital -> clinic:
// reverse mappers, an inbound FHIR endpoint, and clinic subscriptions"), with real parts: the
// `fhirgw serve` binary and the loopback FHIR R4 server, each a child process on port 0.
//
// They prove: a hospital POST (one resource or a transaction Bundle) reaches the WatchInbound
// stream of the clinic that knows the patient, exactly once, and a resend is a duplicate; the FHIR
// REST answers (201/200 with Location, transaction-response, 400/401/415/422 with
// OperationOutcome); resuming from a cursor without gaps or duplicates; no cross-clinic leak;
// polling the EHR passes on each version of a resource changed there exactly once and never echoes
// the clinic's own records; SIGTERM ends open streams with UNAVAILABLE and does not wait for the
// drain timeout.
//
// Negative claims ("nothing more arrived") are proved with a barrier: a later resource for the same
// clinic is posted, and the next event on the stream must be that one (events come in log order).
// Every wait is bounded, and failure messages carry the gateway's log.
#include <signal.h>

#include <chrono>
#include <condition_variable>
#include <cstdio>
#include <deque>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"

namespace fhirgw::testing {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr char kFhirJson[] = "application/fhir+json";
// The hospital MRN system of the examples (RecordFactory gives patient P the MRN "MRN-P").
constexpr char kMrnSystem[] = "urn:oid:2.16.840.1.113883.3.4711.1";
constexpr char kRxNorm[] = "http://www.nlm.nih.gov/research/umls/rxnorm";
// Identifier systems of the hospital's own resources.
constexpr char kOrderSystem[] = "urn:oid:2.16.840.1.113883.3.4711.7";
constexpr char kStatementSystem[] = "urn:oid:2.16.840.1.113883.3.4711.8";
constexpr char kScoreSystem[] = "urn:oid:2.16.840.1.113883.3.4711.9";

// A token and its SHA-256 (hex), as configured in inbound.bearer_token_sha256:
//   printf %s inbound-secret-token-42 | sha256sum
constexpr char kToken[] = "inbound-secret-token-42";
constexpr char kTokenSha256[] = "ab08b7126c7701a99883ba58bd6e9573beedf395053e84f10f788c23ed2c5ace";

// How long an expected event may take to arrive.
constexpr milliseconds kEventTimeout = 10s;

// ---- FHIR the hospital sends -----------------------------------------------------------------

std::string MrnSubject(const std::string& mrn) {
  return std::string(R"({"identifier":{"system":")") + kMrnSystem + R"(","value":")" + mrn +
         R"("}})";
}

std::string ReferenceSubject(const std::string& reference) {
  return R"({"reference":")" + reference + R"("})";
}

// An active hospital order of RxNorm `code` for `subject` (a Reference as JSON).
std::string MedicationRequestJson(const std::string& order, const std::string& subject,
                                  const std::string& code = "197591",
                                  const std::string& display = "diazepam 5 MG Oral Tablet") {
  return std::string(R"({"resourceType":"MedicationRequest","id":")") + order +
         R"(","identifier":[{"system":")" + kOrderSystem + R"(","value":")" + order +
         R"("}],"status":"active","intent":"order","medicationCodeableConcept":{"coding":[{)" +
         R"("system":")" + kRxNorm + R"(","code":")" + code + R"(","display":")" + display +
         R"("}]},"subject":)" + subject +
         R"(,"authoredOn":"2026-01-10","dosageInstruction":[{"text":"5 mg at night"}]})";
}

// A MedicationStatement of RxNorm `code` for `subject`, identified by `value` in kStatementSystem.
std::string MedicationStatementJson(const std::string& value, const std::string& subject,
                                    const std::string& code, const std::string& display,
                                    const std::string& status = "active",
                                    const std::string& id = "") {
  std::string json = R"({"resourceType":"MedicationStatement",)";
  if (!id.empty()) json += R"("id":")" + id + R"(",)";
  return json + R"("identifier":[{"system":")" + kStatementSystem + R"(","value":")" + value +
         R"("}],"status":")" + status + R"(","medicationCodeableConcept":{"coding":[{"system":")" +
         kRxNorm + R"(","code":")" + code + R"(","display":")" + display + R"("}]},"subject":)" +
         subject + R"(,"effectiveDateTime":"2025-11"})";
}

// A PHQ-9 total score Observation (LOINC 44261-6, valueInteger).
std::string Phq9TotalJson(const std::string& id, const std::string& subject, int total) {
  return std::string(R"({"resourceType":"Observation","id":")") + id +
         R"(","identifier":[{"system":")" + kScoreSystem + R"(","value":")" + id +
         R"("}],"status":"final","category":[{"coding":[{"system":)" +
         R"("http://terminology.hl7.org/CodeSystem/observation-category","code":"survey"}]}],)" +
         R"("code":{"coding":[{"system":"http://loinc.org","code":"44261-6",)" +
         R"("display":"Patient Health Questionnaire 9 item (PHQ-9) total score [Reported]"}]},)" +
         R"("subject":)" + subject +
         R"(,"effectiveDateTime":"2026-01-10T09:30:00Z","valueInteger":)" + std::to_string(total) +
         "}";
}

std::string ConditionJson(const std::string& id, const std::string& subject) {
  return R"({"resourceType":"Condition","id":")" + id + R"(","subject":)" + subject +
         R"(,"code":{"text":"Major depressive disorder"}})";
}

// A transaction Bundle POSTing each of `resources` (JSON objects with a resourceType and id).
std::string TransactionJson(const std::vector<std::pair<std::string, std::string>>& typed) {
  std::string entries;
  int n = 0;
  for (const auto& [type, resource] : typed) {
    if (!entries.empty()) entries += ",";
    entries += R"({"fullUrl":"urn:uuid:6f1c2a4e-0000-4000-8000-00000000000)" + std::to_string(++n) +
               R"(","resource":)" + resource + R"(,"request":{"method":"POST","url":")" + type +
               R"("}})";
  }
  return R"({"resourceType":"Bundle","type":"transaction","entry":[)" + entries + "]}";
}

// ---- reading answers -------------------------------------------------------------------------

// The issues of the OperationOutcome `body`, one "severity expression: diagnostics" line each, or
// the body with a note when it is not an OperationOutcome.
std::string OutcomeText(const std::string& body) {
  rapidjson::Document doc = ParseJson(body);
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("resourceType") ||
      !doc["resourceType"].IsString() ||
      std::string(doc["resourceType"].GetString()) != "OperationOutcome" ||
      !doc.HasMember("issue") || !doc["issue"].IsArray()) {
    return "(not an OperationOutcome) " + body;
  }
  std::string text;
  for (const rapidjson::Value& issue : doc["issue"].GetArray()) {
    if (!issue.IsObject()) continue;
    if (issue.HasMember("severity") && issue["severity"].IsString()) {
      text += issue["severity"].GetString();
    }
    text += " ";
    if (issue.HasMember("expression") && issue["expression"].IsArray()) {
      for (const rapidjson::Value& expression : issue["expression"].GetArray()) {
        if (expression.IsString()) text += expression.GetString();
      }
    }
    text += ": ";
    if (issue.HasMember("diagnostics") && issue["diagnostics"].IsString()) {
      text += issue["diagnostics"].GetString();
    }
    text += "\n";
  }
  return text;
}

// The transaction id in a Location "fhir/<Type>/<transaction id>/_history/<version>"; "" when the
// Location is not of that form.
std::string TransactionIdOf(const std::string& location) {
  const size_t history = location.find("/_history/");
  if (history == std::string::npos) return "";
  const std::string head = location.substr(0, history);
  const size_t slash = head.rfind('/');
  return slash == std::string::npos ? "" : head.substr(slash + 1);
}

// The `id` of the resource in `body`, "" when there is none.
std::string ResourceIdOf(const std::string& body) {
  rapidjson::Document doc = ParseJson(body);
  if (doc.HasParseError() || !doc.IsObject() || !doc.HasMember("id") || !doc["id"].IsString()) {
    return "";
  }
  return doc["id"].GetString();
}

std::string Describe(const v1::InboundEvent& event) {
  const v1::ClinicRecord& record = event.record();
  std::string body =
      record.has_medication_statement()
          ? "medication_statement " + record.medication_statement().medication().code()
      : record.has_questionnaire() ? "questionnaire"
                                   : "other";
  return "cursor " + event.cursor() + " transaction " + event.transaction_id() + " clinic " +
         record.clinic_id() + " patient " + record.patient().clinic_patient_id() + " record " +
         record.record_id() + " (" + body + ")";
}

std::string Describe(const std::vector<v1::InboundEvent>& events) {
  std::string text;
  for (const v1::InboundEvent& event : events) text += "  " + Describe(event) + "\n";
  return text.empty() ? "  (none)\n" : text;
}

std::vector<std::string> TransactionIds(const std::vector<v1::InboundEvent>& events) {
  std::vector<std::string> ids;
  for (const v1::InboundEvent& event : events) ids.push_back(event.transaction_id());
  return ids;
}

// ---- the fixture -----------------------------------------------------------------------------

class InboundIntegrationTest : public IntegrationTest {
 protected:
  InboundIntegrationTest() : IntegrationTest("fhirgw-inbound-it-") {}

  // A clinic record of `clinic_id` for patient `patient_id` (MRN "MRN-<patient_id>" for the
  // medication statement and infusion examples).
  static v1::ClinicRecord Make(const std::string& clinic_id, RecordKind kind,
                               const std::string& record_id, const std::string& patient_id) {
    v1::ClinicRecord record = records_->Make(kind, record_id, patient_id);
    record.set_clinic_id(clinic_id);
    return record;
  }

  // Pushes `record`; the transaction id, or "" (and a test failure) when the push fails.
  static std::string PushOk(Gateway& gateway, const v1::ClinicRecord& record,
                            bool wait_for_delivery) {
    v1::PushResponse response;
    const grpc::Status status = gateway.Push(record, wait_for_delivery, &response);
    if (!status.ok() || response.transaction_id().empty()) {
      ADD_FAILURE() << "Push " << record.record_id() << ": " << status.error_code() << " "
                    << status.error_message() << "\n"
                    << gateway.Describe();
      return "";
    }
    if (wait_for_delivery && response.status() != v1::DELIVERED) {
      ADD_FAILURE() << "Push " << record.record_id()
                    << " was not delivered: " << StatusName(response.status()) << "\n"
                    << gateway.Describe();
      return "";
    }
    return response.transaction_id();
  }

  // POSTs `body` to the gateway's inbound FHIR endpoint.
  static HttpAnswer Post(const Gateway& gateway, const std::string& path, const std::string& body,
                         const std::string& content_type = kFhirJson,
                         const std::vector<std::pair<std::string, std::string>>& headers = {}) {
    return HttpSend(gateway.http_address(), "POST", path, body, content_type, headers);
  }

  // POSTs one resource that must be created (201); returns its transaction id ("" and a test
  // failure otherwise).
  static std::string PostCreated(const Gateway& gateway, const std::string& type,
                                 const std::string& body) {
    const HttpAnswer answer = Post(gateway, "/fhir/" + type, body);
    const std::string id = TransactionIdOf(answer.Header("Location"));
    if (answer.status != 201 || id.empty()) {
      ADD_FAILURE() << "POST /fhir/" << type << ": expected 201 with a Location, got "
                    << answer.status << " Location '" << answer.Header("Location") << "'\n"
                    << OutcomeText(answer.body) << gateway.Describe();
      return "";
    }
    return id;
  }

  // The id the EHR gave the Patient of the delivered transaction `transaction_id`; "" (and a test
  // failure) when there is none.
  static std::string EhrPatientIdOf(Gateway& gateway, const std::string& transaction_id) {
    v1::Transaction transaction;
    const grpc::Status status = gateway.GetTransaction(transaction_id, &transaction);
    if (!status.ok()) {
      ADD_FAILURE() << "GetTransaction " << transaction_id << ": " << status.error_message();
      return "";
    }
    for (const v1::ResourceRef& ref : transaction.resources()) {
      if (ref.resource_type() == "Patient" && !ref.id().empty()) return ref.id();
    }
    ADD_FAILURE() << "transaction " << transaction_id << " names no Patient among its resources; "
                  << DescribeAttempts(transaction);
    return "";
  }

  // GET requests the EHR has received since the last reset; -1 on failure.
  static int64_t EhrGets() {
    rapidjson::Document stats = ehr_->Stats();
    if (!stats.IsObject() || !stats.HasMember("byMethod") || !stats["byMethod"].IsObject()) {
      return -1;
    }
    const rapidjson::Value& by_method = stats["byMethod"];
    if (!by_method.HasMember("GET")) return 0;
    return by_method["GET"].IsInt64() ? by_method["GET"].GetInt64() : -1;
  }

  // Waits (up to `timeout`) until the EHR has received at least `more` GET requests after
  // `since`; false when it has not.
  static bool WaitForEhrGets(int64_t since, int64_t more, milliseconds timeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    while (std::chrono::steady_clock::now() < deadline) {
      if (EhrGets() >= since + more) return true;
      std::this_thread::sleep_for(25ms);
    }
    return false;
  }
};

// 1. POST /fhir/MedicationRequest for a patient clinic A pushed: 201 with a Location, and A's
// stream receives it as a hospital-record medication statement for A's patient. A resend is a
// duplicate (200, the same transaction) and reaches the stream no second time.
TEST_F(InboundIntegrationTest, PostedOrderReachesTheClinicOnceAndAResendIsADuplicate) {
  Gateway* gateway = StartGateway(Settings());
  ASSERT_NE(gateway, nullptr);
  ASSERT_FALSE(
      PushOk(*gateway, Make("clinic-a", RecordKind::kMedicationStatement, "ms-a", "PA-1"), false)
          .empty());
  InboundStream stream(*gateway, "clinic-a");

  const std::string order = MedicationRequestJson("ORD-1", MrnSubject("MRN-PA-1"));
  const HttpAnswer created = Post(*gateway, "/fhir/MedicationRequest", order);
  ASSERT_EQ(created.status, 201) << OutcomeText(created.body) << gateway->Describe();
  const std::string location = created.Header("Location");
  const std::string transaction_id = TransactionIdOf(location);
  ASSERT_FALSE(transaction_id.empty()) << "Location '" << location << "'";
  EXPECT_THAT(location, HasSubstr("MedicationRequest/"));
  EXPECT_THAT(created.Header("Content-Type"), StartsWith(kFhirJson));

  const std::optional<v1::InboundEvent> event = stream.Next(kEventTimeout);
  ASSERT_TRUE(event.has_value()) << "no event within " << kEventTimeout.count() << " ms; "
                                 << stream.State() << "\n"
                                 << gateway->Describe();
  EXPECT_EQ(event->transaction_id(), transaction_id);
  EXPECT_FALSE(event->cursor().empty());
  EXPECT_GT(event->received_at().seconds(), 0);
  const v1::ClinicRecord& record = event->record();
  EXPECT_EQ(record.clinic_id(), "clinic-a");
  EXPECT_EQ(record.patient().clinic_patient_id(), "PA-1");
  ASSERT_TRUE(record.has_medication_statement()) << Describe(*event);
  const v1::MedicationStatementRecord& statement = record.medication_statement();
  EXPECT_EQ(statement.information_source(), v1::InformationSource::HOSPITAL_RECORD);
  EXPECT_EQ(statement.medication().system(), kRxNorm);
  EXPECT_EQ(statement.medication().code(), "197591");
  EXPECT_EQ(statement.status(), v1::MedicationStatementRecord::ACTIVE);

  // Logged like an outbound record, in the other direction.
  v1::Transaction transaction;
  ASSERT_TRUE(gateway->GetTransaction(transaction_id, &transaction).ok());
  EXPECT_EQ(transaction.direction(), v1::EHR_TO_CLINIC);
  EXPECT_EQ(transaction.clinic_id(), "clinic-a");

  // The same resource again: a duplicate of the same transaction.
  const HttpAnswer again = Post(*gateway, "/fhir/MedicationRequest", order);
  EXPECT_EQ(again.status, 200) << OutcomeText(again.body);
  EXPECT_EQ(TransactionIdOf(again.Header("Location")), transaction_id)
      << "Location '" << again.Header("Location") << "'";

  // Barrier: the next event must be the next order, not a second copy of the first.
  const std::string barrier = PostCreated(*gateway, "MedicationRequest",
                                          MedicationRequestJson("ORD-2", MrnSubject("MRN-PA-1")));
  ASSERT_FALSE(barrier.empty());
  const std::optional<v1::InboundEvent> next = stream.Next(kEventTimeout);
  ASSERT_TRUE(next.has_value()) << stream.State() << "\n" << gateway->Describe();
  EXPECT_EQ(next->transaction_id(), barrier)
      << "after the resend, the stream carried " << Describe(*next);
}

// 2. A transaction Bundle (MedicationStatement + PHQ-9 total) is answered with a
// transaction-response and both records reach the stream; a transaction with an unsupported entry
// is refused as a whole (400 naming the entry) and nothing of it reaches the stream.
TEST_F(InboundIntegrationTest, TransactionBundleIsAllOrNothing) {
  Gateway* gateway = StartGateway(Settings());
  ASSERT_NE(gateway, nullptr);
  ASSERT_FALSE(
      PushOk(*gateway, Make("clinic-a", RecordKind::kMedicationStatement, "ms-a", "PA-2"), false)
          .empty());
  InboundStream stream(*gateway, "clinic-a");
  const std::string subject = MrnSubject("MRN-PA-2");

  const HttpAnswer answer =
      Post(*gateway, "/fhir",
           TransactionJson(
               {{"MedicationStatement",
                 MedicationStatementJson("ST-1", subject, "36437", "sertraline", "active", "st-1")},
                {"Observation", Phq9TotalJson("phq9-1", subject, 14)}}));
  ASSERT_EQ(answer.status, 200) << OutcomeText(answer.body) << gateway->Describe();
  rapidjson::Document response = ParseJson(answer.body);
  ASSERT_TRUE(response.IsObject()) << answer.body;
  ASSERT_TRUE(response.HasMember("type") && response["type"].IsString()) << answer.body;
  EXPECT_EQ(std::string(response["type"].GetString()), "transaction-response");
  ASSERT_TRUE(response.HasMember("entry") && response["entry"].IsArray()) << answer.body;
  ASSERT_EQ(response["entry"].Size(), 2u) << answer.body;
  for (const rapidjson::Value& entry : response["entry"].GetArray()) {
    ASSERT_TRUE(entry.IsObject() && entry.HasMember("response") && entry["response"].IsObject() &&
                entry["response"].HasMember("status") && entry["response"]["status"].IsString())
        << answer.body;
    EXPECT_THAT(std::string(entry["response"]["status"].GetString()), StartsWith("201"))
        << answer.body;
  }

  const std::vector<v1::InboundEvent> events = stream.Take(2, kEventTimeout);
  ASSERT_EQ(events.size(), 2u) << Describe(events) << stream.State() << "\n" << gateway->Describe();
  ASSERT_TRUE(events[0].record().has_medication_statement()) << Describe(events);
  EXPECT_EQ(events[0].record().medication_statement().medication().code(), "36437");
  EXPECT_EQ(events[0].record().patient().clinic_patient_id(), "PA-2");
  ASSERT_TRUE(events[1].record().has_questionnaire()) << Describe(events);
  EXPECT_EQ(events[1].record().questionnaire().instrument(), v1::QuestionnaireRecord::PHQ9);
  EXPECT_EQ(events[1].record().questionnaire().reported_total(), 14);
  EXPECT_EQ(events[1].record().patient().clinic_patient_id(), "PA-2");
  EXPECT_NE(events[0].transaction_id(), events[1].transaction_id());

  // One unsupported entry: nothing of the transaction is logged.
  const HttpAnswer refused =
      Post(*gateway, "/fhir",
           TransactionJson(
               {{"MedicationStatement",
                 MedicationStatementJson("ST-2", subject, "32937", "paroxetine", "active", "st-2")},
                {"Condition", ConditionJson("cond-1", subject)}}));
  EXPECT_EQ(refused.status, 400) << OutcomeText(refused.body);
  const std::string outcome = OutcomeText(refused.body);
  EXPECT_THAT(outcome, HasSubstr("Bundle.entry[1]"));
  EXPECT_THAT(outcome, HasSubstr("Condition"));

  const std::string barrier =
      PostCreated(*gateway, "MedicationRequest", MedicationRequestJson("ORD-B", subject));
  ASSERT_FALSE(barrier.empty());
  const std::optional<v1::InboundEvent> next = stream.Next(kEventTimeout);
  ASSERT_TRUE(next.has_value()) << stream.State() << "\n" << gateway->Describe();
  EXPECT_EQ(next->transaction_id(), barrier)
      << "a refused transaction reached the stream: " << Describe(*next);
}

// 3. Errors: unknown patient 422, wrong Content-Type 415, resourceType mismatch and malformed JSON
// 400, none of which reaches the stream; with a configured bearer token, 401 without it or with a
// wrong one (with WWW-Authenticate), 201 with it.
TEST_F(InboundIntegrationTest, RefusesBadRequestsAndChecksTheBearerToken) {
  Gateway* gateway = StartGateway(Settings());
  ASSERT_NE(gateway, nullptr);
  ASSERT_FALSE(
      PushOk(*gateway, Make("clinic-a", RecordKind::kMedicationStatement, "ms-a", "PA-3"), false)
          .empty());
  InboundStream stream(*gateway, "clinic-a");
  const std::string known = MedicationRequestJson("ORD-K", MrnSubject("MRN-PA-3"));

  const HttpAnswer unknown = Post(*gateway, "/fhir/MedicationRequest",
                                  MedicationRequestJson("ORD-U", MrnSubject("MRN-NOBODY")));
  EXPECT_EQ(unknown.status, 422) << OutcomeText(unknown.body);
  EXPECT_THAT(OutcomeText(unknown.body), HasSubstr("MedicationRequest.subject"));
  EXPECT_THAT(OutcomeText(unknown.body), HasSubstr("MRN-NOBODY"));

  const HttpAnswer plain = Post(*gateway, "/fhir/MedicationRequest", known, "text/plain");
  EXPECT_EQ(plain.status, 415) << OutcomeText(plain.body);

  const HttpAnswer mismatch =
      Post(*gateway, "/fhir/MedicationRequest",
           MedicationStatementJson("ST-M", MrnSubject("MRN-PA-3"), "36437", "sertraline"));
  EXPECT_EQ(mismatch.status, 400) << OutcomeText(mismatch.body);
  EXPECT_THAT(OutcomeText(mismatch.body), HasSubstr("resourceType"));

  const HttpAnswer malformed =
      Post(*gateway, "/fhir/MedicationRequest", known.substr(0, known.size() / 2));
  EXPECT_EQ(malformed.status, 400) << OutcomeText(malformed.body);
  EXPECT_THAT(OutcomeText(malformed.body), Not(HasSubstr("(not an OperationOutcome)")));

  // Nothing of the refused requests was logged for the clinic: the next event is the barrier.
  const std::string barrier = PostCreated(*gateway, "MedicationRequest", known);
  ASSERT_FALSE(barrier.empty());
  const std::optional<v1::InboundEvent> next = stream.Next(kEventTimeout);
  ASSERT_TRUE(next.has_value()) << stream.State() << "\n" << gateway->Describe();
  EXPECT_EQ(next->transaction_id(), barrier)
      << "a refused request reached the stream: " << Describe(*next);

  // A gateway that requires a bearer token.
  GatewaySettings settings = Settings("data-auth");
  settings.extra_config = std::string("inbound { bearer_token_sha256: \"") + kTokenSha256 + "\" }";
  Gateway* secured = StartGateway(settings);
  ASSERT_NE(secured, nullptr);
  ASSERT_FALSE(
      PushOk(*secured, Make("clinic-a", RecordKind::kMedicationStatement, "ms-a", "PA-3"), false)
          .empty());

  const HttpAnswer anonymous = Post(*secured, "/fhir/MedicationRequest", known);
  EXPECT_EQ(anonymous.status, 401) << OutcomeText(anonymous.body);
  EXPECT_THAT(anonymous.Header("WWW-Authenticate"), HasSubstr("Bearer"));

  const HttpAnswer wrong = Post(*secured, "/fhir/MedicationRequest", known, kFhirJson,
                                {{"Authorization", "Bearer not-the-token"}});
  EXPECT_EQ(wrong.status, 401) << OutcomeText(wrong.body);
  EXPECT_THAT(wrong.Header("WWW-Authenticate"), HasSubstr("Bearer"));

  const HttpAnswer right = Post(*secured, "/fhir/MedicationRequest", known, kFhirJson,
                                {{"Authorization", std::string("Bearer ") + kToken}});
  EXPECT_EQ(right.status, 201) << OutcomeText(right.body) << secured->Describe();
}

// 4. Reconnecting with the cursor of the 4th event gives exactly events 5..15, in order.
TEST_F(InboundIntegrationTest, ReconnectWithTheCursorHasNoGapsAndNoDuplicates) {
  Gateway* gateway = StartGateway(Settings());
  ASSERT_NE(gateway, nullptr);
  ASSERT_FALSE(
      PushOk(*gateway, Make("clinic-a", RecordKind::kMedicationStatement, "ms-a", "PA-4"), false)
          .empty());
  const std::string subject = MrnSubject("MRN-PA-4");
  std::vector<std::string> posted;
  auto post = [&](int n) {
    const std::string id = PostCreated(*gateway, "MedicationRequest",
                                       MedicationRequestJson("ORD-R" + std::to_string(n), subject));
    posted.push_back(id);
    return !id.empty();
  };
  for (int n = 1; n <= 10; ++n) ASSERT_TRUE(post(n));

  std::string cursor;
  {
    InboundStream first(*gateway, "clinic-a");
    const std::vector<v1::InboundEvent> events = first.Take(4, kEventTimeout);
    ASSERT_EQ(events.size(), 4u) << Describe(events) << first.State() << "\n"
                                 << gateway->Describe();
    EXPECT_EQ(TransactionIds(events), std::vector<std::string>(posted.begin(), posted.begin() + 4))
        << Describe(events);
    cursor = events[3].cursor();
    first.Cancel();
  }
  for (int n = 11; n <= 15; ++n) ASSERT_TRUE(post(n));

  InboundStream second(*gateway, "clinic-a", cursor);
  const std::vector<v1::InboundEvent> events = second.Take(11, kEventTimeout);
  EXPECT_EQ(TransactionIds(events), std::vector<std::string>(posted.begin() + 4, posted.end()))
      << "resumed after cursor " << cursor << ":\n"
      << Describe(events) << second.State();
  for (size_t i = 1; i < events.size(); ++i) {
    EXPECT_LT(std::stoll(events[i - 1].cursor()), std::stoll(events[i].cursor()))
        << Describe(events);
  }
  EXPECT_GT(events.empty() ? 0 : std::stoll(events.front().cursor()), std::stoll(cursor));

  // Nothing after event 15 but what comes next.
  ASSERT_TRUE(post(16));
  const std::optional<v1::InboundEvent> next = second.Next(kEventTimeout);
  ASSERT_TRUE(next.has_value()) << second.State() << "\n" << gateway->Describe();
  EXPECT_EQ(next->transaction_id(), posted.back()) << Describe(*next);
}

// 5. Two clinics: each stream carries only its own clinic's patients, also from one Bundle naming
// both; a stream opened afterwards for B replays only B's records.
TEST_F(InboundIntegrationTest, TwoClinicsNeverSeeEachOthersData) {
  Gateway* gateway = StartGateway(Settings());
  ASSERT_NE(gateway, nullptr);
  ASSERT_FALSE(
      PushOk(*gateway, Make("clinic-a", RecordKind::kMedicationStatement, "ms-a", "PA-5"), false)
          .empty());
  ASSERT_FALSE(
      PushOk(*gateway, Make("clinic-b", RecordKind::kMedicationStatement, "ms-b", "PB-5"), false)
          .empty());
  const std::string subject_a = MrnSubject("MRN-PA-5");
  const std::string subject_b = MrnSubject("MRN-PB-5");
  InboundStream stream_a(*gateway, "clinic-a");
  InboundStream stream_b(*gateway, "clinic-b");

  std::vector<std::string> for_a, for_b;
  for (int n = 1; n <= 3; ++n) {
    const std::string a =
        PostCreated(*gateway, "MedicationRequest",
                    MedicationRequestJson("ORD-A" + std::to_string(n), subject_a));
    const std::string b =
        PostCreated(*gateway, "MedicationRequest",
                    MedicationRequestJson("ORD-B" + std::to_string(n), subject_b));
    ASSERT_FALSE(a.empty() || b.empty());
    for_a.push_back(a);
    for_b.push_back(b);
  }
  // One transaction naming both patients.
  const HttpAnswer mixed = Post(
      *gateway, "/fhir",
      TransactionJson(
          {{"MedicationStatement",
            MedicationStatementJson("ST-A", subject_a, "36437", "sertraline", "active", "st-a")},
           {"MedicationStatement",
            MedicationStatementJson("ST-B", subject_b, "32937", "paroxetine", "active", "st-b")}}));
  ASSERT_EQ(mixed.status, 200) << OutcomeText(mixed.body) << gateway->Describe();

  const std::vector<v1::InboundEvent> a_events = stream_a.Take(4, kEventTimeout);
  const std::vector<v1::InboundEvent> b_events = stream_b.Take(4, kEventTimeout);
  ASSERT_EQ(a_events.size(), 4u) << Describe(a_events) << stream_a.State();
  ASSERT_EQ(b_events.size(), 4u) << Describe(b_events) << stream_b.State();
  const std::vector<std::string> a_ids = TransactionIds(a_events);
  const std::vector<std::string> b_ids = TransactionIds(b_events);
  EXPECT_EQ(std::vector<std::string>(a_ids.begin(), a_ids.begin() + 3), for_a)
      << Describe(a_events);
  EXPECT_EQ(std::vector<std::string>(b_ids.begin(), b_ids.begin() + 3), for_b)
      << Describe(b_events);
  EXPECT_EQ(a_events[3].record().medication_statement().medication().code(), "36437")
      << Describe(a_events);
  EXPECT_EQ(b_events[3].record().medication_statement().medication().code(), "32937")
      << Describe(b_events);
  for (const v1::InboundEvent& event : a_events) {
    EXPECT_EQ(event.record().clinic_id(), "clinic-a") << Describe(event);
    EXPECT_EQ(event.record().patient().clinic_patient_id(), "PA-5") << Describe(event);
  }
  for (const v1::InboundEvent& event : b_events) {
    EXPECT_EQ(event.record().clinic_id(), "clinic-b") << Describe(event);
    EXPECT_EQ(event.record().patient().clinic_patient_id(), "PB-5") << Describe(event);
  }
  for_b.push_back(b_events[3].transaction_id());

  // Barriers: nothing of the other clinic comes next on either stream.
  const std::string last_a =
      PostCreated(*gateway, "MedicationRequest", MedicationRequestJson("ORD-A9", subject_a));
  const std::string last_b =
      PostCreated(*gateway, "MedicationRequest", MedicationRequestJson("ORD-B9", subject_b));
  ASSERT_FALSE(last_a.empty() || last_b.empty());
  for_b.push_back(last_b);
  const std::optional<v1::InboundEvent> next_a = stream_a.Next(kEventTimeout);
  const std::optional<v1::InboundEvent> next_b = stream_b.Next(kEventTimeout);
  ASSERT_TRUE(next_a.has_value()) << stream_a.State();
  ASSERT_TRUE(next_b.has_value()) << stream_b.State();
  EXPECT_EQ(next_a->transaction_id(), last_a) << Describe(*next_a);
  EXPECT_EQ(next_b->transaction_id(), last_b) << Describe(*next_b);

  // A new stream for B from the start of the log: B's records only (not its own push either).
  InboundStream replay_b(*gateway, "clinic-b");
  const std::vector<v1::InboundEvent> replayed = replay_b.Take(for_b.size() + 1, 1500ms);
  EXPECT_EQ(TransactionIds(replayed), for_b) << Describe(replayed);
  for (const v1::InboundEvent& event : replayed) {
    EXPECT_EQ(event.record().clinic_id(), "clinic-b") << Describe(event);
  }
}

// 6. Polling the EHR: a MedicationStatement created there reaches the clinic exactly once, its
// update exactly once more, and the clinic's own records (which the searches also return) never.
TEST_F(InboundIntegrationTest, PollingPassesEachVersionChangedAtTheEhrOnce) {
  GatewaySettings settings = Settings();
  settings.destination_poll_interval_ms = 300;
  Gateway* gateway = StartGateway(settings);
  ASSERT_NE(gateway, nullptr);
  const std::string clinic = "lakeside-ketamine";
  const std::string pushed =
      PushOk(*gateway, Make(clinic, RecordKind::kMedicationStatement, "ms-own", "P-POLL"), true);
  ASSERT_FALSE(pushed.empty());
  ASSERT_FALSE(PushOk(*gateway, Make(clinic, RecordKind::kQuestionnaire, "phq-own", "P-POLL"), true)
                   .empty());
  const std::string patient = EhrPatientIdOf(*gateway, pushed);
  ASSERT_FALSE(patient.empty());
  InboundStream stream(*gateway, clinic);

  // Two full polls (3 searches each) see only the clinic's own records.
  ASSERT_TRUE(WaitForEhrGets(EhrGets(), 6, 5s)) << ehr_->RequestLog(20) << gateway->Describe();

  const std::string subject = ReferenceSubject("Patient/" + patient);
  const HttpAnswer created =
      HttpSend(ehr_->host_port(), "POST", "/fhir/MedicationStatement",
               MedicationStatementJson("EHR-ST-1", subject, "42347", "bupropion"), kFhirJson);
  ASSERT_EQ(created.status, 201) << created.body;
  const std::string ehr_id = ResourceIdOf(created.body);
  ASSERT_FALSE(ehr_id.empty()) << created.body;
  const std::string record_id = std::string(kStatementSystem) + "|EHR-ST-1";

  std::optional<v1::InboundEvent> event = stream.Next(kEventTimeout);
  ASSERT_TRUE(event.has_value()) << "the poll did not pass on the new MedicationStatement; "
                                 << stream.State() << "\n"
                                 << ehr_->RequestLog(20) << gateway->Describe();
  EXPECT_EQ(event->record().record_id(), record_id) << Describe(*event);
  EXPECT_EQ(event->record().clinic_id(), clinic);
  EXPECT_EQ(event->record().patient().clinic_patient_id(), "P-POLL");
  ASSERT_TRUE(event->record().has_medication_statement()) << Describe(*event);
  EXPECT_EQ(event->record().medication_statement().medication().code(), "42347");
  EXPECT_EQ(event->record().medication_statement().status(), v1::MedicationStatementRecord::ACTIVE);

  // Several more polls, then a barrier (routed by the EHR's literal Patient reference): the next
  // event must be the barrier, not a second copy.
  ASSERT_TRUE(WaitForEhrGets(EhrGets(), 9, 5s)) << ehr_->RequestLog(20);
  const std::string barrier1 =
      PostCreated(*gateway, "MedicationRequest", MedicationRequestJson("ORD-P1", subject));
  ASSERT_FALSE(barrier1.empty());
  event = stream.Next(kEventTimeout);
  ASSERT_TRUE(event.has_value()) << stream.State() << "\n" << gateway->Describe();
  EXPECT_EQ(event->transaction_id(), barrier1) << "expected the barrier, got " << Describe(*event);

  // An update at the EHR: its new version, once.
  const HttpAnswer updated = HttpSend(
      ehr_->host_port(), "PUT", "/fhir/MedicationStatement/" + ehr_id,
      MedicationStatementJson("EHR-ST-1", subject, "42347", "bupropion", "stopped", ehr_id),
      kFhirJson);
  ASSERT_EQ(updated.status, 200) << updated.body;
  event = stream.Next(kEventTimeout);
  ASSERT_TRUE(event.has_value()) << "the poll did not pass on the update; " << stream.State()
                                 << "\n"
                                 << ehr_->RequestLog(20) << gateway->Describe();
  EXPECT_EQ(event->record().record_id(), record_id) << Describe(*event);
  EXPECT_EQ(event->record().medication_statement().status(), v1::MedicationStatementRecord::STOPPED)
      << Describe(*event);

  ASSERT_TRUE(WaitForEhrGets(EhrGets(), 9, 5s)) << ehr_->RequestLog(20);
  const std::string barrier2 =
      PostCreated(*gateway, "MedicationRequest", MedicationRequestJson("ORD-P2", subject));
  ASSERT_FALSE(barrier2.empty());
  event = stream.Next(kEventTimeout);
  ASSERT_TRUE(event.has_value()) << stream.State() << "\n" << gateway->Describe();
  EXPECT_EQ(event->transaction_id(), barrier2) << "expected the barrier, got " << Describe(*event);
}

// 7. SIGTERM with an open WatchInbound stream: the stream ends at once with UNAVAILABLE (the
// gateway closes it; it does not wait for the process to die), and the gateway exits long before
// its drain timeout (an open stream must not hold the drain until the deadline).
//
// The bound is 8 s of a 20 s drain timeout rather than "immediately": with a client channel still
// connected (the stream's and the pushes'), gRPC's Server::Shutdown was observed to wait ~5 s for
// the connection to go away, also without any stream (see the report of these tests).
TEST_F(InboundIntegrationTest, SigtermEndsOpenStreamsWithUnavailableAndExitsPromptly) {
  constexpr int kDrainTimeoutMs = 20000;
  GatewaySettings settings = Settings();
  settings.drain_timeout_ms = kDrainTimeoutMs;
  Gateway* gateway = StartGateway(settings);
  ASSERT_NE(gateway, nullptr);
  ASSERT_FALSE(
      PushOk(*gateway, Make("clinic-a", RecordKind::kMedicationStatement, "ms-a", "PA-7"), true)
          .empty());
  InboundStream stream(*gateway, "clinic-a");
  ASSERT_FALSE(PostCreated(*gateway, "MedicationRequest",
                           MedicationRequestJson("ORD-T", MrnSubject("MRN-PA-7")))
                   .empty());
  // The stream is live: it has carried an event.
  ASSERT_TRUE(stream.Next(kEventTimeout).has_value()) << stream.State() << "\n"
                                                      << gateway->Describe();

  const auto start = std::chrono::steady_clock::now();
  gateway->Signal(SIGTERM);
  const std::optional<grpc::Status> end = stream.WaitEnd(2s);
  const auto stream_ended =
      std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - start);
  const SubprocessResult result = gateway->Wait(milliseconds(kDrainTimeoutMs) + 5s);
  const auto exited =
      std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - start);
  std::printf("SIGTERM: stream ended after %lld ms, gateway exited after %lld ms\n",
              static_cast<long long>(stream_ended.count()), static_cast<long long>(exited.count()));
  ASSERT_TRUE(end.has_value()) << "the stream is still open 2 s after SIGTERM\n"
                               << gateway->Describe();
  EXPECT_EQ(end->error_code(), grpc::StatusCode::UNAVAILABLE) << end->error_message();
  EXPECT_TRUE(result.ExitedWith(0)) << result.Describe();
  EXPECT_LT(exited.count(), 8000) << "the gateway took " << exited.count()
                                  << " ms to exit (drain timeout " << kDrainTimeoutMs << " ms)\n"
                                  << gateway->Describe();
}

}  // namespace
}  // namespace fhirgw::testing
