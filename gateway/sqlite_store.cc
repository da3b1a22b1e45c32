#include "gateway/sqlite_store.h"

#include <sqlite3.h>

#include <condition_variable>
#include <deque>
#include <filesystem>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "fhir/status_macros.h"

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

v1::Transaction RowToTransaction(const Statement& row, bool with_payload) {
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
  extra.ParseFromString(row.Text(13));
  extra.MergeFromString(row.Text(14));
  tx.mutable_alerts()->Swap(extra.mutable_alerts());
  tx.mutable_resources()->Swap(extra.mutable_resources());
  if (with_payload) {
    tx.mutable_record()->ParseFromString(row.Text(15));
    tx.set_fhir_json(row.Text(16));
  }
  return tx;
}

class SqliteStore final : public Store {
 public:
  explicit SqliteStore(SqliteOptions options) : options_(std::move(options)) {}

  ~SqliteStore() override {
    Close();
    sqlite3_close(writer_);
    sqlite3_close(reader_);
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
      items.push_back({select.Int(17), RowToTransaction(select, true)});
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
    v1::Transaction tx = RowToTransaction(select, with_payload);
    Statement attempts;
    FHIRGW_RETURN_IF_ERROR(attempts.Prepare(
        reader_, "SELECT attempt FROM attempts WHERE transaction_id = ?1 ORDER BY number"));
    attempts.Bind(1, transaction_id);
    while (true) {
      FHIRGW_ASSIGN_OR_RETURN(bool row, attempts.Step());
      if (!row) break;
      tx.add_attempts()->ParseFromString(attempts.Text(0));
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
    task.fhir_json = claim_.Text(2);
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
          .BindBlob(3, result.attempt.SerializeAsString());
      FHIRGW_RETURN_IF_ERROR(insert_attempt_.Run());
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
    if (!status.ok()) {
      (void)Exec(writer_, "ROLLBACK");
      return status;
    }
    return Exec(writer_, "COMMIT");
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
    Statement update;
    FHIRGW_RETURN_IF_ERROR(
        update.Prepare(writer_,
                       "UPDATE transactions SET status = 4, next_attempt_at_ms = ?1, "
                       "updated_at_ms = ?1, attempt_count = attempt_count + 1 WHERE status = 2"));
    update.Bind(1, now_ms);
    FHIRGW_RETURN_IF_ERROR(update.Run());
    return sqlite3_changes(writer_);
  }

  absl::StatusOr<std::vector<std::string>> Replay(const std::vector<std::string>& ids,
                                                  absl::string_view clinic_id,
                                                  int64_t now_ms) override {
    std::lock_guard<std::mutex> lock(writer_mu_);
    std::vector<std::string> replayed;
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
      return replayed;
    }
    FHIRGW_RETURN_IF_ERROR(update.Prepare(
        writer_, absl::StrCat(kSet, "AND (?2 = '' OR clinic_id = ?2) RETURNING id").c_str()));
    update.Bind(1, now_ms).Bind(2, clinic_id);
    while (true) {
      FHIRGW_ASSIGN_OR_RETURN(bool row, update.Step());
      if (!row) break;
      replayed.push_back(update.Text(0));
    }
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
  }

 private:
  struct Pending {
    std::vector<NewEntry> entries;
    AppendAllCallback done;
  };

  void Enqueue(std::vector<NewEntry> entries, AppendAllCallback done) {
    {
      std::lock_guard<std::mutex> lock(queue_mu_);
      if (!closed_) {
        queued_entries_ += static_cast<int>(entries.size());
        queue_.push_back({std::move(entries), std::move(done)});
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
        for (Pending& p : batch) results.push_back(AppendGroup(p.entries));
        commit = Exec(writer_, "COMMIT");
        if (!commit.ok()) (void)Exec(writer_, "ROLLBACK");
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

  absl::StatusOr<std::vector<AppendResult>> AppendGroup(const std::vector<NewEntry>& entries) {
    FHIRGW_RETURN_IF_ERROR(Exec(writer_, "SAVEPOINT append_group"));
    std::vector<AppendResult> results;
    for (const NewEntry& entry : entries) {
      absl::StatusOr<AppendResult> result = AppendOne(entry);
      if (!result.ok()) {
        (void)Exec(writer_, "ROLLBACK TO append_group");
        (void)Exec(writer_, "RELEASE append_group");
        return result.status();
      }
      results.push_back(*std::move(result));
    }
    FHIRGW_RETURN_IF_ERROR(Exec(writer_, "RELEASE append_group"));
    return results;
  }

  // Inside the batch transaction: dedupe against the newest version, else insert the next one.
  absl::StatusOr<AppendResult> AppendOne(const NewEntry& e) {
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
          result.alerts = ParseAlerts(latest_.Text(4));
          result.sequence = latest_.Int(5);
          return result;
        }
        version = latest_.Int(1) + 1;
      }
    }
    result.transaction_id = NewTransactionId();
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
        .BindBlob(13, e.record)
        .Bind(14, e.fhir_json)
        .BindBlob(15, SerializeAlerts(e.alerts));
    FHIRGW_RETURN_IF_ERROR(insert_.Run());
    result.sequence = sqlite3_last_insert_rowid(writer_);
    for (const std::string& key : e.patient_keys) {
      link_patient_.Bind(1, key).Bind(2, e.clinic_id).Bind(3, e.patient_id);
      FHIRGW_RETURN_IF_ERROR(link_patient_.Run());
    }
    return result;
  }

  const SqliteOptions options_;
  sqlite3* writer_ = nullptr;
  sqlite3* reader_ = nullptr;
  std::mutex writer_mu_;  // guards writer_ and the statements prepared on it
  std::mutex reader_mu_;  // guards reader_
  Statement latest_, insert_, claim_, insert_attempt_, complete_, link_patient_, link_ehr_patient_;

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
