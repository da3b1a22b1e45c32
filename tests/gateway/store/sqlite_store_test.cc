// Tests of the SQLite transaction log (sqlite_store.h) against the Store contract (store.h): group
// commit, deduplication and versions, claiming rules, attempts, recovery, replay and statistics.
// Each test works on its own database under a fresh temporary directory.
#include "gateway/store/sqlite/sqlite_store.h"

#include <sqlite3.h>
#include <stdlib.h>

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
#include "gateway/store/store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fhirgw::gateway {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

// Matches an absl::Status (or the status of a StatusOr) with code `code` and a message matching
// `message_matcher`.
MATCHER_P2(StatusIs, code, message_matcher,
           std::string(negation ? "isn't" : "is") + " a status with code " +
               absl::StatusCodeToString(code)) {
  const absl::Status status = [&] {
    if constexpr (std::is_same_v<std::decay_t<decltype(arg)>, absl::Status>) {
      return arg;
    } else {
      return arg.status();
    }
  }();
  if (status.code() != code) {
    *result_listener << "whose code is " << absl::StatusCodeToString(status.code()) << ": "
                     << status.message();
    return false;
  }
  *result_listener << "whose message is \"" << status.message() << "\"";
  return ::testing::ExplainMatchResult(message_matcher, std::string(status.message()),
                                       result_listener);
}

constexpr auto kCallbackTimeout = std::chrono::seconds(60);
// Far enough in the future that nothing received "now" in these tests is due after it.
constexpr int64_t kLater = 4'000'000'000'000;

// A fresh directory under the test temporary directory, removed with its contents at the end.
class TempDir {
 public:
  TempDir() {
    std::string pattern = ::testing::TempDir() + "fhirgw_store_XXXXXX";
    if (mkdtemp(pattern.data()) != nullptr) path_ = pattern;
  }
  ~TempDir() {
    std::error_code ec;
    if (!path_.empty()) std::filesystem::remove_all(path_, ec);
  }
  const std::string& path() const { return path_; }

 private:
  std::string path_;
};

// A connection of the test's own to the log file, to look at what is really on disk.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    if (sqlite3_open_v2(path.c_str(), &db_, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << "cannot open " << path << ": " << sqlite3_errmsg(db_);
    }
    sqlite3_busy_timeout(db_, 10000);
  }
  ~RawDb() { sqlite3_close(db_); }

  // Returns the first column of the first row of `sql` as text ("" with no row).
  std::string Text(const std::string& sql) {
    sqlite3_stmt* stmt = nullptr;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db_);
      return "";
    }
    std::string value;
    const int rc = sqlite3_step(stmt);
    if (rc == SQLITE_ROW) {
      const unsigned char* text = sqlite3_column_text(stmt, 0);
      if (text != nullptr) value = reinterpret_cast<const char*>(text);
    } else if (rc != SQLITE_DONE) {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db_);
    }
    sqlite3_finalize(stmt);
    return value;
  }
  int64_t Int(const std::string& sql) { return std::stoll("0" + Text(sql)); }

 private:
  sqlite3* db_ = nullptr;
};

// Appends `entry` and waits for its callback.
absl::StatusOr<AppendResult> AppendAndWait(Store& store, NewEntry entry) {
  auto promise = std::make_shared<std::promise<absl::StatusOr<AppendResult>>>();
  std::future<absl::StatusOr<AppendResult>> future = promise->get_future();
  store.Append(std::move(entry),
               [promise](absl::StatusOr<AppendResult> r) { promise->set_value(std::move(r)); });
  if (future.wait_for(kCallbackTimeout) != std::future_status::ready) {
    return absl::DeadlineExceededError("the append callback never ran");
  }
  return future.get();
}

v1::Alert MakeAlert(v1::Alert::Kind kind, absl::string_view message) {
  v1::Alert alert;
  alert.set_kind(kind);
  alert.set_message(std::string(message));
  return alert;
}

// An outbound entry whose hash, record and Bundle derive from `content`.
NewEntry MakeEntry(absl::string_view clinic, absl::string_view record_id, absl::string_view patient,
                   absl::string_view content = "content", int64_t received_at_ms = 1000,
                   absl::string_view destination = "ehr") {
  NewEntry e;
  e.clinic_id = std::string(clinic);
  e.record_id = std::string(record_id);
  e.patient_id = std::string(patient);
  e.content_hash = Sha256(content);
  e.kind = v1::QUESTIONNAIRE;
  e.direction = v1::CLINIC_TO_EHR;
  e.destination = std::string(destination);
  v1::ClinicRecord record;
  record.set_record_id(e.record_id);
  record.set_clinic_id(e.clinic_id);
  record.mutable_patient()->set_clinic_patient_id(e.patient_id);
  e.record = record.SerializeAsString();
  e.fhir_json =
      absl::StrCat(R"({"resourceType":"Bundle","type":"transaction","id":")", content, R"("})");
  e.principal = "token:lakeside";
  e.received_at_ms = received_at_ms;
  return e;
}

v1::ResourceRef MakeRef(absl::string_view type, absl::string_view id, absl::string_view version) {
  v1::ResourceRef ref;
  ref.set_resource_type(std::string(type));
  ref.set_id(std::string(id));
  ref.set_version_id(std::string(version));
  ref.set_status("201 Created");
  ref.set_full_url(absl::StrCat("urn:uuid:", id));
  return ref;
}

AttemptResult MakeAttempt(const DeliveryTask& task, v1::TransactionStatus status,
                          int64_t started_at_ms, int64_t next_attempt_at_ms = 0) {
  AttemptResult result;
  result.transaction_id = task.transaction_id;
  result.attempt.set_number(task.attempt_number);
  result.attempt.mutable_started_at()->set_seconds(started_at_ms / 1000);
  result.attempt.mutable_started_at()->set_nanos(static_cast<int32_t>(started_at_ms % 1000) *
                                                 1000000);
  result.attempt.set_duration_ms(12);
  switch (status) {
    case v1::DELIVERED:
      result.attempt.set_http_status(200);
      result.attempt.set_outcome(v1::DeliveryAttempt::SUCCESS);
      break;
    case v1::REJECTED:
      result.attempt.set_http_status(422);
      result.attempt.set_outcome(v1::DeliveryAttempt::REJECTED);
      break;
    default:
      result.attempt.set_http_status(503);
      result.attempt.set_outcome(v1::DeliveryAttempt::RETRYABLE_ERROR);
      break;
  }
  result.new_status = status;
  result.next_attempt_at_ms = next_attempt_at_ms;
  return result;
}

int64_t Ms(const google::protobuf::Timestamp& t) {
  return t.seconds() * 1000 + t.nanos() / 1000000;
}

class SqliteStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    // A directory that does not exist yet: opening creates it.
    db_path_ = dir_.path() + "/log/fhirgw.db";
    Open();
  }

  void Open(int max_batch = SqliteOptions().max_batch, int max_batch_delay_us = 0) {
    SqliteOptions options;
    options.path = db_path_;
    options.max_batch = max_batch;
    options.max_batch_delay_us = max_batch_delay_us;
    absl::StatusOr<std::unique_ptr<Store>> store = OpenSqliteStore(options);
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  // Appends `entry`, expecting success; returns the result.
  AppendResult Append(NewEntry entry) {
    absl::StatusOr<AppendResult> result = AppendAndWait(*store_, std::move(entry));
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? *std::move(result) : AppendResult{};
  }

  std::optional<DeliveryTask> Claim(absl::string_view destination, int64_t now_ms) {
    absl::StatusOr<std::optional<DeliveryTask>> task = store_->ClaimNext(destination, now_ms);
    EXPECT_TRUE(task.ok()) << task.status();
    return task.ok() ? *task : std::nullopt;
  }

  // Claims the next task for "ehr" and returns its transaction id ("" when none).
  std::string ClaimId(int64_t now_ms) {
    std::optional<DeliveryTask> task = Claim("ehr", now_ms);
    return task ? task->transaction_id : "";
  }

  void Complete(const AttemptResult& result) {
    absl::Status status = store_->CompleteAttempt(result);
    EXPECT_TRUE(status.ok()) << status;
  }

  v1::Transaction Get(absl::string_view id, bool with_payload = false) {
    absl::StatusOr<v1::Transaction> tx = store_->Get(id, with_payload);
    EXPECT_TRUE(tx.ok()) << tx.status();
    return tx.ok() ? *std::move(tx) : v1::Transaction();
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

  TempDir dir_;
  std::string db_path_;
  std::unique_ptr<Store> store_;
};

TEST_F(SqliteStoreTest, TheDatabaseFileUsesTheWriteAheadLog) {
  RawDb db(db_path_);
  EXPECT_EQ(db.Text("PRAGMA journal_mode"), "wal");
  EXPECT_TRUE(std::filesystem::exists(db_path_ + "-wal"));
}

TEST_F(SqliteStoreTest, PingAnswers) { EXPECT_TRUE(store_->Ping().ok()); }

TEST_F(SqliteStoreTest, AppendThenGetReturnsTheEntry) {
  NewEntry entry = MakeEntry("lakeside", "r-1", "p-1", "phq9", 1'700'000'000'123);
  entry.alerts.push_back(MakeAlert(v1::Alert::SUICIDAL_IDEATION, "PHQ-9 item 9 answered 2"));
  const std::string record_bytes = entry.record;
  const std::string bundle = entry.fhir_json;

  const AppendResult result = Append(entry);
  EXPECT_THAT(result.transaction_id,
              ::testing::MatchesRegex("[0-9a-f]{8}-[0-9a-f]{4}-4[0-9a-f]{3}-[89ab][0-9a-f]{3}-"
                                      "[0-9a-f]{12}"));
  EXPECT_EQ(result.version, 1);
  EXPECT_FALSE(result.duplicate);
  EXPECT_EQ(result.status, v1::ACCEPTED);
  ASSERT_EQ(result.alerts.size(), 1u);
  EXPECT_EQ(result.alerts[0].kind(), v1::Alert::SUICIDAL_IDEATION);

  const v1::Transaction tx = Get(result.transaction_id);
  EXPECT_EQ(tx.transaction_id(), result.transaction_id);
  EXPECT_EQ(tx.clinic_id(), "lakeside");
  EXPECT_EQ(tx.record_id(), "r-1");
  EXPECT_EQ(tx.patient_id(), "p-1");
  EXPECT_EQ(tx.version(), 1);
  EXPECT_EQ(tx.status(), v1::ACCEPTED);
  EXPECT_EQ(tx.kind(), v1::QUESTIONNAIRE);
  EXPECT_EQ(tx.direction(), v1::CLINIC_TO_EHR);
  EXPECT_EQ(tx.destination(), "ehr");
  EXPECT_EQ(tx.principal(), "token:lakeside");
  EXPECT_EQ(tx.received_at().seconds(), 1'700'000'000);
  EXPECT_EQ(tx.received_at().nanos(), 123'000'000);
  ASSERT_EQ(tx.alerts_size(), 1);
  EXPECT_EQ(tx.alerts(0).kind(), v1::Alert::SUICIDAL_IDEATION);
  EXPECT_EQ(tx.alerts(0).message(), "PHQ-9 item 9 answered 2");
  EXPECT_THAT(tx.attempts(), IsEmpty());
  EXPECT_THAT(tx.resources(), IsEmpty());
  // Without payload: neither the record nor the Bundle.
  EXPECT_FALSE(tx.has_record());
  EXPECT_EQ(tx.fhir_json(), "");

  const v1::Transaction full = Get(result.transaction_id, /*with_payload=*/true);
  EXPECT_EQ(full.record().SerializeAsString(), record_bytes);
  EXPECT_EQ(full.record().record_id(), "r-1");
  EXPECT_EQ(full.fhir_json(), bundle);
}

TEST_F(SqliteStoreTest, AnInboundEntryIsRecorded) {
  NewEntry entry = MakeEntry("lakeside", "r-in", "p-1");
  entry.direction = v1::EHR_TO_CLINIC;
  const AppendResult result = Append(entry);
  EXPECT_EQ(result.status, v1::RECORDED);
  EXPECT_EQ(Get(result.transaction_id).status(), v1::RECORDED);
  EXPECT_FALSE(Claim("ehr", kLater).has_value());
}

TEST_F(SqliteStoreTest, GetOfAnUnknownIdIsNotFound) {
  EXPECT_THAT(store_->Get("no-such-id", true),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("no-such-id")));
}

TEST_F(SqliteStoreTest, AResendOfTheSameContentIsADuplicateAndLogsNothing) {
  NewEntry first = MakeEntry("lakeside", "r-1", "p-1", "same");
  first.alerts.push_back(MakeAlert(v1::Alert::SEVERE_ADVERSE_EVENT, "original alert"));
  const AppendResult original = Append(first);

  NewEntry resend = MakeEntry("lakeside", "r-1", "p-1", "same", 5000);
  resend.alerts.push_back(MakeAlert(v1::Alert::SUICIDAL_IDEATION, "resend alert"));
  const AppendResult again = Append(resend);

  EXPECT_TRUE(again.duplicate);
  EXPECT_EQ(again.transaction_id, original.transaction_id);
  EXPECT_EQ(again.version, 1);
  EXPECT_EQ(again.status, v1::ACCEPTED);
  ASSERT_EQ(again.alerts.size(), 1u);
  EXPECT_EQ(again.alerts[0].kind(), v1::Alert::SEVERE_ADVERSE_EVENT);
  EXPECT_EQ(again.alerts[0].message(), "original alert");

  RawDb db(db_path_);
  EXPECT_EQ(db.Int("SELECT count(*) FROM transactions"), 1);
  const v1::Transaction tx = Get(original.transaction_id);
  EXPECT_EQ(Ms(tx.received_at()), 1000);
  ASSERT_EQ(tx.alerts_size(), 1);
  EXPECT_EQ(tx.alerts(0).message(), "original alert");
}

TEST_F(SqliteStoreTest, ADuplicateReportsTheCurrentStatusOfTheOriginal) {
  const AppendResult original = Append(MakeEntry("lakeside", "r-1", "p-1", "same"));
  std::optional<DeliveryTask> task = Claim("ehr", 2000);
  ASSERT_TRUE(task.has_value());
  Complete(MakeAttempt(*task, v1::DELIVERED, 2000));

  const AppendResult again = Append(MakeEntry("lakeside", "r-1", "p-1", "same"));
  EXPECT_TRUE(again.duplicate);
  EXPECT_EQ(again.transaction_id, original.transaction_id);
  EXPECT_EQ(again.status, v1::DELIVERED);
}

TEST_F(SqliteStoreTest, AChangedContentBecomesTheNextVersion) {
  const AppendResult v1_result = Append(MakeEntry("lakeside", "r-1", "p-1", "first"));
  const AppendResult v2_result = Append(MakeEntry("lakeside", "r-1", "p-1", "second"));
  EXPECT_FALSE(v2_result.duplicate);
  EXPECT_EQ(v2_result.version, 2);
  EXPECT_NE(v2_result.transaction_id, v1_result.transaction_id);
  EXPECT_EQ(Get(v2_result.transaction_id).version(), 2);

  // Only the newest version counts for duplicates: going back to the first content is a change.
  const AppendResult v3_result = Append(MakeEntry("lakeside", "r-1", "p-1", "first"));
  EXPECT_FALSE(v3_result.duplicate);
  EXPECT_EQ(v3_result.version, 3);

  // The same record id at another clinic is another record.
  const AppendResult other = Append(MakeEntry("riverside", "r-1", "p-1", "first"));
  EXPECT_FALSE(other.duplicate);
  EXPECT_EQ(other.version, 1);
}

TEST_F(SqliteStoreTest, ConcurrentAppendsAllCompleteWithDistinctIds) {
  constexpr int kThreads = 16;
  constexpr int kPerThread = 50;
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
                            [&] { return results.size() == kThreads * kPerThread; }))
        << results.size() << " callbacks";
  }
  std::set<std::string> ids;
  for (const absl::StatusOr<AppendResult>& r : results) {
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->version, 1);
    EXPECT_FALSE(r->duplicate);
    ids.insert(r->transaction_id);
  }
  EXPECT_EQ(ids.size(), static_cast<size_t>(kThreads * kPerThread));
  RawDb db(db_path_);
  EXPECT_EQ(db.Int("SELECT count(*) FROM transactions"), kThreads * kPerThread);
}

// Every callback of one batch runs after that batch's COMMIT and before the next batch starts, so
// the number of rows a callback can see on disk tells which commit made its record durable.
TEST_F(SqliteStoreTest, GroupCommitMakesABurstOfAppendsShareCommits) {
  constexpr int kThreads = 16;
  constexpr int kPerThread = 50;
  constexpr int kBatch = 50;
  store_.reset();
  // A long delay makes every batch wait until it is full: 800 appends are exactly 16 commits.
  Open(kBatch, /*max_batch_delay_us=*/20'000'000);
  RawDb db(db_path_);

  std::mutex mu;
  std::condition_variable cv;
  std::map<int64_t, int> callbacks_by_visible_rows;
  int callbacks = 0;
  int failures = 0;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        store_->Append(MakeEntry("lakeside", absl::StrCat("r-", t, "-", i), absl::StrCat("p-", t)),
                       [&](absl::StatusOr<AppendResult> r) {
                         const int64_t visible = db.Int("SELECT count(*) FROM transactions");
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

TEST_F(SqliteStoreTest, CloseCommitsWhatIsQueued) {
  store_.reset();
  // Without Close the batch would wait a minute for more appends.
  Open(256, /*max_batch_delay_us=*/60'000'000);
  std::vector<std::future<absl::StatusOr<AppendResult>>> futures;
  for (int i = 0; i < 3; ++i) {
    auto promise = std::make_shared<std::promise<absl::StatusOr<AppendResult>>>();
    futures.push_back(promise->get_future());
    store_->Append(MakeEntry("lakeside", absl::StrCat("r-", i), "p-1"),
                   [promise](absl::StatusOr<AppendResult> r) { promise->set_value(std::move(r)); });
  }
  auto closed = std::async(std::launch::async, [this] { store_->Close(); });
  ASSERT_EQ(closed.wait_for(std::chrono::seconds(30)), std::future_status::ready)
      << "Close waited for the batch delay instead of committing";
  for (auto& future : futures) {
    ASSERT_EQ(future.wait_for(std::chrono::seconds(0)), std::future_status::ready);
    absl::StatusOr<AppendResult> result = future.get();
    EXPECT_TRUE(result.ok()) << result.status();
  }
  RawDb db(db_path_);
  EXPECT_EQ(db.Int("SELECT count(*) FROM transactions"), 3);
}

TEST_F(SqliteStoreTest, AppendAfterCloseIsUnavailable) {
  store_->Close();
  EXPECT_THAT(AppendAndWait(*store_, MakeEntry("lakeside", "r-1", "p-1")),
              StatusIs(absl::StatusCode::kUnavailable, HasSubstr("closed")));
  store_->Close();  // a second Close is harmless
}

TEST_F(SqliteStoreTest, OpenFailsClearlyWhenTheDirectoryCannotBeCreated) {
  const std::string file = dir_.path() + "/a-file";
  { std::ofstream(file) << "x"; }
  absl::StatusOr<std::unique_ptr<Store>> store = OpenSqliteStore({.path = file + "/sub/fhirgw.db"});
  EXPECT_THAT(store, StatusIs(absl::StatusCode::kUnavailable, HasSubstr(file)));
}

TEST_F(SqliteStoreTest, DataSurvivesReopening) {
  NewEntry entry = MakeEntry("lakeside", "r-1", "p-1", "durable");
  entry.alerts.push_back(MakeAlert(v1::Alert::SUICIDAL_IDEATION, "kept"));
  const std::string id = Append(entry).transaction_id;
  std::optional<DeliveryTask> task = Claim("ehr", 2000);
  ASSERT_TRUE(task.has_value());
  AttemptResult delivered = MakeAttempt(*task, v1::DELIVERED, 2000);
  delivered.resources.push_back(MakeRef("Patient", "123", "1"));
  Complete(delivered);

  store_.reset();
  Open();

  const v1::Transaction tx = Get(id, /*with_payload=*/true);
  EXPECT_EQ(tx.status(), v1::DELIVERED);
  EXPECT_EQ(tx.fhir_json(), entry.fhir_json);
  ASSERT_EQ(tx.alerts_size(), 1);
  EXPECT_EQ(tx.alerts(0).message(), "kept");
  ASSERT_EQ(tx.attempts_size(), 1);
  EXPECT_EQ(tx.attempts(0).http_status(), 200);
  ASSERT_EQ(tx.resources_size(), 1);
  EXPECT_EQ(tx.resources(0).id(), "123");
  // The record keeps its versions across restarts.
  EXPECT_TRUE(Append(MakeEntry("lakeside", "r-1", "p-1", "durable")).duplicate);
  EXPECT_EQ(Append(MakeEntry("lakeside", "r-1", "p-1", "changed")).version, 2);
}

TEST_F(SqliteStoreTest, ClaimMarksTheTransactionDeliveringAndHandsOutTheBundle) {
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

  // Not handed out twice while in flight.
  EXPECT_FALSE(Claim("ehr", kLater).has_value());
}

TEST_F(SqliteStoreTest, ClaimOnlyHandsOutTheDestinationsOwnWork) {
  Append(MakeEntry("lakeside", "r-1", "p-1", "x", 1000, "ehr-a"));
  EXPECT_FALSE(Claim("ehr-b", kLater).has_value());
  EXPECT_TRUE(Claim("ehr-a", kLater).has_value());
}

TEST_F(SqliteStoreTest, ClaimFollowsTheDueTime) {
  const std::string late = Append(MakeEntry("lakeside", "r-late", "p-1", "c", 3000)).transaction_id;
  const std::string early =
      Append(MakeEntry("lakeside", "r-early", "p-2", "c", 1000)).transaction_id;
  const std::string middle =
      Append(MakeEntry("lakeside", "r-middle", "p-3", "c", 2000)).transaction_id;

  // Received after `now`: not due yet.
  EXPECT_EQ(ClaimId(500), "");
  EXPECT_EQ(ClaimId(2500), early);
  EXPECT_EQ(ClaimId(2500), middle);
  EXPECT_EQ(ClaimId(2500), "");
  EXPECT_EQ(ClaimId(3000), late);
}

TEST_F(SqliteStoreTest, VersionsOfOneRecordAreDeliveredInOrder) {
  const std::string v1_id = Append(MakeEntry("lakeside", "r-1", "p-1", "one")).transaction_id;
  // Another patient id, so that only the version rule can hold the second version back.
  const std::string v2_id = Append(MakeEntry("lakeside", "r-1", "p-2", "two")).transaction_id;

  std::optional<DeliveryTask> first = Claim("ehr", 2000);
  ASSERT_TRUE(first.has_value());
  EXPECT_EQ(first->transaction_id, v1_id);
  // Version 1 in flight: version 2 waits.
  EXPECT_EQ(ClaimId(2000), "");
  // Version 1 waiting for a retry: version 2 still waits, although it is due.
  Complete(MakeAttempt(*first, v1::RETRYING, 2000, 10'000));
  EXPECT_EQ(ClaimId(5000), "");

  std::optional<DeliveryTask> retry = Claim("ehr", 10'000);
  ASSERT_TRUE(retry.has_value());
  EXPECT_EQ(retry->transaction_id, v1_id);
  Complete(MakeAttempt(*retry, v1::DELIVERED, 10'000));
  EXPECT_EQ(ClaimId(10'000), v2_id);
}

TEST_F(SqliteStoreTest, OnlyOneTransactionOfAPatientIsInFlight) {
  const std::string p1_a = Append(MakeEntry("lakeside", "r-a", "p-1", "c", 1000)).transaction_id;
  const std::string p1_b = Append(MakeEntry("lakeside", "r-b", "p-1", "c", 1001)).transaction_id;
  const std::string p2 = Append(MakeEntry("lakeside", "r-c", "p-2", "c", 1002)).transaction_id;
  // The same patient id at another clinic is another patient.
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

TEST_F(SqliteStoreTest, ARetryIsClaimedOnlyOnceDue) {
  const std::string id = Append(MakeEntry("lakeside", "r-1", "p-1")).transaction_id;
  std::optional<DeliveryTask> first = Claim("ehr", 2000);
  ASSERT_TRUE(first.has_value());
  Complete(MakeAttempt(*first, v1::RETRYING, 2000, 7000));

  const v1::Transaction tx = Get(id);
  EXPECT_EQ(tx.status(), v1::RETRYING);
  EXPECT_EQ(Ms(tx.next_attempt_at()), 7000);
  ASSERT_EQ(tx.attempts_size(), 1);
  EXPECT_EQ(tx.attempts(0).number(), 1);
  EXPECT_EQ(tx.attempts(0).http_status(), 503);

  EXPECT_FALSE(Claim("ehr", 6999).has_value());
  std::optional<DeliveryTask> second = Claim("ehr", 7000);
  ASSERT_TRUE(second.has_value());
  EXPECT_EQ(second->transaction_id, id);
  EXPECT_EQ(second->attempt_number, 2);
  EXPECT_EQ(second->attempts_so_far, 1);
  EXPECT_EQ(second->queued_at_ms, 1000);
}

TEST_F(SqliteStoreTest, CompleteAttemptDeliveredStoresTheAttemptAndTheResources) {
  const std::string id = Append(MakeEntry("lakeside", "r-1", "p-1")).transaction_id;
  std::optional<DeliveryTask> task = Claim("ehr", 2000);
  ASSERT_TRUE(task.has_value());
  AttemptResult result = MakeAttempt(*task, v1::DELIVERED, 2'345);
  result.attempt.set_response(R"({"resourceType":"Bundle","type":"transaction-response"})");
  result.resources.push_back(MakeRef("Patient", "123", "2"));
  result.resources.push_back(MakeRef("QuestionnaireResponse", "456", "1"));
  Complete(result);

  const v1::Transaction tx = Get(id);
  EXPECT_EQ(tx.status(), v1::DELIVERED);
  EXPECT_FALSE(tx.has_next_attempt_at());
  ASSERT_EQ(tx.attempts_size(), 1);
  EXPECT_EQ(tx.attempts(0).SerializeAsString(), result.attempt.SerializeAsString());
  ASSERT_EQ(tx.resources_size(), 2);
  EXPECT_EQ(tx.resources(0).SerializeAsString(), result.resources[0].SerializeAsString());
  EXPECT_EQ(tx.resources(1).SerializeAsString(), result.resources[1].SerializeAsString());
  // Updated when the attempt ended.
  EXPECT_EQ(Ms(tx.updated_at()), 2'345 + 12);
  EXPECT_FALSE(Claim("ehr", kLater).has_value());
}

TEST_F(SqliteStoreTest, CompleteAttemptRejectedKeepsTheIssues) {
  const std::string id = Append(MakeEntry("lakeside", "r-1", "p-1")).transaction_id;
  std::optional<DeliveryTask> task = Claim("ehr", 2000);
  ASSERT_TRUE(task.has_value());
  AttemptResult result = MakeAttempt(*task, v1::REJECTED, 2000);
  v1::Issue& issue = *result.attempt.add_issues();
  issue.set_severity(v1::Issue::ERROR);
  issue.set_path("Patient.birthDate");
  issue.set_message("invalid date");
  Complete(result);

  const v1::Transaction tx = Get(id);
  EXPECT_EQ(tx.status(), v1::REJECTED);
  ASSERT_EQ(tx.attempts_size(), 1);
  ASSERT_EQ(tx.attempts(0).issues_size(), 1);
  EXPECT_EQ(tx.attempts(0).issues(0).path(), "Patient.birthDate");
  EXPECT_FALSE(Claim("ehr", kLater).has_value());
}

TEST_F(SqliteStoreTest, RecoverInFlightMakesDeliveringTransactionsRetryingDueNow) {
  const std::string a = Append(MakeEntry("lakeside", "r-a", "p-1")).transaction_id;
  const std::string b = Append(MakeEntry("lakeside", "r-b", "p-2")).transaction_id;
  const std::string waiting = Append(MakeEntry("lakeside", "r-c", "p-3", "c", 9000)).transaction_id;
  EXPECT_EQ(ClaimId(2000), a);
  EXPECT_EQ(ClaimId(2000), b);

  absl::StatusOr<int> recovered = store_->RecoverInFlight(5000);
  ASSERT_TRUE(recovered.ok()) << recovered.status();
  EXPECT_EQ(*recovered, 2);
  for (const std::string& id : {a, b}) {
    const v1::Transaction tx = Get(id);
    EXPECT_EQ(tx.status(), v1::RETRYING) << id;
    EXPECT_EQ(Ms(tx.next_attempt_at()), 5000) << id;
  }
  EXPECT_EQ(Get(waiting).status(), v1::ACCEPTED);

  absl::StatusOr<int> again = store_->RecoverInFlight(6000);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, 0);

  EXPECT_EQ(ClaimId(4999), "");
  std::set<std::string> claimed = {ClaimId(5000), ClaimId(5000)};
  EXPECT_THAT(claimed, UnorderedElementsAre(a, b));
}

TEST_F(SqliteStoreTest, ReplayByIdRestartsTheRetryBudgetButNotTheAttemptNumbers) {
  const std::string id = MakeDeadLetter("lakeside", "r-1");

  absl::StatusOr<std::vector<std::string>> replayed = store_->Replay({id}, "", 8000);
  ASSERT_TRUE(replayed.ok()) << replayed.status();
  EXPECT_THAT(*replayed, ElementsAre(id));
  const v1::Transaction tx = Get(id);
  EXPECT_EQ(tx.status(), v1::ACCEPTED);
  EXPECT_EQ(Ms(tx.next_attempt_at()), 8000);
  EXPECT_EQ(tx.attempts_size(), 2);

  EXPECT_FALSE(Claim("ehr", 7999).has_value());
  std::optional<DeliveryTask> task = Claim("ehr", 8000);
  ASSERT_TRUE(task.has_value());
  EXPECT_EQ(task->transaction_id, id);
  EXPECT_EQ(task->attempt_number, 3);
  EXPECT_EQ(task->attempts_so_far, 0);
  // The age limit restarts too.
  EXPECT_EQ(task->queued_at_ms, 8000);

  // Attempt numbers go on: the third attempt is stored next to the first two.
  Complete(MakeAttempt(*task, v1::RETRYING, 8000, 9000));
  std::optional<DeliveryTask> next = Claim("ehr", 9000);
  ASSERT_TRUE(next.has_value());
  EXPECT_EQ(next->attempt_number, 4);
  EXPECT_EQ(next->attempts_so_far, 1);
  const v1::Transaction after = Get(id);
  ASSERT_EQ(after.attempts_size(), 3);
  EXPECT_EQ(after.attempts(2).number(), 3);
}

TEST_F(SqliteStoreTest, ReplayByClinicReplaysThatClinicsDeadLetters) {
  const std::string a1 = MakeDeadLetter("lakeside", "r-1");
  const std::string a2 = MakeDeadLetter("lakeside", "r-2");
  const std::string b1 = MakeDeadLetter("riverside", "r-3");

  absl::StatusOr<std::vector<std::string>> replayed = store_->Replay({}, "lakeside", 8000);
  ASSERT_TRUE(replayed.ok()) << replayed.status();
  EXPECT_THAT(*replayed, UnorderedElementsAre(a1, a2));
  EXPECT_EQ(Get(a1).status(), v1::ACCEPTED);
  EXPECT_EQ(Get(a2).status(), v1::ACCEPTED);
  EXPECT_EQ(Get(b1).status(), v1::DEAD_LETTER);

  // No clinic: every clinic's dead letters.
  replayed = store_->Replay({}, "", 8000);
  ASSERT_TRUE(replayed.ok()) << replayed.status();
  EXPECT_THAT(*replayed, ElementsAre(b1));
  EXPECT_EQ(Get(b1).status(), v1::ACCEPTED);

  std::optional<DeliveryTask> task = Claim("ehr", 8000);
  ASSERT_TRUE(task.has_value());
  EXPECT_EQ(task->attempts_so_far, 0);
  EXPECT_EQ(task->attempt_number, 3);
}

TEST_F(SqliteStoreTest, ReplayIgnoresTransactionsThatAreNotDeadLetters) {
  const std::string accepted = Append(MakeEntry("lakeside", "r-1", "p-1")).transaction_id;
  const std::string delivered = Append(MakeEntry("lakeside", "r-2", "p-2")).transaction_id;
  std::optional<DeliveryTask> task = Claim("ehr", 2000);
  ASSERT_TRUE(task.has_value());
  ASSERT_EQ(task->transaction_id, accepted);
  Complete(MakeAttempt(*task, v1::DELIVERED, 2000));
  task = Claim("ehr", 2000);
  ASSERT_TRUE(task.has_value());
  ASSERT_EQ(task->transaction_id, delivered);
  Complete(MakeAttempt(*task, v1::REJECTED, 2000));

  const std::string dead = MakeDeadLetter("lakeside", "r-3");
  absl::StatusOr<std::vector<std::string>> replayed =
      store_->Replay({accepted, delivered, "unknown-id", dead}, "", 8000);
  ASSERT_TRUE(replayed.ok()) << replayed.status();
  EXPECT_THAT(*replayed, ElementsAre(dead));
  EXPECT_EQ(Get(accepted).status(), v1::DELIVERED);
  EXPECT_EQ(Get(delivered).status(), v1::REJECTED);

  replayed = store_->Replay({}, "", 9000);
  ASSERT_TRUE(replayed.ok()) << replayed.status();
  EXPECT_THAT(*replayed, IsEmpty());
}

TEST_F(SqliteStoreTest, StatsCountsUndeliveredAndDeadLetters) {
  absl::StatusOr<QueueStats> empty = store_->Stats();
  ASSERT_TRUE(empty.ok()) << empty.status();
  EXPECT_EQ(empty->undelivered, 0);
  EXPECT_EQ(empty->dead_letters, 0);
  EXPECT_EQ(empty->oldest_undelivered_ms, 0);

  MakeDeadLetter("lakeside", "r-dead");  // received at 1000
  const std::string delivered =
      Append(MakeEntry("lakeside", "r-delivered", "p-1", "c", 1100)).transaction_id;
  Append(MakeEntry("lakeside", "r-delivering", "p-2", "c", 1500));
  Append(MakeEntry("lakeside", "r-retrying", "p-3", "c", 1200));
  Append(MakeEntry("lakeside", "r-accepted", "p-4", "c", 1300));
  std::optional<DeliveryTask> task = Claim("ehr", 2000);  // r-delivered
  ASSERT_TRUE(task.has_value());
  ASSERT_EQ(task->transaction_id, delivered);
  Complete(MakeAttempt(*task, v1::DELIVERED, 2000));
  task = Claim("ehr", 2000);  // r-retrying
  ASSERT_TRUE(task.has_value());
  Complete(MakeAttempt(*task, v1::RETRYING, 2000, kLater));
  task = Claim("ehr", 2000);  // r-accepted, made RETRYING again by the recovery
  ASSERT_TRUE(task.has_value());
  ASSERT_TRUE(store_->RecoverInFlight(3000).ok());
  task = Claim("ehr", 2000);  // r-delivering
  ASSERT_TRUE(task.has_value());

  absl::StatusOr<QueueStats> stats = store_->Stats();
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->undelivered, 3);
  EXPECT_EQ(stats->dead_letters, 1);
  EXPECT_EQ(stats->oldest_undelivered_ms, 1200);
}

TEST_F(SqliteStoreTest, NextDueAtIsTheEarliestRetryOfTheDestination) {
  absl::StatusOr<std::optional<int64_t>> none = store_->NextDueAt("ehr");
  ASSERT_TRUE(none.ok()) << none.status();
  EXPECT_FALSE(none->has_value());

  Append(MakeEntry("lakeside", "r-1", "p-1"));
  Append(MakeEntry("lakeside", "r-2", "p-2"));
  Append(MakeEntry("lakeside", "r-3", "p-3", "c", 1000, "other"));
  for (int64_t next : {9000, 7000}) {
    std::optional<DeliveryTask> task = Claim("ehr", 2000);
    ASSERT_TRUE(task.has_value());
    Complete(MakeAttempt(*task, v1::RETRYING, 2000, next));
  }
  std::optional<DeliveryTask> other = Claim("other", 2000);
  ASSERT_TRUE(other.has_value());
  Complete(MakeAttempt(*other, v1::RETRYING, 2000, 3000));

  absl::StatusOr<std::optional<int64_t>> due = store_->NextDueAt("ehr");
  ASSERT_TRUE(due.ok()) << due.status();
  EXPECT_EQ(*due, std::optional<int64_t>(7000));
  due = store_->NextDueAt("other");
  ASSERT_TRUE(due.ok()) << due.status();
  EXPECT_EQ(*due, std::optional<int64_t>(3000));
}

// store.h: NextDueAt "Returns the earliest next_attempt_at of `destination`'s RETRYING
// transactions, if any" -- ACCEPTED ones are not retries.
TEST_F(SqliteStoreTest, NextDueAtConsidersOnlyRetryingTransactions) {
  Append(MakeEntry("lakeside", "r-accepted", "p-1", "c", 1000));
  absl::StatusOr<std::optional<int64_t>> due = store_->NextDueAt("ehr");
  ASSERT_TRUE(due.ok()) << due.status();
  EXPECT_EQ(*due, std::nullopt) << "an ACCEPTED transaction counted as a retry";

  Append(MakeEntry("lakeside", "r-retrying", "p-2", "c", 500));
  std::optional<DeliveryTask> task = Claim("ehr", 600);
  ASSERT_TRUE(task.has_value());
  Complete(MakeAttempt(*task, v1::RETRYING, 600, 8000));
  due = store_->NextDueAt("ehr");
  ASSERT_TRUE(due.ok()) << due.status();
  EXPECT_EQ(*due, std::optional<int64_t>(8000));
}

}  // namespace
}  // namespace fhirgw::gateway
