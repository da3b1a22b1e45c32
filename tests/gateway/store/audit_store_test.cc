// Tests of the audit side of the transaction log (store.h), run against both backends: every
// TEST_P body runs once on SQLite (sqlite_store.h) and once on PostgreSQL (postgres_store.h, on a
// throwaway server from tests/testing/pg_server.h, one fresh database per test). Covered: the hash
// chain and VerifyLog against tampering done directly in the database (RawDb: sqlite3 on the file,
// libpq on the PostgreSQL database), retention, payload encryption with key rotation, and the
// QueryTransactions filters and page tokens.
//
// Every test builds its own log in a fresh temporary directory, signed with an Ed25519 key and
// encrypted with an AES key that the test generates. The PostgreSQL runs skip (with the reason)
// only when PostgreSQL is not installed.
#include <libpq-fe.h>
#include <openssl/evp.h>
#include <openssl/pem.h>
#include <openssl/rand.h>
#include <sqlite3.h>
#include <stdlib.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <functional>
#include <future>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <sstream>
#include <string>
#include <thread>
#include <type_traits>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "fhirgw/v1/audit.pb.h"
#include "fhirgw/v1/gateway.pb.h"
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
using ::fhirgw::testing::Backend;
using ::fhirgw::testing::BackendName;
using ::fhirgw::testing::PgServer;
using ::fhirgw::testing::SharedPgServer;
using ::fhirgw::testing::StatusIs;
using ::fhirgw::testing::TempDir;
using ::fhirgw::testing::WriteEd25519Key;
using ::testing::ElementsAre;
using ::testing::ElementsAreArray;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;

// PHI that must never be readable in the database file when encryption is on.
constexpr char kFamilyName[] = "Zyxwvutsrqpo";
constexpr char kDrugDisplay[] = "Esketamine-Qx7 nasal spray";
// An alert quotes the patient's answer: PHI too.
constexpr char kAlertText[] =
    "PHQ-9 item 9 answered \"Nearly every day\" (3): the patient needs a safety assessment today";

std::string ReadFile(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

std::string RandomKey() {
  std::string key(32, '\0');
  RAND_bytes(reinterpret_cast<unsigned char*>(key.data()), static_cast<int>(key.size()));
  return key;
}

// Where a store keeps its log: the SQLite file, or the PostgreSQL database.
struct Database {
  Backend backend = Backend::kSqlite;
  std::string sqlite_path;
  std::string dsn;
};

// A parameter of RawDb: text (ids, JSON), or a blob (serialized entries, hashes, ciphertext).
struct Param {
  Param(std::string v) : value(std::move(v)) {}  // NOLINT: implicit, for {id, ...} lists
  Param(const char* v) : value(v) {}             // NOLINT
  std::string value;
  bool blob = false;
};
Param Blob(std::string bytes) {
  Param param(std::move(bytes));
  param.blob = true;
  return param;
}

// PostgreSQL's placeholders for SQLite's: ?1, ?2, ... become $1, $2, ...
std::string PostgresPlaceholders(const std::string& sql) {
  std::string out = sql;
  for (size_t i = 0; i + 1 < out.size(); ++i) {
    if (out[i] == '?' && std::isdigit(static_cast<unsigned char>(out[i + 1]))) out[i] = '$';
  }
  return out;
}

// The test's own read-write connection to the store's database (sqlite3 on the file, libpq on the
// PostgreSQL database): to look at what is really stored, and to tamper with it the way someone
// with access to the database could. The SQL is the same for both: parameters are ?1, ?2, ...,
// and BYTEA values (PostgreSQL's blobs, its `fhir` column included) come back as their bytes.
class RawDb {
 public:
  explicit RawDb(const Database& database) : backend_(database.backend) {
    if (backend_ == Backend::kPostgres) {
      pg_ = PQconnectdb(database.dsn.c_str());
      if (PQstatus(pg_) != CONNECTION_OK) {
        ADD_FAILURE() << "cannot connect to " << database.dsn << ": " << PQerrorMessage(pg_);
      }
      return;
    }
    if (sqlite3_open_v2(database.sqlite_path.c_str(), &db_, SQLITE_OPEN_READWRITE, nullptr) !=
        SQLITE_OK) {
      ADD_FAILURE() << "cannot open " << database.sqlite_path << ": " << sqlite3_errmsg(db_);
    }
    sqlite3_busy_timeout(db_, 10000);
  }
  ~RawDb() {
    if (pg_ != nullptr) PQfinish(pg_);
    sqlite3_close(db_);
  }
  RawDb(const RawDb&) = delete;
  RawDb& operator=(const RawDb&) = delete;

  // Runs `sql` with `params` bound as ?1, ?2, ...; returns the first column of every row (bytes).
  std::vector<std::string> Column(const std::string& sql, const std::vector<Param>& params = {}) {
    changes_ = 0;
    return backend_ == Backend::kPostgres ? PostgresColumn(sql, params) : SqliteColumn(sql, params);
  }
  // The first column of the first row ("" without rows).
  std::string Value(const std::string& sql, const std::vector<Param>& params = {}) {
    std::vector<std::string> values = Column(sql, params);
    return values.empty() ? "" : values.front();
  }
  int64_t Int(const std::string& sql) { return std::stoll("0" + Value(sql)); }
  // Runs a statement and returns how many rows it changed.
  int Exec(const std::string& sql, const std::vector<Param>& params = {}) {
    Column(sql, params);
    return changes_;
  }

 private:
  std::vector<std::string> SqliteColumn(const std::string& sql, const std::vector<Param>& params) {
    sqlite3_stmt* stmt = nullptr;
    std::vector<std::string> values;
    if (sqlite3_prepare_v2(db_, sql.c_str(), -1, &stmt, nullptr) != SQLITE_OK) {
      ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db_);
      return values;
    }
    for (size_t i = 0; i < params.size(); ++i) {
      const std::string& v = params[i].value;
      if (params[i].blob) {
        sqlite3_bind_blob(stmt, static_cast<int>(i + 1), v.data(), static_cast<int>(v.size()),
                          SQLITE_TRANSIENT);
      } else {
        sqlite3_bind_text(stmt, static_cast<int>(i + 1), v.data(), static_cast<int>(v.size()),
                          SQLITE_TRANSIENT);
      }
    }
    int rc;
    while ((rc = sqlite3_step(stmt)) == SQLITE_ROW) {
      const void* data = sqlite3_column_blob(stmt, 0);
      const int size = sqlite3_column_bytes(stmt, 0);
      values.emplace_back(data == nullptr ? "" : std::string(static_cast<const char*>(data), size));
    }
    if (rc != SQLITE_DONE) ADD_FAILURE() << sql << ": " << sqlite3_errmsg(db_);
    changes_ = sqlite3_changes(db_);
    sqlite3_finalize(stmt);
    return values;
  }

  // Parameters go in binary format, which for TEXT and BYTEA is the bytes themselves (their type
  // is inferred from where they are used); results come as text, BYTEA unescaped.
  std::vector<std::string> PostgresColumn(const std::string& sql,
                                          const std::vector<Param>& params) {
    constexpr Oid kByteaOid = 17;
    std::vector<const char*> values;
    std::vector<int> lengths;
    std::vector<int> formats;
    for (const Param& param : params) {
      values.push_back(param.value.data());
      lengths.push_back(static_cast<int>(param.value.size()));
      formats.push_back(1);
    }
    PGresult* result =
        PQexecParams(pg_, PostgresPlaceholders(sql).c_str(), static_cast<int>(params.size()),
                     nullptr, values.data(), lengths.data(), formats.data(), /*resultFormat=*/0);
    std::vector<std::string> column;
    const ExecStatusType status = PQresultStatus(result);
    if (status != PGRES_TUPLES_OK && status != PGRES_COMMAND_OK) {
      ADD_FAILURE() << sql << ": " << PQresultErrorMessage(result);
    } else {
      for (int row = 0; row < PQntuples(result); ++row) {
        const char* text = PQgetvalue(result, row, 0);
        if (PQgetisnull(result, row, 0)) {
          column.emplace_back();
        } else if (PQftype(result, 0) == kByteaOid) {
          size_t size = 0;
          unsigned char* bytes =
              PQunescapeBytea(reinterpret_cast<const unsigned char*>(text), &size);
          column.emplace_back(reinterpret_cast<const char*>(bytes), size);
          PQfreemem(bytes);
        } else {
          column.emplace_back(text, PQgetlength(result, row, 0));
        }
      }
      changes_ = std::atoi(PQcmdTuples(result));
    }
    PQclear(result);
    return column;
  }

  Backend backend_;
  sqlite3* db_ = nullptr;
  PGconn* pg_ = nullptr;
  int changes_ = 0;
};

// An outbound entry for `clinic` whose record and Bundle carry recognisable PHI; `content` makes
// versions differ.
NewEntry MakeEntry(const std::string& clinic, const std::string& record_id,
                   const std::string& patient, int64_t received_at_ms,
                   const std::string& content = "v1") {
  NewEntry e;
  e.clinic_id = clinic;
  e.record_id = record_id;
  e.patient_id = patient;
  e.kind = v1::MEDICATION_STATEMENT;
  e.direction = v1::CLINIC_TO_EHR;
  e.destination = "ehr";
  v1::ClinicRecord record;
  record.set_record_id(record_id);
  record.set_clinic_id(clinic);
  record.mutable_patient()->set_clinic_patient_id(patient);
  record.mutable_patient()->set_family_name(kFamilyName);
  record.mutable_patient()->add_given_names("Qazwsx");
  record.mutable_patient()->set_birth_date("1931-07-19");
  record.mutable_medication_statement()->mutable_medication()->set_display(kDrugDisplay);
  record.mutable_medication_statement()->set_note(absl::StrCat("note ", content));
  e.record = record.SerializeAsString();
  e.content_hash = Sha256(e.record);
  e.fhir_json = absl::StrCat(
      R"({"resourceType":"Bundle","type":"transaction","entry":[{"resource":{"resourceType":"Patient","name":[{"family":")",
      kFamilyName,
      R"("}]}},{"resource":{"resourceType":"MedicationStatement","medicationCodeableConcept":{"text":")",
      kDrugDisplay, R"("},"note":[{"text":")", content, R"("}]}}]})");
  e.principal = absl::StrCat("token:", clinic);
  e.received_at_ms = received_at_ms;
  e.patient_keys = {absl::StrCat("urn:fhirgw:", clinic, ":patient|", patient)};
  return e;
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
    case v1::DELIVERED: {
      result.attempt.set_http_status(200);
      result.attempt.set_outcome(v1::DeliveryAttempt::SUCCESS);
      // The EHR's answer echoes the patient: it is PHI too.
      result.attempt.set_response(
          absl::StrCat(R"({"resourceType":"Bundle","type":"transaction-response","note":")",
                       kFamilyName, R"("})"));
      v1::ResourceRef ref;
      ref.set_resource_type("Patient");
      ref.set_id(absl::StrCat("pat-", task.transaction_id.substr(0, 8)));
      ref.set_version_id("1");
      result.resources.push_back(ref);
      break;
    }
    case v1::REJECTED:
      result.attempt.set_http_status(422);
      result.attempt.set_outcome(v1::DeliveryAttempt::REJECTED);
      result.attempt.set_response(absl::StrCat(
          R"({"resourceType":"OperationOutcome","issue":[{"diagnostics":"birthDate of )",
          kFamilyName, R"( rejected"}]})"));
      {
        // What the gateway parses from that answer: the EHR's text echoes the patient.
        v1::Issue& issue = *result.attempt.add_issues();
        issue.set_severity(v1::Issue::ERROR);
        issue.set_path("Patient.birthDate");
        issue.set_message(absl::StrCat("birthDate of ", kFamilyName, " rejected"));
      }
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

// What BuildHistory logged.
struct History {
  std::string delivered;  // lakeside inf-1 v1: delivered at the first attempt
  std::string replayed;   // lakeside phq-1: retry, dead letter, replay, recovery, delivered
  std::string rejected;   // riverside med-1: rejected
  std::string inbound;    // lakeside hosp-1: hospital data, RECORDED
  std::string version2;   // lakeside inf-1 v2: accepted, not yet delivered
  int64_t entries = 0;    // log entries written
};

// One store per test, on SQLite or on a fresh PostgreSQL database.
class AuditStoreTest : public ::testing::TestWithParam<Backend> {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    database_.backend = GetParam();
    database_.sqlite_path = dir_.path() + "/log/fhirgw.db";
    heads_path_ = database_.sqlite_path + ".heads";
    if (GetParam() == Backend::kPostgres) {
      if (!PgServer::BinariesAvailable()) GTEST_SKIP() << PgServer::MissingMessage();
      std::string error;
      PgServer* pg = SharedPgServer(&error);
      ASSERT_NE(pg, nullptr) << error;
      static int databases = 0;
      database_.dsn = pg->CreateDatabase(absl::StrCat("audit_", ++databases), &error);
      ASSERT_FALSE(database_.dsn.empty()) << error;
      heads_path_ = dir_.path() + "/pg.heads";
    }
    const std::string key_path = dir_.path() + "/head-signing.pem";
    ASSERT_TRUE(WriteEd25519Key(key_path));
    absl::StatusOr<std::shared_ptr<const HeadSigner>> signer =
        HeadSigner::FromPrivateKeyFile(key_path);
    ASSERT_TRUE(signer.ok()) << signer.status();
    signer_ = *signer;
    key1_ = RandomKey();
    key2_ = RandomKey();
    cipher_ = Cipher({{"k1", key1_}}, "k1");
    ASSERT_NE(cipher_, nullptr);
    Open(cipher_);
  }

  std::shared_ptr<const PayloadCipher> Cipher(std::map<std::string, std::string> keys,
                                              std::string primary) {
    absl::StatusOr<std::shared_ptr<const PayloadCipher>> cipher =
        PayloadCipher::FromKeys(std::move(keys), std::move(primary));
    EXPECT_TRUE(cipher.ok()) << cipher.status();
    return cipher.ok() ? *cipher : nullptr;
  }

  // Opens the store again; on PostgreSQL its claims hold a lease of `lease_ms`, and expired
  // leases are taken back only by RecoverInFlight.
  void Open(std::shared_ptr<const PayloadCipher> cipher, int lease_ms = 30000) {
    store_.reset();
    absl::StatusOr<std::unique_ptr<Store>> store;
    if (GetParam() == Backend::kSqlite) {
      SqliteOptions options;
      options.path = database_.sqlite_path;
      options.cipher = std::move(cipher);
      options.signer = signer_;
      store = OpenSqliteStore(options);
    } else {
      PostgresOptions options;
      options.dsn = database_.dsn;
      options.cipher = std::move(cipher);
      options.signer = signer_;
      options.heads_file = heads_path_;
      options.lease_ms = lease_ms;
      options.reclaim_expired_leases = false;
      store = OpenPostgresStore(options);
    }
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
  }

  const Database& database() const { return database_; }
  bool postgres() const { return GetParam() == Backend::kPostgres; }

  AppendResult Append(NewEntry entry) {
    std::vector<NewEntry> entries;
    entries.push_back(std::move(entry));
    absl::StatusOr<std::vector<AppendResult>> results =
        AppendAllAndWait(*store_, std::move(entries));
    EXPECT_TRUE(results.ok()) << results.status();
    return results.ok() && results->size() == 1 ? results->front() : AppendResult{};
  }

  // Claims the next task of `destination` at `now_ms`; it must be `expected_id`.
  DeliveryTask Claim(const std::string& expected_id, int64_t now_ms,
                     const std::string& destination = "ehr") {
    absl::StatusOr<std::optional<DeliveryTask>> task = store_->ClaimNext(destination, now_ms);
    EXPECT_TRUE(task.ok()) << task.status();
    if (!task.ok() || !task->has_value()) {
      ADD_FAILURE() << "nothing to claim for " << destination << " at " << now_ms;
      return DeliveryTask();
    }
    EXPECT_EQ((*task)->transaction_id, expected_id);
    return **task;
  }

  void Complete(const AttemptResult& result) {
    absl::Status status = store_->CompleteAttempt(result);
    EXPECT_TRUE(status.ok()) << status;
  }

  // Logs a history that uses every kind of log entry except PURGED; returns what it logged.
  History BuildHistory() {
    History h;
    NewEntry first = MakeEntry("lakeside", "inf-1", "P-1", 1000);
    v1::Alert alert;
    alert.set_kind(v1::Alert::SUICIDAL_IDEATION);
    alert.set_message(kAlertText);
    first.alerts.push_back(alert);
    h.delivered = Append(first).transaction_id;
    h.replayed = Append(MakeEntry("lakeside", "phq-1", "P-2", 2000)).transaction_id;
    h.rejected = Append(MakeEntry("riverside", "med-1", "P-3", 3000)).transaction_id;
    const AppendResult resent = Append(MakeEntry("lakeside", "inf-1", "P-1", 3100));
    EXPECT_TRUE(resent.duplicate);
    EXPECT_EQ(resent.transaction_id, h.delivered);
    EXPECT_TRUE(resent.alerts.size() == 1 && resent.alerts[0].message() == kAlertText);
    NewEntry inbound = MakeEntry("lakeside", "hosp-1", "P-1", 3500);
    inbound.direction = v1::EHR_TO_CLINIC;
    inbound.destination = "ehr";
    h.inbound = Append(inbound).transaction_id;

    Complete(MakeAttempt(Claim(h.delivered, 4000), v1::DELIVERED, 4000));
    Complete(MakeAttempt(Claim(h.replayed, 4000), v1::RETRYING, 4000, 4500));
    Complete(MakeAttempt(Claim(h.rejected, 4000), v1::REJECTED, 4000));
    Complete(MakeAttempt(Claim(h.replayed, 5000), v1::DEAD_LETTER, 5000));
    absl::StatusOr<std::vector<std::string>> replayed = store_->Replay({h.replayed}, "", 6000);
    EXPECT_TRUE(replayed.ok()) << replayed.status();
    // ... and the gateway stops while it is in flight. On PostgreSQL the new gateway recovers it
    // once the stopped one's lease (short here) has expired; on SQLite at once.
    Open(cipher_, /*lease_ms=*/300);
    Claim(h.replayed, 6000);
    Open(cipher_);
    int recovered = 0;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    while (recovered == 0 && std::chrono::steady_clock::now() < deadline) {
      absl::StatusOr<int> r = store_->RecoverInFlight(7000);
      EXPECT_TRUE(r.ok()) << r.status();
      if (!r.ok()) break;
      recovered = *r;
      if (recovered == 0) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    EXPECT_EQ(recovered, 1);
    Complete(MakeAttempt(Claim(h.replayed, 7000), v1::DELIVERED, 7000));
    h.version2 = Append(MakeEntry("lakeside", "inf-1", "P-1", 8000, "v2")).transaction_id;
    // 5 appends, 1 resend, 5 attempts, 1 replay, 1 recovery.
    h.entries = 13;
    EXPECT_TRUE(store_->SignHead().ok());
    return h;
  }

  std::vector<v1::LogEntry> Entries() {
    absl::StatusOr<std::vector<v1::LogEntry>> entries = store_->ListLogEntries(0, 0, {}, 0, 100000);
    EXPECT_TRUE(entries.ok()) << entries.status();
    return entries.ok() ? *std::move(entries) : std::vector<v1::LogEntry>();
  }

  // The sequence of the `nth` (0-based) log entry of `event` for `transaction_id`; 0 when none.
  int64_t SeqOf(const std::string& transaction_id, v1::LogEntry::Event event, int nth = 0) {
    for (const v1::LogEntry& entry : Entries()) {
      if (entry.transaction_id() == transaction_id && entry.event() == event && nth-- == 0) {
        return entry.sequence();
      }
    }
    ADD_FAILURE() << "no " << v1::LogEntry::Event_Name(event) << " entry for " << transaction_id;
    return 0;
  }

  v1::VerifyLogResponse Verify() {
    absl::StatusOr<v1::VerifyLogResponse> response = store_->Verify();
    EXPECT_TRUE(response.ok()) << response.status();
    return response.ok() ? *std::move(response) : v1::VerifyLogResponse();
  }

  // Closes the store, runs `tamper` on the raw database, and opens the store again.
  void TamperWhileStopped(const std::function<void(RawDb&)>& tamper) {
    store_.reset();
    {
      RawDb db(database());
      tamper(db);
    }
    Open(cipher_);
  }

  TempDir dir_;
  Database database_;
  std::string heads_path_;  // the signed heads outside the database
  std::shared_ptr<const HeadSigner> signer_;
  std::string key1_, key2_;
  std::shared_ptr<const PayloadCipher> cipher_;
  std::unique_ptr<Store> store_;
};

INSTANTIATE_TEST_SUITE_P(Backends, AuditStoreTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres), BackendName);

// --- the hash chain -----------------------------------------------------------------------------

TEST_P(AuditStoreTest, AnUntouchedLogVerifiesWithEveryEntryChecked) {
  const History h = BuildHistory();
  const std::vector<v1::LogEntry> entries = Entries();
  ASSERT_THAT(entries, SizeIs(h.entries));
  std::vector<v1::LogEntry::Event> events;
  for (size_t i = 0; i < entries.size(); ++i) {
    EXPECT_EQ(entries[i].sequence(), static_cast<int64_t>(i + 1));
    events.push_back(entries[i].event());
  }
  using E = v1::LogEntry;
  EXPECT_THAT(events,
              ElementsAreArray({E::RECORD_LOGGED, E::RECORD_LOGGED, E::RECORD_LOGGED, E::RESENT,
                                E::RECORD_LOGGED, E::DELIVERY_ATTEMPT, E::DELIVERY_ATTEMPT,
                                E::DELIVERY_ATTEMPT, E::DELIVERY_ATTEMPT, E::REPLAYED, E::RECOVERED,
                                E::DELIVERY_ATTEMPT, E::RECORD_LOGGED}));
  // The attempt entry keeps the attempt without the EHR's answer, which is represented by a hash.
  EXPECT_EQ(entries[5].attempt().http_status(), 200);
  EXPECT_EQ(entries[5].attempt().response(), "");
  EXPECT_EQ(entries[5].response_sha256().size(), 32u);
  EXPECT_EQ(entries[3].principal(), "token:lakeside");

  const v1::VerifyLogResponse response = Verify();
  EXPECT_TRUE(response.ok()) << response.message();
  EXPECT_EQ(response.entries_checked(), h.entries);
  EXPECT_EQ(response.first_bad_sequence(), 0);
  EXPECT_EQ(response.signed_head_sequence(), h.entries);
  EXPECT_THAT(response.message(), HasSubstr("intact"));

  // Still intact after a restart, and the heads file holds the signed head.
  Open(cipher_);
  EXPECT_TRUE(Verify().ok());
  EXPECT_FALSE(ReadFile(heads_path_).empty());
}

TEST_P(AuditStoreTest, SigningTwiceWithoutNewEntriesAddsNoHead) {
  BuildHistory();
  ASSERT_TRUE(store_->SignHead().ok());
  RawDb db(database());
  EXPECT_EQ(db.Int("SELECT count(*) FROM signed_heads"), 1);
}

TEST_P(AuditStoreTest, AnEditedFhirPayloadIsDetected) {
  const History h = BuildHistory();
  const int64_t logged = SeqOf(h.rejected, v1::LogEntry::RECORD_LOGGED);
  TamperWhileStopped([&](RawDb& db) {
    EXPECT_EQ(db.Exec("UPDATE transactions SET fhir = ?1 WHERE id = ?2",
                      {R"({"resourceType":"Bundle","type":"transaction","entry":[]})", h.rejected}),
              1);
  });
  const v1::VerifyLogResponse response = Verify();
  EXPECT_FALSE(response.ok());
  EXPECT_EQ(response.first_bad_sequence(), logged);
  EXPECT_THAT(response.message(),
              HasSubstr(absl::StrCat(h.rejected, " (log entry ", logged,
                                     "): the stored record or FHIR is not what was logged")));
}

TEST_P(AuditStoreTest, AnEditedEncryptedRecordIsDetected) {
  const History h = BuildHistory();
  const int64_t logged = SeqOf(h.replayed, v1::LogEntry::RECORD_LOGGED);
  TamperWhileStopped([&](RawDb& db) {
    std::string record = db.Value("SELECT record FROM transactions WHERE id = ?1", {h.replayed});
    ASSERT_GT(record.size(), 40u);
    record[record.size() - 20] ^= 0x01;  // one bit of the ciphertext
    EXPECT_EQ(
        db.Exec("UPDATE transactions SET record = ?1 WHERE id = ?2", {Blob(record), h.replayed}),
        1);
  });
  const v1::VerifyLogResponse response = Verify();
  EXPECT_FALSE(response.ok());
  EXPECT_EQ(response.first_bad_sequence(), logged);
  EXPECT_THAT(response.message(), HasSubstr("cannot be decrypted"));
}

TEST_P(AuditStoreTest, AnEditedStatusIsDetected) {
  const History h = BuildHistory();
  const int64_t last = SeqOf(h.rejected, v1::LogEntry::DELIVERY_ATTEMPT);
  TamperWhileStopped([&](RawDb& db) {
    EXPECT_EQ(
        db.Exec(absl::StrCat("UPDATE transactions SET status = ", v1::DELIVERED, " WHERE id = ?1"),
                {h.rejected}),
        1);
  });
  const v1::VerifyLogResponse response = Verify();
  EXPECT_FALSE(response.ok());
  EXPECT_EQ(response.first_bad_sequence(), last);
  EXPECT_THAT(response.message(),
              HasSubstr("its status DELIVERED is not the status logged last (REJECTED"));
}

TEST_P(AuditStoreTest, AnEditedLogEntryIsDetected) {
  const History h = BuildHistory();
  const int64_t seq = SeqOf(h.rejected, v1::LogEntry::DELIVERY_ATTEMPT);
  TamperWhileStopped([&](RawDb& db) {
    const std::string where = absl::StrCat(" FROM audit_log WHERE seq = ", seq);
    v1::LogEntry entry;
    ASSERT_TRUE(entry.ParseFromString(db.Value("SELECT entry" + where)));
    // Rewrite history: the EHR accepted it.
    entry.set_status(v1::DELIVERED);
    entry.mutable_attempt()->set_http_status(200);
    EXPECT_EQ(db.Exec("UPDATE audit_log SET entry = ?1 WHERE seq = " + std::to_string(seq),
                      {Blob(entry.SerializeAsString())}),
              1);
  });
  const v1::VerifyLogResponse response = Verify();
  EXPECT_FALSE(response.ok());
  EXPECT_EQ(response.first_bad_sequence(), seq);
  EXPECT_THAT(response.message(),
              HasSubstr(absl::StrCat("log entry ", seq, " was altered (its hash does not match)")));
}

TEST_P(AuditStoreTest, AnEntryRewrittenWithARecomputedChainIsCaughtByTheSignedHead) {
  const History h = BuildHistory();
  // The whole chain after the edit is recomputed, so only the signature can tell.
  const int64_t seq = SeqOf(h.delivered, v1::LogEntry::RESENT);
  TamperWhileStopped([&](RawDb& db) {
    std::string previous =
        db.Value(absl::StrCat("SELECT hash FROM audit_log WHERE seq = ", seq - 1));
    for (int64_t s = seq; s <= h.entries; ++s) {
      std::string entry = db.Value(absl::StrCat("SELECT entry FROM audit_log WHERE seq = ", s));
      if (s == seq) {
        v1::LogEntry parsed;
        ASSERT_TRUE(parsed.ParseFromString(entry));
        parsed.set_principal("token:someone-else");
        entry = parsed.SerializeAsString();
      }
      const std::string hash = Sha256(absl::StrCat(previous, entry));
      db.Exec(absl::StrCat(
                  "UPDATE audit_log SET entry = ?1, prev_hash = ?2, hash = ?3 WHERE seq = ", s),
              {Blob(entry), Blob(previous), Blob(hash)});
      previous = hash;
    }
    if (postgres()) {
      // PostgreSQL's chain head (chain_head) holds the last hash: it is rewritten too.
      EXPECT_EQ(db.Exec("UPDATE chain_head SET hash = ?1 WHERE id = 1", {Blob(previous)}), 1);
    }
  });
  const v1::VerifyLogResponse response = Verify();
  EXPECT_FALSE(response.ok());
  EXPECT_EQ(response.first_bad_sequence(), h.entries);  // the signed head
  EXPECT_THAT(response.message(), HasSubstr("differs from its signed hash"));
}

TEST_P(AuditStoreTest, ADeletedLogEntryInTheMiddleIsDetected) {
  const History h = BuildHistory();
  const int64_t seq = SeqOf(h.replayed, v1::LogEntry::DELIVERY_ATTEMPT, 1);
  ASSERT_GT(seq, 1);
  ASSERT_LT(seq, h.entries);
  TamperWhileStopped([&](RawDb& db) {
    EXPECT_EQ(db.Exec(absl::StrCat("DELETE FROM audit_log WHERE seq = ", seq)), 1);
  });
  const v1::VerifyLogResponse response = Verify();
  EXPECT_FALSE(response.ok());
  EXPECT_EQ(response.first_bad_sequence(), seq);
  EXPECT_THAT(response.message(), HasSubstr(absl::StrCat("log entry ", seq, " is missing")));
}

TEST_P(AuditStoreTest, ReorderedLogEntriesAreDetected) {
  const History h = BuildHistory();
  constexpr int64_t kFirst = 5;
  constexpr int64_t kSecond = 9;
  ASSERT_GT(h.entries, kSecond);
  TamperWhileStopped([&](RawDb& db) {
    const std::string entry5 = db.Value("SELECT entry FROM audit_log WHERE seq = 5");
    const std::string hash5 = db.Value("SELECT hash FROM audit_log WHERE seq = 5");
    const std::string entry9 = db.Value("SELECT entry FROM audit_log WHERE seq = 9");
    const std::string hash9 = db.Value("SELECT hash FROM audit_log WHERE seq = 9");
    EXPECT_EQ(db.Exec("UPDATE audit_log SET entry = ?1, hash = ?2 WHERE seq = 5",
                      {Blob(entry9), Blob(hash9)}),
              1);
    EXPECT_EQ(db.Exec("UPDATE audit_log SET entry = ?1, hash = ?2 WHERE seq = 9",
                      {Blob(entry5), Blob(hash5)}),
              1);
  });
  const v1::VerifyLogResponse response = Verify();
  EXPECT_FALSE(response.ok());
  EXPECT_EQ(response.first_bad_sequence(), kFirst);
  EXPECT_THAT(response.message(), HasSubstr("log entry 5 was altered"));
}

TEST_P(AuditStoreTest, ATruncatedTailIsDetectedThroughTheHeadsFile) {
  const History h = BuildHistory();
  // Two more transactions, signed; then someone removes them and every trace in the database.
  const std::string late1 = Append(MakeEntry("riverside", "med-2", "P-4", 9000)).transaction_id;
  const std::string late2 = Append(MakeEntry("riverside", "med-3", "P-5", 9100)).transaction_id;
  ASSERT_TRUE(store_->SignHead().ok());
  ASSERT_TRUE(Verify().ok());
  TamperWhileStopped([&](RawDb& db) {
    const std::string tail = std::to_string(h.entries);
    EXPECT_EQ(db.Exec("DELETE FROM audit_log WHERE seq > " + tail), 2);
    EXPECT_EQ(db.Exec("DELETE FROM signed_heads WHERE seq > " + tail), 1);
    EXPECT_EQ(db.Exec("DELETE FROM transactions WHERE id IN (?1, ?2)", {late1, late2}), 2);
    EXPECT_EQ(db.Exec("DELETE FROM patient_keys WHERE clinic_patient_id IN ('P-4', 'P-5')"), 2);
    if (postgres()) {
      // PostgreSQL's chain head (chain_head) would give the removal away: it goes back too.
      EXPECT_EQ(db.Exec(absl::StrCat("UPDATE chain_head SET seq = ", tail,
                                     ", hash = (SELECT hash FROM audit_log WHERE seq = ", tail,
                                     ") WHERE id = 1")),
                1);
    }
  });
  const v1::VerifyLogResponse response = Verify();
  EXPECT_FALSE(response.ok());
  EXPECT_EQ(response.first_bad_sequence(), h.entries + 1);
  EXPECT_EQ(response.entries_checked(), h.entries);
  EXPECT_EQ(response.signed_head_sequence(), h.entries + 2);
  EXPECT_THAT(
      response.message(),
      HasSubstr(absl::StrCat("the log ends at entry ", h.entries, " but entry ", h.entries + 2,
                             " was signed (", heads_path_, "): the tail was removed")));
}

TEST_P(AuditStoreTest, ADeletedAttemptIsDetected) {
  const History h = BuildHistory();
  const int64_t first_attempt = SeqOf(h.replayed, v1::LogEntry::DELIVERY_ATTEMPT);
  TamperWhileStopped([&](RawDb& db) {
    EXPECT_EQ(
        db.Exec("DELETE FROM attempts WHERE transaction_id = ?1 AND number = 1", {h.replayed}), 1);
  });
  const v1::VerifyLogResponse response = Verify();
  EXPECT_FALSE(response.ok());
  EXPECT_EQ(response.first_bad_sequence(), first_attempt);
  EXPECT_THAT(response.message(), HasSubstr(h.replayed));
}

TEST_P(AuditStoreTest, ADeletedLastAttemptIsDetected) {
  const History h = BuildHistory();
  const int64_t only_attempt = SeqOf(h.delivered, v1::LogEntry::DELIVERY_ATTEMPT);
  TamperWhileStopped([&](RawDb& db) {
    EXPECT_EQ(db.Exec("DELETE FROM attempts WHERE transaction_id = ?1", {h.delivered}), 1);
  });
  const v1::VerifyLogResponse response = Verify();
  EXPECT_FALSE(response.ok());
  EXPECT_EQ(response.first_bad_sequence(), only_attempt);
  EXPECT_THAT(response.message(), HasSubstr("a logged attempt is missing from the database"));
}

TEST_P(AuditStoreTest, LogEntriesKeepNoTextOfTheEhrsAnswer) {
  const History h = BuildHistory();
  const int64_t seq = SeqOf(h.rejected, v1::LogEntry::DELIVERY_ATTEMPT);
  const v1::LogEntry entry = Entries()[seq - 1];
  ASSERT_EQ(entry.attempt().issues_size(), 1);
  EXPECT_EQ(entry.attempt().issues(0).path(), "Patient.birthDate");
  EXPECT_EQ(entry.attempt().issues(0).severity(), v1::Issue::ERROR);
  EXPECT_EQ(entry.attempt().issues(0).message(), "");
  EXPECT_EQ(entry.attempt().response(), "");
  RawDb db(database());
  for (const std::string& raw : db.Column("SELECT entry FROM audit_log")) {
    EXPECT_THAT(raw, Not(HasSubstr(kFamilyName)));
  }
  // The transaction itself keeps the whole answer (encrypted).
  absl::StatusOr<v1::Transaction> tx = store_->Get(h.rejected, /*with_payload=*/false);
  ASSERT_TRUE(tx.ok()) << tx.status();
  ASSERT_EQ(tx->attempts_size(), 1);
  ASSERT_EQ(tx->attempts(0).issues_size(), 1);
  EXPECT_THAT(tx->attempts(0).issues(0).message(), HasSubstr(kFamilyName));
  EXPECT_THAT(tx->attempts(0).response(), HasSubstr(kFamilyName));
}

TEST_P(AuditStoreTest, AnEditedIssueTextIsDetected) {
  const History h = BuildHistory();
  const int64_t seq = SeqOf(h.rejected, v1::LogEntry::DELIVERY_ATTEMPT);
  TamperWhileStopped([&](RawDb& db) {
    // Someone holding the key rewrites what the EHR said.
    absl::StatusOr<std::string> plain = cipher_->Decrypt(
        db.Value("SELECT attempt FROM attempts WHERE transaction_id = ?1", {h.rejected}));
    ASSERT_TRUE(plain.ok()) << plain.status();
    v1::DeliveryAttempt attempt;
    ASSERT_TRUE(attempt.ParseFromString(*plain));
    ASSERT_EQ(attempt.issues_size(), 1);
    attempt.mutable_issues(0)->set_message("rejected because the gateway sent garbage");
    EXPECT_EQ(db.Exec("UPDATE attempts SET attempt = ?1 WHERE transaction_id = ?2",
                      {Blob(cipher_->Encrypt(attempt.SerializeAsString())), h.rejected}),
              1);
  });
  const v1::VerifyLogResponse response = Verify();
  EXPECT_FALSE(response.ok());
  EXPECT_EQ(response.first_bad_sequence(), seq);
  EXPECT_THAT(response.message(),
              HasSubstr(absl::StrCat("attempt 1 is not the one logged (entry ", seq, ")")));
}

// --- retention ----------------------------------------------------------------------------------

TEST_P(AuditStoreTest, PurgeRemovesOldPayloadsButKeepsMetadataAndTheChain) {
  const History h = BuildHistory();
  RawDb db(database());
  auto attempt_responses = [&](const std::string& id) {
    std::vector<std::string> responses;
    for (const std::string& raw : db.Column(
             "SELECT attempt FROM attempts WHERE transaction_id = ?1 ORDER BY number", {id})) {
      absl::StatusOr<std::string> plain = cipher_->Decrypt(raw);
      v1::DeliveryAttempt attempt;
      EXPECT_TRUE(plain.ok() && attempt.ParseFromString(*plain));
      responses.push_back(attempt.response());
    }
    return responses;
  };
  ASSERT_THAT(attempt_responses(h.delivered), ElementsAre(HasSubstr(kFamilyName)));

  // Finished before 3200: delivered (1000), replayed (2000, delivered at last), rejected (3000).
  // Kept: the inbound record (3500) is newer, version 2 (8000) is newer and not finished.
  ASSERT_GT(db.Int(absl::StrCat("SELECT length(alerts) FROM transactions WHERE id = '", h.delivered,
                                "'")),
            0);
  absl::StatusOr<int> purged = store_->PurgePayloads(3200);
  ASSERT_TRUE(purged.ok()) << purged.status();
  EXPECT_EQ(*purged, 3);

  // The alert of the delivered transaction quoted an answer: purged with the payloads.
  EXPECT_EQ(db.Int(absl::StrCat("SELECT length(alerts) FROM transactions WHERE id = '", h.delivered,
                                "'")),
            0);
  for (const std::string& id : {h.delivered, h.replayed, h.rejected}) {
    EXPECT_EQ(db.Int(absl::StrCat("SELECT length(record) FROM transactions WHERE id = '", id, "'")),
              0)
        << id;
    EXPECT_EQ(db.Int(absl::StrCat("SELECT length(fhir) FROM transactions WHERE id = '", id, "'")),
              0)
        << id;
    for (const std::string& response : attempt_responses(id)) EXPECT_EQ(response, "") << id;
  }
  EXPECT_THAT(attempt_responses(h.replayed), SizeIs(3));
  {
    // The EHR's issue texts are part of its answer: purged too; where they pointed stays.
    absl::StatusOr<std::string> plain = cipher_->Decrypt(
        db.Value("SELECT attempt FROM attempts WHERE transaction_id = ?1", {h.rejected}));
    v1::DeliveryAttempt attempt;
    ASSERT_TRUE(plain.ok() && attempt.ParseFromString(*plain));
    ASSERT_EQ(attempt.issues_size(), 1);
    EXPECT_EQ(attempt.issues(0).message(), "");
    EXPECT_EQ(attempt.issues(0).path(), "Patient.birthDate");
    EXPECT_EQ(attempt.http_status(), 422);
  }
  for (const std::string& id : {h.inbound, h.version2}) {
    EXPECT_GT(db.Int(absl::StrCat("SELECT length(record) FROM transactions WHERE id = '", id, "'")),
              0)
        << id;
  }

  // The metadata stays: status, attempts (without the answer), the EHR's ids.
  absl::StatusOr<v1::Transaction> tx = store_->Get(h.delivered, /*with_payload=*/true);
  ASSERT_TRUE(tx.ok()) << tx.status();
  EXPECT_EQ(tx->clinic_id(), "lakeside");
  EXPECT_EQ(tx->record_id(), "inf-1");
  EXPECT_EQ(tx->patient_id(), "P-1");
  EXPECT_EQ(tx->status(), v1::DELIVERED);
  EXPECT_EQ(tx->principal(), "token:lakeside");
  EXPECT_EQ(tx->fhir_json(), "");
  EXPECT_EQ(tx->record().record_id(), "");
  EXPECT_THAT(tx->alerts(), IsEmpty());
  ASSERT_EQ(tx->attempts_size(), 1);
  EXPECT_EQ(tx->attempts(0).http_status(), 200);
  EXPECT_EQ(tx->attempts(0).response(), "");
  ASSERT_EQ(tx->resources_size(), 1);
  EXPECT_EQ(tx->resources(0).resource_type(), "Patient");
  absl::StatusOr<v1::Transaction> kept = store_->Get(h.inbound, /*with_payload=*/true);
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_THAT(kept->fhir_json(), HasSubstr(kFamilyName));

  // Each purge is logged, and the chain still verifies.
  int purge_entries = 0;
  for (const v1::LogEntry& entry : Entries()) {
    if (entry.event() == v1::LogEntry::PURGED) ++purge_entries;
  }
  EXPECT_EQ(purge_entries, 3);
  const v1::VerifyLogResponse response = Verify();
  EXPECT_TRUE(response.ok()) << response.message();
  EXPECT_EQ(response.entries_checked(), h.entries + 3);

  // Nothing is left to purge.
  absl::StatusOr<int> again = store_->PurgePayloads(3200);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(*again, 0);
}

// --- encryption ---------------------------------------------------------------------------------

TEST_P(AuditStoreTest, StoredPayloadsAreEncrypted) {
  const History h = BuildHistory();
  RawDb db(database());
  std::vector<std::string> payloads = db.Column("SELECT record FROM transactions");
  for (const std::string& fhir : db.Column("SELECT fhir FROM transactions")) {
    payloads.push_back(fhir);
  }
  for (const std::string& attempt : db.Column("SELECT attempt FROM attempts")) {
    payloads.push_back(attempt);
  }
  for (const std::string& alerts :
       db.Column("SELECT alerts FROM transactions WHERE length(alerts) > 0")) {
    payloads.push_back(alerts);
  }
  ASSERT_THAT(payloads, SizeIs(5 + 5 + 5 + 1));
  for (const std::string& payload : payloads) {
    EXPECT_TRUE(IsEncryptedPayload(payload));
    EXPECT_THAT(payload, Not(HasSubstr(kFamilyName)));
    EXPECT_THAT(payload, Not(HasSubstr(kDrugDisplay)));
    EXPECT_THAT(payload, Not(HasSubstr("1931-07-19")));
    EXPECT_THAT(payload, Not(HasSubstr("Nearly every day")));
  }
  for (const std::string& entry : db.Column("SELECT entry FROM audit_log")) {
    EXPECT_THAT(entry, Not(HasSubstr(kFamilyName)));
  }
  if (!postgres()) {
    // SQLite only: the whole file, write-ahead log included. PostgreSQL's files belong to its
    // server (shared by every test of the process), not to the store.
    store_.reset();
    for (const std::string& file : {database_.sqlite_path, database_.sqlite_path + "-wal"}) {
      const std::string bytes = ReadFile(file);
      EXPECT_THAT(bytes, Not(HasSubstr(kFamilyName))) << file;
      EXPECT_THAT(bytes, Not(HasSubstr(kDrugDisplay))) << file;
      EXPECT_THAT(bytes, Not(HasSubstr("Nearly every day"))) << file;
    }
    Open(cipher_);
  }
  absl::StatusOr<v1::Transaction> tx = store_->Get(h.delivered, /*with_payload=*/true);
  ASSERT_TRUE(tx.ok()) << tx.status();
  EXPECT_EQ(tx->record().patient().family_name(), kFamilyName);
  EXPECT_EQ(tx->record().medication_statement().medication().display(), kDrugDisplay);
  ASSERT_EQ(tx->alerts_size(), 1);
  EXPECT_EQ(tx->alerts(0).message(), kAlertText);
  absl::StatusOr<TransactionPage> listed = store_->Query(TransactionQuery());
  ASSERT_TRUE(listed.ok()) << listed.status();
  ASSERT_THAT(listed->transactions, SizeIs(5));
  EXPECT_EQ(listed->transactions.back().transaction_id(), h.delivered);
  ASSERT_EQ(listed->transactions.back().alerts_size(), 1);
  EXPECT_EQ(listed->transactions.back().alerts(0).message(), kAlertText);
  EXPECT_THAT(tx->fhir_json(), HasSubstr(kDrugDisplay));
  ASSERT_EQ(tx->attempts_size(), 1);
  EXPECT_THAT(tx->attempts(0).response(), HasSubstr(kFamilyName));
}

TEST_P(AuditStoreTest, ARotatedKeyListReadsOldAndNewPayloads) {
  const std::string old_id = Append(MakeEntry("lakeside", "inf-1", "P-1", 1000)).transaction_id;

  // Rotation: k2 is the new first key; k1 stays configured for what it encrypted.
  Open(Cipher({{"k2", key2_}, {"k1", key1_}}, "k2"));
  const std::string new_id = Append(MakeEntry("lakeside", "inf-2", "P-1", 2000)).transaction_id;
  RawDb db(database());
  auto key_id_of = [&](const std::string& id) {
    const std::string raw = db.Value("SELECT fhir FROM transactions WHERE id = ?1", {id});
    return raw.size() > 7 ? raw.substr(5, static_cast<unsigned char>(raw[4])) : std::string();
  };
  EXPECT_EQ(key_id_of(old_id), "k1");
  EXPECT_EQ(key_id_of(new_id), "k2");
  for (const std::string& id : {old_id, new_id}) {
    absl::StatusOr<v1::Transaction> tx = store_->Get(id, /*with_payload=*/true);
    ASSERT_TRUE(tx.ok()) << tx.status();
    EXPECT_EQ(tx->record().patient().family_name(), kFamilyName);
    EXPECT_THAT(tx->fhir_json(), HasSubstr(kDrugDisplay));
  }
  EXPECT_TRUE(Verify().ok());

  // Without the old key, old payloads fail clearly; new ones and all metadata still read.
  Open(Cipher({{"k2", key2_}}, "k2"));
  EXPECT_THAT(store_->Get(old_id, /*with_payload=*/true),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("'k1', which is not configured")));
  absl::StatusOr<v1::Transaction> fresh = store_->Get(new_id, /*with_payload=*/true);
  ASSERT_TRUE(fresh.ok()) << fresh.status();
  EXPECT_THAT(fresh->fhir_json(), HasSubstr(kDrugDisplay));
  absl::StatusOr<v1::Transaction> metadata = store_->Get(old_id, /*with_payload=*/false);
  ASSERT_TRUE(metadata.ok()) << metadata.status();
  EXPECT_EQ(metadata->record_id(), "inf-1");
  const v1::VerifyLogResponse response = Verify();
  EXPECT_FALSE(response.ok());
  EXPECT_EQ(response.first_bad_sequence(), 1);
  EXPECT_THAT(response.message(), HasSubstr("'k1'"));
}

TEST_P(AuditStoreTest, AStoreWithoutAnyKeyRefusesEncryptedPayloads) {
  const std::string id = Append(MakeEntry("lakeside", "inf-1", "P-1", 1000)).transaction_id;
  Open(nullptr);
  EXPECT_THAT(store_->Get(id, /*with_payload=*/true),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("no encryption key is configured")));
}

// --- queries ------------------------------------------------------------------------------------

struct Logged {
  std::string id;
  std::string clinic;
  std::string patient;
  v1::RecordKind kind;
  v1::Direction direction;
  v1::TransactionStatus status;
  std::string destination;
  std::string record_id;
  int64_t received_at_ms;
  int order;  // append order, the tie-break of equal times
};

class AuditQueryTest : public AuditStoreTest {
 protected:
  static constexpr int64_t kBase = 1'763'600'000'000;  // 2025-11-20
  static constexpr int64_t kClaimNow = 2'000'000'000'000;
  static constexpr int64_t kRetryLater = 3'000'000'000'000;

  void SetUp() override {
    AuditStoreTest::SetUp();
    if (IsSkipped() || HasFatalFailure()) return;
    const std::vector<std::string> clinics = {"lakeside", "riverside", "hillcrest"};
    const std::vector<std::string> destinations = {"ehr-a", "ehr-b", "ehr-c"};
    const v1::RecordKind kinds[] = {v1::INFUSION, v1::MEDICATION_STATEMENT, v1::QUESTIONNAIRE,
                                    v1::ENCOUNTER};
    const v1::TransactionStatus finished[] = {v1::DELIVERED, v1::REJECTED, v1::RETRYING,
                                              v1::DEAD_LETTER};
    // Phase 1 logs what will be delivered (with any outcome); phase 2 what stays ACCEPTED, and
    // the hospital's records, so that claiming in phase 1 does not take them.
    std::map<std::string, v1::TransactionStatus> outcome;
    for (int phase = 1; phase <= 2; ++phase) {
      for (int i = 0; i < 40; ++i) {
        const bool inbound = i % 5 == 4;
        const bool accepted = !inbound && i % 7 == 3;
        if ((phase == 1) != (!inbound && !accepted)) continue;
        Logged t;
        t.clinic = clinics[i % 3];
        t.patient = absl::StrCat("P-", i % 4);
        t.kind = kinds[(i / 2) % 4];
        t.direction = inbound ? v1::EHR_TO_CLINIC : v1::CLINIC_TO_EHR;
        t.destination = destinations[(i / 3) % 3];
        t.record_id = absl::StrCat("rec-", i % 17);  // some record ids recur across clinics
        // Times repeat (i and i + 13), so equal times must page in a stable order.
        t.received_at_ms = kBase + (i * 7 % 13) * 3'600'000;
        NewEntry e = MakeEntry(t.clinic, t.record_id, t.patient, t.received_at_ms,
                               absl::StrCat("content-", i));
        e.kind = t.kind;
        e.direction = t.direction;
        e.destination = t.destination;
        if (inbound) {
          e.patient_keys.clear();
        } else {
          // The hospital's MRN: the same person is known to two clinics.
          e.patient_keys.push_back(absl::StrCat("urn:oid:hospital|MRN-", i % 4));
        }
        t.order = static_cast<int>(logged_.size());
        t.id = Append(e).transaction_id;
        ASSERT_FALSE(t.id.empty());
        t.status = inbound ? v1::RECORDED : accepted ? v1::ACCEPTED : finished[(i / 3) % 4];
        outcome[t.id] = t.status;
        logged_.push_back(t);
      }
      if (phase == 2) break;
      for (const std::string& destination : destinations) {
        while (true) {
          absl::StatusOr<std::optional<DeliveryTask>> task =
              store_->ClaimNext(destination, kClaimNow);
          ASSERT_TRUE(task.ok()) << task.status();
          if (!task->has_value()) break;
          Complete(
              MakeAttempt(**task, outcome.at((*task)->transaction_id), kClaimNow, kRetryLater));
        }
      }
    }
    for (const Logged& t : logged_) {
      absl::StatusOr<v1::Transaction> tx = store_->Get(t.id, false);
      ASSERT_TRUE(tx.ok());
      ASSERT_EQ(tx->status(), t.status) << t.id;
    }
  }

  // The ids of the logged transactions for which `match` holds, newest first.
  std::vector<std::string> Expected(const std::function<bool(const Logged&)>& match) {
    std::vector<Logged> matching;
    for (const Logged& t : logged_) {
      if (match(t)) matching.push_back(t);
    }
    std::sort(matching.begin(), matching.end(), [](const Logged& a, const Logged& b) {
      return a.received_at_ms != b.received_at_ms ? a.received_at_ms > b.received_at_ms
                                                  : a.order > b.order;
    });
    std::vector<std::string> ids;
    for (const Logged& t : matching) ids.push_back(t.id);
    return ids;
  }

  // Runs `query` page by page (`page_size` a page) and returns every id; checks that only the
  // last page has no token and that no page is larger than asked.
  std::vector<std::string> QueryAll(TransactionQuery query, int page_size = 3) {
    query.page_size = page_size;
    std::vector<std::string> ids;
    for (int pages = 0; pages < 100; ++pages) {
      absl::StatusOr<TransactionPage> page = store_->Query(query);
      EXPECT_TRUE(page.ok()) << page.status();
      if (!page.ok()) break;
      EXPECT_LE(static_cast<int>(page->transactions.size()), page_size);
      for (const v1::Transaction& tx : page->transactions) {
        ids.push_back(tx.transaction_id());
        EXPECT_EQ(tx.fhir_json(), "");  // no payloads in query results
        EXPECT_FALSE(tx.has_record());
      }
      if (page->next_page_token.empty()) return ids;
      EXPECT_EQ(static_cast<int>(page->transactions.size()), page_size);
      query.page_token = page->next_page_token;
    }
    ADD_FAILURE() << "more than 100 pages";
    return ids;
  }

  // Checks that `query` returns exactly the transactions `match` selects, a strict non-empty
  // subset of the log, newest first and without duplicates.
  void ExpectQuery(const TransactionQuery& query, const std::function<bool(const Logged&)>& match) {
    const std::vector<std::string> expected = Expected(match);
    ASSERT_FALSE(expected.empty());
    ASSERT_LT(expected.size(), logged_.size());
    const std::vector<std::string> ids = QueryAll(query);
    EXPECT_THAT(ids, ElementsAreArray(expected));
    EXPECT_EQ(std::set<std::string>(ids.begin(), ids.end()).size(), ids.size());
  }

  std::vector<Logged> logged_;
};

INSTANTIATE_TEST_SUITE_P(Backends, AuditQueryTest,
                         ::testing::Values(Backend::kSqlite, Backend::kPostgres), BackendName);

TEST_P(AuditQueryTest, WithoutFiltersPagesWalkTheWholeLogNewestFirst) {
  ASSERT_THAT(logged_, SizeIs(40));
  const std::vector<std::string> expected = Expected([](const Logged&) { return true; });
  for (int page_size : {1, 3, 7, 50}) {
    const std::vector<std::string> ids = QueryAll(TransactionQuery(), page_size);
    EXPECT_THAT(ids, ElementsAreArray(expected)) << "page size " << page_size;
  }
}

TEST_P(AuditQueryTest, TimeRangeIsFromInclusiveToExclusive) {
  TransactionQuery query;
  query.from_ms = kBase + 3 * 3'600'000;
  query.to_ms = kBase + 9 * 3'600'000;
  ExpectQuery(query, [&](const Logged& t) {
    return t.received_at_ms >= query.from_ms && t.received_at_ms < query.to_ms;
  });
  TransactionQuery from_only;
  from_only.from_ms = kBase + 12 * 3'600'000;
  ExpectQuery(from_only, [&](const Logged& t) { return t.received_at_ms >= from_only.from_ms; });
}

TEST_P(AuditQueryTest, ClinicFilter) {
  TransactionQuery query;
  query.clinic_id = "riverside";
  ExpectQuery(query, [](const Logged& t) { return t.clinic == "riverside"; });
}

TEST_P(AuditQueryTest, ClinicScopeOfAScopedAuditor) {
  TransactionQuery query;
  query.clinic_scope = {"lakeside", "hillcrest"};
  ExpectQuery(query, [](const Logged& t) { return t.clinic != "riverside"; });
}

TEST_P(AuditQueryTest, PatientByTheClinicsPatientId) {
  TransactionQuery query;
  query.patient_identifier = "P-2";
  ExpectQuery(query, [](const Logged& t) { return t.patient == "P-2"; });
}

TEST_P(AuditQueryTest, PatientByTheClinicsIdentifierSystemAndValue) {
  TransactionQuery query;
  query.patient_identifier = "urn:fhirgw:hillcrest:patient|P-1";
  ExpectQuery(query, [](const Logged& t) { return t.clinic == "hillcrest" && t.patient == "P-1"; });
}

TEST_P(AuditQueryTest, PatientByAHospitalIdentifierSharedByClinics) {
  TransactionQuery query;
  query.patient_identifier = "urn:oid:hospital|MRN-3";
  // Every clinic that pushed MRN-3 knows the patient as P-3, inbound records included.
  ExpectQuery(query, [](const Logged& t) { return t.patient == "P-3"; });
  TransactionQuery unknown;
  unknown.patient_identifier = "urn:oid:hospital|MRN-404";
  EXPECT_THAT(QueryAll(unknown), IsEmpty());
}

TEST_P(AuditQueryTest, KindFilter) {
  for (v1::RecordKind kind : {v1::INFUSION, v1::ENCOUNTER}) {
    TransactionQuery query;
    query.kind = kind;
    ExpectQuery(query, [kind](const Logged& t) { return t.kind == kind; });
  }
}

TEST_P(AuditQueryTest, DirectionFilter) {
  for (v1::Direction direction : {v1::CLINIC_TO_EHR, v1::EHR_TO_CLINIC}) {
    TransactionQuery query;
    query.direction = direction;
    ExpectQuery(query, [direction](const Logged& t) { return t.direction == direction; });
  }
}

TEST_P(AuditQueryTest, StatusFilter) {
  for (v1::TransactionStatus status :
       {v1::ACCEPTED, v1::DELIVERED, v1::RETRYING, v1::REJECTED, v1::DEAD_LETTER, v1::RECORDED}) {
    TransactionQuery query;
    query.status = status;
    ExpectQuery(query, [status](const Logged& t) { return t.status == status; });
  }
}

TEST_P(AuditQueryTest, DestinationFilter) {
  TransactionQuery query;
  query.destination = "ehr-b";
  ExpectQuery(query, [](const Logged& t) { return t.destination == "ehr-b"; });
}

TEST_P(AuditQueryTest, RecordIdFilter) {
  TransactionQuery query;
  query.record_id = "rec-5";
  ExpectQuery(query, [](const Logged& t) { return t.record_id == "rec-5"; });
}

TEST_P(AuditQueryTest, CombinedFilters) {
  TransactionQuery query;
  query.clinic_id = "lakeside";
  query.direction = v1::CLINIC_TO_EHR;
  query.from_ms = kBase + 2 * 3'600'000;
  ExpectQuery(query, [&](const Logged& t) {
    return t.clinic == "lakeside" && t.direction == v1::CLINIC_TO_EHR &&
           t.received_at_ms >= query.from_ms;
  });
  TransactionQuery none;
  none.clinic_id = "lakeside";
  none.status = v1::RECORDED;
  none.direction = v1::CLINIC_TO_EHR;
  EXPECT_THAT(QueryAll(none), IsEmpty());
}

TEST_P(AuditQueryTest, ABadPageTokenIsRefused) {
  TransactionQuery query;
  query.page_token = "not-a-token";
  EXPECT_THAT(store_->Query(query),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("page_token")));
}

}  // namespace
}  // namespace fhirgw::gateway
