// Tests of what is particular to the SQLite transaction log (sqlite_store.h): the database file
// (WAL, its directory), crash recovery of in-flight deliveries, and a few details of the Store
// contract; store_conformance_test.cc runs the contract itself on SQLite and PostgreSQL. Each test
// works on its own database under a fresh temporary directory.
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
#include "tests/testing/status_matchers.h"
#include "tests/testing/store_entries.h"
#include "tests/testing/temp_dir.h"

namespace fhirgw::gateway {
namespace {

using ::fhirgw::testing::AppendAllAndWait;
using ::fhirgw::testing::AppendAndWait;
using ::fhirgw::testing::kCallbackTimeout;
using ::fhirgw::testing::MakeAlert;
using ::fhirgw::testing::MakeAttempt;
using ::fhirgw::testing::MakeEntry;
using ::fhirgw::testing::MakeInbound;
using ::fhirgw::testing::MakeRef;
using ::fhirgw::testing::StatusIs;
using ::fhirgw::testing::TempDir;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::UnorderedElementsAre;

// Far enough in the future that nothing received "now" in these tests is due after it.
constexpr int64_t kLater = 4'000'000'000'000;

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

TEST_F(SqliteStoreTest, OpenFailsClearlyWhenTheDirectoryCannotBeCreated) {
  const std::string file = dir_.path() + "/a-file";
  { std::ofstream(file) << "x"; }
  absl::StatusOr<std::unique_ptr<Store>> store = OpenSqliteStore({.path = file + "/sub/fhirgw.db"});
  EXPECT_THAT(store, StatusIs(absl::StatusCode::kUnavailable, HasSubstr(file)));
}

TEST_F(SqliteStoreTest, ClaimOnlyHandsOutTheDestinationsOwnWork) {
  Append(MakeEntry("lakeside", "r-1", "p-1", "x", 1000, "ehr-a"));
  EXPECT_FALSE(Claim("ehr-b", kLater).has_value());
  EXPECT_TRUE(Claim("ehr-a", kLater).has_value());
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
