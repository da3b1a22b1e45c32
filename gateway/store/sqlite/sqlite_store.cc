#include "gateway/store/sqlite/sqlite_store.h"

#include <fcntl.h>
#include <sqlite3.h>
#include <unistd.h>

#include <algorithm>
#include <condition_variable>
#include <deque>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <utility>

#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "fhir/status_macros.h"
#include "gateway/store/log_codec.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace fhirgw::gateway {
namespace {

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS transactions (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  clinic_id TEXT NOT NULL,
  record_id TEXT NOT NULL,
  version INTEGER NOT NULL,
  content_hash BLOB NOT NULL,
  kind INTEGER NOT NULL,
  direction INTEGER NOT NULL,
  status INTEGER NOT NULL,
  destination TEXT NOT NULL,
  patient_id TEXT NOT NULL,
  principal TEXT NOT NULL,
  received_at_ms INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL,
  queued_at_ms INTEGER NOT NULL,
  next_attempt_at_ms INTEGER NOT NULL,
  attempt_count INTEGER NOT NULL DEFAULT 0,
  attempt_base INTEGER NOT NULL DEFAULT 0,
  record BLOB NOT NULL,
  fhir TEXT NOT NULL,
  alerts BLOB NOT NULL,
  resources BLOB NOT NULL DEFAULT x'',
  UNIQUE (clinic_id, record_id, direction, version)
);
CREATE INDEX IF NOT EXISTS transactions_due ON transactions (destination, next_attempt_at_ms, seq)
  WHERE status IN (1, 4);
CREATE INDEX IF NOT EXISTS transactions_undelivered ON transactions (received_at_ms)
  WHERE status IN (1, 2, 4);
CREATE INDEX IF NOT EXISTS transactions_in_flight ON transactions (clinic_id, patient_id)
  WHERE status = 2;
CREATE INDEX IF NOT EXISTS transactions_dead ON transactions (clinic_id) WHERE status = 6;
CREATE INDEX IF NOT EXISTS transactions_inbound ON transactions (clinic_id, seq) WHERE direction = 2;
CREATE TABLE IF NOT EXISTS patient_keys (
  key TEXT NOT NULL,
  clinic_id TEXT NOT NULL,
  clinic_patient_id TEXT NOT NULL,
  PRIMARY KEY (key, clinic_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS transactions_received ON transactions (received_at_ms, seq);
CREATE INDEX IF NOT EXISTS transactions_clinic ON transactions (clinic_id, received_at_ms);
CREATE INDEX IF NOT EXISTS transactions_patient ON transactions (clinic_id, patient_id, received_at_ms);
-- QueryTransactions by the clinic's patient id alone (any clinic): without it the query walks every
-- transaction in time order.
CREATE INDEX IF NOT EXISTS transactions_patient_id ON transactions (patient_id, received_at_ms);
CREATE INDEX IF NOT EXISTS transactions_destination ON transactions (destination, received_at_ms);
CREATE INDEX IF NOT EXISTS transactions_status ON transactions (status, received_at_ms);
CREATE INDEX IF NOT EXISTS transactions_kind ON transactions (kind, received_at_ms);
CREATE INDEX IF NOT EXISTS transactions_direction ON transactions (direction, received_at_ms);
CREATE INDEX IF NOT EXISTS transactions_record ON transactions (record_id, received_at_ms);
CREATE TABLE IF NOT EXISTS audit_log (
  seq INTEGER PRIMARY KEY,
  at_ms INTEGER NOT NULL,
  transaction_id TEXT NOT NULL,
  clinic_id TEXT NOT NULL,
  entry BLOB NOT NULL,
  prev_hash BLOB NOT NULL,
  hash BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_transaction ON audit_log (transaction_id, seq);
CREATE INDEX IF NOT EXISTS audit_log_at ON audit_log (at_ms);
CREATE INDEX IF NOT EXISTS audit_log_clinic ON audit_log (clinic_id, seq);
CREATE TABLE IF NOT EXISTS signed_heads (
  seq INTEGER PRIMARY KEY,
  head BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS attempts (
  transaction_id TEXT NOT NULL,
  number INTEGER NOT NULL,
  attempt BLOB NOT NULL,
  PRIMARY KEY (transaction_id, number)
);
)sql";

// Statuses as stored (the proto enum values).
constexpr int kAccepted = v1::ACCEPTED;
constexpr int kDelivering = v1::DELIVERING;
constexpr int kRetrying = v1::RETRYING;
constexpr int kDeadLetter = v1::DEAD_LETTER;

absl::Status SqliteError(sqlite3* db, absl::string_view what) {
  return absl::InternalError(absl::StrCat("sqlite: ", what, ": ", sqlite3_errmsg(db)));
}

// A prepared statement, reset after each use.
class Statement {
 public:
  Statement() = default;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement() { sqlite3_finalize(stmt_); }

  bool prepared() const { return stmt_ != nullptr; }

  absl::Status Prepare(sqlite3* db, const char* sql) {
    db_ = db;
    if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr) != SQLITE_OK) {
      return SqliteError(db, absl::StrCat("prepare ", sql));
    }
    return absl::OkStatus();
  }

  Statement& Bind(int i, int64_t v) {
    sqlite3_bind_int64(stmt_, i, v);
    return *this;
  }
  Statement& Bind(int i, absl::string_view v) {
    sqlite3_bind_text(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }
  Statement& BindBlob(int i, absl::string_view v) {
    sqlite3_bind_blob(stmt_, i, v.data(), static_cast<int>(v.size()), SQLITE_TRANSIENT);
    return *this;
  }

  // Steps once: true with a row, false when done; errors as Status.
  absl::StatusOr<bool> Step() {
    const int rc = sqlite3_step(stmt_);
    if (rc == SQLITE_ROW) return true;
    if (rc == SQLITE_DONE) return false;
    return SqliteError(db_, "step");
  }
  absl::Status Run() {
    absl::StatusOr<bool> row = Step();
    Reset();
    return row.status();
  }
  void Reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

  int64_t Int(int col) const { return sqlite3_column_int64(stmt_, col); }
  bool IsNull(int col) const { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::string Text(int col) const {
    const void* data = sqlite3_column_blob(stmt_, col);
    const int size = sqlite3_column_bytes(stmt_, col);
    return data == nullptr ? std::string() : std::string(static_cast<const char*>(data), size);
  }

 private:
  sqlite3* db_ = nullptr;
  sqlite3_stmt* stmt_ = nullptr;
};

// Resets a statement when leaving scope, so that early returns never leave it mid-step.
class ResetOnExit {
 public:
  explicit ResetOnExit(Statement& s) : s_(s) {}
  ~ResetOnExit() { s_.Reset(); }

 private:
  Statement& s_;
};

absl::Status Exec(sqlite3* db, const char* sql) {
  char* error = nullptr;
  if (sqlite3_exec(db, sql, nullptr, nullptr, &error) != SQLITE_OK) {
    absl::Status status = absl::InternalError(absl::StrCat("sqlite: ", sql, ": ", error));
    sqlite3_free(error);
    return status;
  }
  return absl::OkStatus();
}

absl::StatusOr<sqlite3*> OpenConnection(const std::string& path) {
  sqlite3* db = nullptr;
  const int flags = SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX;
  if (sqlite3_open_v2(path.c_str(), &db, flags, nullptr) != SQLITE_OK) {
    absl::Status status = absl::UnavailableError(absl::StrCat(
        "cannot open the log ", path, ": ", db ? sqlite3_errmsg(db) : "out of memory"));
    sqlite3_close(db);
    return status;
  }
  sqlite3_busy_timeout(db, 10000);
  for (const char* pragma : {"PRAGMA journal_mode=WAL", "PRAGMA synchronous=FULL",
                             "PRAGMA foreign_keys=ON", "PRAGMA temp_store=MEMORY"}) {
    absl::Status status = Exec(db, pragma);
    if (!status.ok()) {
      sqlite3_close(db);
      return status;
    }
  }
  return db;
}

std::string SerializeAlerts(const std::vector<v1::Alert>& alerts) {
  v1::Transaction holder;
  for (const v1::Alert& alert : alerts) *holder.add_alerts() = alert;
  return holder.SerializeAsString();
}

std::vector<v1::Alert> ParseAlerts(const std::string& bytes) {
  v1::Transaction holder;
  holder.ParseFromString(bytes);
  return {holder.alerts().begin(), holder.alerts().end()};
}

google::protobuf::Timestamp ToTimestamp(int64_t ms) {
  google::protobuf::Timestamp t;
  t.set_seconds(ms / 1000);
  t.set_nanos(static_cast<int32_t>(ms % 1000) * 1000000);
  return t;
}

// The columns RowToTransaction reads, in order.
constexpr char kTransactionColumns[] =
    "id, clinic_id, record_id, version, kind, direction, status, destination, patient_id, "
    "principal, received_at_ms, updated_at_ms, next_attempt_at_ms, alerts, resources, record, "
    "fhir, "
    "seq";

absl::StatusOr<v1::Transaction> RowToTransaction(const Statement& row, bool with_payload,
                                                 const PayloadCipher* cipher) {
  v1::Transaction tx;
  tx.set_transaction_id(row.Text(0));
  tx.set_clinic_id(row.Text(1));
  tx.set_record_id(row.Text(2));
  tx.set_version(row.Int(3));
  tx.set_kind(static_cast<v1::RecordKind>(row.Int(4)));
  tx.set_direction(static_cast<v1::Direction>(row.Int(5)));
  tx.set_status(static_cast<v1::TransactionStatus>(row.Int(6)));
  tx.set_destination(row.Text(7));
  tx.set_patient_id(row.Text(8));
  tx.set_principal(row.Text(9));
  *tx.mutable_received_at() = ToTimestamp(row.Int(10));
  *tx.mutable_updated_at() = ToTimestamp(row.Int(11));
  if (tx.status() == v1::RETRYING || tx.status() == v1::ACCEPTED) {
    *tx.mutable_next_attempt_at() = ToTimestamp(row.Int(12));
  }
  v1::Transaction extra;
  // Alerts are encrypted (they quote answers). Without their key, a listing without payloads
  // still shows the transaction, without its alerts; with payloads, the error is the answer.
  absl::StatusOr<std::string> alerts = OpenPayload(cipher, row.Text(13));
  if (alerts.ok()) {
    extra.ParseFromString(*alerts);
  } else if (with_payload) {
    return alerts.status();
  }
  extra.MergeFromString(row.Text(14));
  tx.mutable_alerts()->Swap(extra.mutable_alerts());
  tx.mutable_resources()->Swap(extra.mutable_resources());
  if (with_payload) {
    FHIRGW_ASSIGN_OR_RETURN(std::string record, OpenPayload(cipher, row.Text(15)));
    FHIRGW_ASSIGN_OR_RETURN(std::string fhir, OpenPayload(cipher, row.Text(16)));
    tx.mutable_record()->ParseFromString(record);
    tx.set_fhir_json(std::move(fhir));
  }
  return tx;
}

// A DeliveryAttempt as the log keeps it: without the EHR's answer (AnswerSha256 is kept instead).
// The answer is the response body and the issue texts parsed from it: EHRs echo the patient in
// their error messages ("Patient Doe, born 1931-07-19: ..."), and the log entries are neither
// encrypted nor purged, so those texts must stay out of them.
v1::DeliveryAttempt WithoutResponse(const v1::DeliveryAttempt& attempt) {
  v1::DeliveryAttempt copy = attempt;
  copy.clear_response();
  for (v1::Issue& issue : *copy.mutable_issues()) issue.clear_message();
  return copy;
}

// True when `attempt` holds nothing of the EHR's answer (never had one, or it was purged).
bool AnswerIsEmpty(const v1::DeliveryAttempt& attempt) {
  if (!attempt.response().empty()) return false;
  for (const v1::Issue& issue : attempt.issues()) {
    if (!issue.message().empty()) return false;
  }
  return true;
}

// The SHA-256 the log keeps of the EHR's answer in `attempt`: of the response body alone when no
// issue has a text, else of the body and every issue text, each length-prefixed.
std::string AnswerSha256(const v1::DeliveryAttempt& attempt) {
  bool texts = false;
  for (const v1::Issue& issue : attempt.issues()) texts = texts || !issue.message().empty();
  if (!texts) return Sha256(attempt.response());
  std::string framed =
      absl::StrCat("fhirgw-answer:", attempt.response().size(), ":", attempt.response());
  for (const v1::Issue& issue : attempt.issues()) {
    absl::StrAppend(&framed, ":", issue.message().size(), ":", issue.message());
  }
  return Sha256(framed);
}

class SqliteStore final : public Store {
 public:
  explicit SqliteStore(SqliteOptions options) : options_(std::move(options)) {}

  ~SqliteStore() override {
    Close();
    sqlite3_close(writer_);
    sqlite3_close(reader_);
    sqlite3_close(checkpoint_db_);
  }

  absl::Status Init() {
    const std::filesystem::path parent = std::filesystem::path(options_.path).parent_path();
    std::error_code ec;
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    if (ec) {
      return absl::UnavailableError(
          absl::StrCat("cannot create ", parent.string(), ": ", ec.message()));
    }
    FHIRGW_ASSIGN_OR_RETURN(writer_, OpenConnection(options_.path));
    FHIRGW_RETURN_IF_ERROR(Exec(writer_, kSchema));
    FHIRGW_ASSIGN_OR_RETURN(reader_, OpenConnection(options_.path));
    FHIRGW_RETURN_IF_ERROR(
        latest_.Prepare(writer_,
                        "SELECT id, version, content_hash, status, alerts, seq FROM transactions "
                        "WHERE clinic_id = ?1 AND record_id = ?2 AND direction = ?3 "
                        "ORDER BY version DESC LIMIT 1"));
    FHIRGW_RETURN_IF_ERROR(insert_.Prepare(
        writer_,
        "INSERT INTO transactions (id, clinic_id, record_id, version, content_hash, kind, "
        "direction, status, destination, patient_id, principal, received_at_ms, updated_at_ms, "
        "queued_at_ms, next_attempt_at_ms, record, fhir, alerts) VALUES (?1, ?2, ?3, ?4, ?5, ?6, "
        "?7, ?8, ?9, ?10, ?11, ?12, ?12, ?12, ?12, ?13, ?14, ?15)"));
    FHIRGW_RETURN_IF_ERROR(claim_.Prepare(
        writer_,
        "UPDATE transactions SET status = 2, updated_at_ms = ?2 WHERE seq = ("
        "  SELECT t.seq FROM transactions t"
        "  WHERE t.destination = ?1 AND t.status IN (1, 4) AND t.next_attempt_at_ms <= ?2"
        "  AND NOT EXISTS (SELECT 1 FROM transactions p WHERE p.clinic_id = t.clinic_id"
        "    AND p.record_id = t.record_id AND p.direction = t.direction"
        "    AND p.version < t.version AND p.status IN (1, 2, 4))"
        "  AND NOT EXISTS (SELECT 1 FROM transactions d WHERE d.status = 2"
        "    AND d.clinic_id = t.clinic_id AND d.patient_id = t.patient_id)"
        "  ORDER BY t.next_attempt_at_ms, t.seq LIMIT 1) "
        "RETURNING id, destination, fhir, attempt_count, attempt_count - attempt_base, "
        "queued_at_ms"));
    FHIRGW_RETURN_IF_ERROR(
        insert_attempt_.Prepare(writer_,
                                "INSERT OR REPLACE INTO attempts (transaction_id, number, attempt) "
                                "VALUES (?1, ?2, ?3)"));
    FHIRGW_RETURN_IF_ERROR(complete_.Prepare(
        writer_,
        "UPDATE transactions SET status = ?2, attempt_count = attempt_count + 1, "
        "next_attempt_at_ms = ?3, updated_at_ms = ?4, "
        "resources = CASE WHEN length(?5) > 0 THEN ?5 ELSE resources END WHERE id = ?1"));
    FHIRGW_RETURN_IF_ERROR(link_patient_.Prepare(
        writer_,
        "INSERT OR IGNORE INTO patient_keys (key, clinic_id, clinic_patient_id) "
        "VALUES (?1, ?2, ?3)"));
    FHIRGW_RETURN_IF_ERROR(link_ehr_patient_.Prepare(
        writer_,
        "INSERT OR IGNORE INTO patient_keys (key, clinic_id, clinic_patient_id) "
        "SELECT destination || '|Patient/' || ?2, clinic_id, patient_id FROM transactions "
        "WHERE id = ?1 AND direction = 1"));
    FHIRGW_RETURN_IF_ERROR(tx_meta_.Prepare(
        writer_,
        "SELECT clinic_id, record_id, version, kind, direction, destination, patient_id, status "
        "FROM transactions WHERE id = ?1"));
    FHIRGW_RETURN_IF_ERROR(insert_log_.Prepare(
        writer_,
        "INSERT INTO audit_log (seq, at_ms, transaction_id, clinic_id, entry, prev_hash, hash) "
        "VALUES (?1, ?2, ?3, ?7, ?4, ?5, ?6)"));
    FHIRGW_RETURN_IF_ERROR(LoadHead());
    FHIRGW_ASSIGN_OR_RETURN(checkpoint_db_, OpenConnection(options_.path));
    sqlite3_wal_hook(writer_, &SqliteStore::OnWalCommit, this);
    checkpointer_ = std::thread([this] { CheckpointLoop(); });
    committer_ = std::thread([this] { CommitLoop(); });
    return absl::OkStatus();
  }

  void Append(NewEntry entry, AppendCallback done) override {
    std::vector<NewEntry> entries;
    entries.push_back(std::move(entry));
    Enqueue(std::move(entries),
            [done = std::move(done)](absl::StatusOr<std::vector<AppendResult>> results) {
              if (!results.ok()) {
                done(results.status());
              } else {
                done(std::move(results->front()));
              }
            });
  }

  void AppendAll(std::vector<NewEntry> entries, AppendAllCallback done) override {
    if (entries.empty()) {
      done(std::vector<AppendResult>());
      return;
    }
    Enqueue(std::move(entries), std::move(done));
  }

  absl::StatusOr<std::vector<PatientMatch>> FindPatient(
      const std::vector<std::string>& keys) override {
    std::lock_guard<std::mutex> lock(reader_mu_);
    Statement select;
    FHIRGW_RETURN_IF_ERROR(select.Prepare(
        reader_, "SELECT clinic_id, clinic_patient_id FROM patient_keys WHERE key = ?1"));
    std::vector<PatientMatch> matches;
    for (const std::string& key : keys) {
      select.Bind(1, key);
      while (true) {
        FHIRGW_ASSIGN_OR_RETURN(bool row, select.Step());
        if (!row) break;
        PatientMatch match{select.Text(0), select.Text(1)};
        bool seen = false;
        for (const PatientMatch& m : matches) {
          seen = seen ||
                 (m.clinic_id == match.clinic_id && m.clinic_patient_id == match.clinic_patient_id);
        }
        if (!seen) matches.push_back(std::move(match));
      }
      select.Reset();
    }
    return matches;
  }

  absl::StatusOr<bool> HasRecord(absl::string_view clinic_id, absl::string_view record_id,
                                 v1::Direction direction) override {
    std::lock_guard<std::mutex> lock(reader_mu_);
    Statement select;
    FHIRGW_RETURN_IF_ERROR(
        select.Prepare(reader_,
                       "SELECT 1 FROM transactions WHERE clinic_id = ?1 AND record_id = ?2 "
                       "AND direction = ?3 LIMIT 1"));
    select.Bind(1, clinic_id).Bind(2, record_id).Bind(3, static_cast<int64_t>(direction));
    return select.Step();
  }

  absl::StatusOr<std::vector<EhrPatient>> EhrPatients(absl::string_view destination) override {
    std::lock_guard<std::mutex> lock(reader_mu_);
    Statement select;
    FHIRGW_RETURN_IF_ERROR(
        select.Prepare(reader_,
                       "SELECT key, clinic_id, clinic_patient_id FROM patient_keys "
                       "WHERE key >= ?1 AND key < ?2 ORDER BY clinic_id, clinic_patient_id"));
    const std::string prefix = absl::StrCat(destination, "|Patient/");
    select.Bind(1, prefix).Bind(2, absl::StrCat(destination, "|Patient0"));
    std::vector<EhrPatient> patients;
    while (true) {
      FHIRGW_ASSIGN_OR_RETURN(bool row, select.Step());
      if (!row) break;
      patients.push_back({select.Text(1), select.Text(2), select.Text(0).substr(prefix.size())});
    }
    return patients;
  }

  absl::StatusOr<std::vector<InboundItem>> ListInbound(absl::string_view clinic_id,
                                                       int64_t after_sequence, int limit) override {
    std::lock_guard<std::mutex> lock(reader_mu_);
    Statement select;
    FHIRGW_RETURN_IF_ERROR(select.Prepare(
        reader_, absl::StrCat("SELECT ", kTransactionColumns,
                              " FROM transactions WHERE clinic_id = ?1 AND direction = 2 "
                              "AND seq > ?2 ORDER BY seq LIMIT ?3")
                     .c_str()));
    select.Bind(1, clinic_id).Bind(2, after_sequence).Bind(3, static_cast<int64_t>(limit));
    std::vector<InboundItem> items;
    while (true) {
      FHIRGW_ASSIGN_OR_RETURN(bool row, select.Step());
      if (!row) break;
      FHIRGW_ASSIGN_OR_RETURN(v1::Transaction tx, RowToTransaction(select, true, cipher()));
      items.push_back({select.Int(17), std::move(tx)});
    }
    return items;
  }

  absl::StatusOr<std::string> GetState(absl::string_view key) override {
    std::lock_guard<std::mutex> lock(reader_mu_);
    Statement select;
    FHIRGW_RETURN_IF_ERROR(select.Prepare(reader_, "SELECT value FROM state WHERE key = ?1"));
    select.Bind(1, key);
    FHIRGW_ASSIGN_OR_RETURN(bool row, select.Step());
    return row ? select.Text(0) : std::string();
  }

  absl::Status SetState(absl::string_view key, absl::string_view value) override {
    std::lock_guard<std::mutex> lock(writer_mu_);
    Statement upsert;
    FHIRGW_RETURN_IF_ERROR(
        upsert.Prepare(writer_,
                       "INSERT INTO state (key, value) VALUES (?1, ?2) "
                       "ON CONFLICT (key) DO UPDATE SET value = excluded.value"));
    upsert.Bind(1, key).Bind(2, value);
    return upsert.Run();
  }

  absl::StatusOr<v1::Transaction> Get(absl::string_view transaction_id,
                                      bool with_payload) override {
    std::lock_guard<std::mutex> lock(reader_mu_);
    Statement select;
    FHIRGW_RETURN_IF_ERROR(select.Prepare(
        reader_,
        absl::StrCat("SELECT ", kTransactionColumns, " FROM transactions WHERE id = ?1").c_str()));
    select.Bind(1, transaction_id);
    FHIRGW_ASSIGN_OR_RETURN(bool found, select.Step());
    if (!found) {
      return absl::NotFoundError(absl::StrCat("no transaction ", transaction_id));
    }
    FHIRGW_ASSIGN_OR_RETURN(v1::Transaction tx, RowToTransaction(select, with_payload, cipher()));
    Statement attempts;
    FHIRGW_RETURN_IF_ERROR(attempts.Prepare(
        reader_, "SELECT attempt FROM attempts WHERE transaction_id = ?1 ORDER BY number"));
    attempts.Bind(1, transaction_id);
    while (true) {
      FHIRGW_ASSIGN_OR_RETURN(bool row, attempts.Step());
      if (!row) break;
      FHIRGW_ASSIGN_OR_RETURN(std::string attempt, OpenPayload(cipher(), attempts.Text(0)));
      tx.add_attempts()->ParseFromString(attempt);
    }
    return tx;
  }

  absl::StatusOr<std::optional<DeliveryTask>> ClaimNext(absl::string_view destination,
                                                        int64_t now_ms) override {
    std::lock_guard<std::mutex> lock(writer_mu_);
    ResetOnExit reset(claim_);
    claim_.Bind(1, destination).Bind(2, now_ms);
    FHIRGW_ASSIGN_OR_RETURN(bool row, claim_.Step());
    if (!row) return std::nullopt;
    DeliveryTask task;
    task.transaction_id = claim_.Text(0);
    task.destination = claim_.Text(1);
    FHIRGW_ASSIGN_OR_RETURN(task.fhir_json, OpenPayload(cipher(), claim_.Text(2)));
    task.attempt_number = static_cast<int>(claim_.Int(3)) + 1;
    task.attempts_so_far = static_cast<int>(claim_.Int(4));
    task.queued_at_ms = claim_.Int(5);
    // RETURNING rows are produced before the statement completes; finish it so the update commits.
    while (true) {
      FHIRGW_ASSIGN_OR_RETURN(bool more, claim_.Step());
      if (!more) break;
    }
    return task;
  }

  absl::Status CompleteAttempt(const AttemptResult& result) override {
    std::lock_guard<std::mutex> lock(writer_mu_);
    FHIRGW_RETURN_IF_ERROR(Exec(writer_, "BEGIN IMMEDIATE"));
    absl::Status status = [&]() -> absl::Status {
      insert_attempt_.Bind(1, result.transaction_id)
          .Bind(2, static_cast<int64_t>(result.attempt.number()))
          .BindBlob(3, SealPayload(cipher(), result.attempt.SerializeAsString()));
      FHIRGW_RETURN_IF_ERROR(insert_attempt_.Run());
      FHIRGW_ASSIGN_OR_RETURN(v1::LogEntry entry, EntryFor(result.transaction_id));
      entry.set_event(v1::LogEntry::DELIVERY_ATTEMPT);
      entry.set_status(result.new_status);
      *entry.mutable_attempt() = WithoutResponse(result.attempt);
      entry.set_response_sha256(AnswerSha256(result.attempt));
      FHIRGW_RETURN_IF_ERROR(AppendLog(std::move(entry)));
      std::string resources;
      if (!result.resources.empty()) {
        v1::Transaction holder;
        for (const v1::ResourceRef& ref : result.resources) *holder.add_resources() = ref;
        resources = holder.SerializeAsString();
      }
      complete_.Bind(1, result.transaction_id)
          .Bind(2, static_cast<int64_t>(result.new_status))
          .Bind(3, result.next_attempt_at_ms)
          .Bind(4, result.attempt.started_at().seconds() * 1000 +
                       result.attempt.started_at().nanos() / 1000000 + result.attempt.duration_ms())
          .BindBlob(5, resources);
      FHIRGW_RETURN_IF_ERROR(complete_.Run());
      // Remember the ids the EHR gave the patient, so that its data can be routed back.
      for (const v1::ResourceRef& ref : result.resources) {
        if (ref.resource_type() != "Patient" || ref.id().empty()) continue;
        link_ehr_patient_.Bind(1, result.transaction_id).Bind(2, ref.id());
        FHIRGW_RETURN_IF_ERROR(link_ehr_patient_.Run());
      }
      return absl::OkStatus();
    }();
    return Finish(status);
  }

  absl::StatusOr<std::optional<int64_t>> NextDueAt(absl::string_view destination) override {
    std::lock_guard<std::mutex> lock(reader_mu_);
    Statement select;
    FHIRGW_RETURN_IF_ERROR(select.Prepare(reader_,
                                          "SELECT min(next_attempt_at_ms) FROM transactions "
                                          "WHERE destination = ?1 AND status = 4"));
    select.Bind(1, destination);
    FHIRGW_ASSIGN_OR_RETURN(bool row, select.Step());
    if (!row || select.IsNull(0)) return std::nullopt;
    return select.Int(0);
  }

  absl::StatusOr<int> RecoverInFlight(int64_t now_ms) override {
    std::lock_guard<std::mutex> lock(writer_mu_);
    FHIRGW_RETURN_IF_ERROR(Exec(writer_, "BEGIN IMMEDIATE"));
    int recovered = 0;
    absl::Status status = [&]() -> absl::Status {
      Statement update;
      FHIRGW_RETURN_IF_ERROR(update.Prepare(
          writer_,
          "UPDATE transactions SET status = 4, next_attempt_at_ms = ?1, updated_at_ms = ?1, "
          "attempt_count = attempt_count + 1 WHERE status = 2 RETURNING id"));
      update.Bind(1, now_ms);
      std::vector<std::string> ids;
      while (true) {
        FHIRGW_ASSIGN_OR_RETURN(bool row, update.Step());
        if (!row) break;
        ids.push_back(update.Text(0));
      }
      update.Reset();
      for (const std::string& id : ids) {
        FHIRGW_ASSIGN_OR_RETURN(v1::LogEntry entry, EntryFor(id));
        entry.set_event(v1::LogEntry::RECOVERED);
        entry.set_status(v1::RETRYING);
        entry.set_at_ms(now_ms);
        FHIRGW_RETURN_IF_ERROR(AppendLog(std::move(entry)));
      }
      recovered = static_cast<int>(ids.size());
      return absl::OkStatus();
    }();
    FHIRGW_RETURN_IF_ERROR(Finish(status));
    return recovered;
  }

  absl::StatusOr<std::vector<std::string>> Replay(const std::vector<std::string>& ids,
                                                  absl::string_view clinic_id,
                                                  int64_t now_ms) override {
    std::lock_guard<std::mutex> lock(writer_mu_);
    FHIRGW_RETURN_IF_ERROR(Exec(writer_, "BEGIN IMMEDIATE"));
    std::vector<std::string> replayed;
    absl::Status status = [&]() -> absl::Status {
      Statement update;
      // attempt_base restarts the retry budget; queued_at restarts the age limit.
      constexpr char kSet[] =
          "UPDATE transactions SET status = 1, next_attempt_at_ms = ?1, queued_at_ms = ?1, "
          "updated_at_ms = ?1, attempt_base = attempt_count WHERE status = 6 ";
      if (!ids.empty()) {
        FHIRGW_RETURN_IF_ERROR(
            update.Prepare(writer_, absl::StrCat(kSet, "AND id = ?2 RETURNING id").c_str()));
        for (const std::string& id : ids) {
          update.Bind(1, now_ms).Bind(2, id);
          FHIRGW_ASSIGN_OR_RETURN(bool row, update.Step());
          if (row) replayed.push_back(update.Text(0));
          update.Reset();
        }
      } else {
        FHIRGW_RETURN_IF_ERROR(update.Prepare(
            writer_, absl::StrCat(kSet, "AND (?2 = '' OR clinic_id = ?2) RETURNING id").c_str()));
        update.Bind(1, now_ms).Bind(2, clinic_id);
        while (true) {
          FHIRGW_ASSIGN_OR_RETURN(bool row, update.Step());
          if (!row) break;
          replayed.push_back(update.Text(0));
        }
        update.Reset();
      }
      for (const std::string& id : replayed) {
        FHIRGW_ASSIGN_OR_RETURN(v1::LogEntry entry, EntryFor(id));
        entry.set_event(v1::LogEntry::REPLAYED);
        entry.set_status(v1::ACCEPTED);
        entry.set_at_ms(now_ms);
        FHIRGW_RETURN_IF_ERROR(AppendLog(std::move(entry)));
      }
      return absl::OkStatus();
    }();
    FHIRGW_RETURN_IF_ERROR(Finish(status));
    return replayed;
  }

  absl::StatusOr<QueueStats> Stats() override {
    std::lock_guard<std::mutex> lock(reader_mu_);
    Statement select;
    FHIRGW_RETURN_IF_ERROR(select.Prepare(
        reader_,
        "SELECT (SELECT count(*) FROM transactions WHERE status IN (1, 2, 4)), "
        "(SELECT coalesce(min(received_at_ms), 0) FROM transactions WHERE status IN (1, 2, 4)), "
        "(SELECT count(*) FROM transactions WHERE status = 6)"));
    FHIRGW_ASSIGN_OR_RETURN(bool row, select.Step());
    QueueStats stats;
    if (row) {
      stats.undelivered = select.Int(0);
      stats.oldest_undelivered_ms = select.Int(1);
      stats.dead_letters = select.Int(2);
    }
    return stats;
  }

  absl::StatusOr<TransactionPage> Query(const TransactionQuery& q) override {
    std::vector<std::string> where;
    std::vector<std::string> texts;  // bound in order as ?1, ?2, ...
    auto bind = [&](std::string value) {
      texts.push_back(std::move(value));
      return absl::StrCat("?", texts.size());
    };
    if (q.from_ms > 0) where.push_back(absl::StrCat("received_at_ms >= ", q.from_ms));
    if (q.to_ms > 0) where.push_back(absl::StrCat("received_at_ms < ", q.to_ms));
    if (!q.clinic_id.empty()) where.push_back(absl::StrCat("clinic_id = ", bind(q.clinic_id)));
    if (!q.clinic_scope.empty()) {
      std::vector<std::string> params;
      for (const std::string& clinic : q.clinic_scope) params.push_back(bind(clinic));
      where.push_back(absl::StrCat("clinic_id IN (", absl::StrJoin(params, ", "), ")"));
    }
    if (!q.patient_identifier.empty()) {
      if (q.patient_identifier.find('|') != std::string::npos) {
        where.push_back(absl::StrCat(
            "(clinic_id, patient_id) IN (SELECT clinic_id, clinic_patient_id FROM patient_keys "
            "WHERE key = ",
            bind(q.patient_identifier), ")"));
      } else {
        where.push_back(absl::StrCat("patient_id = ", bind(q.patient_identifier)));
      }
    }
    if (q.kind != v1::RECORD_KIND_UNSPECIFIED) where.push_back(absl::StrCat("kind = ", q.kind));
    if (q.direction != v1::DIRECTION_UNSPECIFIED) {
      where.push_back(absl::StrCat("direction = ", q.direction));
    }
    if (q.status != v1::TRANSACTION_STATUS_UNSPECIFIED) {
      where.push_back(absl::StrCat("status = ", q.status));
    }
    if (!q.destination.empty()) {
      where.push_back(absl::StrCat("destination = ", bind(q.destination)));
    }
    if (!q.record_id.empty()) where.push_back(absl::StrCat("record_id = ", bind(q.record_id)));
    if (!q.page_token.empty()) {
      int64_t at = 0, seq = 0;
      std::pair<absl::string_view, absl::string_view> parts = absl::StrSplit(q.page_token, '.');
      if (!absl::SimpleAtoi(parts.first, &at) || !absl::SimpleAtoi(parts.second, &seq)) {
        return absl::InvalidArgumentError(
            absl::StrCat("page_token: '", q.page_token, "' is not a token from a previous page"));
      }
      where.push_back(absl::StrCat("(received_at_ms < ", at, " OR (received_at_ms = ", at,
                                   " AND seq < ", seq, "))"));
    }
    const int page_size = std::clamp(q.page_size <= 0 ? 50 : q.page_size, 1, 1000);
    const std::string sql =
        absl::StrCat("SELECT ", kTransactionColumns, ", received_at_ms FROM transactions",
                     where.empty() ? "" : " WHERE ", absl::StrJoin(where, " AND "),
                     " ORDER BY received_at_ms DESC, seq DESC LIMIT ", page_size + 1);
    std::lock_guard<std::mutex> lock(reader_mu_);
    Statement select;
    FHIRGW_RETURN_IF_ERROR(select.Prepare(reader_, sql.c_str()));
    for (size_t i = 0; i < texts.size(); ++i) select.Bind(static_cast<int>(i + 1), texts[i]);
    TransactionPage page;
    int64_t last_seq = 0, last_received = 0;
    while (true) {
      FHIRGW_ASSIGN_OR_RETURN(bool row, select.Step());
      if (!row) break;
      if (static_cast<int>(page.transactions.size()) == page_size) {
        // There is more: the token names the last row returned.
        page.next_page_token = absl::StrCat(last_received, ".", last_seq);
        break;
      }
      FHIRGW_ASSIGN_OR_RETURN(v1::Transaction tx, RowToTransaction(select, false, cipher()));
      last_seq = select.Int(17);
      last_received = select.Int(18);
      page.transactions.push_back(std::move(tx));
    }
    return page;
  }

  absl::StatusOr<std::vector<v1::LogEntry>> ListLogEntries(
      int64_t from_ms, int64_t to_ms, const std::vector<std::string>& clinic_scope,
      int64_t after_sequence, int limit) override {
    std::string sql =
        "SELECT entry FROM audit_log WHERE seq > ?1 AND at_ms >= ?2 AND (?3 = 0 OR at_ms < ?3)";
    for (size_t i = 0; i < clinic_scope.size(); ++i) {
      absl::StrAppend(&sql, i == 0 ? " AND clinic_id IN (" : ", ", "?", i + 5);
    }
    absl::StrAppend(&sql, clinic_scope.empty() ? "" : ")", " ORDER BY seq LIMIT ?4");
    std::lock_guard<std::mutex> lock(reader_mu_);
    Statement select;
    FHIRGW_RETURN_IF_ERROR(select.Prepare(reader_, sql.c_str()));
    select.Bind(1, after_sequence)
        .Bind(2, from_ms)
        .Bind(3, to_ms)
        .Bind(4, static_cast<int64_t>(limit));
    for (size_t i = 0; i < clinic_scope.size(); ++i) {
      select.Bind(static_cast<int>(i + 5), clinic_scope[i]);
    }
    std::vector<v1::LogEntry> entries;
    while (true) {
      FHIRGW_ASSIGN_OR_RETURN(bool row, select.Step());
      if (!row) break;
      v1::LogEntry& entry = entries.emplace_back();
      if (!entry.ParseFromString(select.Text(0))) {
        return absl::DataLossError("a log entry cannot be read");
      }
    }
    return entries;
  }

  absl::StatusOr<v1::VerifyLogResponse> Verify() override {
    FHIRGW_ASSIGN_OR_RETURN(sqlite3 * db, OpenConnection(options_.path));
    std::unique_ptr<sqlite3, int (*)(sqlite3*)> closer(db, &sqlite3_close);
    // One read transaction: a consistent snapshot while the gateway keeps writing.
    FHIRGW_RETURN_IF_ERROR(Exec(db, "BEGIN"));
    v1::VerifyLogResponse response;
    int64_t first_bad = 0;
    std::string problem;
    auto fail = [&](int64_t seq, std::string message) {
      if (first_bad == 0 || seq < first_bad) {
        first_bad = seq;
        problem = std::move(message);
      }
    };

    // 1. The chain itself.
    std::map<int64_t, std::string> hash_at;  // only for signed heads: filled sparsely below
    std::vector<SignedHeadRecord> heads;
    FHIRGW_RETURN_IF_ERROR(ReadSignedHeads(db, heads));
    std::set<int64_t> head_seqs;
    for (const SignedHeadRecord& h : heads) head_seqs.insert(h.head.sequence());
    int64_t expected = 1;
    std::string previous;
    {
      Statement chain;
      FHIRGW_RETURN_IF_ERROR(
          chain.Prepare(db, "SELECT seq, entry, prev_hash, hash FROM audit_log ORDER BY seq"));
      while (true) {
        FHIRGW_ASSIGN_OR_RETURN(bool row, chain.Step());
        if (!row) break;
        const int64_t seq = chain.Int(0);
        const std::string entry = chain.Text(1);
        const std::string stored_prev = chain.Text(2);
        const std::string stored_hash = chain.Text(3);
        if (first_bad == 0) {
          v1::LogEntry parsed;
          if (seq != expected) {
            fail(expected,
                 absl::StrCat("log entry ", expected, " is missing (the next is ", seq, ")"));
          } else if (stored_prev != previous) {
            fail(seq, absl::StrCat("log entry ", seq, " does not follow entry ", seq - 1));
          } else if (ChainHash(previous, entry) != stored_hash) {
            fail(seq, absl::StrCat("log entry ", seq, " was altered (its hash does not match)"));
          } else if (!parsed.ParseFromString(entry) || parsed.sequence() != seq) {
            fail(seq, absl::StrCat("log entry ", seq, " is not the entry its position needs"));
          }
        }
        if (head_seqs.count(seq)) hash_at[seq] = stored_hash;
        previous = stored_hash;
        ++expected;
        response.set_entries_checked(response.entries_checked() + 1);
      }
    }
    const int64_t last_seq = expected - 1;

    // 2. Every transaction against its entries.
    {
      Statement txs, events, attempts;
      FHIRGW_RETURN_IF_ERROR(
          txs.Prepare(db, "SELECT id, status, record, fhir FROM transactions ORDER BY seq"));
      FHIRGW_RETURN_IF_ERROR(events.Prepare(
          db, "SELECT seq, entry FROM audit_log WHERE transaction_id = ?1 ORDER BY seq"));
      FHIRGW_RETURN_IF_ERROR(attempts.Prepare(
          db, "SELECT attempt FROM attempts WHERE transaction_id = ?1 ORDER BY number"));
      while (true) {
        FHIRGW_ASSIGN_OR_RETURN(bool row, txs.Step());
        if (!row) break;
        const std::string id = txs.Text(0);
        FHIRGW_RETURN_IF_ERROR(CheckTransaction(id, static_cast<int>(txs.Int(1)), txs.Text(2),
                                                txs.Text(3), events, attempts, fail));
      }
    }

    // 3. The newest signed head must be in the chain: a log cut short after it is detected.
    int64_t signed_seq = 0;
    for (const SignedHeadRecord& h : heads) {
      const std::string message = HeadMessage(h.head.sequence(), h.head.hash());
      if (options_.signer != nullptr && !options_.signer->Verify(message, h.head.signature())) {
        fail(h.head.sequence(), absl::StrCat("the signature of chain head ", h.head.sequence(),
                                             " (", h.where, ") does not verify"));
        continue;
      }
      signed_seq = std::max(signed_seq, h.head.sequence());
      if (h.head.sequence() > last_seq) {
        fail(last_seq + 1,
             absl::StrCat("the log ends at entry ", last_seq, " but entry ", h.head.sequence(),
                          " was signed (", h.where, "): the tail was removed"));
      } else if (hash_at[h.head.sequence()] != h.head.hash()) {
        fail(h.head.sequence(), absl::StrCat("log entry ", h.head.sequence(),
                                             " differs from its signed hash (", h.where, ")"));
      }
    }
    (void)Exec(db, "COMMIT");
    response.set_signed_head_sequence(signed_seq);
    response.set_ok(first_bad == 0);
    response.set_first_bad_sequence(first_bad);
    if (first_bad != 0) {
      response.set_message(problem);
    } else if (options_.signer == nullptr) {
      response.set_message(absl::StrCat("the chain of ", last_seq,
                                        " entries is intact; no signing key is configured, so a "
                                        "removed tail cannot be detected"));
    } else {
      response.set_message(absl::StrCat("the chain of ", last_seq,
                                        " entries is intact; signed up to entry ", signed_seq));
    }
    return response;
  }

  absl::Status SignHead() override {
    if (options_.signer == nullptr) return absl::OkStatus();
    std::lock_guard<std::mutex> lock(writer_mu_);
    if (head_seq_ == 0 || head_seq_ == last_signed_seq_) return absl::OkStatus();
    v1::SignedHead head;
    head.set_sequence(head_seq_);
    head.set_hash(head_hash_);
    head.set_signature(options_.signer->Sign(HeadMessage(head_seq_, head_hash_)));
    head.set_key_id(options_.signer->key_id());
    head.set_at_ms(WallClockMs());
    const std::string bytes = Canonical(head);
    Statement insert;
    FHIRGW_RETURN_IF_ERROR(
        insert.Prepare(writer_, "INSERT OR REPLACE INTO signed_heads (seq, head) VALUES (?1, ?2)"));
    insert.Bind(1, head.sequence()).BindBlob(2, bytes);
    FHIRGW_RETURN_IF_ERROR(insert.Run());
    // Outside the database too: deleting the database's tail must not take the evidence with it.
    const std::string line = absl::StrCat(absl::Base64Escape(bytes), "\n");
    const int fd = ::open(HeadsPath().c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) return absl::UnavailableError(absl::StrCat("cannot write ", HeadsPath()));
    const bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
                    ::fdatasync(fd) == 0;
    ::close(fd);
    if (!ok) return absl::UnavailableError(absl::StrCat("cannot write ", HeadsPath()));
    last_signed_seq_ = head_seq_;
    return absl::OkStatus();
  }

  absl::StatusOr<int> PurgePayloads(int64_t before_ms) override {
    int purged = 0;
    while (true) {
      std::lock_guard<std::mutex> lock(writer_mu_);
      std::vector<std::string> ids;
      {
        Statement select;
        FHIRGW_RETURN_IF_ERROR(
            select.Prepare(writer_,
                           "SELECT id FROM transactions WHERE received_at_ms < ?1 "
                           "AND status IN (3, 5, 6, 7) AND length(record) > 0 LIMIT 500"));
        select.Bind(1, before_ms);
        while (true) {
          FHIRGW_ASSIGN_OR_RETURN(bool row, select.Step());
          if (!row) break;
          ids.push_back(select.Text(0));
        }
      }
      if (ids.empty()) return purged;
      FHIRGW_RETURN_IF_ERROR(Exec(writer_, "BEGIN IMMEDIATE"));
      absl::Status status = [&]() -> absl::Status {
        Statement clear, attempts, rewrite;
        // Alerts go too: they quote the patient's answers (PHQ-9 item 9).
        FHIRGW_RETURN_IF_ERROR(clear.Prepare(
            writer_,
            "UPDATE transactions SET record = x'', fhir = '', alerts = x'' WHERE id = ?1"));
        FHIRGW_RETURN_IF_ERROR(attempts.Prepare(
            writer_, "SELECT number, attempt FROM attempts WHERE transaction_id = ?1"));
        FHIRGW_RETURN_IF_ERROR(rewrite.Prepare(
            writer_, "UPDATE attempts SET attempt = ?3 WHERE transaction_id = ?1 AND number = ?2"));
        for (const std::string& id : ids) {
          clear.Bind(1, id);
          FHIRGW_RETURN_IF_ERROR(clear.Run());
          attempts.Bind(1, id);
          std::vector<std::pair<int64_t, std::string>> kept;
          while (true) {
            FHIRGW_ASSIGN_OR_RETURN(bool row, attempts.Step());
            if (!row) break;
            FHIRGW_ASSIGN_OR_RETURN(std::string bytes, OpenPayload(cipher(), attempts.Text(1)));
            v1::DeliveryAttempt attempt;
            attempt.ParseFromString(bytes);
            kept.emplace_back(attempts.Int(0),
                              SealPayload(cipher(), WithoutResponse(attempt).SerializeAsString()));
          }
          attempts.Reset();
          for (const auto& [number, bytes] : kept) {
            rewrite.Bind(1, id).Bind(2, number).BindBlob(3, bytes);
            FHIRGW_RETURN_IF_ERROR(rewrite.Run());
          }
          FHIRGW_ASSIGN_OR_RETURN(v1::LogEntry entry, EntryFor(id));
          entry.set_event(v1::LogEntry::PURGED);
          FHIRGW_RETURN_IF_ERROR(AppendLog(std::move(entry)));
        }
        return absl::OkStatus();
      }();
      FHIRGW_RETURN_IF_ERROR(Finish(status));
      purged += static_cast<int>(ids.size());
    }
  }

  absl::Status Ping() override {
    std::lock_guard<std::mutex> lock(reader_mu_);
    return Exec(reader_, "SELECT 1 FROM transactions LIMIT 1");
  }

  void Close() override {
    {
      std::lock_guard<std::mutex> lock(queue_mu_);
      if (closed_) return;
      closed_ = true;
      queue_cv_.notify_all();
    }
    if (committer_.joinable()) committer_.join();
    {
      std::lock_guard<std::mutex> lock(checkpoint_mu_);
      checkpoint_stop_ = true;
      checkpoint_cv_.notify_all();
    }
    if (checkpointer_.joinable()) checkpointer_.join();
  }

 private:
  // WAL checkpoints run on a thread of their own instead of inside the COMMIT that crossed SQLite's
  // threshold: a checkpoint copies megabytes into the database file and fsyncs it, and every push
  // of the batch whose COMMIT ran it waited for that (the push p99). Past kInlineCheckpointFrames
  // the committing thread checkpoints itself, as SQLite would, so that the WAL stays bounded.
  static constexpr int kCheckpointFrames = 1000;  // SQLite's default wal_autocheckpoint
  static constexpr int kInlineCheckpointFrames = 16000;

  // sqlite3_wal_hook on the writer: runs after each commit with the WAL's size in frames.
  static int OnWalCommit(void* arg, sqlite3* db, const char* name, int frames) {
    auto* self = static_cast<SqliteStore*>(arg);
    if (frames >= kInlineCheckpointFrames) {
      sqlite3_wal_checkpoint_v2(db, name, SQLITE_CHECKPOINT_PASSIVE, nullptr, nullptr);
    } else if (frames >= kCheckpointFrames) {
      std::lock_guard<std::mutex> lock(self->checkpoint_mu_);
      self->checkpoint_wanted_ = true;
      self->checkpoint_cv_.notify_one();
    }
    return SQLITE_OK;
  }

  void CheckpointLoop() {
    std::unique_lock<std::mutex> lock(checkpoint_mu_);
    while (true) {
      checkpoint_cv_.wait(lock, [this] { return checkpoint_stop_ || checkpoint_wanted_; });
      if (checkpoint_stop_) return;
      checkpoint_wanted_ = false;
      lock.unlock();
      sqlite3_wal_checkpoint_v2(checkpoint_db_, nullptr, SQLITE_CHECKPOINT_PASSIVE, nullptr,
                                nullptr);
      lock.lock();
    }
  }

  // What an append needs that does not depend on the log's state: made on the caller's thread
  // (Enqueue), so that the one commit thread, which every push waits for, does not spend its time
  // hashing, encrypting and drawing ids.
  struct Prepared {
    std::string transaction_id;  // used unless the entry turns out to be a resend
    std::string record_sha256;
    std::string fhir_sha256;
    std::string sealed_record;  // only with a cipher; without one the plaintext is stored
    std::string sealed_fhir;
  };

  struct Pending {
    std::vector<NewEntry> entries;
    std::vector<Prepared> prepared;  // one per entry
    AppendAllCallback done;
  };

  void Enqueue(std::vector<NewEntry> entries, AppendAllCallback done) {
    std::vector<Prepared> prepared(entries.size());
    for (size_t i = 0; i < entries.size(); ++i) {
      prepared[i].transaction_id = NewTransactionId();
      prepared[i].record_sha256 = Sha256(entries[i].record);
      prepared[i].fhir_sha256 = Sha256(entries[i].fhir_json);
      if (cipher() != nullptr) {
        prepared[i].sealed_record = SealPayload(cipher(), entries[i].record);
        prepared[i].sealed_fhir = SealPayload(cipher(), entries[i].fhir_json);
      }
    }
    {
      std::lock_guard<std::mutex> lock(queue_mu_);
      if (!closed_) {
        queued_entries_ += static_cast<int>(entries.size());
        queue_.push_back({std::move(entries), std::move(prepared), std::move(done)});
        queue_cv_.notify_one();
        return;
      }
    }
    done(absl::UnavailableError("the transaction log is closed"));
  }

  void CommitLoop() {
    std::vector<Pending> batch;
    while (true) {
      {
        std::unique_lock<std::mutex> lock(queue_mu_);
        queue_cv_.wait(lock, [this] { return closed_ || !queue_.empty(); });
        if (queue_.empty()) return;  // closed and drained
        if (options_.max_batch_delay_us > 0 && queued_entries_ < options_.max_batch && !closed_) {
          queue_cv_.wait_for(lock, std::chrono::microseconds(options_.max_batch_delay_us),
                             [this] { return closed_ || queued_entries_ >= options_.max_batch; });
        }
        int taken = 0;
        while (!queue_.empty() && (taken == 0 || taken < options_.max_batch)) {
          taken += static_cast<int>(queue_.front().entries.size());
          queued_entries_ -= static_cast<int>(queue_.front().entries.size());
          batch.push_back(std::move(queue_.front()));
          queue_.pop_front();
        }
      }
      CommitBatch(batch);
      batch.clear();
    }
  }

  // Commits `batch` in one SQLite transaction (one fsync), then answers every caller. Each caller's
  // entries are isolated by a savepoint, so one failing group does not fail the others.
  void CommitBatch(std::vector<Pending>& batch) {
    std::vector<absl::StatusOr<std::vector<AppendResult>>> results;
    results.reserve(batch.size());
    absl::Status commit;
    {
      std::lock_guard<std::mutex> lock(writer_mu_);
      commit = Exec(writer_, "BEGIN IMMEDIATE");
      if (commit.ok()) {
        for (Pending& p : batch) results.push_back(AppendGroup(p.entries, p.prepared));
        commit = Exec(writer_, "COMMIT");
        if (!commit.ok()) {
          (void)Exec(writer_, "ROLLBACK");
          (void)LoadHead();
        }
      }
    }
    for (size_t i = 0; i < batch.size(); ++i) {
      if (!commit.ok()) {
        batch[i].done(
            absl::UnavailableError(absl::StrCat("the record was not logged: ", commit.message())));
      } else {
        batch[i].done(std::move(results[i]));
      }
    }
  }

  absl::StatusOr<std::vector<AppendResult>> AppendGroup(const std::vector<NewEntry>& entries,
                                                        const std::vector<Prepared>& prepared) {
    FHIRGW_RETURN_IF_ERROR(RunPrepared(savepoint_, "SAVEPOINT append_group"));
    const int64_t head_seq = head_seq_;
    const std::string head_hash = head_hash_;
    std::vector<AppendResult> results;
    for (size_t i = 0; i < entries.size(); ++i) {
      absl::StatusOr<AppendResult> result = AppendOne(entries[i], prepared[i]);
      if (!result.ok()) {
        (void)RunPrepared(rollback_to_, "ROLLBACK TO append_group");
        (void)RunPrepared(release_, "RELEASE append_group");
        head_seq_ = head_seq;
        head_hash_ = head_hash;
        return result.status();
      }
      results.push_back(*std::move(result));
    }
    FHIRGW_RETURN_IF_ERROR(RunPrepared(release_, "RELEASE append_group"));
    return results;
  }

  // Runs `statement`, prepared from `sql` on first use (SAVEPOINT and RELEASE run for every append:
  // compiling them each time cost the commit thread more than the hashing did). Errors read as
  // Exec's.
  absl::Status RunPrepared(Statement& statement, const char* sql) {
    if (!statement.prepared()) FHIRGW_RETURN_IF_ERROR(statement.Prepare(writer_, sql));
    absl::StatusOr<bool> row = statement.Step();
    statement.Reset();
    if (!row.ok()) {
      return absl::InternalError(absl::StrCat("sqlite: ", sql, ": ", sqlite3_errmsg(writer_)));
    }
    return absl::OkStatus();
  }

  // Inside the batch transaction: dedupe against the newest version, else insert the next one.
  absl::StatusOr<AppendResult> AppendOne(const NewEntry& e, const Prepared& p) {
    AppendResult result;
    int64_t version = 1;
    {
      ResetOnExit reset(latest_);
      latest_.Bind(1, e.clinic_id).Bind(2, e.record_id).Bind(3, static_cast<int64_t>(e.direction));
      FHIRGW_ASSIGN_OR_RETURN(bool row, latest_.Step());
      if (row) {
        if (latest_.Text(2) == e.content_hash) {
          result.transaction_id = latest_.Text(0);
          result.version = latest_.Int(1);
          result.duplicate = true;
          result.status = static_cast<v1::TransactionStatus>(latest_.Int(3));
          FHIRGW_ASSIGN_OR_RETURN(std::string alerts, OpenPayload(cipher(), latest_.Text(4)));
          result.alerts = ParseAlerts(alerts);
          result.sequence = latest_.Int(5);
          latest_.Reset();
          // A resend changes nothing, but who sent what and when is part of the record.
          FHIRGW_ASSIGN_OR_RETURN(v1::LogEntry entry, EntryFor(result.transaction_id));
          entry.set_event(v1::LogEntry::RESENT);
          entry.set_status(result.status);
          entry.set_principal(e.principal);
          entry.set_at_ms(e.received_at_ms);
          FHIRGW_RETURN_IF_ERROR(AppendLog(std::move(entry)));
          return result;
        }
        version = latest_.Int(1) + 1;
      }
    }
    result.transaction_id = p.transaction_id;
    result.version = version;
    result.status = e.direction == v1::CLINIC_TO_EHR ? v1::ACCEPTED : v1::RECORDED;
    result.alerts = e.alerts;
    insert_.Bind(1, result.transaction_id)
        .Bind(2, e.clinic_id)
        .Bind(3, e.record_id)
        .Bind(4, version)
        .BindBlob(5, e.content_hash)
        .Bind(6, static_cast<int64_t>(e.kind))
        .Bind(7, static_cast<int64_t>(e.direction))
        .Bind(8, static_cast<int64_t>(result.status))
        .Bind(9, e.destination)
        .Bind(10, e.patient_id)
        .Bind(11, e.principal)
        .Bind(12, e.received_at_ms)
        .BindBlob(13, cipher() != nullptr ? p.sealed_record : e.record)
        .BindBlob(14, cipher() != nullptr ? p.sealed_fhir : e.fhir_json)
        // Alerts quote answers (PHQ-9 item 9): PHI, encrypted like the payloads.
        .BindBlob(15, SealPayload(cipher(), SerializeAlerts(e.alerts)));
    FHIRGW_RETURN_IF_ERROR(insert_.Run());
    result.sequence = sqlite3_last_insert_rowid(writer_);
    v1::LogEntry entry;
    entry.set_event(v1::LogEntry::RECORD_LOGGED);
    entry.set_at_ms(e.received_at_ms);
    entry.set_transaction_id(result.transaction_id);
    entry.set_clinic_id(e.clinic_id);
    entry.set_record_id(e.record_id);
    entry.set_version(version);
    entry.set_kind(e.kind);
    entry.set_direction(e.direction);
    entry.set_destination(e.destination);
    entry.set_principal(e.principal);
    entry.set_patient_id(e.patient_id);
    entry.set_record_sha256(p.record_sha256);
    entry.set_fhir_sha256(p.fhir_sha256);
    entry.set_status(result.status);
    FHIRGW_RETURN_IF_ERROR(AppendLog(std::move(entry)));
    for (const std::string& key : e.patient_keys) {
      link_patient_.Bind(1, key).Bind(2, e.clinic_id).Bind(3, e.patient_id);
      FHIRGW_RETURN_IF_ERROR(link_patient_.Run());
    }
    return result;
  }

  const PayloadCipher* cipher() const { return options_.cipher.get(); }

  // The log entry skeleton of an existing transaction (writer lock held).
  absl::StatusOr<v1::LogEntry> EntryFor(const std::string& transaction_id) {
    ResetOnExit reset(tx_meta_);
    tx_meta_.Bind(1, transaction_id);
    FHIRGW_ASSIGN_OR_RETURN(bool row, tx_meta_.Step());
    if (!row) return absl::NotFoundError(absl::StrCat("no transaction ", transaction_id));
    v1::LogEntry entry;
    entry.set_transaction_id(transaction_id);
    entry.set_clinic_id(tx_meta_.Text(0));
    entry.set_record_id(tx_meta_.Text(1));
    entry.set_version(tx_meta_.Int(2));
    entry.set_kind(static_cast<v1::RecordKind>(tx_meta_.Int(3)));
    entry.set_direction(static_cast<v1::Direction>(tx_meta_.Int(4)));
    entry.set_destination(tx_meta_.Text(5));
    entry.set_patient_id(tx_meta_.Text(6));
    entry.set_status(static_cast<v1::TransactionStatus>(tx_meta_.Int(7)));
    return entry;
  }

  // Appends `entry` to the hash chain (writer lock held, inside a database transaction).
  absl::Status AppendLog(v1::LogEntry entry) {
    entry.set_sequence(head_seq_ + 1);
    if (entry.at_ms() == 0) entry.set_at_ms(WallClockMs());
    const std::string canonical = Canonical(entry);
    std::string hash = ChainHash(head_hash_, canonical);
    insert_log_.Bind(1, entry.sequence())
        .Bind(2, entry.at_ms())
        .Bind(3, entry.transaction_id())
        .BindBlob(4, canonical)
        .BindBlob(5, head_hash_)
        .BindBlob(6, hash)
        .Bind(7, entry.clinic_id());
    FHIRGW_RETURN_IF_ERROR(insert_log_.Run());
    head_seq_ = entry.sequence();
    head_hash_ = std::move(hash);
    return absl::OkStatus();
  }

  // Commits the transaction begun by the caller when `status` is OK, else rolls it back (and
  // forgets the chain entries it appended).
  absl::Status Finish(const absl::Status& status) {
    if (status.ok()) {
      absl::Status commit = Exec(writer_, "COMMIT");
      if (commit.ok()) return commit;
      (void)Exec(writer_, "ROLLBACK");
      (void)LoadHead();
      return commit;
    }
    (void)Exec(writer_, "ROLLBACK");
    (void)LoadHead();
    return status;
  }

  struct SignedHeadRecord {
    v1::SignedHead head;
    std::string where;  // "database" or the heads file
  };

  std::string HeadsPath() const { return options_.path + ".heads"; }

  // Reads the signed heads from the heads file beside the database, then from the database.
  //
  // The file is read first, before the first read of `db` starts its snapshot: heads are signed
  // only over committed entries, so every head in the file is then inside the snapshot. Read the
  // other way round, a head signed while Verify runs would look like a removed tail.
  absl::Status ReadSignedHeads(sqlite3* db, std::vector<SignedHeadRecord>& heads) {
    std::ifstream file(HeadsPath());
    std::string line;
    while (std::getline(file, line)) {
      std::string bytes;
      SignedHeadRecord record{v1::SignedHead(), HeadsPath()};
      if (!absl::Base64Unescape(line, &bytes) || !record.head.ParseFromString(bytes)) continue;
      heads.push_back(std::move(record));
    }
    Statement select;
    FHIRGW_RETURN_IF_ERROR(select.Prepare(db, "SELECT head FROM signed_heads ORDER BY seq"));
    while (true) {
      FHIRGW_ASSIGN_OR_RETURN(bool row, select.Step());
      if (!row) break;
      SignedHeadRecord record{v1::SignedHead(), "database"};
      record.head.ParseFromString(select.Text(0));
      heads.push_back(std::move(record));
    }
    return absl::OkStatus();
  }

  using FailFn = std::function<void(int64_t, std::string)>;

  // Checks one transaction row against its log entries: it was logged, its payloads are the ones
  // logged (or were purged, which is logged too), its status is the last one logged, and its
  // attempts are the logged ones.
  absl::Status CheckTransaction(const std::string& id, int status, const std::string& record,
                                const std::string& fhir, Statement& events, Statement& attempts,
                                const FailFn& fail) {
    events.Bind(1, id);
    std::vector<std::pair<int64_t, v1::LogEntry>> entries;
    while (true) {
      FHIRGW_ASSIGN_OR_RETURN(bool row, events.Step());
      if (!row) break;
      v1::LogEntry entry;
      entry.ParseFromString(events.Text(1));
      entries.emplace_back(events.Int(0), std::move(entry));
    }
    events.Reset();
    if (entries.empty() || entries.front().second.event() != v1::LogEntry::RECORD_LOGGED) {
      fail(entries.empty() ? std::numeric_limits<int64_t>::max() : entries.front().first,
           absl::StrCat("transaction ", id, " has no log entry recording it"));
      return absl::OkStatus();
    }
    const v1::LogEntry& logged = entries.front().second;
    const int64_t logged_seq = entries.front().first;
    bool purged = false;
    for (const auto& [seq, entry] : entries) purged |= entry.event() == v1::LogEntry::PURGED;
    absl::StatusOr<std::string> plain_record = OpenPayload(cipher(), record);
    absl::StatusOr<std::string> plain_fhir = OpenPayload(cipher(), fhir);
    if (!plain_record.ok() || !plain_fhir.ok()) {
      fail(logged_seq,
           absl::StrCat("transaction ", id, ": a payload cannot be decrypted (",
                        (!plain_record.ok() ? plain_record : plain_fhir).status().message(), ")"));
      return absl::OkStatus();
    }
    const bool empty = plain_record->empty() && plain_fhir->empty();
    if (!(purged && empty) && (Sha256(*plain_record) != logged.record_sha256() ||
                               Sha256(*plain_fhir) != logged.fhir_sha256())) {
      fail(logged_seq, absl::StrCat("transaction ", id, " (log entry ", logged_seq,
                                    "): the stored record or FHIR is not what was logged"));
    }
    // Claiming for delivery is not logged (the attempt that follows is): a DELIVERING row matches a
    // last logged status of ACCEPTED or RETRYING.
    const v1::TransactionStatus last_logged = entries.back().second.status();
    const bool in_flight =
        status == v1::DELIVERING && (last_logged == v1::ACCEPTED || last_logged == v1::RETRYING);
    if (last_logged != status && !in_flight) {
      fail(entries.back().first,
           absl::StrCat("transaction ", id, ": its status ",
                        v1::TransactionStatus_Name(static_cast<v1::TransactionStatus>(status)),
                        " is not the status logged last (",
                        v1::TransactionStatus_Name(entries.back().second.status()), ", entry ",
                        entries.back().first, ")"));
    }
    std::vector<const std::pair<int64_t, v1::LogEntry>*> logged_attempts;
    for (const auto& e : entries) {
      if (e.second.event() == v1::LogEntry::DELIVERY_ATTEMPT) logged_attempts.push_back(&e);
    }
    attempts.Bind(1, id);
    size_t index = 0;
    while (true) {
      FHIRGW_ASSIGN_OR_RETURN(bool row, attempts.Step());
      if (!row) break;
      absl::StatusOr<std::string> bytes = OpenPayload(cipher(), attempts.Text(0));
      v1::DeliveryAttempt attempt;
      if (!bytes.ok() || !attempt.ParseFromString(*bytes)) {
        fail(logged_seq, absl::StrCat("transaction ", id, ": an attempt cannot be read"));
        break;
      }
      if (index >= logged_attempts.size()) {
        // Its entry would follow the last logged attempt: report there, not at the transaction's
        // first entry, which may well be intact (a deleted or moved attempt entry shifts the
        // attempts against their entries, and the chain reports where that happened).
        fail(logged_attempts.empty() ? logged_seq : logged_attempts.back()->first,
             absl::StrCat("transaction ", id, ": attempt ", attempt.number(), " was never logged"));
        break;
      }
      const auto& [seq, entry] = *logged_attempts[index++];
      const bool same =
          Canonical(WithoutResponse(attempt)) == Canonical(entry.attempt()) &&
          ((purged && AnswerIsEmpty(attempt)) || AnswerSha256(attempt) == entry.response_sha256());
      if (!same) {
        fail(seq, absl::StrCat("transaction ", id, ": attempt ", attempt.number(),
                               " is not the one logged (entry ", seq, ")"));
      }
    }
    attempts.Reset();
    if (index < logged_attempts.size()) {
      fail(logged_attempts[index]->first,
           absl::StrCat("transaction ", id, ": a logged attempt is missing from the database"));
    }
    return absl::OkStatus();
  }

  // Reads the chain head from the database (writer lock held).
  absl::Status LoadHead() {
    Statement select;
    FHIRGW_RETURN_IF_ERROR(
        select.Prepare(writer_, "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1"));
    FHIRGW_ASSIGN_OR_RETURN(bool row, select.Step());
    head_seq_ = row ? select.Int(0) : 0;
    head_hash_ = row ? select.Text(1) : std::string();
    return absl::OkStatus();
  }

  const SqliteOptions options_;
  sqlite3* writer_ = nullptr;
  sqlite3* reader_ = nullptr;
  std::mutex writer_mu_;  // guards writer_ and the statements prepared on it
  std::mutex reader_mu_;  // guards reader_
  Statement latest_, insert_, claim_, insert_attempt_, complete_, link_patient_, link_ehr_patient_,
      tx_meta_, insert_log_;
  Statement savepoint_, release_, rollback_to_;  // the commit thread's, prepared on first use

  // The background checkpoints (CheckpointLoop); checkpoint_db_ is used by that thread only.
  sqlite3* checkpoint_db_ = nullptr;
  std::thread checkpointer_;
  std::mutex checkpoint_mu_;
  std::condition_variable checkpoint_cv_;
  bool checkpoint_wanted_ = false;  // guarded by checkpoint_mu_
  bool checkpoint_stop_ = false;    // guarded by checkpoint_mu_

  int64_t head_seq_ = 0;         // guarded by writer_mu_: the chain head
  int64_t last_signed_seq_ = 0;  // guarded by writer_mu_
  std::string head_hash_;        // guarded by writer_mu_

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<Pending> queue_;  // guarded by queue_mu_
  int queued_entries_ = 0;     // guarded by queue_mu_
  bool closed_ = false;        // guarded by queue_mu_
  std::thread committer_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const SqliteOptions& options) {
  auto store = std::make_unique<SqliteStore>(options);
  FHIRGW_RETURN_IF_ERROR(store->Init());
  return store;
}

}  // namespace fhirgw::gateway
