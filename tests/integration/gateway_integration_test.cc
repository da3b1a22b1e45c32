// Integration tests of the gateway with real parts: the `fhirgw serve` binary and the loopback FHIR
// R4 server (Medplum's router, validating like an EHR, with fault injection), each a child process
// on port 0. They prove the delivery promises of the gateway issue: exactly once at the EHR under
// concurrency, resends and corrections, transient failures and rejections, dead letters and
// Replay, kill -9 and SIGTERM, PushStream, the operational endpoints and bad input.
//
// One FHIR server serves the whole suite and is reset before each test; each test starts its own
// gateway(s) with a fresh data directory. Every wait is bounded, and failure messages carry the
// gateway's log.
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <functional>
#include <future>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "google/protobuf/empty.pb.h"
#include "google/protobuf/wrappers.pb.h"
#include "grpcpp/generic/generic_stub.h"
#include "gtest/gtest.h"
#include "mappers/record_json.h"
#include "tests/integration/harness.h"

namespace fhirgw::testing {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;

constexpr milliseconds kPushTimeout = 30s;
constexpr milliseconds kDeliveryTimeout = 60s;

std::string Ids(const std::vector<std::string>& ids) {
  std::string text;
  for (const std::string& id : ids) text += "  " + id + "\n";
  return text;
}

class GatewayIntegrationTest : public IntegrationTest {
 protected:
  GatewayIntegrationTest() : IntegrationTest("fhirgw-it-") {}

  // Waits until every transaction of `ids` is DELIVERED (at most `timeout` in all); returns the
  // ones that are not, each with its status and attempts. A transaction that ends REJECTED or
  // DEAD_LETTER is reported without waiting further.
  static std::vector<std::string> WaitAllDelivered(Gateway& gateway, std::vector<std::string> ids,
                                                   milliseconds timeout = kDeliveryTimeout) {
    const auto deadline = std::chrono::steady_clock::now() + timeout;
    std::vector<std::string> failed;
    while (true) {
      std::vector<std::string> pending;
      std::vector<std::string> waiting;
      for (const std::string& id : ids) {
        v1::Transaction transaction;
        const grpc::Status status = gateway.GetTransaction(id, &transaction);
        if (status.ok() && transaction.status() == v1::DELIVERED) continue;
        const std::string problem = id + ": " +
                                    (status.ok() ? DescribeAttempts(transaction)
                                                 : "GetTransaction: " + status.error_message());
        if (status.ok() &&
            (transaction.status() == v1::REJECTED || transaction.status() == v1::DEAD_LETTER ||
             transaction.status() == v1::RECORDED)) {
          failed.push_back(problem);
          continue;
        }
        pending.push_back(id);
        waiting.push_back(problem);
      }
      ids = std::move(pending);
      if (ids.empty() || std::chrono::steady_clock::now() >= deadline) {
        failed.insert(failed.end(), waiting.begin(), waiting.end());
        return failed;
      }
      std::this_thread::sleep_for(50ms);
    }
  }

  // The integer `name` of the EHR's /$admin/stats; -1 when absent.
  static int64_t EhrStat(const char* name) {
    rapidjson::Document stats = ehr_->Stats();
    if (!stats.IsObject() || !stats.HasMember(name) || !stats[name].IsInt64()) {
      ADD_FAILURE() << "no integer \"" << name << "\" in /$admin/stats";
      return -1;
    }
    return stats[name].GetInt64();
  }
};

// A record acknowledged by the gateway (Push answered OK).
struct Ack {
  v1::ClinicRecord record;
  std::string transaction_id;
};

// Pushes records one by one on a thread of its own until Stop(), `max_records` were sent or a push
// fails (the gateway went away); remembers every acknowledged record.
class Pusher {
 public:
  using MakeRecord = std::function<v1::ClinicRecord(int n)>;

  Pusher(Gateway& gateway, MakeRecord make, bool wait_for_delivery, int max_records = 5000)
      : thread_([this, &gateway, make = std::move(make), wait_for_delivery, max_records] {
          for (int n = 0; n < max_records && !stop_; ++n) {
            v1::ClinicRecord record = make(n);
            v1::PushResponse response;
            const grpc::Status status =
                gateway.Push(record, wait_for_delivery, &response, std::chrono::seconds(10));
            if (!status.ok() || response.transaction_id().empty()) {
              std::lock_guard<std::mutex> lock(mu_);
              failure_ = status.ok() ? "OK without a transaction id" : status.error_message();
              failure_code_ = status.error_code();
              break;
            }
            std::lock_guard<std::mutex> lock(mu_);
            acks_.push_back({std::move(record), response.transaction_id()});
          }
        }) {}

  ~Pusher() { Join(); }

  size_t acked() {
    std::lock_guard<std::mutex> lock(mu_);
    return acks_.size();
  }
  void Stop() { stop_ = true; }
  void Join() {
    if (thread_.joinable()) thread_.join();
  }
  // After Join.
  const std::vector<Ack>& acks() const { return acks_; }
  const std::string& failure() const { return failure_; }
  grpc::StatusCode failure_code() const { return failure_code_; }

 private:
  std::atomic<bool> stop_{false};
  std::mutex mu_;
  std::vector<Ack> acks_;
  std::string failure_;
  grpc::StatusCode failure_code_ = grpc::StatusCode::OK;
  std::thread thread_;  // last: starts once the members above exist
};

// Waits until the pushers together have `count` acknowledgements; false after `timeout`.
bool WaitForAcks(const std::vector<std::unique_ptr<Pusher>>& pushers, size_t count,
                 milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (std::chrono::steady_clock::now() < deadline) {
    size_t total = 0;
    for (const auto& pusher : pushers) total += pusher->acked();
    if (total >= count) return true;
    std::this_thread::sleep_for(5ms);
  }
  return false;
}

// 1. Records of every kind, pushed concurrently, each arrive exactly once.
TEST_F(GatewayIntegrationTest, ConcurrentPushesOfEveryKindArriveExactlyOnce) {
  Gateway* gateway = StartGateway(Settings());
  ASSERT_NE(gateway, nullptr);
  constexpr int kPerKind = 20;
  constexpr int kThreads = 8;
  constexpr int kPatients = 10;
  std::vector<v1::ClinicRecord> records;
  std::set<std::string> patients;
  for (int k = 0; k < 4; ++k) {
    for (int i = 0; i < kPerKind; ++i) {
      const std::string patient = "P-" + std::to_string((i + k) % kPatients);
      records.push_back(
          Make(kAllKinds[k], "conc-" + std::to_string(k) + "-" + std::to_string(i), patient));
      patients.insert(patient);
    }
  }
  std::vector<grpc::Status> statuses(records.size());
  std::vector<v1::PushResponse> responses(records.size());
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (size_t i = t; i < records.size(); i += kThreads) {
        statuses[i] =
            gateway->Push(records[i], /*wait_for_delivery=*/true, &responses[i], kPushTimeout);
      }
    });
  }
  for (std::thread& thread : threads) thread.join();

  std::set<std::string> transaction_ids;
  for (size_t i = 0; i < records.size(); ++i) {
    const std::string& id = records[i].record_id();
    ASSERT_TRUE(statuses[i].ok()) << id << ": " << statuses[i].error_message() << "\n"
                                  << gateway->Describe();
    EXPECT_EQ(responses[i].status(), v1::DELIVERED)
        << id << " answered " << StatusName(responses[i].status()) << "\n"
        << gateway->Describe();
    EXPECT_EQ(responses[i].record_id(), id);
    EXPECT_FALSE(responses[i].duplicate()) << id;
    EXPECT_EQ(responses[i].version(), 1) << id;
    if (records[i].has_questionnaire()) {
      ASSERT_EQ(responses[i].alerts_size(), 1) << id << ": PHQ-9 item 9 is positive";
      EXPECT_EQ(responses[i].alerts(0).kind(), v1::Alert::SUICIDAL_IDEATION) << id;
    }
    transaction_ids.insert(responses[i].transaction_id());
  }
  EXPECT_EQ(transaction_ids.size(), records.size()) << "every record has its own transaction";

  for (const v1::ClinicRecord& record : records) {
    const ResourceKey key = MainResourceOf(record);
    EXPECT_EQ(ehr_->Count(key.type, key.identifier), 1)
        << key.type << "?identifier=" << key.identifier;
    if (record.has_infusion()) {
      const std::string encounter =
          "urn:fhirgw:" + record.clinic_id() + ":encounter|" + record.infusion().encounter_id();
      EXPECT_EQ(ehr_->Count("Encounter", encounter), 1) << encounter;
    }
  }
  EXPECT_EQ(ehr_->CountAll("Patient"), static_cast<int>(patients.size()));
  for (const std::string& patient : patients) {
    const std::string identifier = "urn:fhirgw:lakeside-ketamine:patient|" + patient;
    EXPECT_EQ(ehr_->Count("Patient", identifier), 1) << identifier;
  }
  // Without faults every Bundle is sent once and accepted: nothing was sent twice or refused.
  EXPECT_EQ(EhrStat("transactionsCommitted"), static_cast<int64_t>(records.size()));
  EXPECT_EQ(EhrStat("transactionsFailed"), 0);
}

// 2. A resend is a duplicate and sends nothing; a correction is version 2, updated in place.
TEST_F(GatewayIntegrationTest, ResendIsDuplicateAndCorrectionUpdatesInPlace) {
  Gateway* gateway = StartGateway(Settings());
  ASSERT_NE(gateway, nullptr);
  const v1::ClinicRecord record = Make(RecordKind::kMedicationStatement, "med-resend-1", "P-1");
  const ResourceKey key = MainResourceOf(record);

  v1::PushResponse first;
  ASSERT_TRUE(gateway->Push(record, true, &first).ok()) << gateway->Describe();
  ASSERT_EQ(first.status(), v1::DELIVERED) << gateway->Describe();
  EXPECT_EQ(first.version(), 1);
  EXPECT_FALSE(first.duplicate());
  const int64_t requests_after_first = ehr_->Requests();
  ASSERT_GE(requests_after_first, 1);

  v1::PushResponse resend;
  ASSERT_TRUE(gateway->Push(record, true, &resend).ok()) << gateway->Describe();
  EXPECT_TRUE(resend.duplicate());
  EXPECT_EQ(resend.transaction_id(), first.transaction_id());
  EXPECT_EQ(resend.version(), 1);
  EXPECT_EQ(resend.status(), v1::DELIVERED);
  std::this_thread::sleep_for(500ms);
  EXPECT_EQ(ehr_->Requests(), requests_after_first) << "a resend must send nothing to the EHR";
  v1::Transaction original;
  ASSERT_TRUE(gateway->GetTransaction(first.transaction_id(), &original).ok());
  EXPECT_EQ(original.attempts_size(), 1) << DescribeAttempts(original);

  v1::ClinicRecord corrected = record;
  corrected.mutable_medication_statement()->mutable_dose()->set_value(150);
  corrected.mutable_medication_statement()->set_dosage_text(
      "150 mg by mouth once daily in the morning");
  v1::PushResponse correction;
  ASSERT_TRUE(gateway->Push(corrected, true, &correction).ok()) << gateway->Describe();
  EXPECT_FALSE(correction.duplicate());
  EXPECT_EQ(correction.version(), 2);
  EXPECT_NE(correction.transaction_id(), first.transaction_id());
  EXPECT_EQ(correction.status(), v1::DELIVERED) << gateway->Describe();

  std::optional<std::vector<std::string>> versions = ehr_->VersionIds(key.type, key.identifier);
  ASSERT_TRUE(versions.has_value());
  EXPECT_THAT(*versions, ::testing::ElementsAre("2"))
      << "one " << key.type << ", updated in place to version 2";
  EXPECT_EQ(ehr_->CountAll("Patient"), 1);

  v1::Transaction second;
  ASSERT_TRUE(gateway->GetTransaction(correction.transaction_id(), &second).ok());
  EXPECT_EQ(second.version(), 2);
  bool found = false;
  for (const v1::ResourceRef& ref : second.resources()) {
    if (ref.resource_type() == "MedicationStatement") {
      found = true;
      EXPECT_EQ(ref.version_id(), "2") << "the version the EHR assigned";
    }
  }
  EXPECT_TRUE(found) << "the transaction lists the EHR's MedicationStatement";

  // The correction resent is a duplicate of version 2.
  v1::PushResponse resend_correction;
  ASSERT_TRUE(gateway->Push(corrected, false, &resend_correction).ok());
  EXPECT_TRUE(resend_correction.duplicate());
  EXPECT_EQ(resend_correction.transaction_id(), correction.transaction_id());
}

// 3. 503, 503, a dropped connection: retried until delivered, every attempt recorded.
TEST_F(GatewayIntegrationTest, TransientFailuresAreRetriedAndEveryAttemptRecorded) {
  // One worker, so that every attempt goes over the same kept-alive connection: the drop always
  // hits a reused connection, where libcurl may resend the request by itself. The EHR still saw
  // that exchange, so it must be recorded as an attempt of its own.
  GatewaySettings settings = Settings();
  settings.concurrency = 1;
  Gateway* gateway = StartGateway(settings);
  ASSERT_NE(gateway, nullptr);
  ASSERT_TRUE(
      ehr_->SetFault(R"([{"mode":"status","status":503,"count":2},{"mode":"drop","count":1}])"));
  const v1::ClinicRecord record = Make(RecordKind::kInfusion, "inf-transient-1", "P-3");

  v1::PushResponse response;
  ASSERT_TRUE(gateway->Push(record, true, &response).ok()) << gateway->Describe();
  EXPECT_EQ(response.status(), v1::DELIVERED) << gateway->Describe();

  v1::Transaction transaction;
  ASSERT_TRUE(gateway->GetTransaction(response.transaction_id(), &transaction).ok());
  EXPECT_EQ(transaction.status(), v1::DELIVERED);
  std::vector<int> http_statuses;
  std::vector<v1::DeliveryAttempt::Outcome> outcomes;
  for (const v1::DeliveryAttempt& attempt : transaction.attempts()) {
    http_statuses.push_back(attempt.http_status());
    outcomes.push_back(attempt.outcome());
  }
  EXPECT_THAT(http_statuses, ::testing::ElementsAre(503, 503, 0, 200))
      << DescribeAttempts(transaction) << "\nrequests the EHR received:\n"
      << ehr_->RequestLog(10) << gateway->Describe();
  EXPECT_THAT(outcomes, ::testing::ElementsAre(v1::DeliveryAttempt::RETRYABLE_ERROR,
                                               v1::DeliveryAttempt::RETRYABLE_ERROR,
                                               v1::DeliveryAttempt::RETRYABLE_ERROR,
                                               v1::DeliveryAttempt::SUCCESS))
      << DescribeAttempts(transaction);
  for (int i = 0; i < transaction.attempts_size(); ++i) {
    const v1::DeliveryAttempt& attempt = transaction.attempts(i);
    EXPECT_EQ(attempt.number(), i + 1);
    if (i > 0) {
      EXPECT_GE(ToMs(attempt.started_at()), ToMs(transaction.attempts(i - 1).started_at()))
          << "attempts in order";
    }
    if (attempt.http_status() == 503) {
      EXPECT_THAT(attempt.response(), HasSubstr("OperationOutcome")) << "the EHR's answer is kept";
    }
    if (attempt.http_status() == 0) {
      EXPECT_THAT(attempt.error(), Not(IsEmpty())) << "the network error is kept";
    }
  }
  EXPECT_THAT(transaction.resources(), Not(IsEmpty()));

  const ResourceKey key = MainResourceOf(record);
  EXPECT_EQ(ehr_->Count(key.type, key.identifier), 1);
  EXPECT_EQ(EhrStat("faultsInjected"), 3);
  EXPECT_EQ(EhrStat("dropped"), 1);
  EXPECT_EQ(EhrStat("transactionsCommitted"), 1);
}

// 3b. A 429 with Retry-After: 1 delays the next attempt by a second (the policy alone says 50 ms).
TEST_F(GatewayIntegrationTest, RetryAfterIsHonoured) {
  Gateway* gateway = StartGateway(Settings());
  ASSERT_NE(gateway, nullptr);
  ASSERT_TRUE(ehr_->SetFault(R"({"mode":"status","status":429,"count":1})"));
  const v1::ClinicRecord record = Make(RecordKind::kEncounter, "enc-429-1", "P-2");

  v1::PushResponse response;
  ASSERT_TRUE(gateway->Push(record, true, &response).ok()) << gateway->Describe();
  EXPECT_EQ(response.status(), v1::DELIVERED) << gateway->Describe();
  v1::Transaction transaction;
  ASSERT_TRUE(gateway->GetTransaction(response.transaction_id(), &transaction).ok());
  ASSERT_EQ(transaction.attempts_size(), 2) << DescribeAttempts(transaction);
  EXPECT_EQ(transaction.attempts(0).http_status(), 429);
  EXPECT_EQ(transaction.attempts(0).outcome(), v1::DeliveryAttempt::RETRYABLE_ERROR);
  EXPECT_EQ(transaction.attempts(1).http_status(), 200);
  const int64_t gap_ms =
      ToMs(transaction.attempts(1).started_at()) - ToMs(transaction.attempts(0).started_at());
  EXPECT_GE(gap_ms, 950) << "Retry-After: 1 must delay the second attempt by about a second";
  EXPECT_LT(gap_ms, 5000);
}

// 4. A rejection is final, keeps the EHR's issues, and does not hold up other records.
TEST_F(GatewayIntegrationTest, RejectionIsFinalAndOthersAreUnaffected) {
  Gateway* gateway = StartGateway(Settings());
  ASSERT_NE(gateway, nullptr);
  ASSERT_TRUE(ehr_->SetFault(
      R"json({"mode":"reject","count":1,"element":"MedicationStatement.status",)json"
      R"json("diagnostics":"MedicationStatement.status: refused by the test EHR"})json"));
  const v1::ClinicRecord rejected = Make(RecordKind::kMedicationStatement, "med-reject-1", "P-4");
  v1::PushResponse response;
  ASSERT_TRUE(gateway->Push(rejected, true, &response).ok()) << gateway->Describe();
  EXPECT_EQ(response.status(), v1::REJECTED) << gateway->Describe();

  v1::Transaction transaction;
  ASSERT_TRUE(gateway->GetTransaction(response.transaction_id(), &transaction).ok());
  ASSERT_EQ(transaction.attempts_size(), 1) << DescribeAttempts(transaction);
  const v1::DeliveryAttempt& attempt = transaction.attempts(0);
  EXPECT_EQ(attempt.http_status(), 400);
  EXPECT_EQ(attempt.outcome(), v1::DeliveryAttempt::REJECTED);
  ASSERT_EQ(attempt.issues_size(), 1) << attempt.response();
  EXPECT_EQ(attempt.issues(0).path(), "MedicationStatement.status");
  EXPECT_THAT(attempt.issues(0).message(), HasSubstr("refused by the test EHR"));
  EXPECT_EQ(attempt.issues(0).severity(), v1::Issue::ERROR);

  const v1::ClinicRecord other = Make(RecordKind::kEncounter, "enc-after-reject", "P-5");
  v1::PushResponse other_response;
  ASSERT_TRUE(gateway->Push(other, true, &other_response).ok()) << gateway->Describe();
  EXPECT_EQ(other_response.status(), v1::DELIVERED) << gateway->Describe();

  std::this_thread::sleep_for(1s);
  ASSERT_TRUE(gateway->GetTransaction(response.transaction_id(), &transaction).ok());
  EXPECT_EQ(transaction.status(), v1::REJECTED);
  EXPECT_EQ(transaction.attempts_size(), 1)
      << "a rejection is not retried; " << DescribeAttempts(transaction);
  const ResourceKey rejected_key = MainResourceOf(rejected);
  const ResourceKey other_key = MainResourceOf(other);
  EXPECT_EQ(ehr_->Count(rejected_key.type, rejected_key.identifier), 0);
  EXPECT_EQ(ehr_->Count(other_key.type, other_key.identifier), 1);
}

// 5. A persistent 503 ends in the dead letter queue; Replay delivers it once the EHR is back.
TEST_F(GatewayIntegrationTest, DeadLetterThenReplayDelivers) {
  GatewaySettings settings = Settings();
  settings.max_attempts = 3;
  Gateway* gateway = StartGateway(settings);
  ASSERT_NE(gateway, nullptr);
  ASSERT_TRUE(ehr_->SetFault(R"({"mode":"status","status":503,"count":-1})"));
  const v1::ClinicRecord record = Make(RecordKind::kQuestionnaire, "phq9-dead-1", "P-6");

  v1::PushResponse response;
  ASSERT_TRUE(gateway->Push(record, true, &response).ok()) << gateway->Describe();
  EXPECT_EQ(response.status(), v1::DEAD_LETTER) << gateway->Describe();
  v1::Transaction transaction;
  ASSERT_TRUE(gateway->GetTransaction(response.transaction_id(), &transaction).ok());
  EXPECT_EQ(transaction.status(), v1::DEAD_LETTER);
  ASSERT_EQ(transaction.attempts_size(), 3) << DescribeAttempts(transaction);
  for (const v1::DeliveryAttempt& attempt : transaction.attempts()) {
    EXPECT_EQ(attempt.http_status(), 503);
    EXPECT_EQ(attempt.outcome(), v1::DeliveryAttempt::RETRYABLE_ERROR);
  }
  EXPECT_EQ(gateway->Metric("fhirgw_dead_letters"), 1.0);
  const ResourceKey key = MainResourceOf(record);
  EXPECT_EQ(ehr_->Count(key.type, key.identifier), 0);

  ASSERT_TRUE(ehr_->ClearFaults());
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + 10s);
  v1::ReplayRequest replay;
  replay.add_transaction_ids(response.transaction_id());
  v1::ReplayResponse replayed;
  const grpc::Status status = gateway->stub().Replay(&context, replay, &replayed);
  ASSERT_TRUE(status.ok()) << status.error_message() << "\n" << gateway->Describe();
  EXPECT_EQ(replayed.replayed(), 1);
  EXPECT_THAT(replayed.transaction_ids(), ::testing::ElementsAre(response.transaction_id()));

  ASSERT_TRUE(gateway->WaitForStatus(response.transaction_id(), v1::DELIVERED, 20s, &transaction))
      << DescribeAttempts(transaction) << "\n"
      << gateway->Describe();
  ASSERT_EQ(transaction.attempts_size(), 4) << DescribeAttempts(transaction);
  EXPECT_EQ(transaction.attempts(3).number(), 4);
  EXPECT_EQ(transaction.attempts(3).http_status(), 200);
  EXPECT_EQ(transaction.attempts(3).outcome(), v1::DeliveryAttempt::SUCCESS);
  EXPECT_EQ(ehr_->Count(key.type, key.identifier), 1);
  EXPECT_EQ(gateway->Metric("fhirgw_dead_letters"), 0.0);
}

// 6. kill -9 in the middle of a stream of pushes: after a restart every acknowledged record is at
// the EHR exactly once.
TEST_F(GatewayIntegrationTest, KillNineLosesNoAcknowledgedRecord) {
  Gateway* gateway = StartGateway(Settings());
  ASSERT_NE(gateway, nullptr);
  // A slow EHR (100 ms an answer) keeps deliveries behind the pushes, so that the kill leaves
  // acknowledged records undelivered and attempts in flight.
  ASSERT_TRUE(ehr_->SetFault(R"({"mode":"delay","ms":100,"count":-1})"));
  std::vector<std::unique_ptr<Pusher>> pushers;
  pushers.push_back(std::make_unique<Pusher>(
      *gateway,
      [](int n) {
        return Make(kAllKinds[n % 4], "crash-" + std::to_string(n), "P-" + std::to_string(n % 10));
      },
      /*wait_for_delivery=*/false));
  const bool enough = WaitForAcks(pushers, 100, 30s);
  if (!enough) pushers[0]->Stop();
  ASSERT_TRUE(enough) << "fewer than 100 pushes acknowledged in 30 s\n" << gateway->Describe();

  const std::optional<double> backlog = gateway->Metric("fhirgw_queue_depth");
  gateway->Signal(SIGKILL);
  const SubprocessResult killed = gateway->Wait(10s);
  EXPECT_EQ(killed.term_signal, SIGKILL) << killed.Describe();
  pushers[0]->Join();
  const std::vector<Ack>& acks = pushers[0]->acks();
  EXPECT_NE(pushers[0]->failure_code(), grpc::StatusCode::OK)
      << "the pusher should have been stopped by the kill";
  ASSERT_TRUE(backlog.has_value());
  EXPECT_GT(*backlog, 0) << "the kill must leave undelivered records, or this test proves nothing";
  std::printf(
      "kill -9 after %zu acknowledged pushes, about %.0f undelivered (the next push failed: %s)\n",
      acks.size(), *backlog, pushers[0]->failure().c_str());
  ASSERT_TRUE(ehr_->ClearFaults());

  Gateway* restarted = StartGateway(Settings());
  ASSERT_NE(restarted, nullptr);
  std::vector<std::string> ids;
  for (const Ack& ack : acks) {
    v1::Transaction transaction;
    const grpc::Status status = restarted->GetTransaction(ack.transaction_id, &transaction);
    ASSERT_TRUE(status.ok()) << ack.record.record_id() << " was acknowledged as "
                             << ack.transaction_id
                             << " but is not in the log: " << status.error_message();
    EXPECT_EQ(transaction.record_id(), ack.record.record_id());
    ids.push_back(ack.transaction_id);
  }
  const std::vector<std::string> undelivered = WaitAllDelivered(*restarted, ids);
  EXPECT_THAT(undelivered, IsEmpty()) << Ids(undelivered) << restarted->Describe();

  std::set<std::string> patients;
  for (const Ack& ack : acks) {
    const ResourceKey key = MainResourceOf(ack.record);
    EXPECT_EQ(ehr_->Count(key.type, key.identifier), 1)
        << key.type << "?identifier=" << key.identifier;
    patients.insert(PatientIdentifierOf(ack.record));
  }
  for (const std::string& patient : patients) {
    EXPECT_EQ(ehr_->Count("Patient", patient), 1) << patient;
  }
  // The record in flight at the kill may or may not have been logged; either way nothing stays
  // queued.
  const auto deadline = std::chrono::steady_clock::now() + 20s;
  std::optional<double> depth;
  while (std::chrono::steady_clock::now() < deadline) {
    depth = restarted->Metric("fhirgw_queue_depth");
    if (depth == 0.0) break;
    std::this_thread::sleep_for(50ms);
  }
  EXPECT_EQ(depth, 0.0) << restarted->Describe();
}

// 7. SIGTERM with pushes in flight: exit 0 within the drain timeout, nothing acknowledged lost.
TEST_F(GatewayIntegrationTest, SigtermDrainsInFlightPushes) {
  GatewaySettings settings = Settings();
  settings.drain_timeout_ms = 5000;
  Gateway* gateway = StartGateway(settings);
  ASSERT_NE(gateway, nullptr);
  // A slow EHR (50 ms an answer), so that delivery attempts are in flight at the SIGTERM too.
  ASSERT_TRUE(ehr_->SetFault(R"({"mode":"delay","ms":50,"count":-1})"));
  std::vector<std::unique_ptr<Pusher>> pushers;
  for (int t = 0; t < 4; ++t) {
    pushers.push_back(std::make_unique<Pusher>(
        *gateway,
        [t](int n) {
          return Make(kAllKinds[(n + t) % 4],
                      "drain-" + std::to_string(t) + "-" + std::to_string(n),
                      "P-" + std::to_string((n + t) % 10));
        },
        /*wait_for_delivery=*/t % 2 == 0));
  }
  const bool enough = WaitForAcks(pushers, 60, 30s);
  if (!enough) {
    for (auto& pusher : pushers) pusher->Stop();
  }
  ASSERT_TRUE(enough) << "fewer than 60 pushes acknowledged in 30 s\n" << gateway->Describe();

  const auto signalled = std::chrono::steady_clock::now();
  gateway->Signal(SIGTERM);
  const SubprocessResult result = gateway->Wait(milliseconds(settings.drain_timeout_ms) + 10s);
  const auto took =
      std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - signalled);
  for (auto& pusher : pushers) pusher->Join();
  EXPECT_TRUE(result.ExitedWith(0)) << result.Describe() << gateway->Log();
  EXPECT_LE(took.count(), settings.drain_timeout_ms + 1000) << "exit within the drain timeout";
  const std::string log = gateway->Log();
  EXPECT_THAT(log, HasSubstr("draining"));
  EXPECT_THAT(log, HasSubstr("stopped"));

  std::vector<const Ack*> acks;
  for (const auto& pusher : pushers) {
    for (const Ack& ack : pusher->acks()) acks.push_back(&ack);
  }
  std::printf("SIGTERM after %zu acknowledged pushes; drained in %lld ms\n", acks.size(),
              static_cast<long long>(took.count()));
  ASSERT_TRUE(ehr_->ClearFaults());

  Gateway* restarted = StartGateway(Settings());
  ASSERT_NE(restarted, nullptr);
  std::vector<std::string> ids;
  for (const Ack* ack : acks) {
    v1::Transaction transaction;
    const grpc::Status status = restarted->GetTransaction(ack->transaction_id, &transaction);
    ASSERT_TRUE(status.ok()) << ack->record.record_id() << " was acknowledged as "
                             << ack->transaction_id
                             << " but is not in the log: " << status.error_message();
    EXPECT_EQ(transaction.record_id(), ack->record.record_id());
    ids.push_back(ack->transaction_id);
  }
  const std::vector<std::string> undelivered = WaitAllDelivered(*restarted, ids);
  EXPECT_THAT(undelivered, IsEmpty()) << Ids(undelivered) << restarted->Describe();
  for (const Ack* ack : acks) {
    const ResourceKey key = MainResourceOf(ack->record);
    EXPECT_EQ(ehr_->Count(key.type, key.identifier), 1)
        << key.type << "?identifier=" << key.identifier;
  }
}

// 7b. The drain timeout bounds the wait for a delivery attempt stuck on a hanging EHR too
// (config.proto: "How long SIGTERM waits for in-flight pushes and deliveries").
TEST_F(GatewayIntegrationTest, SigtermWithAHangingEhrExitsWithinTheDrainTimeout) {
  GatewaySettings settings = Settings();
  settings.drain_timeout_ms = 2000;
  settings.request_timeout_ms = 8000;  // an attempt gives up after 8 s in any case
  Gateway* gateway = StartGateway(settings);
  ASSERT_NE(gateway, nullptr);
  ASSERT_TRUE(ehr_->SetFault(R"({"mode":"delay","ms":60000,"count":-1})"));
  const v1::ClinicRecord record = Make(RecordKind::kEncounter, "enc-hanging-1", "P-1");
  v1::PushResponse response;
  ASSERT_TRUE(gateway->Push(record, false, &response).ok()) << gateway->Describe();
  // Wait until the attempt is at the EHR (and stuck there).
  const auto deadline = std::chrono::steady_clock::now() + 10s;
  while (ehr_->Requests() < 1 && std::chrono::steady_clock::now() < deadline) {
    std::this_thread::sleep_for(10ms);
  }
  ASSERT_GE(ehr_->Requests(), 1) << "no delivery attempt reached the EHR\n" << gateway->Describe();

  const auto signalled = std::chrono::steady_clock::now();
  gateway->Signal(SIGTERM);
  const SubprocessResult result = gateway->Wait(30s);
  const auto took =
      std::chrono::duration_cast<milliseconds>(std::chrono::steady_clock::now() - signalled);
  EXPECT_TRUE(result.ExitedWith(0)) << result.Describe() << gateway->Log();
  EXPECT_LE(took.count(), settings.drain_timeout_ms + 1500)
      << "SIGTERM took " << took.count() << " ms with drain_timeout_ms "
      << settings.drain_timeout_ms << "\n"
      << gateway->Log();

  // The interrupted attempt is sent again after a restart, and arrives once.
  ASSERT_TRUE(ehr_->ClearFaults());
  Gateway* restarted = StartGateway(Settings());
  ASSERT_NE(restarted, nullptr);
  v1::Transaction transaction;
  EXPECT_TRUE(restarted->WaitForStatus(response.transaction_id(), v1::DELIVERED, 20s, &transaction))
      << DescribeAttempts(transaction) << "\n"
      << restarted->Describe();
  const ResourceKey key = MainResourceOf(record);
  EXPECT_EQ(ehr_->Count(key.type, key.identifier), 1);
}

// 8. PushStream: one response per record, in order; a bad record does not stop the others.
TEST_F(GatewayIntegrationTest, PushStreamAnswersEveryRecordInOrder) {
  Gateway* gateway = StartGateway(Settings());
  ASSERT_NE(gateway, nullptr);
  constexpr int kRecords = 100;
  constexpr int kInvalid = 50;
  std::vector<v1::ClinicRecord> records;
  for (int n = 0; n < kRecords; ++n) {
    records.push_back(
        Make(kAllKinds[n % 4], "stream-" + std::to_string(n), "P-" + std::to_string(n % 10)));
  }
  records[kInvalid] = Make(RecordKind::kMedicationStatement, "stream-50", "P-0");
  records[kInvalid].mutable_medication_statement()->mutable_frequency()->set_period_unit(
      "fortnight");

  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + 60s);
  std::unique_ptr<grpc::ClientReaderWriter<v1::PushRequest, v1::PushResponse>> stream =
      gateway->stub().PushStream(&context);
  std::thread writer([&] {
    for (const v1::ClinicRecord& record : records) {
      v1::PushRequest request;
      *request.mutable_record() = record;
      if (!stream->Write(request)) break;
    }
    stream->WritesDone();
  });
  std::vector<v1::PushResponse> responses;
  v1::PushResponse response;
  while (stream->Read(&response)) responses.push_back(response);
  writer.join();
  const grpc::Status status = stream->Finish();
  ASSERT_TRUE(status.ok()) << status.error_message() << "\n" << gateway->Describe();

  ASSERT_EQ(responses.size(), records.size());
  std::vector<std::string> ids;
  for (int n = 0; n < kRecords; ++n) {
    EXPECT_EQ(responses[n].record_id(), records[n].record_id()) << "response " << n;
    if (n == kInvalid) {
      EXPECT_THAT(responses[n].transaction_id(), IsEmpty());
      ASSERT_THAT(responses[n].issues(), Not(IsEmpty()));
      std::string issues;
      for (const v1::Issue& issue : responses[n].issues()) {
        issues += issue.path() + ": " + issue.message() + "\n";
      }
      EXPECT_THAT(issues, HasSubstr("medication_statement.frequency.period_unit"));
      continue;
    }
    EXPECT_THAT(responses[n].transaction_id(), Not(IsEmpty())) << "response " << n;
    EXPECT_THAT(responses[n].issues(), IsEmpty()) << "response " << n;
    EXPECT_EQ(responses[n].version(), 1);
    ids.push_back(responses[n].transaction_id());
  }
  const std::vector<std::string> undelivered = WaitAllDelivered(*gateway, ids);
  EXPECT_THAT(undelivered, IsEmpty()) << Ids(undelivered) << gateway->Describe();
  for (int n = 0; n < kRecords; ++n) {
    const ResourceKey key = MainResourceOf(records[n]);
    EXPECT_EQ(ehr_->Count(key.type, key.identifier), n == kInvalid ? 0 : 1) << key.identifier;
  }
}

// 9. grpc.health.v1, /healthz, /readyz (following the EHR) and /metrics.
TEST_F(GatewayIntegrationTest, HealthReadinessAndMetrics) {
  std::string error;
  std::unique_ptr<FhirServer> own_ehr = FhirServer::Start(&error);
  ASSERT_NE(own_ehr, nullptr) << error;
  GatewaySettings settings = Settings();
  settings.ehr_url = own_ehr->base_url();
  Gateway* gateway = StartGateway(settings);
  ASSERT_NE(gateway, nullptr);

  // grpc.health.v1.Health/Check: no health stubs are generated here, but HealthCheckRequest{} is
  // empty and HealthCheckResponse{status = 1} has the wire form of Int32Value{value = 1}.
  {
    grpc::TemplatedGenericStub<google::protobuf::Empty, google::protobuf::Int32Value> health(
        gateway->channel());
    grpc::ClientContext context;
    context.set_deadline(std::chrono::system_clock::now() + 10s);
    google::protobuf::Empty request;
    google::protobuf::Int32Value answer;
    std::promise<grpc::Status> done;
    health.UnaryCall(&context, "/grpc.health.v1.Health/Check", grpc::StubOptions(), &request,
                     &answer, [&done](grpc::Status status) { done.set_value(status); });
    const grpc::Status status = done.get_future().get();
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_EQ(answer.value(), 1) << "HealthCheckResponse.status SERVING";
  }

  HttpAnswer healthz = gateway->Http("/healthz");
  EXPECT_EQ(healthz.status, 200) << healthz.body;
  HttpAnswer readyz = gateway->Http("/readyz");
  EXPECT_EQ(readyz.status, 200) << readyz.body;

  for (int i = 0; i < 3; ++i) {
    v1::PushResponse response;
    ASSERT_TRUE(gateway
                    ->Push(Make(RecordKind::kInfusion, "inf-metrics-" + std::to_string(i), "P-7"),
                           true, &response)
                    .ok())
        << gateway->Describe();
    EXPECT_EQ(response.status(), v1::DELIVERED) << gateway->Describe();
  }
  v1::PushResponse duplicate;
  ASSERT_TRUE(
      gateway->Push(Make(RecordKind::kInfusion, "inf-metrics-0", "P-7"), false, &duplicate).ok());
  EXPECT_TRUE(duplicate.duplicate());
  EXPECT_EQ(gateway->Metric(R"(fhirgw_pushes_total{kind="infusion",outcome="accepted"})"), 3.0);
  EXPECT_EQ(gateway->Metric(R"(fhirgw_pushes_total{kind="infusion",outcome="duplicate"})"), 1.0);
  EXPECT_EQ(
      gateway->Metric(R"(fhirgw_delivery_attempts_total{destination="ehr",outcome="success"})"),
      3.0);
  EXPECT_EQ(gateway->Metric("fhirgw_queue_depth"), 0.0);
  EXPECT_EQ(gateway->Metric("fhirgw_push_latency_seconds_count"), 4.0);

  const SubprocessResult stopped = own_ehr->Stop();
  EXPECT_TRUE(stopped.ExitedWith(0)) << stopped.Describe();
  readyz = gateway->Http("/readyz");
  EXPECT_EQ(readyz.status, 503) << readyz.body;
  EXPECT_THAT(readyz.body, HasSubstr("destinations"));
  healthz = gateway->Http("/healthz");
  EXPECT_EQ(healthz.status, 200) << "liveness does not depend on the EHR";

  v1::PushResponse queued;
  ASSERT_TRUE(
      gateway->Push(Make(RecordKind::kInfusion, "inf-metrics-queued", "P-7"), false, &queued).ok())
      << gateway->Describe();
  EXPECT_EQ(gateway->Metric("fhirgw_queue_depth"), 1.0);
  EXPECT_EQ(gateway->Metric(R"(fhirgw_pushes_total{kind="infusion",outcome="accepted"})"), 4.0);
  std::optional<double> age = gateway->Metric("fhirgw_oldest_undelivered_age_seconds");
  ASSERT_TRUE(age.has_value());
  EXPECT_GE(*age, 0.0);
}

// 10. Bad input: INVALID_ARGUMENT naming every bad field path, and nothing logged or sent.
TEST_F(GatewayIntegrationTest, InvalidRecordNamesEveryBadFieldAndTakesNoVersion) {
  Gateway* gateway = StartGateway(Settings());
  ASSERT_NE(gateway, nullptr);
  const v1::ClinicRecord valid = Make(RecordKind::kInfusion, "inf-bad-1", "P-8");
  v1::ClinicRecord bad = valid;
  bad.mutable_infusion()->mutable_vitals(0)->set_spo2_percent(140);
  bad.mutable_infusion()->mutable_vitals(1)->set_heart_rate_bpm(300);
  v1::PushResponse response;
  grpc::Status status = gateway->Push(bad, false, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("infusion.vitals[0].spo2_percent: 140"));
  EXPECT_THAT(status.error_message(), HasSubstr("infusion.vitals[1].heart_rate_bpm: 300"));

  v1::ClinicRecord missing = Make(RecordKind::kMedicationStatement, "", "");
  status = gateway->Push(missing, false, &response);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("record_id"));
  EXPECT_THAT(status.error_message(), HasSubstr("patient.clinic_patient_id"));

  EXPECT_EQ(gateway->Metric(R"(fhirgw_pushes_total{kind="infusion",outcome="invalid"})"), 1.0);
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(ehr_->Requests(), 0) << "nothing is sent for invalid input";

  // The rejection is logged (for the auditors) but takes no version: the valid record with the
  // same id is version 1, not a second version.
  ASSERT_TRUE(gateway->Push(valid, true, &response).ok()) << gateway->Describe();
  EXPECT_EQ(response.version(), 1);
  EXPECT_FALSE(response.duplicate());
  EXPECT_EQ(response.status(), v1::DELIVERED) << gateway->Describe();
}

// 11. Safety signals survive rejection (issue #13): a PHQ-9 with item 9 > 0 that is rejected for
// another reason (item 3 unanswered) still reaches the clinic's client as a SUICIDAL_IDEATION
// alert, inside the gRPC error details (grpc-status-details-bin: an RpcStatus holding an
// AlertList).
TEST_F(GatewayIntegrationTest, ARejectedRecordStillCarriesItsSuicidalIdeationAlert) {
  Gateway* gateway = StartGateway(Settings());
  ASSERT_NE(gateway, nullptr);
  absl::StatusOr<v1::ClinicRecord> record = mappers::ParseRecordJson(ReadFile(
      SourcePath("tests/golden/questionnaire/invalid/item9-positive-but-rejected.record.json")));
  ASSERT_TRUE(record.ok()) << record.status();
  v1::PushResponse response;
  const grpc::Status status = gateway->Push(*record, false, &response);
  ASSERT_EQ(status.error_code(), grpc::StatusCode::INVALID_ARGUMENT) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("item 3 of PHQ-9 is not answered"));
  v1::RpcStatus details;
  ASSERT_TRUE(details.ParseFromString(status.error_details()))
      << "no parsable error details on the rejection";
  EXPECT_EQ(details.code(), static_cast<int>(grpc::StatusCode::INVALID_ARGUMENT));
  std::vector<v1::Alert> alerts;
  for (const google::protobuf::Any& any : details.details()) {
    v1::AlertList list;
    if (any.UnpackTo(&list))
      alerts.insert(alerts.end(), list.alerts().begin(), list.alerts().end());
  }
  ASSERT_EQ(alerts.size(), 1u) << details.DebugString();
  EXPECT_EQ(alerts[0].kind(), v1::Alert::SUICIDAL_IDEATION);
  std::this_thread::sleep_for(300ms);
  EXPECT_EQ(ehr_->Requests(), 0) << "nothing is sent for a rejected record";
}

// 12. A correction resolves the suicidal-ideation Flag at the EHR (issue #13): version 1 of a
// PHQ-9 answers item 9 with 2 and raises a Flag; version 2 answers it with 0, and the same Flag
// (one resource, updated in place) reads back from the FHIR server inactive, with period.end.
TEST_F(GatewayIntegrationTest, ACorrectionWithItem9ZeroResolvesTheFlagAtTheEhr) {
  Gateway* gateway = StartGateway(Settings());
  ASSERT_NE(gateway, nullptr);
  const auto with_item9 = [](v1::ClinicRecord record, int value) {
    for (v1::Answer& answer : *record.mutable_questionnaire()->mutable_answers()) {
      if (answer.item() == 9) answer.set_value(value);
    }
    record.mutable_questionnaire()->clear_reported_total();
    return record;
  };
  const v1::ClinicRecord positive =
      with_item9(Make(RecordKind::kQuestionnaire, "phq9-flag-1", "P-FLAG"), 2);
  const std::string flag =
      "urn:fhirgw:" + positive.clinic_id() + ":flag|phq9-flag-1/suicidal-ideation";
  // Reads the Flag back with a FHIR search, as an EHR user would see it.
  const auto read_flag = [&flag]() {
    std::string query = flag;
    query.replace(query.find('|'), 1, "%7C");
    const HttpAnswer answer = HttpGet(ehr_->host_port(), "/fhir/Flag?identifier=" + query);
    EXPECT_EQ(answer.status, 200) << answer.body;
    rapidjson::Document bundle = ParseJson(answer.body);
    if (!bundle.IsObject() || !bundle.HasMember("entry") || bundle["entry"].Size() != 1) {
      ADD_FAILURE() << "not one Flag " << flag << ": " << answer.body;
      bundle.SetNull();
      return bundle;
    }
    rapidjson::Document resource;
    resource.CopyFrom(bundle["entry"][0]["resource"], resource.GetAllocator());
    return resource;
  };

  v1::PushResponse response;
  ASSERT_TRUE(gateway->Push(positive, true, &response).ok()) << gateway->Describe();
  ASSERT_EQ(response.status(), v1::DELIVERED) << gateway->Describe();
  ASSERT_EQ(response.alerts_size(), 1);
  EXPECT_EQ(response.alerts(0).kind(), v1::Alert::SUICIDAL_IDEATION);
  const rapidjson::Document raised = read_flag();
  ASSERT_TRUE(raised.IsObject());
  EXPECT_STREQ(raised["status"].GetString(), "active");
  EXPECT_FALSE(raised["period"].HasMember("end"));

  v1::ClinicRecord correction = with_item9(positive, 0);
  correction.mutable_recorded_at()->set_seconds(positive.recorded_at().seconds() + 3600);
  ASSERT_TRUE(gateway->Push(correction, true, &response).ok()) << gateway->Describe();
  ASSERT_EQ(response.status(), v1::DELIVERED) << gateway->Describe();
  EXPECT_EQ(response.version(), 2);
  EXPECT_EQ(response.alerts_size(), 0);
  const rapidjson::Document resolved = read_flag();
  ASSERT_TRUE(resolved.IsObject());
  EXPECT_STREQ(resolved["status"].GetString(), "inactive");
  ASSERT_TRUE(resolved["period"].HasMember("end"));
  // When the correction was recorded (the server may add milliseconds).
  EXPECT_THAT(std::string(resolved["period"]["end"].GetString()),
              ::testing::StartsWith(absl::FormatTime(
                  "%Y-%m-%dT%H:%M:%S", absl::FromUnixSeconds(correction.recorded_at().seconds()),
                  absl::UTCTimeZone())));
  EXPECT_STREQ(resolved["period"]["start"].GetString(), raised["period"]["start"].GetString());
  EXPECT_STREQ(resolved["id"].GetString(), raised["id"].GetString()) << "not the same Flag";
  EXPECT_EQ(ehr_->Count("Flag", flag), 1);
  EXPECT_EQ(ehr_->CountAll("Flag"), 1);
}

}  // namespace
}  // namespace fhirgw::testing
