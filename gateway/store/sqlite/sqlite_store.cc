#include "gateway/store/sqlite/sqlite_store.h"

#include <sqlite3.h>

#include <condition_variable>
#include <filesystem>
#include <mutex>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/clock.h"
#include "fhir/status_macros.h"
#include "gateway/store/chain_verifier.h"
#include "gateway/store/log_codec.h"
#include "gateway/store/row_codec.h"
#include "gateway/store/sql_store.h"
#include "gateway/store/sqlite/connection.h"
#include "gateway/store/sqlite/schema.h"

namespace fhirgw::gateway {
namespace {

using sqlite::Exec;
using sqlite::OpenConnection;
using sqlite::ResetOnExit;
using sqlite::SqliteReader;
using sqlite::Statement;

// The writes of the SQLite log: one writer connection (writer_mu_) whose statements stay
// prepared, a reader connection for the shared reads (SqlStore), and a checkpoint thread.
class SqliteStore final : public SqlStore {
 public:
  explicit SqliteStore(SqliteOptions options)
      : SqlStore({options.cipher, options.signer, options.max_batch, options.max_batch_delay_us}),
        path_(std::move(options.path)) {}

  ~SqliteStore() override {
    Close();
    reader_view_.reset();
    sqlite3_close(writer_);
    sqlite3_close(reader_);
    sqlite3_close(checkpoint_db_);
  }

  absl::Status Init() {
    const std::filesystem::path parent = std::filesystem::path(path_).parent_path();
    std::error_code ec;
    if (!parent.empty()) std::filesystem::create_directories(parent, ec);
    if (ec) {
      return absl::UnavailableError(
          absl::StrCat("cannot create ", parent.string(), ": ", ec.message()));
    }
    FHIRGW_ASSIGN_OR_RETURN(writer_, OpenConnection(path_));
    FHIRGW_RETURN_IF_ERROR(sqlite::CreateSchema(writer_));
    FHIRGW_ASSIGN_OR_RETURN(reader_, OpenConnection(path_));
    reader_view_ = std::make_unique<SqliteReader>(reader_);
    FHIRGW_RETURN_IF_ERROR(latest_.Prepare(writer_, kLatestVersionSql));
    FHIRGW_RETURN_IF_ERROR(next_rejection_.Prepare(writer_, kNextRejectionSql));
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
        absl::StrCat("SELECT ", kEntryColumns, " FROM transactions WHERE id = ?1").c_str()));
    FHIRGW_RETURN_IF_ERROR(insert_log_.Prepare(
        writer_,
        "INSERT INTO audit_log (seq, at_ms, transaction_id, clinic_id, entry, prev_hash, hash) "
        "VALUES (?1, ?2, ?3, ?7, ?4, ?5, ?6)"));
    FHIRGW_RETURN_IF_ERROR(LoadHead());
    FHIRGW_ASSIGN_OR_RETURN(checkpoint_db_, OpenConnection(path_));
    sqlite3_wal_hook(writer_, &SqliteStore::OnWalCommit, this);
    checkpointer_ = std::thread([this] { CheckpointLoop(); });
    queue_.Start([this](const std::vector<CommitQueue::Pending>& batch,
                        CommitQueue::Results& results) { return CommitBatch(batch, results); });
    return absl::OkStatus();
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

  absl::StatusOr<std::optional<DeliveryTask>> ClaimNext(absl::string_view destination,
                                                        int64_t now_ms) override {
    std::lock_guard<std::mutex> lock(writer_mu_);
    ResetOnExit reset(claim_);
    claim_.Bind(1, destination).Bind(2, now_ms);
    FHIRGW_ASSIGN_OR_RETURN(bool row, claim_.Step());
    if (!row) return std::nullopt;
    DeliveryTask task;
    task.transaction_id = claim_.Bytes(0);
    task.destination = claim_.Bytes(1);
    FHIRGW_ASSIGN_OR_RETURN(task.fhir_json, OpenPayload(cipher(), claim_.Bytes(2)));
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
      FHIRGW_RETURN_IF_ERROR(AppendLog(AttemptEntry(std::move(entry), result)));
      complete_.Bind(1, result.transaction_id)
          .Bind(2, static_cast<int64_t>(result.new_status))
          .Bind(3, result.next_attempt_at_ms)
          .Bind(4, AttemptEndMs(result.attempt))
          .BindBlob(5, SerializeResources(result.resources));
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

  absl::StatusOr<int> RecoverInFlight(int64_t now_ms) override {
    std::lock_guard<std::mutex> lock(writer_mu_);
    FHIRGW_RETURN_IF_ERROR(Exec(writer_, "BEGIN IMMEDIATE"));
    std::vector<std::string> ids;
    absl::Status status = [&]() -> absl::Status {
      FHIRGW_RETURN_IF_ERROR(Collect(
          "UPDATE transactions SET status = 4, next_attempt_at_ms = ?1, updated_at_ms = ?1, "
          "attempt_count = attempt_count + 1 WHERE status = 2 RETURNING id",
          {now_ms}, ids));
      return LogEvents(ids, v1::LogEntry::RECOVERED, v1::RETRYING, now_ms);
    }();
    FHIRGW_RETURN_IF_ERROR(Finish(status));
    return static_cast<int>(ids.size());
  }

  absl::StatusOr<std::vector<std::string>> Replay(const std::vector<std::string>& ids,
                                                  absl::string_view clinic_id,
                                                  int64_t now_ms) override {
    std::lock_guard<std::mutex> lock(writer_mu_);
    FHIRGW_RETURN_IF_ERROR(Exec(writer_, "BEGIN IMMEDIATE"));
    std::vector<std::string> replayed;
    absl::Status status = [&]() -> absl::Status {
      // attempt_base restarts the retry budget; queued_at restarts the age limit.
      constexpr char kSet[] =
          "UPDATE transactions SET status = 1, next_attempt_at_ms = ?1, queued_at_ms = ?1, "
          "updated_at_ms = ?1, attempt_base = attempt_count WHERE status = 6 ";
      if (!ids.empty()) {
        const std::string sql = absl::StrCat(kSet, "AND id = ?2 RETURNING id");
        for (const std::string& id : ids) {
          FHIRGW_RETURN_IF_ERROR(Collect(sql, {now_ms, id}, replayed));
        }
      } else {
        FHIRGW_RETURN_IF_ERROR(
            Collect(absl::StrCat(kSet, "AND (?2 = '' OR clinic_id = ?2) RETURNING id"),
                    {now_ms, std::string(clinic_id)}, replayed));
      }
      return LogEvents(replayed, v1::LogEntry::REPLAYED, v1::ACCEPTED, now_ms);
    }();
    FHIRGW_RETURN_IF_ERROR(Finish(status));
    return replayed;
  }

  absl::Status SignHead() override {
    if (signer() == nullptr) return absl::OkStatus();
    std::lock_guard<std::mutex> lock(writer_mu_);
    if (head_seq_ == 0 || head_seq_ == last_signed_seq_) return absl::OkStatus();
    const std::string bytes = SignedHeadBytes(*signer(), head_seq_, head_hash_);
    Statement insert;
    FHIRGW_RETURN_IF_ERROR(
        insert.Prepare(writer_, "INSERT OR REPLACE INTO signed_heads (seq, head) VALUES (?1, ?2)"));
    insert.Bind(1, head_seq_).BindBlob(2, bytes);
    FHIRGW_RETURN_IF_ERROR(insert.Run());
    // Outside the database too: deleting the database's tail must not take the evidence with it.
    FHIRGW_RETURN_IF_ERROR(AppendToHeadsFile(HeadsPath(), bytes));
    last_signed_seq_ = head_seq_;
    return absl::OkStatus();
  }

  absl::StatusOr<int> PurgePayloads(int64_t before_ms) override {
    int purged = 0;
    while (true) {
      std::lock_guard<std::mutex> lock(writer_mu_);
      std::vector<std::string> ids;
      FHIRGW_RETURN_IF_ERROR(
          Collect("SELECT id FROM transactions WHERE received_at_ms < ?1 "
                  "AND status IN (3, 5, 6, 7) AND length(record) > 0 LIMIT 500",
                  {before_ms}, ids));
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
            FHIRGW_ASSIGN_OR_RETURN(std::string bytes, OpenPayload(cipher(), attempts.Bytes(1)));
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
        }
        return LogEvents(ids, v1::LogEntry::PURGED, v1::TRANSACTION_STATUS_UNSPECIFIED, 0);
      }();
      FHIRGW_RETURN_IF_ERROR(Finish(status));
      purged += static_cast<int>(ids.size());
    }
  }

  void Close() override {
    queue_.Close();
    {
      std::lock_guard<std::mutex> lock(checkpoint_mu_);
      checkpoint_stop_ = true;
      checkpoint_cv_.notify_all();
    }
    if (checkpointer_.joinable()) checkpointer_.join();
  }

 protected:
  absl::Status WithReader(const Body& body) override {
    std::lock_guard<std::mutex> lock(reader_mu_);
    return body(*reader_view_);
  }

  absl::Status WithSnapshot(const Body& body) override {
    FHIRGW_ASSIGN_OR_RETURN(sqlite3 * db, OpenConnection(path_));
    std::unique_ptr<sqlite3, int (*)(sqlite3*)> closer(db, &sqlite3_close);
    // One read transaction: a consistent snapshot while the gateway keeps writing.
    FHIRGW_RETURN_IF_ERROR(Exec(db, "BEGIN"));
    absl::Status status;
    {
      SqliteReader reader(db);
      status = body(reader);
    }
    (void)Exec(db, "COMMIT");
    return status;
  }

  VerifyOptions verify_options() const override {
    VerifyOptions options;
    options.cipher = cipher();
    options.signer = signer();
    options.heads_file = HeadsPath();
    return options;
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

  // Commits `batch` in one SQLite transaction (one fsync). Each caller's entries are isolated by a
  // savepoint, so one failing group does not fail the others.
  absl::Status CommitBatch(const std::vector<CommitQueue::Pending>& batch,
                           CommitQueue::Results& results) {
    std::lock_guard<std::mutex> lock(writer_mu_);
    FHIRGW_RETURN_IF_ERROR(Exec(writer_, "BEGIN IMMEDIATE"));
    for (const CommitQueue::Pending& p : batch) {
      results.push_back(AppendGroup(p.entries, p.prepared));
    }
    absl::Status commit = Exec(writer_, "COMMIT");
    if (!commit.ok()) {
      (void)Exec(writer_, "ROLLBACK");
      (void)LoadHead();
    }
    return commit;
  }

  absl::StatusOr<std::vector<AppendResult>> AppendGroup(
      const std::vector<NewEntry>& entries, const std::vector<PreparedEntry>& prepared) {
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

  // Inside the batch transaction: dedupe against the newest version, else insert the next one (a
  // rejected entry: the record's next rejection).
  absl::StatusOr<AppendResult> AppendOne(const NewEntry& e, const PreparedEntry& p) {
    int64_t version = 1;
    if (e.rejected) {
      ResetOnExit reset(next_rejection_);
      next_rejection_.Bind(1, e.clinic_id)
          .Bind(2, e.record_id)
          .Bind(3, static_cast<int64_t>(e.direction));
      FHIRGW_ASSIGN_OR_RETURN(bool row, next_rejection_.Step());
      version = row ? next_rejection_.Int(0) : -1;
    } else {
      ResetOnExit reset(latest_);
      latest_.Bind(1, e.clinic_id).Bind(2, e.record_id).Bind(3, static_cast<int64_t>(e.direction));
      FHIRGW_ASSIGN_OR_RETURN(bool row, latest_.Step());
      if (row) {
        LatestVersion latest = LatestFromRow(latest_, 0);
        latest_.Reset();
        if (latest.content_hash == e.content_hash) {
          AppendResult result = std::move(latest.duplicate);
          FHIRGW_ASSIGN_OR_RETURN(result.alerts, OpenAlerts(cipher(), latest.sealed_alerts));
          FHIRGW_ASSIGN_OR_RETURN(v1::LogEntry entry, EntryFor(result.transaction_id));
          FHIRGW_RETURN_IF_ERROR(AppendLog(ResentEntry(std::move(entry), e, result.status)));
          return result;
        }
        version = latest.version + 1;
      }
    }
    AppendResult result = NewVersionResult(e, p, version, /*sequence=*/0);
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
        .BindBlob(13, p.sealed_record)
        .BindBlob(14, p.sealed_fhir)
        .BindBlob(15, p.sealed_alerts);
    FHIRGW_RETURN_IF_ERROR(insert_.Run());
    result.sequence = sqlite3_last_insert_rowid(writer_);
    FHIRGW_RETURN_IF_ERROR(AppendLog(RecordLoggedEntry(e, p, result)));
    for (const std::string& key : e.patient_keys) {
      link_patient_.Bind(1, key).Bind(2, e.clinic_id).Bind(3, e.patient_id);
      FHIRGW_RETURN_IF_ERROR(link_patient_.Run());
    }
    return result;
  }

  // Runs `sql` on the writer and appends the first column of every row to `out` (writer lock
  // held).
  absl::Status Collect(const std::string& sql, const std::vector<SqlParam>& params,
                       std::vector<std::string>& out) {
    SqliteReader writer(writer_);
    return writer.QueryOnce(sql, params, [&](const SqlRow& row) {
      out.push_back(row.Bytes(0));
      return absl::OkStatus();
    });
  }

  // Logs `event` for each of `ids` (writer lock held, inside a database transaction).
  absl::Status LogEvents(const std::vector<std::string>& ids, v1::LogEntry::Event event,
                         v1::TransactionStatus status, int64_t at_ms) {
    for (const std::string& id : ids) {
      FHIRGW_ASSIGN_OR_RETURN(v1::LogEntry entry, EntryFor(id));
      FHIRGW_RETURN_IF_ERROR(AppendLog(EventEntry(std::move(entry), event, status, at_ms)));
    }
    return absl::OkStatus();
  }

  // The log entry skeleton of an existing transaction (writer lock held).
  absl::StatusOr<v1::LogEntry> EntryFor(const std::string& transaction_id) {
    ResetOnExit reset(tx_meta_);
    tx_meta_.Bind(1, transaction_id);
    FHIRGW_ASSIGN_OR_RETURN(bool row, tx_meta_.Step());
    if (!row) return absl::NotFoundError(absl::StrCat("no transaction ", transaction_id));
    return EntryFromRow(tx_meta_, 0, transaction_id);
  }

  // Appends `entry` to the hash chain (writer lock held, inside a database transaction).
  absl::Status AppendLog(v1::LogEntry entry) {
    entry.set_sequence(head_seq_ + 1);
    if (entry.at_ms() == 0) entry.set_at_ms(base::UnixMillis());
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

  std::string HeadsPath() const { return path_ + ".heads"; }

  // Reads the chain head from the database (writer lock held).
  absl::Status LoadHead() {
    Statement select;
    FHIRGW_RETURN_IF_ERROR(
        select.Prepare(writer_, "SELECT seq, hash FROM audit_log ORDER BY seq DESC LIMIT 1"));
    FHIRGW_ASSIGN_OR_RETURN(bool row, select.Step());
    head_seq_ = row ? select.Int(0) : 0;
    head_hash_ = row ? select.Bytes(1) : std::string();
    return absl::OkStatus();
  }

  const std::string path_;
  sqlite3* writer_ = nullptr;
  sqlite3* reader_ = nullptr;
  std::unique_ptr<SqliteReader> reader_view_;  // on reader_, guarded by reader_mu_
  std::mutex writer_mu_;                       // guards writer_ and the statements prepared on it
  std::mutex reader_mu_;                       // guards reader_
  Statement latest_, next_rejection_, insert_, claim_, insert_attempt_, complete_, link_patient_,
      link_ehr_patient_, tx_meta_, insert_log_;
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
};

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const SqliteOptions& options) {
  auto store = std::make_unique<SqliteStore>(options);
  FHIRGW_RETURN_IF_ERROR(store->Init());
  return store;
}

}  // namespace fhirgw::gateway
