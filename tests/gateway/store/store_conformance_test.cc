// The Store contract (store.h), run against both backends: every TEST_P body runs once on SQLite
// (sqlite_store.h) and once on PostgreSQL (postgres_store.h, on a throwaway server from
// tests/testing/pg_server.h, one fresh database per test). Covered: append, dedupe and versions;
// claim order and the patient rule; complete, retry, replay and recovery; inbound listing with
// cursors; patient keys and state; query filters and paging; the hash chain (verify, tamper
// detection, signed heads); purge; encryption at rest.
//
// The PostgresReplicas tests then open several stores on one database, as several gateway
// replicas do: no transaction is claimed twice, the patient rule holds across replicas, leases
// expire and are taken over, resends dedupe across replicas, the chain stays one chain, and
// LISTEN/NOTIFY reaches the other replicas.
//
// The PostgreSQL runs skip (with the reason) only when PostgreSQL is not installed.
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <filesystem>
#include <fstream>
#include <future>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "fhirgw/v1/gateway.pb.h"
#include "gateway/config/config.h"
#include "gateway/security/crypto.h"
#include "gateway/store/postgres/postgres_store.h"
#include "gateway/store/sqlite/sqlite_store.h"
#include "gateway/store/store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/pg_server.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/store_backend.h"
#include "tests/testing/store_entries.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/test_certs.h"

namespace fhirgw::gateway {
namespace {

using ::fhirgw::testing::AppendAllAndWait;
using ::fhirgw::testing::AppendAndWait;
using ::fhirgw::testing::Backend;
using ::fhirgw::testing::BackendName;
using ::fhirgw::testing::kCallbackTimeout;
using ::fhirgw::testing::MakeAlert;
using ::fhirgw::testing::MakeAttempt;
using ::fhirgw::testing::MakeEntry;
using ::fhirgw::testing::MakeInbound;
using ::fhirgw::testing::MakeRef;
using ::fhirgw::testing::PgServer;
using ::fhirgw::testing::SharedPgServer;
using ::fhirgw::testing::StatusIs;
using ::fhirgw::testing::TempDir;
using ::fhirgw::testing::WriteEd25519Key;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::UnorderedElementsAre;

// Far enough in the future that nothing received "now" in these tests is due after it.
constexpr int64_t kLater = 4'000'000'000'000;

int64_t Ms(const google::protobuf::Timestamp& t) {
  return t.seconds() * 1000 + t.nanos() / 1000000;
}

// How a test opens its store; the same settings mean the same thing on both backends.
struct Settings {
  int max_batch = 256;
  int max_batch_delay_us = 0;
  std::shared_ptr<const PayloadCipher> cipher;
  std::shared_ptr<const HeadSigner> signer;
  // PostgreSQL only.
  int lease_ms = 30000;
  bool reclaim = false;
  std::string replica_id;
  std::function<void(const std::string&)> on_inbound;
  std::function<void(const std::string&, v1::TransactionStatus)> on_status;
};

// One store per test, on SQLite or on a fresh PostgreSQL database, with the helpers every test
// body uses.
class StoreTestBase {
 protected:
  // Prepares the backend; false (with the test skipped or failed) when it is not available.
  void PrepareBackend(Backend backend) {
    backend_ = backend;
    ASSERT_FALSE(dir_.path().empty());
    if (backend == Backend::kPostgres) {
      if (!PgServer::BinariesAvailable()) GTEST_SKIP() << PgServer::MissingMessage();
      std::string error;
      pg_ = SharedPgServer(&error);
      ASSERT_NE(pg_, nullptr) << error;
      static int databases = 0;
      database_ = absl::StrCat("conformance_", ++databases);
      dsn_ = pg_->CreateDatabase(database_, &error);
      ASSERT_FALSE(dsn_.empty()) << error;
    }
    db_path_ = dir_.path() + "/log/fhirgw.db";
    heads_path_ = backend == Backend::kSqlite ? db_path_ + ".heads" : dir_.path() + "/pg.heads";
    ready_ = true;
  }

  absl::StatusOr<std::unique_ptr<Store>> OpenStore(const Settings& s) {
    if (backend_ == Backend::kSqlite) {
      SqliteOptions options;
      options.path = db_path_;
      options.max_batch = s.max_batch;
      options.max_batch_delay_us = s.max_batch_delay_us;
      options.cipher = s.cipher;
      options.signer = s.signer;
      return OpenSqliteStore(options);
    }
    PostgresOptions options;
    options.dsn = dsn_;
    options.max_batch = s.max_batch;
    options.max_batch_delay_us = s.max_batch_delay_us;
    options.cipher = s.cipher;
    options.signer = s.signer;
    options.heads_file = heads_path_;
    options.lease_ms = s.lease_ms;
    options.reclaim_expired_leases = s.reclaim;
    options.replica_id = s.replica_id;
    options.on_inbound = s.on_inbound;
    options.on_status = s.on_status;
    return OpenPostgresStore(options);
  }

  void Open(const Settings& s = Settings()) {
    store_.reset();
    absl::StatusOr<std::unique_ptr<Store>> store = OpenStore(s);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  // Runs `sql` on the database behind the store's back (to look, or to tamper); returns the first
  // column of the first row as text.
  std::string Raw(const std::string& sql) {
    if (backend_ == Backend::kPostgres) {
      std::string error;
      std::string value = pg_->Query(database_, sql, &error);
      EXPECT_EQ(error, "");
      return value;
    }
    sqlite3* db = nullptr;
    if (sqlite3_open_v2(db_path_.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << "cannot open " << db_path_;
      sqlite3_close(db);
      return "";
    }
    sqlite3_busy_timeout(db, 10000);
    sqlite3_stmt* stmt = nullptr;
    std::string value;
    if (sqlite3_prepare_v2(db, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db);
    } else {
      const int rc = sqlite3_step(stmt);
      if (rc == SQLITE_ROW) {
        const unsigned char* text = sqlite3_column_text(stmt, 0);
        if (text != nullptr) value = reinterpret_cast<const char*>(text);
      } else if (rc != SQLITE_DONE) {
        ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db);
      }
    }
    sqlite3_finalize(stmt);
    sqlite3_close(db);
    return value;
  }
  int64_t RawInt(const std::string& sql) { return std::stoll("0" + Raw(sql)); }

  AppendResult Append(NewEntry entry, Store* store = nullptr) {
    absl::StatusOr<AppendResult> result = AppendAndWait(store ? *store : *store_, std::move(entry));
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *std::move(result) : AppendResult{};
  }

  std::optional<DeliveryTask> Claim(absl::string_view destination, int64_t now_ms,
                                    Store* store = nullptr) {
    absl::StatusOr<std::optional<DeliveryTask>> task =
        (store ? *store : *store_).ClaimNext(destination, now_ms);
    EXPECT_TRUE(task.ok()) << task.status();
    return task.ok() ? *task : std::nullopt;
  }

  std::string ClaimId(int64_t now_ms) {
    std::optional<DeliveryTask> task = Claim("ehr", now_ms);
    return task ? task->transaction_id : "";
  }

  void Complete(const AttemptResult& result, Store* store = nullptr) {
    absl::Status status = (store ? *store : *store_).CompleteAttempt(result);
    EXPECT_TRUE(status.ok()) << status;
  }

  v1::Transaction Get(absl::string_view id, bool with_payload = false) {
    absl::StatusOr<v1::Transaction> tx = store_->Get(id, with_payload);
    EXPECT_TRUE(tx.ok()) << tx.status();
    return tx.ok() ? *std::move(tx) : v1::Transaction();
  }

  v1::VerifyLogResponse Verify() {
    absl::StatusOr<v1::VerifyLogResponse> response = store_->Verify();
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? *response : v1::VerifyLogResponse();
  }

  // Appends an entry and takes it through two failed attempts to DEAD_LETTER; returns its id.
  std::string MakeDeadLetter(absl::string_view clinic, absl::string_view record_id) {
    const std::string id =
        Append(MakeEntry(clinic, record_id, absl::StrCat("p-", record_id))).transaction_id;
    std::optional<DeliveryTask> first = Claim("ehr", 2000);
    EXPECT_TRUE(first.has_value());
    if (!first) return id;
    EXPECT_EQ(first->transaction_id, id);
    Complete(MakeAttempt(*first, v1::RETRYING, 2000, 3000));
    std::optional<DeliveryTask> second = Claim("ehr", 3000);
    EXPECT_TRUE(second.has_value());
    if (!second) return id;
    EXPECT_EQ(second->transaction_id, id);
    Complete(MakeAttempt(*second, v1::DEAD_LETTER, 3000));
    EXPECT_EQ(Get(id).status(), v1::DEAD_LETTER);
    return id;
  }

  // Delivers `id` (claimed next for "ehr") with a Patient resource `ehr_patient`.
  void Deliver(const std::string& id, const std::string& ehr_patient = "") {
    std::optional<DeliveryTask> task = Claim("ehr", kLater);
    ASSERT_TRUE(task.has_value());
    ASSERT_EQ(task->transaction_id, id);
    AttemptResult result = MakeAttempt(*task, v1::DELIVERED, 2000);
    if (!ehr_patient.empty()) result.resources.push_back(MakeRef("Patient", ehr_patient, "1"));
    result.resources.push_back(MakeRef("QuestionnaireResponse", "qr-" + id.substr(0, 8), "1"));
    Complete(result);
  }

  // A binary literal for the backend's SQL: x'..' (SQLite) or '\x..'::bytea (PostgreSQL).
  std::string BlobLiteral(absl::string_view hex) const {
    return backend_ == Backend::kSqlite ? absl::StrCat("x'", hex, "'")
                                        : absl::StrCat("'\\x", hex, "'::bytea");
  }

  Backend backend_ = Backend::kSqlite;
  bool ready_ = false;
  TempDir dir_;
  std::string db_path_;
  std::string heads_path_;
  PgServer* pg_ = nullptr;
  std::string database_;
  std::string dsn_;
  std::unique_ptr<Store> store_;
};

class StoreConformanceTest : public StoreTestBase, public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    PrepareBackend(GetParam());
    if (!ready_) return;
    Open();
  }
};

INSTANTIATE_TEST_SUITE_P(Backends, StoreConformanceTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres), BackendName);

// ---- append, dedupe, versions -------------------------------------------------------------------

TEST_P(StoreConformanceTest, PingAnswers) { EXPECT_TRUE(store_->Ping().ok()); }

TEST_P(StoreConformanceTest, AppendThenGetReturnsTheEntry) {
  NewEntry entry = MakeEntry("lakeside", "r-1", "p-1", "phq9", 1'700'000'000'123);
  entry.alerts.push_back(MakeAlert(v1::Alert::SUICIDAL_IDEATION, "PHQ-9 item 9 answered 2"));
  const AppendResult result = Append(entry);
  EXPECT_THAT(result.transaction_id,
              ::testing::MatchesRegex("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                                      "[0-9a-f]{12}"));
  EXPECT_EQ(result.version, 1);
  EXPECT_FALSE(result.duplicate);
  EXPECT_EQ(result.status, v1::ACCEPTED);
  EXPECT_GT(result.sequence, 0);
  ASSERT_EQ(result.alerts.size(), 1u);

  const v1::Transaction tx = Get(result.transaction_id);
  EXPECT_EQ(tx.clinic_id(), "lakeside");
  EXPECT_EQ(tx.record_id(), "r-1");
  EXPECT_EQ(tx.patient_id(), "p-1");
  EXPECT_EQ(tx.version(), 1);
  EXPECT_EQ(tx.status(), v1::ACCEPTED);
  EXPECT_EQ(tx.kind(), v1::QUESTIONNAIRE);
  EXPECT_EQ(tx.direction(), v1::CLINIC_TO_EHR);
  EXPECT_EQ(tx.destination(), "ehr");
  EXPECT_EQ(tx.principal(), "token:lakeside");
  EXPECT_EQ(Ms(tx.received_at()), 1'700'000'000'123);
  EXPECT_EQ(Ms(tx.next_attempt_at()), 1'700'000'000'123);
  ASSERT_EQ(tx.alerts_size(), 1);
  EXPECT_EQ(tx.alerts(0).message(), "PHQ-9 item 9 answered 2");
  EXPECT_FALSE(tx.has_record());
  EXPECT_EQ(tx.fhir_json(), "");

  const v1::Transaction full = Get(result.transaction_id, /*with_payload=*/true);
  EXPECT_EQ(full.record().SerializeAsString(), entry.record);
  EXPECT_EQ(full.fhir_json(), entry.fhir_json);
  EXPECT_THAT(store_->Get("no-such-id", true),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no-such-id")));
}

TEST_P(StoreConformanceTest, AResendIsADuplicateAndAChangeIsTheNextVersion) {
  NewEntry first = MakeEntry("lakeside", "r-1", "p-1", "same");
  first.alerts.push_back(MakeAlert(v1::Alert::SEVERE_ADVERSE_EVENT, "original alert"));
  const AppendResult original = Append(first);

  NewEntry resend = MakeEntry("lakeside", "r-1", "p-1", "same", 5000);
  resend.alerts.push_back(MakeAlert(v1::Alert::SUICIDAL_IDEATION, "resend alert"));
  const AppendResult again = Append(resend);
  EXPECT_TRUE(again.duplicate);
  EXPECT_EQ(again.transaction_id, original.transaction_id);
  EXPECT_EQ(again.version, 1);
  EXPECT_EQ(again.sequence, original.sequence);
  ASSERT_EQ(again.alerts.size(), 1u);
  EXPECT_EQ(again.alerts[0].message(), "original alert");
  EXPECT_EQ(RawInt("SELECT count(*) FROM transactions"), 1);
  EXPECT_EQ(Ms(Get(original.transaction_id).received_at()), 1000);

  const AppendResult v2 = Append(MakeEntry("lakeside", "r-1", "p-1", "second"));
  EXPECT_FALSE(v2.duplicate);
  EXPECT_EQ(v2.version, 2);
  EXPECT_NE(v2.transaction_id, original.transaction_id);
  EXPECT_GT(v2.sequence, original.sequence);
  // Only the newest version counts for duplicates: going back to the first content is a change.
  EXPECT_EQ(Append(MakeEntry("lakeside", "r-1", "p-1", "same")).version, 3);
  // The same record id at another clinic, or in the other direction, is another record.
  EXPECT_EQ(Append(MakeEntry("riverside", "r-1", "p-1", "same")).version, 1);
  NewEntry inbound = MakeEntry("lakeside", "r-1", "p-1", "same");
  inbound.direction = v1::EHR_TO_CLINIC;
  const AppendResult recorded = Append(inbound);
  EXPECT_EQ(recorded.version, 1);
  EXPECT_EQ(recorded.status, v1::RECORDED);
}

TEST_P(StoreConformanceTest, ADuplicateReportsTheCurrentStatusOfTheOriginal) {
  const AppendResult original = Append(MakeEntry("lakeside", "r-1", "p-1", "same"));
  std::optional<DeliveryTask> task = Claim("ehr", 2000);
  ASSERT_TRUE(task.has_value());
  Complete(MakeAttempt(*task, v1::DELIVERED, 2000));
  const AppendResult again = Append(MakeEntry("lakeside", "r-1", "p-1", "same"));
  EXPECT_TRUE(again.duplicate);
  EXPECT_EQ(again.transaction_id, original.transaction_id);
  EXPECT_EQ(again.status, v1::DELIVERED);
}

TEST_P(StoreConformanceTest, AppendAllLogsEveryEntryAndDedupesWithinTheGroup) {
  std::vector<NewEntry> entries = {MakeInbound("lakeside", "in-1", "a"),
                                   MakeInbound("lakeside", "in-2", "b"),
                                   MakeInbound("lakeside", "in-1", "a")};
  absl::StatusOr<std::vector<AppendResult>> results = AppendAllAndWait(*store_, std::move(entries));
  ASSERT_TRUE(results.ok()) << results.status();
  ASSERT_EQ(results->size(), 3u);
  EXPECT_FALSE((*results)[0].duplicate);
  EXPECT_FALSE((*results)[1].duplicate);
  EXPECT_TRUE((*results)[2].duplicate);
  EXPECT_EQ((*results)[2].transaction_id, (*results)[0].transaction_id);
  EXPECT_LT((*results)[0].sequence, (*results)[1].sequence);
  absl::StatusOr<std::vector<AppendResult>> none = AppendAllAndWait(*store_, {});
  ASSERT_TRUE(none.ok());
  EXPECT_THAT(*none, IsEmpty());
}

// A clinic record the gateway refused, as the push path logs it (NewEntry::rejected).
NewEntry MakeRejected(absl::string_view record_id, absl::string_view content,
                      int64_t received_at_ms = 1000) {
  NewEntry e = MakeEntry("lakeside", record_id, "p-1", content, received_at_ms, /*destination=*/"");
  e.rejected = true;
  e.fhir_json = absl::StrCat(
      R"({"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid",)",
      R"("diagnostics":")", content, R"("}]})");
  e.alerts.push_back(MakeAlert(v1::Alert::SUICIDAL_IDEATION, "PHQ-9 item 9 answered 2"));
  return e;
}

// A rejected push is logged (REJECTED, hash-chained, with its outcome and alerts) but takes no
// version: the corrected resubmission is the version the rejected push would have been, a resend
// of the last good version is still a duplicate, and nothing rejected is ever handed out for
// delivery.
TEST_P(StoreConformanceTest, ARejectedPushTakesNoVersionAndIsNeverDelivered) {
  // Rejected before any version: -1, then -2 (never deduplicated), then the fix is version 1.
  const AppendResult first = Append(MakeRejected("r-1", "bad"));
  EXPECT_EQ(first.status, v1::REJECTED);
  EXPECT_EQ(first.version, -1);
  EXPECT_FALSE(first.duplicate);
  ASSERT_EQ(first.alerts.size(), 1u);
  const AppendResult again = Append(MakeRejected("r-1", "bad", 2000));
  EXPECT_EQ(again.version, -2);
  EXPECT_FALSE(again.duplicate);
  EXPECT_NE(again.transaction_id, first.transaction_id);
  const AppendResult version1 = Append(MakeEntry("lakeside", "r-1", "p-1", "good"));
  EXPECT_EQ(version1.version, 1);
  EXPECT_EQ(version1.status, v1::ACCEPTED);

  // A bad correction of version 1, then a resend of version 1 (a duplicate still), then the fix.
  EXPECT_EQ(Append(MakeRejected("r-1", "bad correction")).version, -3);
  const AppendResult resend = Append(MakeEntry("lakeside", "r-1", "p-1", "good"));
  EXPECT_TRUE(resend.duplicate);
  EXPECT_EQ(resend.transaction_id, version1.transaction_id);
  const AppendResult version2 = Append(MakeEntry("lakeside", "r-1", "p-1", "corrected"));
  EXPECT_EQ(version2.version, 2);
  EXPECT_FALSE(version2.duplicate);

  // Several rejections of one record in one group (the bulk path of PostgreSQL numbers them too).
  absl::StatusOr<std::vector<AppendResult>> group = AppendAllAndWait(
      *store_, {MakeRejected("r-2", "x"), MakeRejected("r-2", "y"), MakeRejected("r-1", "z")});
  ASSERT_TRUE(group.ok()) << group.status();
  ASSERT_EQ(group->size(), 3u);
  EXPECT_EQ((*group)[0].version, -1);
  EXPECT_EQ((*group)[1].version, -2);
  EXPECT_EQ((*group)[2].version, -4);

  // What auditors read: the outcome, the alerts, no destination and no attempt.
  const v1::Transaction rejected = Get(first.transaction_id, /*with_payload=*/true);
  EXPECT_EQ(rejected.status(), v1::REJECTED);
  EXPECT_EQ(rejected.version(), -1);
  EXPECT_EQ(rejected.destination(), "");
  EXPECT_THAT(rejected.fhir_json(), HasSubstr("OperationOutcome"));
  ASSERT_EQ(rejected.alerts_size(), 1);
  EXPECT_EQ(rejected.alerts(0).kind(), v1::Alert::SUICIDAL_IDEATION);
  EXPECT_EQ(rejected.attempts_size(), 0);
  TransactionQuery q;
  q.status = v1::REJECTED;
  q.record_id = "r-1";
  absl::StatusOr<TransactionPage> page = store_->Query(q);
  ASSERT_TRUE(page.ok()) << page.status();
  EXPECT_EQ(page->transactions.size(), 4u);
  absl::StatusOr<std::vector<v1::LogEntry>> log = store_->ListLogEntries(0, 0, {}, 0, 100);
  ASSERT_TRUE(log.ok()) << log.status();
  ASSERT_FALSE(log->empty());
  EXPECT_EQ(log->front().event(), v1::LogEntry::RECORD_LOGGED);
  EXPECT_EQ(log->front().status(), v1::REJECTED);
  EXPECT_EQ(log->front().version(), -1);
  EXPECT_EQ(log->front().transaction_id(), first.transaction_id);

  // Only the two versions are delivered, in order; nothing rejected is claimed or counted.
  absl::StatusOr<QueueStats> stats = store_->Stats();
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->undelivered, 2);
  Deliver(version1.transaction_id);
  EXPECT_EQ(ClaimId(kLater), version2.transaction_id);
  EXPECT_FALSE(Claim("", kLater).has_value());
  EXPECT_TRUE(Verify().ok()) << Verify().message();
}

// PreviousAlerts reads the alerts of the newest version, skipping rejected pushes: what a
// correction must resolve at the EHR.
TEST_P(StoreConformanceTest, PreviousAlertsAreThoseOfTheNewestVersion) {
  const auto previous = [this](absl::string_view clinic, absl::string_view record_id,
                               v1::Direction direction = v1::CLINIC_TO_EHR) {
    absl::StatusOr<std::vector<v1::Alert>> alerts =
        store_->PreviousAlerts(clinic, record_id, direction);
    EXPECT_TRUE(alerts.ok()) << alerts.status();
    std::vector<std::string> messages;
    for (const v1::Alert& alert : alerts.value_or(std::vector<v1::Alert>())) {
      messages.push_back(alert.message());
    }
    return messages;
  };
  EXPECT_THAT(previous("lakeside", "r-1"), IsEmpty());

  NewEntry first = MakeEntry("lakeside", "r-1", "p-1", "item 9 = 2");
  first.alerts.push_back(MakeAlert(v1::Alert::SUICIDAL_IDEATION, "item 9 answered 2"));
  Append(first);
  EXPECT_THAT(previous("lakeside", "r-1"), ElementsAre("item 9 answered 2"));
  // Another clinic's record, or the other direction, is another record.
  EXPECT_THAT(previous("riverside", "r-1"), IsEmpty());
  EXPECT_THAT(previous("lakeside", "r-1", v1::EHR_TO_CLINIC), IsEmpty());

  // A rejected push raised its own alert but is not a version: the newest version is still v1.
  NewEntry rejected = MakeRejected("r-1", "bad");
  rejected.alerts = {MakeAlert(v1::Alert::SUICIDAL_IDEATION, "rejected push")};
  Append(rejected);
  EXPECT_THAT(previous("lakeside", "r-1"), ElementsAre("item 9 answered 2"));

  Append(MakeEntry("lakeside", "r-1", "p-1", "item 9 = 0"));
  EXPECT_THAT(previous("lakeside", "r-1"), IsEmpty());
}

TEST_P(StoreConformanceTest, ConcurrentAppendsAllCompleteWithDistinctIds) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 40;
  std::mutex mu;
  std::condition_variable cv;
  std::vector<absl::StatusOr<AppendResult>> results;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        store_->Append(MakeEntry("lakeside", absl::StrCat("r-", t, "-", i), absl::StrCat("p-", t)),
                       [&](absl::StatusOr<AppendResult> r) {
                         std::lock_guard<std::mutex> lock(mu);
                         results.push_back(std::move(r));
                         cv.notify_all();
                       });
      }
    });
  }
  for (std::thread& t : threads) t.join();
  {
    std::unique_lock<std::mutex> lock(mu);
    ASSERT_TRUE(cv.wait_for(lock, kCallbackTimeout,
                            [&] { return results.size() == kThreads * kPerThread; }));
  }
  std::set<std::string> ids;
  std::set<int64_t> sequences;
  for (const absl::StatusOr<AppendResult>& r : results) {
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->version, 1);
    ids.insert(r->transaction_id);
    sequences.insert(r->sequence);
  }
  EXPECT_EQ(ids.size(), static_cast<size_t>(kThreads * kPerThread));
  EXPECT_EQ(sequences.size(), static_cast<size_t>(kThreads * kPerThread));
  EXPECT_EQ(RawInt("SELECT count(*) FROM transactions"), kThreads * kPerThread);
  EXPECT_TRUE(Verify().ok());
}

// Every callback of one batch runs after that batch's COMMIT and before the next batch starts, so
// the number of rows a callback can see tells which commit made its record durable.
TEST_P(StoreConformanceTest, GroupCommitMakesABurstOfAppendsShareCommits) {
  constexpr int kThreads = 8;
  constexpr int kPerThread = 25;
  constexpr int kBatch = 25;
  Settings batched;
  batched.max_batch = kBatch;
  batched.max_batch_delay_us = 20'000'000;  // every batch waits until it is full
  Open(batched);
  std::mutex mu;
  std::condition_variable cv;
  std::map<int64_t, int> callbacks_by_visible_rows;  // guarded by mu
  int callbacks = 0;                                 // guarded by mu
  int failures = 0;                                  // guarded by mu
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        store_->Append(MakeEntry("lakeside", absl::StrCat("r-", t, "-", i), absl::StrCat("p-", t)),
                       [&](absl::StatusOr<AppendResult> r) {
                         const int64_t visible = RawInt("SELECT count(*) FROM transactions");
                         std::lock_guard<std::mutex> lock(mu);
                         if (!r.ok()) ++failures;
                         ++callbacks_by_visible_rows[visible];
                         ++callbacks;
                         cv.notify_all();
                       });
      }
    });
  }
  for (std::thread& t : threads) t.join();
  std::unique_lock<std::mutex> lock(mu);
  ASSERT_TRUE(
      cv.wait_for(lock, kCallbackTimeout, [&] { return callbacks == kThreads * kPerThread; }))
      << callbacks << " callbacks";
  EXPECT_EQ(failures, 0);
  std::map<int64_t, int> expected;
  for (int commit = 1; commit <= kThreads * kPerThread / kBatch; ++commit) {
    expected[commit * kBatch] = kBatch;
  }
  EXPECT_EQ(callbacks_by_visible_rows, expected);
}

TEST_P(StoreConformanceTest, CloseCommitsWhatIsQueuedAndLaterAppendsAreUnavailable) {
  Settings slow;
  slow.max_batch_delay_us = 60'000'000;  // without Close the batch would wait a minute
  Open(slow);
  std::vector<std::future<absl::StatusOr<AppendResult>>> futures;
  for (int i = 0; i < 3; ++i) {
    auto promise = std::make_shared<std::promise<absl::StatusOr<AppendResult>>>();
    futures.push_back(promise->get_future());
    store_->Append(MakeEntry("lakeside", absl::StrCat("r-", i), "p-1"),
                   [promise](absl::StatusOr<AppendResult> r) { promise->set_value(std::move(r)); });
  }
  auto closed = std::async(std::launch::async, [this] { store_->Close(); });
  ASSERT_EQ(closed.wait_for(std::chrono::seconds(30)), std::future_status::ready);
  for (auto& future : futures) {
    ASSERT_EQ(future.wait_for(std::chrono::seconds(0)), std::future_status::ready);
    EXPECT_TRUE(future.get().ok());
  }
  EXPECT_EQ(RawInt("SELECT count(*) FROM transactions"), 3);
  EXPECT_THAT(AppendAndWait(*store_, MakeEntry("lakeside", "r-9", "p-1")),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("closed")));
  store_->Close();  // a second Close is harmless
}

TEST_P(StoreConformanceTest, DataSurvivesReopening) {
  NewEntry entry = MakeEntry("lakeside", "r-1", "p-1", "durable");
  entry.alerts.push_back(MakeAlert(v1::Alert::SUICIDAL_IDEATION, "kept"));
  const std::string id = Append(entry).transaction_id;
  Deliver(id, "123");
  Open();
  const v1::Transaction tx = Get(id, /*with_payload=*/true);
  EXPECT_EQ(tx.status(), v1::DELIVERED);
  EXPECT_EQ(tx.fhir_json(), entry.fhir_json);
  ASSERT_EQ(tx.attempts_size(), 1);
  ASSERT_EQ(tx.resources_size(), 2);
  EXPECT_EQ(tx.resources(0).id(), "123");
  EXPECT_TRUE(Append(MakeEntry("lakeside", "r-1", "p-1", "durable")).duplicate);
  EXPECT_EQ(Append(MakeEntry("lakeside", "r-1", "p-1", "changed")).version, 2);
  EXPECT_TRUE(Verify().ok());
}

// ---- claims -------------------------------------------------------------------------------------

TEST_P(StoreConformanceTest, ClaimMarksTheTransactionDeliveringAndHandsOutTheBundle) {
  const NewEntry entry = MakeEntry("lakeside", "r-1", "p-1", "claimed", 1500);
  const std::string id = Append(entry).transaction_id;
  std::optional<DeliveryTask> task = Claim("ehr", 2000);
  ASSERT_TRUE(task.has_value());
  EXPECT_EQ(task->transaction_id, id);
  EXPECT_EQ(task->destination, "ehr");
  EXPECT_EQ(task->fhir_json, entry.fhir_json);
  EXPECT_EQ(task->attempt_number, 1);
  EXPECT_EQ(task->attempts_so_far, 0);
  EXPECT_EQ(task->queued_at_ms, 1500);
  EXPECT_EQ(Get(id).status(), v1::DELIVERING);
  // Not handed out twice while in flight, and not to another destination.
  EXPECT_FALSE(Claim("ehr", kLater).has_value());
  Append(MakeEntry("lakeside", "r-2", "p-2", "x", 1000, "ehr-a"));
  EXPECT_FALSE(Claim("ehr-b", kLater).has_value());
  EXPECT_TRUE(Claim("ehr-a", kLater).has_value());
}

TEST_P(StoreConformanceTest, ClaimFollowsTheDueTime) {
  const std::string late = Append(MakeEntry("lakeside", "r-late", "p-1", "c", 3000)).transaction_id;
  const std::string early =
      Append(MakeEntry("lakeside", "r-early", "p-2", "c", 1000)).transaction_id;
  const std::string middle =
      Append(MakeEntry("lakeside", "r-middle", "p-3", "c", 2000)).transaction_id;
  EXPECT_EQ(ClaimId(500), "");
  EXPECT_EQ(ClaimId(2500), early);
  EXPECT_EQ(ClaimId(2500), middle);
  EXPECT_EQ(ClaimId(2500), "");
  EXPECT_EQ(ClaimId(3000), late);
}

TEST_P(StoreConformanceTest, VersionsOfOneRecordAreDeliveredInOrder) {
  const std::string v1_id = Append(MakeEntry("lakeside", "r-1", "p-1", "one")).transaction_id;
  // Another patient id, so that only the version rule can hold the second version back.
  const std::string v2_id = Append(MakeEntry("lakeside", "r-1", "p-2", "two")).transaction_id;
  std::optional<DeliveryTask> first = Claim("ehr", 2000);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->transaction_id, v1_id);
  EXPECT_EQ(ClaimId(2000), "");
  Complete(MakeAttempt(*first, v1::RETRYING, 2000, 10'000));
  EXPECT_EQ(ClaimId(5000), "");
  std::optional<DeliveryTask> retry = Claim("ehr", 10'000);
  ASSERT_TRUE(retry.has_value());
  EXPECT_EQ(retry->transaction_id, v1_id);
  Complete(MakeAttempt(*retry, v1::DELIVERED, 10'000));
  EXPECT_EQ(ClaimId(10'000), v2_id);
}

TEST_P(StoreConformanceTest, OnlyOneTransactionOfAPatientIsInFlight) {
  const std::string p1_a = Append(MakeEntry("lakeside", "r-a", "p-1", "c", 1000)).transaction_id;
  const std::string p1_b = Append(MakeEntry("lakeside", "r-b", "p-1", "c", 1001)).transaction_id;
  const std::string p2 = Append(MakeEntry("lakeside", "r-c", "p-2", "c", 1002)).transaction_id;
  const std::string other_clinic =
      Append(MakeEntry("riverside", "r-d", "p-1", "c", 1003)).transaction_id;
  std::optional<DeliveryTask> first = Claim("ehr", 2000);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->transaction_id, p1_a);
  EXPECT_EQ(ClaimId(2000), p2);
  EXPECT_EQ(ClaimId(2000), other_clinic);
  EXPECT_EQ(ClaimId(2000), "");
  EXPECT_EQ(Get(p1_b).status(), v1::ACCEPTED);
  Complete(MakeAttempt(*first, v1::DELIVERED, 2000));
  EXPECT_EQ(ClaimId(2000), p1_b);
}

// ---- attempts, retries, replay, recovery
// ----------------------------------------------------------

TEST_P(StoreConformanceTest, ARetryIsClaimedOnlyOnceDue) {
  const std::string id = Append(MakeEntry("lakeside", "r-1", "p-1")).transaction_id;
  std::optional<DeliveryTask> first = Claim("ehr", 2000);
  ASSERT_TRUE(first.has_value());
  Complete(MakeAttempt(*first, v1::RETRYING, 2000, 7000));
  const v1::Transaction tx = Get(id);
  EXPECT_EQ(tx.status(), v1::RETRYING);
  EXPECT_EQ(Ms(tx.next_attempt_at()), 7000);
  ASSERT_EQ(tx.attempts_size(), 1);
  EXPECT_EQ(tx.attempts(0).http_status(), 503);
  absl::StatusOr<std::optional<int64_t>> due = store_->NextDueAt("ehr");
  ASSERT_TRUE(due.ok()) << due.status();
  EXPECT_EQ(*due, std::optional<int64_t>(7000));
  EXPECT_FALSE(Claim("ehr", 6999).has_value());
  std::optional<DeliveryTask> second = Claim("ehr", 7000);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->attempt_number, 2);
  EXPECT_EQ(second->attempts_so_far, 1);
  EXPECT_EQ(second->queued_at_ms, 1000);
  due = store_->NextDueAt("ehr");
  ASSERT_TRUE(due.ok());
  EXPECT_EQ(*due, std::nullopt);
}

TEST_P(StoreConformanceTest, CompleteAttemptStoresTheAttemptTheResourcesAndTheIssues) {
  const std::string id = Append(MakeEntry("lakeside", "r-1", "p-1")).transaction_id;
  std::optional<DeliveryTask> task = Claim("ehr", 2000);
  ASSERT_TRUE(task.has_value());
  AttemptResult result = MakeAttempt(*task, v1::DELIVERED, 2'345);
  result.resources.push_back(MakeRef("Patient", "123", "2"));
  result.resources.push_back(MakeRef("QuestionnaireResponse", "456", "1"));
  Complete(result);
  v1::Transaction tx = Get(id);
  EXPECT_EQ(tx.status(), v1::DELIVERED);
  EXPECT_FALSE(tx.has_next_attempt_at());
  ASSERT_EQ(tx.attempts_size(), 1);
  EXPECT_EQ(tx.attempts(0).SerializeAsString(), result.attempt.SerializeAsString());
  ASSERT_EQ(tx.resources_size(), 2);
  EXPECT_EQ(tx.resources(1).SerializeAsString(), result.resources[1].SerializeAsString());
  EXPECT_EQ(Ms(tx.updated_at()), 2'345 + 12);

  const std::string rejected = Append(MakeEntry("lakeside", "r-2", "p-2")).transaction_id;
  task = Claim("ehr", 3000);
  ASSERT_TRUE(task.has_value());
  AttemptResult answer = MakeAttempt(*task, v1::REJECTED, 3000);
  v1::Issue& issue = *answer.attempt.add_issues();
  issue.set_severity(v1::Issue::ERROR);
  issue.set_path("Patient.birthDate");
  Complete(answer);
  tx = Get(rejected);
  EXPECT_EQ(tx.status(), v1::REJECTED);
  ASSERT_EQ(tx.attempts_size(), 1);
  ASSERT_EQ(tx.attempts(0).issues_size(), 1);
  EXPECT_EQ(tx.attempts(0).issues(0).path(), "Patient.birthDate");
  EXPECT_FALSE(Claim("ehr", kLater).has_value());
  EXPECT_TRUE(Verify().ok());
}

TEST_P(StoreConformanceTest, ReplayByIdRestartsTheRetryBudgetButNotTheAttemptNumbers) {
  const std::string id = MakeDeadLetter("lakeside", "r-1");
  absl::StatusOr<std::vector<std::string>> replayed = store_->Replay({id}, "", 8000);
  ASSERT_TRUE(replayed.ok()) << replayed.status();
  EXPECT_THAT(*replayed, ElementsAre(id));
  const v1::Transaction tx = Get(id);
  EXPECT_EQ(tx.status(), v1::ACCEPTED);
  EXPECT_EQ(Ms(tx.next_attempt_at()), 8000);
  EXPECT_TRUE(Verify().ok());
  EXPECT_FALSE(Claim("ehr", 7999).has_value());
  std::optional<DeliveryTask> task = Claim("ehr", 8000);
  ASSERT_TRUE(task.has_value());
  EXPECT_EQ(task->attempt_number, 3);
  EXPECT_EQ(task->attempts_so_far, 0);
  EXPECT_EQ(task->queued_at_ms, 8000);
}

TEST_P(StoreConformanceTest, ReplayByClinicReplaysOnlyDeadLetters) {
  const std::string a1 = MakeDeadLetter("lakeside", "r-1");
  const std::string a2 = MakeDeadLetter("lakeside", "r-2");
  const std::string b1 = MakeDeadLetter("riverside", "r-3");
  const std::string accepted = Append(MakeEntry("lakeside", "r-4", "p-4")).transaction_id;
  absl::StatusOr<std::vector<std::string>> replayed = store_->Replay({}, "lakeside", 8000);
  ASSERT_TRUE(replayed.ok()) << replayed.status();
  EXPECT_THAT(*replayed, UnorderedElementsAre(a1, a2));
  EXPECT_EQ(Get(b1).status(), v1::DEAD_LETTER);
  replayed = store_->Replay({}, "", 8000);
  ASSERT_TRUE(replayed.ok());
  EXPECT_THAT(*replayed, ElementsAre(b1));
  replayed = store_->Replay({accepted, "unknown-id"}, "", 9000);
  ASSERT_TRUE(replayed.ok());
  EXPECT_THAT(*replayed, IsEmpty());
  EXPECT_TRUE(Verify().ok());
}

// The gateway crashed (its store is gone without completing the attempt): the next start's
// RecoverInFlight queues the transaction again, due at once, and the lost attempt keeps its number.
// SQLite recovers at once; PostgreSQL once the dead replica's lease has expired.
TEST_P(StoreConformanceTest, RecoverInFlightRequeuesWorkOfACrashedGateway) {
  Settings short_lease;
  short_lease.lease_ms = 300;
  short_lease.replica_id = "crashed";
  Open(short_lease);
  const std::string a = Append(MakeEntry("lakeside", "r-a", "p-1")).transaction_id;
  const std::string waiting = Append(MakeEntry("lakeside", "r-c", "p-3", "c", 9000)).transaction_id;
  EXPECT_EQ(ClaimId(2000), a);
  Open();  // the crashed gateway's store is gone; a new one starts

  int recovered = 0;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (recovered == 0 && std::chrono::steady_clock::now() < deadline) {
    absl::StatusOr<int> r = store_->RecoverInFlight(5000);
    ASSERT_TRUE(r.ok()) << r.status();
    recovered = *r;
    if (recovered == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  EXPECT_EQ(recovered, 1);
  const v1::Transaction tx = Get(a);
  EXPECT_EQ(tx.status(), v1::RETRYING);
  EXPECT_EQ(Ms(tx.next_attempt_at()), 5000);
  EXPECT_EQ(Get(waiting).status(), v1::ACCEPTED);
  absl::StatusOr<int> again = store_->RecoverInFlight(6000);
  ASSERT_TRUE(again.ok());
  EXPECT_EQ(*again, 0);
  absl::StatusOr<std::vector<v1::LogEntry>> log = store_->ListLogEntries(0, 0, {}, 0, 100);
  ASSERT_TRUE(log.ok());
  ASSERT_FALSE(log->empty());
  EXPECT_EQ(log->back().event(), v1::LogEntry::RECOVERED);
  EXPECT_TRUE(Verify().ok()) << Verify().message();
  EXPECT_EQ(ClaimId(4999), "");
  std::optional<DeliveryTask> task = Claim("ehr", 5000);
  ASSERT_TRUE(task.has_value());
  EXPECT_EQ(task->transaction_id, a);
  EXPECT_EQ(task->attempt_number, 2);
  EXPECT_EQ(task->attempts_so_far, 1);
}

TEST_P(StoreConformanceTest, StatsCountsUndeliveredAndDeadLetters) {
  absl::StatusOr<QueueStats> empty = store_->Stats();
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->undelivered, 0);
  EXPECT_EQ(empty->oldest_undelivered_ms, 0);
  MakeDeadLetter("lakeside", "r-dead");  // received at 1000
  Append(MakeEntry("lakeside", "r-retrying", "p-3", "c", 1200));
  Append(MakeEntry("lakeside", "r-accepted", "p-4", "c", 1300));
  std::optional<DeliveryTask> task = Claim("ehr", 2000);
  ASSERT_TRUE(task.has_value());
  Complete(MakeAttempt(*task, v1::RETRYING, 2000, kLater));
  ASSERT_TRUE(Claim("ehr", 2000).has_value());  // r-accepted, DELIVERING
  absl::StatusOr<QueueStats> stats = store_->Stats();
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->undelivered, 2);
  EXPECT_EQ(stats->dead_letters, 1);
  EXPECT_EQ(stats->oldest_undelivered_ms, 1200);
}

// ---- inbound listing, patient keys, state -----------------------------------------------------

TEST_P(StoreConformanceTest, ListInboundPagesThroughOneClinicsInboundRecordsByCursor) {
  const AppendResult a1 = Append(MakeInbound("lakeside", "in-1", "a"));
  Append(MakeInbound("riverside", "in-2", "b"));
  Append(MakeEntry("lakeside", "out-1", "p-1"));  // outbound: never listed
  const AppendResult a2 = Append(MakeInbound("lakeside", "in-3", "c"));
  const AppendResult a3 = Append(MakeInbound("lakeside", "in-4", "d"));

  absl::StatusOr<std::vector<InboundItem>> page = store_->ListInbound("lakeside", 0, 2);
  ASSERT_TRUE(page.ok()) << page.status();
  ASSERT_EQ(page->size(), 2u);
  EXPECT_EQ((*page)[0].transaction.transaction_id(), a1.transaction_id);
  EXPECT_EQ((*page)[0].sequence, a1.sequence);
  EXPECT_EQ((*page)[0].transaction.record().record_id(), "in-1");
  EXPECT_EQ((*page)[1].transaction.transaction_id(), a2.transaction_id);
  // The cursor of the last event resumes right after it.
  page = store_->ListInbound("lakeside", (*page)[1].sequence, 10);
  ASSERT_TRUE(page.ok());
  ASSERT_EQ(page->size(), 1u);
  EXPECT_EQ((*page)[0].transaction.transaction_id(), a3.transaction_id);
  page = store_->ListInbound("lakeside", a3.sequence, 10);
  ASSERT_TRUE(page.ok());
  EXPECT_THAT(*page, IsEmpty());
  // A resend is a duplicate with the original's cursor, and lists nothing new.
  const AppendResult again = Append(MakeInbound("lakeside", "in-1", "a"));
  EXPECT_TRUE(again.duplicate);
  EXPECT_EQ(again.sequence, a1.sequence);
  page = store_->ListInbound("lakeside", a3.sequence, 10);
  ASSERT_TRUE(page.ok());
  EXPECT_THAT(*page, IsEmpty());
  page = store_->ListInbound("nobody", 0, 10);
  ASSERT_TRUE(page.ok());
  EXPECT_THAT(*page, IsEmpty());
}

TEST_P(StoreConformanceTest, PatientKeysFindThePatientAndTheEhrIds) {
  NewEntry entry = MakeEntry("lakeside", "r-1", "P-7");
  entry.patient_keys = {"urn:fhirgw:lakeside:patient|P-7", "urn:mrn|MRN-7"};
  const std::string id = Append(entry).transaction_id;
  NewEntry other = MakeEntry("riverside", "r-2", "R-7");
  other.patient_keys = {"urn:mrn|MRN-7"};
  Append(other);

  absl::StatusOr<std::vector<PatientMatch>> matches =
      store_->FindPatient({"urn:mrn|MRN-7", "urn:fhirgw:lakeside:patient|P-7", "unknown|x"});
  ASSERT_TRUE(matches.ok()) << matches.status();
  ASSERT_EQ(matches->size(), 2u);
  EXPECT_EQ((*matches)[0].clinic_id, "lakeside");
  EXPECT_EQ((*matches)[0].clinic_patient_id, "P-7");
  EXPECT_EQ((*matches)[1].clinic_id, "riverside");
  EXPECT_EQ((*matches)[1].clinic_patient_id, "R-7");

  // The id the EHR assigned on delivery becomes a key too.
  Deliver(id, "ehr-patient-55");
  matches = store_->FindPatient({"ehr|Patient/ehr-patient-55"});
  ASSERT_TRUE(matches.ok());
  ASSERT_EQ(matches->size(), 1u);
  EXPECT_EQ((*matches)[0].clinic_patient_id, "P-7");
  absl::StatusOr<std::vector<EhrPatient>> patients = store_->EhrPatients("ehr");
  ASSERT_TRUE(patients.ok()) << patients.status();
  ASSERT_EQ(patients->size(), 1u);
  EXPECT_EQ((*patients)[0].clinic_id, "lakeside");
  EXPECT_EQ((*patients)[0].clinic_patient_id, "P-7");
  EXPECT_EQ((*patients)[0].ehr_patient_id, "ehr-patient-55");
  patients = store_->EhrPatients("other-ehr");
  ASSERT_TRUE(patients.ok());
  EXPECT_THAT(*patients, IsEmpty());

  absl::StatusOr<bool> has = store_->HasRecord("lakeside", "r-1", v1::CLINIC_TO_EHR);
  ASSERT_TRUE(has.ok());
  EXPECT_TRUE(*has);
  has = store_->HasRecord("lakeside", "r-1", v1::EHR_TO_CLINIC);
  ASSERT_TRUE(has.ok());
  EXPECT_FALSE(*has);
}

TEST_P(StoreConformanceTest, StateIsAKeyValueTable) {
  absl::StatusOr<std::string> value = store_->GetState("poll:ehr:Observation");
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(*value, "");
  ASSERT_TRUE(store_->SetState("poll:ehr:Observation", "2026-01-10T09:30:00Z").ok());
  ASSERT_TRUE(store_->SetState("poll:ehr:Observation", "2026-01-11T00:00:00Z").ok());
  value = store_->GetState("poll:ehr:Observation");
  ASSERT_TRUE(value.ok());
  EXPECT_EQ(*value, "2026-01-11T00:00:00Z");
}

// ---- audit queries
// --------------------------------------------------------------------------------

TEST_P(StoreConformanceTest, QueryFiltersAndPagesNewestFirst) {
  NewEntry a = MakeEntry("lakeside", "r-a", "P-1", "a", 1000);
  a.patient_keys = {"urn:mrn|MRN-1"};
  const std::string id_a = Append(a).transaction_id;
  NewEntry b = MakeEntry("lakeside", "r-b", "P-2", "b", 2000, "other-ehr");
  b.kind = v1::INFUSION;
  const std::string id_b = Append(b).transaction_id;
  const std::string id_c = Append(MakeEntry("riverside", "r-c", "P-1", "c", 3000)).transaction_id;
  NewEntry d = MakeInbound("lakeside", "r-d", "d", 3000);
  const std::string id_d = Append(d).transaction_id;
  Deliver(id_a);

  auto ids = [&](TransactionQuery q) {
    std::vector<std::string> out;
    absl::StatusOr<TransactionPage> page = store_->Query(q);
    EXPECT_TRUE(page.ok()) << page.status();
    if (page.ok()) {
      for (const v1::Transaction& tx : page->transactions) {
        EXPECT_FALSE(tx.has_record());
        out.push_back(tx.transaction_id());
      }
    }
    return out;
  };
  auto where = [](const std::function<void(TransactionQuery&)>& set) {
    TransactionQuery q;
    set(q);
    return q;
  };
  // Newest first; the same received_at orders by log position, newest first.
  EXPECT_THAT(ids({}), ElementsAre(id_d, id_c, id_b, id_a));
  EXPECT_THAT(ids(where([](TransactionQuery& q) { q.from_ms = 2000; })),
              ElementsAre(id_d, id_c, id_b));
  EXPECT_THAT(ids(where([](TransactionQuery& q) { q.to_ms = 2000; })), ElementsAre(id_a));
  EXPECT_THAT(ids(where([](TransactionQuery& q) { q.clinic_id = "riverside"; })),
              ElementsAre(id_c));
  EXPECT_THAT(ids(where([](TransactionQuery& q) {
                q.clinic_scope = {"riverside", "nowhere"};
              })),
              ElementsAre(id_c));
  EXPECT_THAT(ids(where([](TransactionQuery& q) { q.patient_identifier = "P-1"; })),
              ElementsAre(id_c, id_a));
  EXPECT_THAT(ids(where([](TransactionQuery& q) { q.patient_identifier = "urn:mrn|MRN-1"; })),
              ElementsAre(id_a));
  EXPECT_THAT(ids(where([](TransactionQuery& q) { q.kind = v1::INFUSION; })), ElementsAre(id_b));
  EXPECT_THAT(ids(where([](TransactionQuery& q) { q.direction = v1::EHR_TO_CLINIC; })),
              ElementsAre(id_d));
  EXPECT_THAT(ids(where([](TransactionQuery& q) { q.status = v1::DELIVERED; })), ElementsAre(id_a));
  EXPECT_THAT(ids(where([](TransactionQuery& q) { q.destination = "other-ehr"; })),
              ElementsAre(id_b));
  EXPECT_THAT(ids(where([](TransactionQuery& q) { q.record_id = "r-c"; })), ElementsAre(id_c));
  EXPECT_THAT(ids(where([](TransactionQuery& q) {
                q.clinic_id = "lakeside";
                q.kind = v1::QUESTIONNAIRE;
              })),
              ElementsAre(id_a));

  // Pages of 3 walk the whole log once.
  TransactionQuery q;
  q.page_size = 3;
  absl::StatusOr<TransactionPage> first = store_->Query(q);
  ASSERT_TRUE(first.ok()) << first.status();
  ASSERT_EQ(first->transactions.size(), 3u);
  ASSERT_FALSE(first->next_page_token.empty());
  q.page_token = first->next_page_token;
  absl::StatusOr<TransactionPage> second = store_->Query(q);
  ASSERT_TRUE(second.ok()) << second.status();
  ASSERT_EQ(second->transactions.size(), 1u);
  EXPECT_EQ(second->transactions[0].transaction_id(), id_a);
  EXPECT_EQ(second->next_page_token, "");
  q.page_token = "garbage";
  EXPECT_THAT(store_->Query(q),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("page_token")));
}

TEST_P(StoreConformanceTest, ListLogEntriesFollowsTheLogOrderTimeAndScope) {
  const std::string a = Append(MakeEntry("lakeside", "r-a", "P-1", "a", 1000)).transaction_id;
  Append(MakeEntry("riverside", "r-b", "P-2", "b", 2000));
  Append(MakeEntry("lakeside", "r-a", "P-1", "a", 3000));  // RESENT
  absl::StatusOr<std::vector<v1::LogEntry>> all = store_->ListLogEntries(0, 0, {}, 0, 100);
  ASSERT_TRUE(all.ok()) << all.status();
  ASSERT_EQ(all->size(), 3u);
  EXPECT_EQ((*all)[0].event(), v1::LogEntry::RECORD_LOGGED);
  EXPECT_EQ((*all)[2].event(), v1::LogEntry::RESENT);
  EXPECT_EQ((*all)[2].transaction_id(), a);
  EXPECT_EQ((*all)[0].sequence() + 2, (*all)[2].sequence());
  absl::StatusOr<std::vector<v1::LogEntry>> some = store_->ListLogEntries(1500, 3000, {}, 0, 100);
  ASSERT_TRUE(some.ok());
  ASSERT_EQ(some->size(), 1u);
  EXPECT_EQ((*some)[0].clinic_id(), "riverside");
  some = store_->ListLogEntries(0, 0, {"lakeside"}, (*all)[0].sequence(), 100);
  ASSERT_TRUE(some.ok());
  ASSERT_EQ(some->size(), 1u);
  EXPECT_EQ((*some)[0].event(), v1::LogEntry::RESENT);
  some = store_->ListLogEntries(0, 0, {}, 0, 1);
  ASSERT_TRUE(some.ok());
  EXPECT_EQ(some->size(), 1u);
}

// ---- the hash chain
// -------------------------------------------------------------------------------

TEST_P(StoreConformanceTest, VerifyPassesOnAnIntactLog) {
  const std::string id = MakeDeadLetter("lakeside", "r-1");
  Append(MakeEntry("lakeside", "r-1", "p-r-1"));  // RESENT
  ASSERT_TRUE(store_->Replay({id}, "", 8000).ok());
  Deliver(id, "pat-1");
  Append(MakeInbound("lakeside", "in-1"));
  const v1::VerifyLogResponse response = Verify();
  EXPECT_TRUE(response.ok()) << response.message();
  EXPECT_EQ(response.entries_checked(), 7);
  EXPECT_EQ(response.first_bad_sequence(), 0);
  EXPECT_THAT(response.message(), HasSubstr("no signing key"));
}

TEST_P(StoreConformanceTest, VerifyDetectsAnEditedPayload) {
  const std::string id = Append(MakeEntry("lakeside", "r-1", "p-1")).transaction_id;
  Append(MakeEntry("lakeside", "r-2", "p-2"));
  ASSERT_TRUE(Verify().ok());
  Raw(absl::StrCat("UPDATE transactions SET fhir = ", BlobLiteral("7b7d"), " WHERE id = '", id,
                   "'"));
  const v1::VerifyLogResponse response = Verify();
  EXPECT_FALSE(response.ok());
  EXPECT_EQ(response.first_bad_sequence(), 1);
  EXPECT_THAT(response.message(), HasSubstr("not what was logged"));
}

TEST_P(StoreConformanceTest, VerifyDetectsAnEditedLogEntryAndAnEditedStatus) {
  Append(MakeEntry("lakeside", "r-1", "p-1"));
  const std::string second = Append(MakeEntry("lakeside", "r-2", "p-2")).transaction_id;
  Append(MakeEntry("lakeside", "r-3", "p-3"));
  Raw(absl::StrCat("UPDATE transactions SET status = 3 WHERE id = '", second, "'"));
  v1::VerifyLogResponse response = Verify();
  EXPECT_FALSE(response.ok());
  EXPECT_THAT(response.message(), HasSubstr("is not the status logged last"));
  Raw(absl::StrCat("UPDATE transactions SET status = 1 WHERE id = '", second, "'"));
  ASSERT_TRUE(Verify().ok());
  // Entry 2 replaced by a copy of entry 3: its hash no longer matches.
  Raw("UPDATE audit_log SET entry = (SELECT entry FROM audit_log WHERE seq = 3) WHERE seq = 2");
  response = Verify();
  EXPECT_FALSE(response.ok());
  EXPECT_EQ(response.first_bad_sequence(), 2);
  EXPECT_THAT(response.message(), HasSubstr("log entry 2 was altered"));
}

TEST_P(StoreConformanceTest, SignedHeadsDetectARemovedTail) {
  const std::string key = dir_.path() + "/head.pem";
  ASSERT_TRUE(WriteEd25519Key(key));
  absl::StatusOr<std::shared_ptr<const HeadSigner>> signer = HeadSigner::FromPrivateKeyFile(key);
  ASSERT_TRUE(signer.ok()) << signer.status();
  Settings signing;
  signing.signer = *signer;
  Open(signing);
  Append(MakeEntry("lakeside", "r-1", "p-1"));
  Append(MakeEntry("lakeside", "r-2", "p-2"));
  ASSERT_TRUE(store_->SignHead().ok());
  ASSERT_TRUE(store_->SignHead().ok());  // the head did not move: no new signature
  EXPECT_EQ(RawInt("SELECT count(*) FROM signed_heads"), 1);
  EXPECT_TRUE(std::filesystem::exists(heads_path_));
  v1::VerifyLogResponse response = Verify();
  EXPECT_TRUE(response.ok()) << response.message();
  EXPECT_EQ(response.signed_head_sequence(), 2);

  // The tail goes, with its transaction and the database's signatures: the heads file remembers.
  Raw("DELETE FROM audit_log WHERE seq = 2");
  Raw("DELETE FROM transactions WHERE record_id = 'r-2'");
  Raw("DELETE FROM signed_heads");
  response = Verify();
  EXPECT_FALSE(response.ok());
  EXPECT_THAT(response.message(), HasSubstr("the tail was removed"));
}

TEST_P(StoreConformanceTest, PurgeRemovesFinishedPayloadsAndTheChainStillVerifies) {
  const std::string old_done =
      Append(MakeEntry("lakeside", "r-1", "p-1", "a", 1000)).transaction_id;
  const std::string old_open =
      Append(MakeEntry("lakeside", "r-2", "p-2", "b", 1000)).transaction_id;
  const std::string recent =
      Append(MakeEntry("lakeside", "r-3", "p-3", "c", 900'000)).transaction_id;
  Deliver(old_done);
  absl::StatusOr<int> purged = store_->PurgePayloads(500'000);
  ASSERT_TRUE(purged.ok()) << purged.status();
  EXPECT_EQ(*purged, 1);
  const v1::Transaction tx = Get(old_done, /*with_payload=*/true);
  EXPECT_EQ(tx.fhir_json(), "");
  EXPECT_EQ(tx.record().ByteSizeLong(), 0u);
  ASSERT_EQ(tx.attempts_size(), 1);
  EXPECT_EQ(tx.attempts(0).response(), "");
  EXPECT_EQ(tx.attempts(0).http_status(), 200);
  EXPECT_NE(Get(old_open, true).fhir_json(), "");
  EXPECT_NE(Get(recent, true).fhir_json(), "");
  purged = store_->PurgePayloads(500'000);
  ASSERT_TRUE(purged.ok());
  EXPECT_EQ(*purged, 0);
  absl::StatusOr<std::vector<v1::LogEntry>> log = store_->ListLogEntries(0, 0, {}, 0, 100);
  ASSERT_TRUE(log.ok());
  EXPECT_EQ(log->back().event(), v1::LogEntry::PURGED);
  const v1::VerifyLogResponse response = Verify();
  EXPECT_TRUE(response.ok()) << response.message();
}

TEST_P(StoreConformanceTest, PayloadsAreEncryptedAtRest) {
  absl::StatusOr<std::shared_ptr<const PayloadCipher>> cipher =
      PayloadCipher::FromKeys({{"k1", std::string(32, 'k')}}, "k1");
  ASSERT_TRUE(cipher.ok()) << cipher.status();
  Settings encrypted;
  encrypted.cipher = *cipher;
  Open(encrypted);
  const NewEntry entry = MakeEntry("lakeside", "r-secret", "p-1", "phq9-secret-content");
  const std::string id = Append(entry).transaction_id;
  EXPECT_EQ(RawInt(backend_ == Backend::kSqlite
                       ? "SELECT count(*) FROM transactions WHERE instr(fhir, 'phq9-secret') > 0"
                       : "SELECT count(*) FROM transactions WHERE position('phq9-secret'::bytea "
                         "in fhir) > 0"),
            0);
  EXPECT_EQ(RawInt("SELECT count(*) FROM transactions"), 1);
  EXPECT_EQ(Get(id, true).fhir_json(), entry.fhir_json);
  Deliver(id);
  EXPECT_TRUE(Verify().ok());
  // Without the key the payloads cannot be read back.
  Open();
  EXPECT_THAT(store_->Get(id, true),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("encrypted")));
}

// PHI at rest, the same on both backends: alerts quote the patient's answers (PHQ-9 item 9), and
// EHRs echo the patient in their issue texts.
class PhiAtRestTest : public StoreConformanceTest {
 protected:
  static constexpr char kAlertText[] = "item 9 answered Nearly-every-day-Qz7";
  static constexpr char kIssueText[] = "Patient Zyxwvut born 1931-07-19 is a duplicate";

  void SetUp() override {
    StoreConformanceTest::SetUp();
    if (!ready_) return;
    absl::StatusOr<std::shared_ptr<const PayloadCipher>> cipher =
        PayloadCipher::FromKeys({{"k1", std::string(32, 'k')}}, "k1");
    ASSERT_TRUE(cipher.ok()) << cipher.status();
    Settings encrypted;
    encrypted.cipher = *cipher;
    Open(encrypted);
  }

  // How many rows of `table` hold `text` in `column`, read behind the store's back.
  int64_t RowsHolding(absl::string_view table, absl::string_view column, absl::string_view text) {
    return RawInt(backend_ == Backend::kSqlite
                      ? absl::StrCat("SELECT count(*) FROM ", table, " WHERE instr(", column, ", '",
                                     text, "') > 0")
                      : absl::StrCat("SELECT count(*) FROM ", table, " WHERE position('", text,
                                     "'::bytea in ", column, ") > 0"));
  }

  NewEntry EntryWithAlert() {
    NewEntry entry = MakeEntry("lakeside", "r-phq", "p-1", "phq9");
    entry.alerts.push_back(MakeAlert(v1::Alert::SUICIDAL_IDEATION, kAlertText));
    return entry;
  }
};

INSTANTIATE_TEST_SUITE_P(Backends, PhiAtRestTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres), BackendName);

TEST_P(PhiAtRestTest, AlertsAreEncryptedAtRest) {
  const std::string id = Append(EntryWithAlert()).transaction_id;
  EXPECT_EQ(RowsHolding("transactions", "alerts", "Nearly-every-day"), 0);
  EXPECT_EQ(RawInt("SELECT count(*) FROM transactions WHERE length(alerts) > 0"), 1);
  const v1::Transaction tx = Get(id);
  ASSERT_EQ(tx.alerts_size(), 1);
  EXPECT_EQ(tx.alerts(0).message(), kAlertText);
  // A resend answers with the original's alerts, decrypted.
  const AppendResult resend = Append(EntryWithAlert());
  EXPECT_TRUE(resend.duplicate);
  ASSERT_EQ(resend.alerts.size(), 1u);
  EXPECT_EQ(resend.alerts[0].message(), kAlertText);
  EXPECT_TRUE(Verify().ok());
}

TEST_P(PhiAtRestTest, LogEntriesKeepNoTextOfTheEhrsAnswer) {
  const std::string id = Append(EntryWithAlert()).transaction_id;
  std::optional<DeliveryTask> task = Claim("ehr", kLater);
  ASSERT_TRUE(task.has_value());
  AttemptResult result = MakeAttempt(*task, v1::REJECTED, 2000);
  result.attempt.set_response(
      absl::StrCat(R"({"resourceType":"OperationOutcome","text":")", kIssueText, R"("})"));
  v1::Issue* issue = result.attempt.add_issues();
  issue->set_message(kIssueText);
  Complete(result);
  EXPECT_EQ(RowsHolding("audit_log", "entry", "Zyxwvut"), 0);
  EXPECT_EQ(RowsHolding("attempts", "attempt", "Zyxwvut"), 0);  // encrypted there
  const v1::Transaction tx = Get(id);
  ASSERT_EQ(tx.attempts_size(), 1);
  ASSERT_EQ(tx.attempts(0).issues_size(), 1);
  EXPECT_EQ(tx.attempts(0).issues(0).message(), kIssueText);
  absl::StatusOr<std::vector<v1::LogEntry>> log = store_->ListLogEntries(0, 0, {}, 0, 100);
  ASSERT_TRUE(log.ok()) << log.status();
  ASSERT_EQ(log->back().event(), v1::LogEntry::DELIVERY_ATTEMPT);
  EXPECT_EQ(log->back().attempt().response(), "");
  ASSERT_EQ(log->back().attempt().issues_size(), 1);
  EXPECT_EQ(log->back().attempt().issues(0).message(), "");
  EXPECT_TRUE(Verify().ok());
}

TEST_P(PhiAtRestTest, RetentionPurgesAlerts) {
  const std::string old_done = Append(EntryWithAlert()).transaction_id;
  NewEntry recent = EntryWithAlert();
  recent.record_id = "r-recent";
  recent.received_at_ms = 900'000;
  const std::string kept = Append(recent).transaction_id;
  Deliver(old_done);
  absl::StatusOr<int> purged = store_->PurgePayloads(500'000);
  ASSERT_TRUE(purged.ok()) << purged.status();
  EXPECT_EQ(*purged, 1);
  EXPECT_EQ(
      RawInt(absl::StrCat("SELECT length(alerts) FROM transactions WHERE id = '", old_done, "'")),
      0);
  EXPECT_EQ(Get(old_done, /*with_payload=*/true).alerts_size(), 0);
  EXPECT_EQ(Get(kept, /*with_payload=*/true).alerts_size(), 1);
  const v1::VerifyLogResponse response = Verify();
  EXPECT_TRUE(response.ok()) << response.message();
}

TEST_P(StoreConformanceTest, AQueryByPatientIdAloneUsesAnIndex) {
  if (backend_ == Backend::kSqlite) {
    GTEST_SKIP() << "SQLite's plans are checked by audit_query_bench_smoke";
  }
  // The planner would scan a small table anyway: make scans the last resort.
  const std::string plan =
      Raw("SET enable_seqscan = off; EXPLAIN (FORMAT JSON) SELECT id FROM transactions "
          "WHERE patient_id = 'p-1' ORDER BY received_at_ms DESC, seq DESC LIMIT 51");
  EXPECT_THAT(plan, HasSubstr("transactions_patient_id"));
  EXPECT_THAT(plan, Not(HasSubstr("Seq Scan")));
}

// ---- several replicas on one PostgreSQL
// ------------------------------------------------------------

class PostgresReplicasTest : public StoreTestBase, public ::testing::Test {
 protected:
  void SetUp() override {
    PrepareBackend(Backend::kPostgres);
    if (!ready_) return;
    Open();
  }

  std::unique_ptr<Store> Replica(Settings s = Settings()) {
    absl::StatusOr<std::unique_ptr<Store>> store = OpenStore(s);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }
};

TEST_F(PostgresReplicasTest, ReplicasStartingTogetherCreateTheSchemaOnce) {
  // A fresh database, and four replicas opening it at the same moment.
  std::string error;
  dsn_ = pg_->CreateDatabase(database_ + "_fresh", &error);
  ASSERT_FALSE(dsn_.empty()) << error;
  std::vector<std::future<absl::StatusOr<std::unique_ptr<Store>>>> opening;
  for (int i = 0; i < 4; ++i) {
    opening.push_back(std::async(std::launch::async, [this] { return OpenStore(Settings()); }));
  }
  for (auto& store : opening) {
    absl::StatusOr<std::unique_ptr<Store>> opened = store.get();
    EXPECT_TRUE(opened.ok()) << opened.status();
  }
}

TEST_F(PostgresReplicasTest, NoTransactionIsClaimedTwiceAndThePatientRuleHoldsAcrossReplicas) {
  constexpr int kReplicas = 3;
  constexpr int kWorkers = 3;  // per replica
  constexpr int kRecords = 150;
  constexpr int kPatients = 20;
  std::vector<std::unique_ptr<Store>> replicas;
  for (int r = 0; r < kReplicas; ++r) replicas.push_back(Replica());
  for (int i = 0; i < kRecords; ++i) {
    Append(MakeEntry("lakeside", absl::StrCat("r-", i), absl::StrCat("p-", i % kPatients), "c",
                     1000 + i),
           replicas[i % kReplicas].get());
  }
  std::mutex mu;
  std::set<std::string> in_flight_patients;  // guarded by mu
  std::map<std::string, int> claims;         // guarded by mu
  int violations = 0;                        // guarded by mu
  std::atomic<int> delivered{0};
  std::vector<std::thread> workers;
  for (int r = 0; r < kReplicas; ++r) {
    for (int w = 0; w < kWorkers; ++w) {
      workers.emplace_back([&, r] {
        const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(60);
        while (delivered < kRecords && std::chrono::steady_clock::now() < deadline) {
          absl::StatusOr<std::optional<DeliveryTask>> task = replicas[r]->ClaimNext("ehr", kLater);
          ASSERT_TRUE(task.ok()) << task.status();
          if (!task->has_value()) {
            std::this_thread::sleep_for(std::chrono::milliseconds(5));
            continue;
          }
          const std::string id = (*task)->transaction_id;
          absl::StatusOr<v1::Transaction> tx = replicas[r]->Get(id, false);
          ASSERT_TRUE(tx.ok());
          {
            std::lock_guard<std::mutex> lock(mu);
            ++claims[id];
            if (!in_flight_patients.insert(tx->patient_id()).second) ++violations;
          }
          std::this_thread::sleep_for(std::chrono::milliseconds(2));  // "talking to the EHR"
          {
            std::lock_guard<std::mutex> lock(mu);
            in_flight_patients.erase(tx->patient_id());
          }
          ASSERT_TRUE(replicas[r]->CompleteAttempt(MakeAttempt(**task, v1::DELIVERED, 2000)).ok());
          ++delivered;
        }
      });
    }
  }
  for (std::thread& t : workers) t.join();
  EXPECT_EQ(delivered, kRecords);
  EXPECT_EQ(violations, 0) << "two transactions of one patient were in flight at once";
  EXPECT_EQ(claims.size(), static_cast<size_t>(kRecords));
  for (const auto& [id, count] : claims) EXPECT_EQ(count, 1) << id << " was claimed twice";
  EXPECT_EQ(RawInt("SELECT count(*) FROM transactions WHERE status = 3"), kRecords);
  const v1::VerifyLogResponse response = Verify();
  EXPECT_TRUE(response.ok()) << response.message();
  EXPECT_EQ(response.entries_checked(), 2 * kRecords);
}

TEST_F(PostgresReplicasTest, RecoverInFlightLeavesALiveReplicasWorkAlone) {
  std::unique_ptr<Store> a = Replica();
  std::unique_ptr<Store> b = Replica();
  const std::string id = Append(MakeEntry("lakeside", "r-1", "p-1"), a.get()).transaction_id;
  std::optional<DeliveryTask> task = Claim("ehr", 2000, a.get());
  ASSERT_TRUE(task.has_value());
  absl::StatusOr<int> recovered = b->RecoverInFlight(3000);
  ASSERT_TRUE(recovered.ok()) << recovered.status();
  EXPECT_EQ(*recovered, 0);
  EXPECT_EQ(Get(id).status(), v1::DELIVERING);
  EXPECT_FALSE(Claim("ehr", kLater, b.get()).has_value());
  Complete(MakeAttempt(*task, v1::DELIVERED, 2000), a.get());
  EXPECT_EQ(Get(id).status(), v1::DELIVERED);
}

// Replicas deliver all the time, so VerifyLog must pass while transactions are in flight: a
// claim is not logged, and DELIVERING matches a last logged ACCEPTED or RETRYING.
TEST_F(PostgresReplicasTest, VerifyPassesWhileDeliveriesAreInFlight) {
  Append(MakeEntry("lakeside", "r-1", "p-1"));
  const std::string retried = Append(MakeEntry("lakeside", "r-2", "p-2")).transaction_id;
  std::optional<DeliveryTask> task = Claim("ehr", 2000);
  ASSERT_TRUE(task.has_value());
  std::optional<DeliveryTask> second = Claim("ehr", 2000);
  ASSERT_TRUE(second.has_value());
  ASSERT_EQ(second->transaction_id, retried);
  Complete(MakeAttempt(*second, v1::RETRYING, 2000, 3000));
  ASSERT_TRUE(Claim("ehr", 3000).has_value());
  v1::VerifyLogResponse response = Verify();
  EXPECT_TRUE(response.ok()) << response.message();
  // But a DELIVERED row whose delivery was never logged is still caught.
  Raw(absl::StrCat("UPDATE transactions SET status = 3 WHERE id = '", retried, "'"));
  response = Verify();
  EXPECT_FALSE(response.ok());
  EXPECT_THAT(response.message(), HasSubstr("is not the status logged last"));
}

TEST_F(PostgresReplicasTest, ALiveReplicaKeepsItsLeaseBeyondTheLeaseTime) {
  Settings short_lease;
  short_lease.lease_ms = 200;
  short_lease.reclaim = true;
  std::unique_ptr<Store> a = Replica(short_lease);
  std::unique_ptr<Store> b = Replica(short_lease);
  const std::string id = Append(MakeEntry("lakeside", "r-1", "p-1"), a.get()).transaction_id;
  std::optional<DeliveryTask> task = Claim("ehr", 2000, a.get());
  ASSERT_TRUE(task.has_value());
  // Several lease times pass; A renews, so B never takes the transaction over.
  std::this_thread::sleep_for(std::chrono::milliseconds(1000));
  EXPECT_EQ(Get(id).status(), v1::DELIVERING);
  Complete(MakeAttempt(*task, v1::DELIVERED, 2000), a.get());
  EXPECT_EQ(Get(id).attempts_size(), 1);
}

TEST_F(PostgresReplicasTest, ADeadReplicasLeaseExpiresAndItsLateAttemptIsRefused) {
  Settings dead;
  dead.lease_ms = 200;
  dead.replica_id = "replica-dead";
  std::unique_ptr<Store> a = Replica(dead);
  Settings survivor;
  survivor.lease_ms = 200;
  survivor.reclaim = true;  // takes over expired leases by itself
  std::unique_ptr<Store> b = Replica(survivor);
  const std::string id = Append(MakeEntry("lakeside", "r-1", "p-1"), a.get()).transaction_id;
  std::optional<DeliveryTask> lost = Claim("ehr", 2000, a.get());
  ASSERT_TRUE(lost.has_value());
  a.reset();  // the replica dies mid-delivery

  std::optional<DeliveryTask> taken;
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
  while (!taken && std::chrono::steady_clock::now() < deadline) {
    taken = Claim("ehr", kLater, b.get());
    if (!taken) std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  ASSERT_TRUE(taken.has_value()) << "the survivor never took the transaction over";
  EXPECT_EQ(taken->transaction_id, id);
  EXPECT_EQ(taken->attempt_number, 2);  // the lost attempt keeps its number

  // The dead replica's attempt turns up late (same replica id): it is not recorded.
  std::unique_ptr<Store> ghost = Replica(dead);
  EXPECT_THAT(ghost->CompleteAttempt(MakeAttempt(*lost, v1::DELIVERED, 2000)),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("lease was lost")));
  Complete(MakeAttempt(*taken, v1::DELIVERED, 3000), b.get());
  const v1::Transaction tx = Get(id);
  EXPECT_EQ(tx.status(), v1::DELIVERED);
  ASSERT_EQ(tx.attempts_size(), 1);
  EXPECT_EQ(tx.attempts(0).number(), 2);
  EXPECT_TRUE(Verify().ok()) << Verify().message();
}

TEST_F(PostgresReplicasTest, ConcurrentAppendsAndResendsOnThreeReplicasFormOneChain) {
  constexpr int kRecords = 60;
  std::vector<std::unique_ptr<Store>> replicas;
  for (int r = 0; r < 3; ++r) replicas.push_back(Replica());
  // Every replica gets every record (a clinic resending to another replica after a timeout).
  std::mutex mu;
  std::map<std::string, std::vector<AppendResult>> by_record;  // guarded by mu
  std::vector<std::thread> threads;
  for (int r = 0; r < 3; ++r) {
    threads.emplace_back([&, r] {
      for (int i = 0; i < kRecords; ++i) {
        const std::string record = absl::StrCat("r-", (i + r * 7) % kRecords);
        absl::StatusOr<AppendResult> result =
            AppendAndWait(*replicas[r], MakeInbound("lakeside", record, record));
        ASSERT_TRUE(result.ok()) << result.status();
        std::lock_guard<std::mutex> lock(mu);
        by_record[record].push_back(*result);
      }
    });
  }
  for (std::thread& t : threads) t.join();
  ASSERT_EQ(by_record.size(), static_cast<size_t>(kRecords));
  for (const auto& [record, results] : by_record) {
    ASSERT_EQ(results.size(), 3u);
    int originals = 0;
    for (const AppendResult& r : results) {
      originals += r.duplicate ? 0 : 1;
      EXPECT_EQ(r.transaction_id, results[0].transaction_id) << record;
      EXPECT_EQ(r.sequence, results[0].sequence) << record;
      EXPECT_EQ(r.version, 1) << record;
    }
    EXPECT_EQ(originals, 1) << record;
  }
  EXPECT_EQ(RawInt("SELECT count(*) FROM transactions"), kRecords);
  // One chain: every entry in order, 1 logged + 2 resent per record.
  const v1::VerifyLogResponse response = Verify();
  EXPECT_TRUE(response.ok()) << response.message();
  EXPECT_EQ(response.entries_checked(), 3 * kRecords);
  // A cursor from one replica resumes on another.
  absl::StatusOr<std::vector<InboundItem>> first = replicas[0]->ListInbound("lakeside", 0, 25);
  ASSERT_TRUE(first.ok());
  ASSERT_EQ(first->size(), 25u);
  absl::StatusOr<std::vector<InboundItem>> rest =
      replicas[2]->ListInbound("lakeside", first->back().sequence, 100);
  ASSERT_TRUE(rest.ok());
  EXPECT_EQ(rest->size(), static_cast<size_t>(kRecords - 25));
  std::set<std::string> seen;
  int64_t previous = 0;
  for (const auto* page : {&*first, &*rest}) {
    for (const InboundItem& item : *page) {
      EXPECT_GT(item.sequence, previous);
      previous = item.sequence;
      seen.insert(item.transaction.transaction_id());
    }
  }
  EXPECT_EQ(seen.size(), static_cast<size_t>(kRecords));
}

// A row of the same version committed by a writer that bypassed the chain lock: the insert's
// unique violation is retried and becomes a duplicate, not an error.
TEST_F(PostgresReplicasTest, AUniqueViolationFromAConcurrentInsertIsRetriedAsADuplicate) {
  const NewEntry entry = MakeEntry("lakeside", "r-race", "p-1", "same");
  PGconn* raw = PQconnectdb(dsn_.c_str());
  ASSERT_EQ(PQstatus(raw), CONNECTION_OK) << PQerrorMessage(raw);
  auto exec = [raw](const std::string& sql) {
    PGresult* r = PQexec(raw, sql.c_str());
    const bool ok = PQresultStatus(r) == PGRES_COMMAND_OK || PQresultStatus(r) == PGRES_TUPLES_OK;
    std::string message = ok ? "" : PQresultErrorMessage(r);
    PQclear(r);
    return message;
  };
  ASSERT_EQ(exec("BEGIN"), "");
  // The content hash as hex, for a bytea literal.
  std::string hex;
  for (unsigned char c : entry.content_hash) absl::StrAppend(&hex, absl::Hex(c, absl::kZeroPad2));
  ASSERT_EQ(exec(absl::StrCat(
                "INSERT INTO transactions (seq, id, clinic_id, record_id, version, content_hash, "
                "kind, direction, status, destination, patient_id, principal, received_at_ms, "
                "updated_at_ms, queued_at_ms, next_attempt_at_ms, record, fhir, alerts) VALUES "
                "(1000000, 'raced-id', 'lakeside', 'r-race', 1, '\\x",
                hex,
                "'::bytea, 3, 1, 1, 'ehr', 'p-1', 'other', 1, 1, 1, 1, ''::bytea, ''::bytea, "
                "''::bytea)")),
            "");
  // The store's insert of version 1 now waits for the raw transaction's unique index entry.
  auto promise = std::make_shared<std::promise<absl::StatusOr<AppendResult>>>();
  auto future = promise->get_future();
  store_->Append(entry,
                 [promise](absl::StatusOr<AppendResult> r) { promise->set_value(std::move(r)); });
  EXPECT_EQ(future.wait_for(std::chrono::milliseconds(500)), std::future_status::timeout);
  ASSERT_EQ(exec("COMMIT"), "");
  ASSERT_EQ(future.wait_for(kCallbackTimeout), std::future_status::ready);
  absl::StatusOr<AppendResult> result = future.get();
  ASSERT_TRUE(result.ok()) << result.status();
  EXPECT_TRUE(result->duplicate);
  EXPECT_EQ(result->transaction_id, "raced-id");
  PQfinish(raw);
}

TEST_F(PostgresReplicasTest, NotificationsReachTheOtherReplicas) {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> inbound;                       // guarded by mu
  std::map<std::string, v1::TransactionStatus> statuses;  // guarded by mu
  Settings listening;
  listening.on_inbound = [&](const std::string& clinic) {
    std::lock_guard<std::mutex> lock(mu);
    inbound.push_back(clinic);
    cv.notify_all();
  };
  listening.on_status = [&](const std::string& id, v1::TransactionStatus status) {
    std::lock_guard<std::mutex> lock(mu);
    statuses[id] = status;
    cv.notify_all();
  };
  // B listens from the moment it has opened; A (store_) writes.
  std::unique_ptr<Store> b = Replica(listening);
  Append(MakeInbound("lakeside", "in-1"));
  Append(MakeInbound("lakeside", "in-1"));  // a duplicate wakes nobody
  const std::string id = Append(MakeEntry("lakeside", "r-1", "p-1")).transaction_id;
  Deliver(id);
  std::unique_lock<std::mutex> lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10),
                          [&] { return !inbound.empty() && statuses.count(id) > 0; }));
  EXPECT_THAT(inbound, ElementsAre("lakeside"));
  EXPECT_EQ(statuses[id], v1::DELIVERED);
}

// The listener's connection is cut (a database restart, a proxy timeout): it reconnects and wakes
// the streams of the clinics that received hospital data meanwhile, whose notifications were lost.
TEST_F(PostgresReplicasTest, AListenerThatLostItsConnectionCatchesUp) {
  std::mutex mu;
  std::condition_variable cv;
  std::vector<std::string> inbound;  // guarded by mu
  Settings listening;
  listening.on_inbound = [&](const std::string& clinic) {
    std::lock_guard<std::mutex> lock(mu);
    inbound.push_back(clinic);
    cv.notify_all();
  };
  std::unique_ptr<Store> b = Replica(listening);
  EXPECT_EQ(Raw("SELECT count(*) FROM (SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                "WHERE application_name = 'fhirgw-listener') terminated"),
            "1");
  Append(MakeInbound("riverside", "in-1"));
  std::unique_lock<std::mutex> lock(mu);
  ASSERT_TRUE(cv.wait_for(lock, std::chrono::seconds(10), [&] { return !inbound.empty(); }));
  EXPECT_EQ(inbound.front(), "riverside");
}

// ---- configuration
// ---------------------------------------------------------------------------------

TEST(PostgresConfigTest, TheBlockGetsItsDefaultsAndIsChecked) {
  absl::StatusOr<v1::GatewayConfig> config =
      ParseConfig(R"(store { postgres { dsn: "host=db.internal dbname=fhirgw" } })", "test");
  ASSERT_TRUE(config.ok()) << config.status();
  ApplyDefaults(*config);
  EXPECT_TRUE(config->store().has_postgres());
  EXPECT_FALSE(config->store().has_sqlite());
  EXPECT_EQ(config->store().postgres().lease_ms(), 30000);
  EXPECT_TRUE(ValidateConfig(*config).ok()) << ValidateConfig(*config);

  config = ParseConfig(R"(store { postgres { dsn: "x" dsn_env: "Y" lease_ms: 50 } })", "test");
  ASSERT_TRUE(config.ok());
  ApplyDefaults(*config);
  EXPECT_THAT(ValidateConfig(*config),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ::testing::AllOf(HasSubstr("store.postgres: needs exactly one of dsn and "
                                                  "dsn_env"),
                                        HasSubstr("store.postgres.lease_ms: 50"))));
  config = ParseConfig("store { postgres { } }", "test");
  ASSERT_TRUE(config.ok());
  ApplyDefaults(*config);
  EXPECT_THAT(ValidateConfig(*config),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("store.postgres")));
}

TEST(PostgresConfigTest, TheConnectionStringMayComeFromTheEnvironment) {
  v1::StoreConfig::Postgres config;
  config.set_dsn("host=a");
  EXPECT_EQ(*ResolvePostgresDsn(config), "host=a");
  config.clear_dsn();
  config.set_dsn_env("FHIRGW_TEST_PG_DSN");
  ::unsetenv("FHIRGW_TEST_PG_DSN");
  EXPECT_THAT(ResolvePostgresDsn(config),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("store.postgres.dsn_env: the environment variable "
                                 "FHIRGW_TEST_PG_DSN is not set")));
  ::setenv("FHIRGW_TEST_PG_DSN", "host=b dbname=c", 1);
  EXPECT_EQ(*ResolvePostgresDsn(config), "host=b dbname=c");
  ::unsetenv("FHIRGW_TEST_PG_DSN");
}

TEST(PostgresConfigTest, OpeningAnUnreachableDatabaseFailsClearly) {
  PostgresOptions options;
  options.dsn = "host=/nonexistent-fhirgw-socket-dir port=1 connect_timeout=2";
  EXPECT_THAT(OpenPostgresStore(options),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("cannot connect to PostgreSQL")));
}

}  // namespace
}  // namespace fhirgw::gateway
