// Several `fhirgw serve` replicas on one PostgreSQL behave like one gateway (issue "Scale out: a
// PostgreSQL store, several gateway replicas"). Real parts only: a PostgreSQL server the test
// starts itself (tests/testing/pg_server.h, fsync on), the loopback FHIR R4 server (Node) as the
// EHR, and three gateway processes, each with its own ports and data directory and the same `store
// { postgres { dsn lease_ms } }`.
//
// 1. 300 records pushed concurrently to all three replicas; one replica is SIGKILLed mid-load
//    (pushes it did not answer are resent to a survivor, as a clinic would). Then: every
//    acknowledged record is delivered, and exactly once at the EHR (one resource per identifier);
//    every transaction has exactly one successful attempt and the EHR received at most the killed
//    replica's in-flight deliveries twice; the survivors finished the killed replica's work once
//    its leases expired (a short lease_ms); VerifyLog passes; a resend to another replica is a
//    duplicate of the same transaction; wait_for_delivery answers whichever replica delivers.
// 2. A WatchInbound cursor obtained from one replica resumes on another without gaps or
//    duplicates, and a stream is woken by hospital data logged through another replica.
//
// The test skips only when PostgreSQL is not installed (scripts/deps.sh installs it).
#include <signal.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include "fhirgw/v1/audit.grpc.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"
#include "tests/testing/pg_server.h"

namespace fhirgw::testing {
namespace {

using namespace std::chrono_literals;
using std::chrono::milliseconds;

constexpr int kReplicas = 3;
constexpr int kRecords = 300;
constexpr int kPushThreads = 6;
constexpr int kPatients = 40;
constexpr int kConcurrency = 4;  // delivery workers per replica
// Short, so that the survivors take the killed replica's deliveries over quickly.
constexpr int kLeaseMs = 1500;

constexpr char kFhirJson[] = "application/fhir+json";
constexpr char kMrnSystem[] = "urn:oid:2.16.840.1.113883.3.4711.1";
constexpr char kStatementSystem[] = "urn:oid:2.16.840.1.113883.3.4711.8";

std::string MedicationStatementJson(const std::string& value, const std::string& mrn) {
  return std::string(R"({"resourceType":"MedicationStatement","identifier":[{"system":")") +
         kStatementSystem + R"(","value":")" + value +
         R"("}],"status":"active","medicationCodeableConcept":{"coding":[{"system":)" +
         R"("http://www.nlm.nih.gov/research/umls/rxnorm","code":"312938",)" +
         R"("display":"sertraline 50 MG Oral Tablet"}]},"subject":{"identifier":{"system":")" +
         kMrnSystem + R"(","value":")" + mrn + R"("}},"effectiveDateTime":"2025-11"})";
}

class ReplicasIntegrationTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!PgServer::BinariesAvailable()) GTEST_SKIP() << PgServer::MissingMessage();
    root_ = MakeTempDir("fhirgw-replicas-it-");
    ASSERT_FALSE(root_.empty());
    std::string error;
    PgServerOptions durable;
    durable.fsync = true;
    pg_ = PgServer::Start(durable, &error);
    ASSERT_NE(pg_, nullptr) << error;
    dsn_ = pg_->CreateDatabase("fhirgw", &error);
    ASSERT_FALSE(dsn_.empty()) << error;
    ehr_ = FhirServer::Start(&error);
    ASSERT_NE(ehr_, nullptr) << error;
    ASSERT_TRUE(ehr_->Reset());
    records_ = std::make_unique<RecordFactory>(&error);
    ASSERT_TRUE(error.empty()) << error;
  }

  void TearDown() override {
    gateways_.clear();  // kills replicas still running
    if (ehr_ != nullptr) ehr_->Stop();
    if (HasFailure() && pg_ != nullptr) {
      std::printf("PostgreSQL log:\n%s\n", pg_->Log().c_str());
    }
    RemoveUnlessFailed(root_);
  }

  // Starts replica `n` (1-based) on the shared database.
  Gateway* StartReplica(int n) {
    GatewaySettings settings;
    settings.ehr_url = ehr_->base_url();
    settings.data_dir = root_ + "/data" + std::to_string(n);
    settings.concurrency = kConcurrency;
    settings.max_attempts = 20;
    settings.initial_backoff_ms = 50;
    settings.max_backoff_ms = 200;
    // The drain ends at this deadline at the latest (gRPC's shutdown waits for it while the
    // test's channel is open).
    settings.drain_timeout_ms = 3000;
    settings.extra_config =
        "store { postgres { dsn: \"" + dsn_ + "\" lease_ms: " + std::to_string(kLeaseMs) + " } }";
    std::string error;
    std::unique_ptr<Gateway> gateway =
        Gateway::Start(settings, root_ + "/replica" + std::to_string(n), &error);
    if (gateway == nullptr) {
      ADD_FAILURE() << error;
      return nullptr;
    }
    gateways_.push_back(std::move(gateway));
    return gateways_.back().get();
  }

  std::string Logs() {
    std::string text;
    for (auto& gateway : gateways_) text += gateway->Describe() + "\n";
    return text;
  }

  std::unique_ptr<PgServer> pg_;
  std::string dsn_;
  std::unique_ptr<FhirServer> ehr_;
  std::unique_ptr<RecordFactory> records_;
  std::string root_;
  std::vector<std::unique_ptr<Gateway>> gateways_;
};

struct Acked {
  std::string transaction_id;
  int replica = 0;  // 0-based index of the replica that answered
  bool duplicate = false;
};

TEST_F(ReplicasIntegrationTest, ThreeReplicasShareTheWorkAndSurviveAKilledReplica) {
  std::vector<Gateway*> replicas;
  for (int n = 1; n <= kReplicas; ++n) {
    replicas.push_back(StartReplica(n));
    ASSERT_NE(replicas.back(), nullptr);
  }
  // Each delivery takes a little while, so that the killed replica has deliveries in flight.
  ASSERT_TRUE(ehr_->SetFault(R"({"mode":"delay","ms":25,"count":-1})"));

  std::vector<v1::ClinicRecord> records;
  for (int i = 0; i < kRecords; ++i) {
    records.push_back(records_->Make(kAllKinds[i % 4], "rep-" + std::to_string(i),
                                     "P-" + std::to_string(i % kPatients)));
  }

  // Push everything from several threads, round robin over the replicas. A push the killed
  // replica did not answer goes to the next replica (a clinic's retry).
  const int killed = kReplicas - 1;
  std::atomic<bool> killed_yet{false};
  std::atomic<int> acked_count{0};
  std::mutex mu;
  std::map<int, Acked> acked;         // guarded by mu; by record index
  std::vector<std::string> failures;  // guarded by mu
  std::vector<std::thread> pushers;
  for (int t = 0; t < kPushThreads; ++t) {
    pushers.emplace_back([&, t] {
      for (int i = t; i < kRecords; i += kPushThreads) {
        bool done = false;
        for (int attempt = 0; attempt < 2 * kReplicas && !done; ++attempt) {
          const int r = (i + attempt) % kReplicas;
          if (r == killed && killed_yet) continue;
          v1::PushResponse response;
          const grpc::Status status = replicas[r]->Push(records[i], false, &response, 10s);
          if (status.ok() && !response.transaction_id().empty()) {
            std::lock_guard<std::mutex> lock(mu);
            acked[i] = {response.transaction_id(), r, response.duplicate()};
            ++acked_count;
            done = true;
          }
        }
        if (!done) {
          std::lock_guard<std::mutex> lock(mu);
          failures.push_back(records[i].record_id());
        }
      }
    });
  }
  // SIGKILL one replica a third of the way through the load.
  const auto kill_deadline = std::chrono::steady_clock::now() + 120s;
  while (acked_count < kRecords / 3 && std::chrono::steady_clock::now() < kill_deadline) {
    std::this_thread::sleep_for(1ms);
  }
  killed_yet = true;
  replicas[killed]->Signal(SIGKILL);
  const int acked_at_kill = acked_count;
  for (std::thread& t : pushers) t.join();
  replicas[killed]->Wait(30s);
  ASSERT_THAT(failures, ::testing::IsEmpty()) << Logs();
  ASSERT_EQ(acked.size(), static_cast<size_t>(kRecords));
  EXPECT_LT(acked_at_kill, kRecords) << "the replica was killed after the load had finished";
  std::map<int, int> by_replica;
  for (const auto& [i, a] : acked) ++by_replica[a.replica];
  EXPECT_GT(by_replica[0], 0);
  EXPECT_GT(by_replica[1], 0);
  EXPECT_GT(by_replica[killed], 0) << "the killed replica acknowledged nothing before it died";

  // Every acknowledged record is delivered; the survivors finish the killed replica's work.
  Gateway& survivor = *replicas[0];
  int taken_over = 0;  // the killed replica's deliveries in flight, recovered by a survivor
  for (const auto& [i, a] : acked) {
    v1::Transaction transaction;
    ASSERT_TRUE(survivor.WaitForStatus(a.transaction_id, v1::DELIVERED, 120s, &transaction))
        << records[i].record_id() << " (acknowledged by replica " << a.replica + 1
        << "): " << DescribeAttempts(transaction) << "\n"
        << Logs();
    int successes = 0;
    int previous_number = 0;
    for (const v1::DeliveryAttempt& attempt : transaction.attempts()) {
      successes += attempt.outcome() == v1::DeliveryAttempt::SUCCESS ? 1 : 0;
      EXPECT_GT(attempt.number(), previous_number) << DescribeAttempts(transaction);
      previous_number = attempt.number();
    }
    EXPECT_EQ(successes, 1) << records[i].record_id() << ": " << DescribeAttempts(transaction);
    if (transaction.attempts_size() > 0 && transaction.attempts(0).number() > 1) ++taken_over;
  }
  std::printf("%d transactions were taken over from the killed replica (lease expired)\n",
              taken_over);
  // The EHR is slow (25 ms a request) and the queue long at the kill: the killed replica had
  // deliveries in flight, and they were finished by the survivors once its leases expired.
  EXPECT_GE(taken_over, 1) << Logs();
  ASSERT_TRUE(ehr_->ClearFaults());

  // Exactly once at the EHR: one resource per record identifier.
  for (int i = 0; i < kRecords; ++i) {
    const ResourceKey key = MainResourceOf(records[i]);
    EXPECT_EQ(ehr_->Count(key.type, key.identifier), 1) << records[i].record_id();
  }
  // The EHR saw each transaction Bundle once, except those the killed replica had in flight
  // (sent again by a survivor after the lease expired; conditional writes made that harmless).
  rapidjson::Document stats = ehr_->Stats();
  ASSERT_TRUE(stats.IsObject() && stats.HasMember("byMethod") && stats["byMethod"].IsObject());
  const int64_t posts =
      stats["byMethod"].HasMember("POST") ? stats["byMethod"]["POST"].GetInt64() : 0;
  EXPECT_GE(posts, kRecords);
  EXPECT_LE(posts, kRecords + kConcurrency) << "more resends than the killed replica had in flight";

  // One chain, intact, whichever replica checks it.
  std::unique_ptr<v1::AuditService::Stub> audit = v1::AuditService::NewStub(replicas[1]->channel());
  grpc::ClientContext verify_context;
  verify_context.set_deadline(std::chrono::system_clock::now() + 60s);
  v1::VerifyLogResponse verified;
  const grpc::Status verify_status =
      audit->VerifyLog(&verify_context, v1::VerifyLogRequest(), &verified);
  ASSERT_TRUE(verify_status.ok()) << verify_status.error_message();
  EXPECT_TRUE(verified.ok()) << verified.message();
  EXPECT_GE(verified.entries_checked(), 2 * kRecords);

  // An idempotent resend to another replica returns the original transaction.
  for (int i : {0, 1, 2, 5}) {
    const Acked& original = acked[i];
    const int other = original.replica == 0 ? 1 : 0;
    v1::PushResponse response;
    const grpc::Status status = replicas[other]->Push(records[i], false, &response);
    ASSERT_TRUE(status.ok()) << status.error_message();
    EXPECT_TRUE(response.duplicate()) << records[i].record_id();
    EXPECT_EQ(response.transaction_id(), original.transaction_id);
    EXPECT_EQ(response.status(), v1::DELIVERED);
  }

  // wait_for_delivery answers whichever replica delivers (LISTEN/NOTIFY across replicas).
  for (int i = 0; i < 6; ++i) {
    v1::PushResponse response;
    const grpc::Status status =
        replicas[0]->Push(records_->Make(RecordKind::kQuestionnaire, "wait-" + std::to_string(i),
                                         "W-" + std::to_string(i)),
                          true, &response, 30s);
    ASSERT_TRUE(status.ok()) << status.error_message() << "\n" << Logs();
    EXPECT_EQ(response.status(), v1::DELIVERED);
  }

  // The survivors drain cleanly.
  for (int r = 0; r < kReplicas; ++r) {
    if (r == killed) continue;
    replicas[r]->Signal(SIGTERM);
    SubprocessResult exit = replicas[r]->Wait(30s);
    EXPECT_TRUE(exit.ExitedWith(0)) << exit.Describe();
  }
}

TEST_F(ReplicasIntegrationTest, AWatchInboundCursorResumesOnAnotherReplica) {
  Gateway* first = StartReplica(1);
  ASSERT_NE(first, nullptr);
  Gateway* second = StartReplica(2);
  ASSERT_NE(second, nullptr);
  // The clinic knows the patient (MRN-PA-1) once its record is logged, whichever replica took it.
  v1::ClinicRecord record = records_->Make(RecordKind::kMedicationStatement, "ms-1", "PA-1");
  record.set_clinic_id("clinic-r");
  v1::PushResponse pushed;
  ASSERT_TRUE(first->Push(record, false, &pushed).ok());

  auto post = [&](Gateway& gateway, const std::string& value) {
    const HttpAnswer answer = HttpSend(gateway.http_address(), "POST", "/fhir/MedicationStatement",
                                       MedicationStatementJson(value, "MRN-PA-1"), kFhirJson);
    EXPECT_EQ(answer.status, 201) << answer.body << "\n" << gateway.Describe();
  };

  std::vector<int64_t> cursors;
  {
    // A stream on replica 1 is woken by data logged through replica 2.
    InboundStream stream(*first, "clinic-r", "");
    post(*second, "HS-1");
    std::optional<v1::InboundEvent> event = stream.Next(15s);
    ASSERT_TRUE(event.has_value()) << stream.State() << "\n" << Logs();
    EXPECT_EQ(event->record().clinic_id(), "clinic-r");
    EXPECT_THAT(event->record().record_id(), ::testing::HasSubstr("HS-1"));
    cursors.push_back(std::stoll(event->cursor()));
  }
  // Two more while the clinic is away, one through each replica.
  post(*first, "HS-2");
  post(*second, "HS-3");

  // The clinic reconnects to replica 2 with the cursor from replica 1: exactly the two it missed,
  // in order, then a live event logged through replica 1.
  InboundStream resumed(*second, "clinic-r", std::to_string(cursors[0]));
  for (const char* expected : {"HS-2", "HS-3"}) {
    std::optional<v1::InboundEvent> event = resumed.Next(15s);
    ASSERT_TRUE(event.has_value()) << resumed.State() << "\n" << Logs();
    EXPECT_THAT(event->record().record_id(), ::testing::HasSubstr(expected));
    cursors.push_back(std::stoll(event->cursor()));
  }
  post(*first, "HS-4");
  std::optional<v1::InboundEvent> live = resumed.Next(15s);
  ASSERT_TRUE(live.has_value()) << resumed.State() << "\n" << Logs();
  EXPECT_THAT(live->record().record_id(), ::testing::HasSubstr("HS-4"));
  cursors.push_back(std::stoll(live->cursor()));
  EXPECT_FALSE(resumed.Next(500ms).has_value()) << "an event was delivered twice";
  // Cursors increase in log order.
  for (size_t i = 1; i < cursors.size(); ++i) EXPECT_GT(cursors[i], cursors[i - 1]);
}

}  // namespace
}  // namespace fhirgw::testing
