#include "gateway/store/postgres/postgres_store.h"

#include <libpq-fe.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/clock.h"
#include "fhir/status_macros.h"
#include "gateway/ops/log.h"
#include "gateway/store/chain_verifier.h"
#include "gateway/store/log_codec.h"
#include "gateway/store/postgres/chain.h"
#include "gateway/store/postgres/connection.h"
#include "gateway/store/postgres/schema.h"
#include "gateway/store/row_codec.h"
#include "gateway/store/sql_store.h"

namespace fhirgw::gateway {
namespace {

using postgres::Bytes;
using postgres::Chain;
using postgres::Connection;
using postgres::ConnectionPool;
using postgres::InsertRows;
using postgres::Int;
using postgres::Int8Array;
using postgres::InTransaction;
using postgres::kBeginUnsynced;
using postgres::Param;
using postgres::PgReader;
using postgres::PgRow;
using postgres::Result;
using postgres::SqlState;
using postgres::Text;

// pg_advisory_xact_lock namespace of the per-patient locks.
constexpr int kPatientLockSpace = 0x66687731;

// The database clock in milliseconds: leases compare against it, so that replicas with skewed
// clocks agree on when a lease ends.
constexpr char kDbNowMs[] = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

constexpr char kInboundChannel[] = "fhirgw_inbound";
constexpr char kStatusChannel[] = "fhirgw_status";

bool IsFinal(v1::TransactionStatus status) {
  return status == v1::DELIVERED || status == v1::REJECTED || status == v1::DEAD_LETTER;
}

constexpr char kInsertTransactions[] =
    "INSERT INTO transactions (seq, id, clinic_id, record_id, version, content_hash, kind, "
    "direction, status, destination, patient_id, principal, received_at_ms, updated_at_ms, "
    "queued_at_ms, next_attempt_at_ms, record, fhir, alerts)";
constexpr int kTransactionParams = 19;
constexpr char kInsertPatientKeys[] =
    "INSERT INTO patient_keys (key, clinic_id, clinic_patient_id)";

// The log entry skeleton of an existing transaction.
absl::StatusOr<v1::LogEntry> EntryFor(Connection& conn, const std::string& transaction_id) {
  FHIRGW_ASSIGN_OR_RETURN(Result row, conn.Exec(absl::StrCat("SELECT ", kEntryColumns,
                                                             " FROM transactions WHERE id = $1"),
                                                {Text(transaction_id)}));
  if (row.rows() == 0) return absl::NotFoundError(absl::StrCat("no transaction ", transaction_id));
  return EntryFromRow(PgRow(row, 0), 0, transaction_id);
}

std::string HostName() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "host";
  return name;
}

// The writes of the PostgreSQL log (the reads are SqlStore's): group commit on a connection of
// its own, claims with leases, and the LISTEN/NOTIFY and lease threads.
class PostgresStore final : public SqlStore {
 public:
  explicit PostgresStore(PostgresOptions options)
      : SqlStore({options.cipher, options.signer, options.max_batch, options.max_batch_delay_us}),
        pg_(std::move(options)),
        pool_(pg_.dsn, pg_.max_connections) {
    replica_id_ = pg_.replica_id.empty() ? absl::StrCat(HostName(), "/", ::getpid(), "/",
                                                        NewTransactionId().substr(0, 8))
                                         : pg_.replica_id;
  }

  ~PostgresStore() override {
    Close();
    {
      std::lock_guard<std::mutex> lock(keeper_mu_);
      keeper_stop_ = true;
      keeper_cv_.notify_all();
    }
    if (keeper_.joinable()) keeper_.join();
  }

  absl::Status Init() {
    if (pg_.lease_ms <= 0) {
      return absl::InvalidArgumentError("store.postgres.lease_ms: must be positive");
    }
    FHIRGW_ASSIGN_OR_RETURN(writer_, Connection::Open(pg_.dsn, "fhirgw-commit"));
    FHIRGW_RETURN_IF_ERROR(postgres::CreateSchema(*writer_));
    queue_.Start([this](const std::vector<CommitQueue::Pending>& batch,
                        CommitQueue::Results& results) { return CommitBatch(batch, results); });
    if (pg_.on_inbound || pg_.on_status) {
      // Listening before Open returns: nothing committed after it is missed.
      int64_t head = 0;
      FHIRGW_ASSIGN_OR_RETURN(std::unique_ptr<Connection> listening, Listen(&head));
      listener_ = std::thread(
          [this, head, conn = std::shared_ptr<Connection>(std::move(listening))]() mutable {
            ListenLoop(std::move(conn), head);
          });
    }
    keeper_ = std::thread([this] { KeepLeases(); });
    return absl::OkStatus();
  }

  absl::Status SetState(absl::string_view key, absl::string_view value) override {
    FHIRGW_ASSIGN_OR_RETURN(ConnectionPool::Handle conn, pool_.Acquire());
    return conn
        ->Exec(
            "INSERT INTO state (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET "
            "value = excluded.value",
            {Text(key), Text(value)})
        .status();
  }

  // Candidates come from SELECT ... FOR UPDATE SKIP LOCKED (replicas never wait for each other's
  // candidates). The patient rule needs more than row locks: two replicas could each lock another
  // transaction of the same patient. So the claim also takes a transaction-scoped advisory lock on
  // the patient and checks again, after the lock, that none of the patient's transactions is in
  // flight; a replica that holds that lock until COMMIT has made its claim visible by then.
  absl::StatusOr<std::optional<DeliveryTask>> ClaimNext(absl::string_view destination,
                                                        int64_t now_ms) override {
    FHIRGW_ASSIGN_OR_RETURN(ConnectionPool::Handle conn, pool_.Acquire());
    std::optional<DeliveryTask> task;
    const PayloadCipher* const payload_cipher = cipher();
    // A lost claim is harmless (the transaction is claimed again, and the attempt that follows is
    // committed durably after it), so claims do not wait for the WAL flush.
    FHIRGW_RETURN_IF_ERROR(InTransaction(
        *conn,
        [&]() -> absl::Status {
          task.reset();
          std::vector<int64_t> passed;
          for (int round = 0; round < 32; ++round) {
            FHIRGW_ASSIGN_OR_RETURN(
                Result candidate,
                conn->Exec(
                    "SELECT t.seq, t.clinic_id, t.patient_id FROM transactions t "
                    "WHERE t.destination = $1 AND t.status IN (1, 4) "
                    "AND t.next_attempt_at_ms <= $2 AND NOT (t.seq = ANY ($3)) "
                    "AND NOT EXISTS (SELECT 1 FROM transactions p WHERE p.clinic_id = t.clinic_id "
                    "  AND p.record_id = t.record_id AND p.direction = t.direction "
                    "  AND p.version < t.version AND p.status IN (1, 2, 4)) "
                    "AND NOT EXISTS (SELECT 1 FROM transactions d WHERE d.status = 2 "
                    "  AND d.clinic_id = t.clinic_id AND d.patient_id = t.patient_id) "
                    "ORDER BY t.next_attempt_at_ms, t.seq LIMIT 1 FOR UPDATE OF t SKIP LOCKED",
                    {Text(destination), Int(now_ms), Int8Array(passed)}));
            if (candidate.rows() == 0) return absl::OkStatus();
            const int64_t seq = candidate.Int(0, 0);
            const std::string clinic = candidate.Bytes(0, 1);
            const std::string patient = candidate.Bytes(0, 2);
            FHIRGW_ASSIGN_OR_RETURN(
                Result locked,
                conn->Exec("SELECT pg_try_advisory_xact_lock($1::integer, hashtext($2))",
                           {Int(kPatientLockSpace), Text(absl::StrCat(clinic, "\x1f", patient))}));
            bool free = locked.rows() == 1 && locked.Int(0, 0) != 0;
            if (free) {
              FHIRGW_ASSIGN_OR_RETURN(Result busy,
                                      conn->Exec("SELECT 1 FROM transactions WHERE status = 2 AND "
                                                 "clinic_id = $1 AND patient_id = $2 LIMIT 1",
                                                 {Text(clinic), Text(patient)}));
              free = busy.rows() == 0;
            }
            if (!free) {
              passed.push_back(seq);
              continue;
            }
            FHIRGW_ASSIGN_OR_RETURN(
                Result claimed,
                conn->Exec(
                    absl::StrCat("UPDATE transactions SET status = 2, updated_at_ms = $2, "
                                 "lease_owner = $3, lease_until_ms = ",
                                 kDbNowMs,
                                 " + $4 WHERE seq = $1 RETURNING id, destination, fhir, "
                                 "attempt_count, attempt_count - attempt_base, queued_at_ms"),
                    {Int(seq), Int(now_ms), Text(replica_id_), Int(pg_.lease_ms)}));
            if (claimed.rows() != 1) {
              return absl::InternalError("postgres: a claimed transaction disappeared");
            }
            DeliveryTask claim;
            claim.transaction_id = claimed.Bytes(0, 0);
            claim.destination = claimed.Bytes(0, 1);
            FHIRGW_ASSIGN_OR_RETURN(claim.fhir_json,
                                    OpenPayload(payload_cipher, claimed.Bytes(0, 2)));
            claim.attempt_number = static_cast<int>(claimed.Int(0, 3)) + 1;
            claim.attempts_so_far = static_cast<int>(claimed.Int(0, 4));
            claim.queued_at_ms = claimed.Int(0, 5);
            task = std::move(claim);
            return absl::OkStatus();
          }
          return absl::OkStatus();
        },
        kBeginUnsynced));
    return task;
  }

  absl::Status CompleteAttempt(const AttemptResult& result) override {
    FHIRGW_ASSIGN_OR_RETURN(ConnectionPool::Handle conn, pool_.Acquire());
    return InTransaction(*conn, [&]() -> absl::Status {
      Chain chain(*conn);
      FHIRGW_RETURN_IF_ERROR(chain.Lock());
      FHIRGW_ASSIGN_OR_RETURN(
          Result row, conn->Exec(absl::StrCat("SELECT status, lease_owner, ", kEntryColumns,
                                              " FROM transactions WHERE id = $1 FOR UPDATE"),
                                 {Text(result.transaction_id)}));
      if (row.rows() == 0) {
        return absl::NotFoundError(absl::StrCat("no transaction ", result.transaction_id));
      }
      if (row.Int(0, 0) != v1::DELIVERING || row.Bytes(0, 1) != replica_id_) {
        // The lease ran out and another replica took the transaction over: its attempt counts.
        return absl::FailedPreconditionError(
            absl::StrCat("transaction ", result.transaction_id,
                         ": the delivery lease was lost (another replica took the transaction "
                         "over); this attempt is not recorded"));
      }
      FHIRGW_RETURN_IF_ERROR(
          conn->Exec("INSERT INTO attempts (transaction_id, number, attempt) VALUES ($1, $2, $3) "
                     "ON CONFLICT (transaction_id, number) DO UPDATE SET attempt = "
                     "excluded.attempt",
                     {Text(result.transaction_id), Int(result.attempt.number()),
                      Bytes(SealPayload(cipher(), result.attempt.SerializeAsString()))})
              .status());
      chain.Append(AttemptEntry(EntryFromRow(PgRow(row, 0), 2, result.transaction_id), result));
      // Still in flight (an attempt lost on a dead connection, resent at once) keeps the lease.
      FHIRGW_RETURN_IF_ERROR(
          conn->Exec("UPDATE transactions SET status = $2, attempt_count = attempt_count + 1, "
                     "next_attempt_at_ms = $3, updated_at_ms = $4, "
                     "resources = CASE WHEN length($5) > 0 THEN $5 ELSE resources END, "
                     "lease_owner = CASE WHEN $2 = 2 THEN lease_owner ELSE '' END, "
                     "lease_until_ms = CASE WHEN $2 = 2 THEN lease_until_ms ELSE 0 END "
                     "WHERE id = $1",
                     {Text(result.transaction_id), Int(result.new_status),
                      Int(result.next_attempt_at_ms), Int(AttemptEndMs(result.attempt)),
                      Bytes(SerializeResources(result.resources))})
              .status());
      // Remember the ids the EHR gave the patient, so that its data can be routed back.
      for (const v1::ResourceRef& ref : result.resources) {
        if (ref.resource_type() != "Patient" || ref.id().empty()) continue;
        FHIRGW_RETURN_IF_ERROR(
            conn->Exec("INSERT INTO patient_keys (key, clinic_id, clinic_patient_id) "
                       "SELECT destination || '|Patient/' || $2, clinic_id, patient_id "
                       "FROM transactions WHERE id = $1 AND direction = 1 ON CONFLICT DO NOTHING",
                       {Text(result.transaction_id), Text(ref.id())})
                .status());
      }
      if (IsFinal(result.new_status)) {
        // Wakes a wait_for_delivery push on whichever replica received it.
        FHIRGW_RETURN_IF_ERROR(conn->Exec("SELECT pg_notify($1, $2)",
                                          {Text(kStatusChannel),
                                           Text(absl::StrCat(result.transaction_id, " ",
                                                             static_cast<int>(result.new_status)))})
                                   .status());
      }
      return chain.Save();
    });
  }

  // Only expired leases: the other replicas' in-flight work is theirs while they live.
  absl::StatusOr<int> RecoverInFlight(int64_t now_ms) override { return ReclaimExpired(now_ms); }

  absl::StatusOr<std::vector<std::string>> Replay(const std::vector<std::string>& ids,
                                                  absl::string_view clinic_id,
                                                  int64_t now_ms) override {
    FHIRGW_ASSIGN_OR_RETURN(ConnectionPool::Handle conn, pool_.Acquire());
    std::vector<std::string> replayed;
    FHIRGW_RETURN_IF_ERROR(InTransaction(*conn, [&]() -> absl::Status {
      replayed.clear();
      Chain chain(*conn);
      FHIRGW_RETURN_IF_ERROR(chain.Lock());
      // attempt_base restarts the retry budget; queued_at restarts the age limit.
      constexpr char kSet[] =
          "UPDATE transactions SET status = 1, next_attempt_at_ms = $1, queued_at_ms = $1, "
          "updated_at_ms = $1, attempt_base = attempt_count WHERE status = 6 ";
      if (!ids.empty()) {
        for (const std::string& id : ids) {
          FHIRGW_ASSIGN_OR_RETURN(
              Result row,
              conn->Exec(absl::StrCat(kSet, "AND id = $2 RETURNING id"), {Int(now_ms), Text(id)}));
          if (row.rows() > 0) replayed.push_back(row.Bytes(0, 0));
        }
      } else {
        FHIRGW_ASSIGN_OR_RETURN(
            Result rows,
            conn->Exec(absl::StrCat("WITH replayed AS (", kSet,
                                    "AND ($2 = '' OR clinic_id = $2) RETURNING id, seq) "
                                    "SELECT id FROM replayed ORDER BY seq"),
                       {Int(now_ms), Text(clinic_id)}));
        for (int i = 0; i < rows.rows(); ++i) replayed.push_back(rows.Bytes(i, 0));
      }
      for (const std::string& id : replayed) {
        FHIRGW_ASSIGN_OR_RETURN(v1::LogEntry entry, EntryFor(*conn, id));
        chain.Append(EventEntry(std::move(entry), v1::LogEntry::REPLAYED, v1::ACCEPTED, now_ms));
      }
      return chain.Save();
    }));
    return replayed;
  }

  absl::Status SignHead() override {
    if (signer() == nullptr) return absl::OkStatus();
    FHIRGW_ASSIGN_OR_RETURN(ConnectionPool::Handle conn, pool_.Acquire());
    FHIRGW_ASSIGN_OR_RETURN(
        Result head,
        conn->Exec("SELECT h.seq, h.hash, (SELECT coalesce(max(s.seq), 0) FROM signed_heads s) "
                   "FROM chain_head h WHERE h.id = 1"));
    if (head.rows() != 1) return absl::InternalError("postgres: the chain_head row is missing");
    const int64_t seq = head.Int(0, 0);
    // Another replica may have signed this head already: one signature per head is enough.
    if (seq == 0 || seq == head.Int(0, 2)) return absl::OkStatus();
    const std::string bytes = SignedHeadBytes(*signer(), seq, head.Bytes(0, 1));
    FHIRGW_RETURN_IF_ERROR(conn->Exec("INSERT INTO signed_heads (seq, head) VALUES ($1, $2) ON "
                                      "CONFLICT (seq) DO NOTHING",
                                      {Int(seq), Bytes(bytes)})
                               .status());
    if (pg_.heads_file.empty()) return absl::OkStatus();
    // Outside the database too: deleting the database's tail must not take the evidence with it.
    return AppendToHeadsFile(pg_.heads_file, bytes);
  }

  absl::StatusOr<int> PurgePayloads(int64_t before_ms) override {
    FHIRGW_ASSIGN_OR_RETURN(ConnectionPool::Handle conn, pool_.Acquire());
    int purged = 0;
    while (true) {
      int batch = 0;
      // Chosen under the chain lock, so two replicas never purge (and log) the same transaction.
      FHIRGW_RETURN_IF_ERROR(InTransaction(*conn, [&]() -> absl::Status {
        batch = 0;
        Chain chain(*conn);
        FHIRGW_RETURN_IF_ERROR(chain.Lock());
        FHIRGW_ASSIGN_OR_RETURN(
            Result ids, conn->Exec("SELECT id FROM transactions WHERE received_at_ms < $1 AND "
                                   "status IN (3, 5, 6, 7) AND length(record) > 0 ORDER BY seq "
                                   "LIMIT 500",
                                   {Int(before_ms)}));
        for (int i = 0; i < ids.rows(); ++i) {
          const std::string id = ids.Bytes(i, 0);
          // Alerts go too: they quote the patient's answers (PHQ-9 item 9).
          FHIRGW_RETURN_IF_ERROR(conn->Exec("UPDATE transactions SET record = ''::bytea, fhir = "
                                            "''::bytea, alerts = ''::bytea WHERE id = $1",
                                            {Text(id)})
                                     .status());
          FHIRGW_ASSIGN_OR_RETURN(
              Result attempts,
              conn->Exec("SELECT number, attempt FROM attempts WHERE transaction_id = $1",
                         {Text(id)}));
          for (int a = 0; a < attempts.rows(); ++a) {
            FHIRGW_ASSIGN_OR_RETURN(std::string bytes, OpenPayload(cipher(), attempts.Bytes(a, 1)));
            v1::DeliveryAttempt attempt;
            attempt.ParseFromString(bytes);
            FHIRGW_RETURN_IF_ERROR(
                conn->Exec("UPDATE attempts SET attempt = $3 WHERE transaction_id = $1 AND "
                           "number = $2",
                           {Text(id), Int(attempts.Int(a, 0)),
                            Bytes(SealPayload(cipher(),
                                              WithoutResponse(attempt).SerializeAsString()))})
                    .status());
          }
          FHIRGW_ASSIGN_OR_RETURN(v1::LogEntry entry, EntryFor(*conn, id));
          chain.Append(EventEntry(std::move(entry), v1::LogEntry::PURGED,
                                  v1::TRANSACTION_STATUS_UNSPECIFIED, 0));
        }
        batch = ids.rows();
        return chain.Save();
      }));
      if (batch == 0) return purged;
      purged += batch;
    }
  }

  void Close() override {
    queue_.Close();
    listener_stop_ = true;
    if (listener_.joinable()) listener_.join();
    // The lease keeper runs on: attempts still in flight during a drain are recorded after Close.
  }

 protected:
  absl::Status WithReader(const Body& body) override {
    FHIRGW_ASSIGN_OR_RETURN(ConnectionPool::Handle conn, pool_.Acquire());
    PgReader reader(*conn);
    return body(reader);
  }

  absl::Status WithSnapshot(const Body& body) override {
    FHIRGW_ASSIGN_OR_RETURN(ConnectionPool::Handle conn, pool_.Acquire());
    PgReader reader(*conn);
    // One snapshot of the whole database while the replicas keep writing.
    return InTransaction(
        *conn, [&] { return body(reader); }, "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY");
  }

  VerifyOptions verify_options() const override {
    VerifyOptions options;
    options.cipher = cipher();
    options.signer = signer();
    options.heads_file = pg_.heads_file;
    options.extra_checks = &CheckChainHead;
    return options;
  }

 private:
  // The chain head every append starts from must be the log's last entry: a removed tail (with or
  // without a signing key) leaves it pointing past the end.
  static absl::Status CheckChainHead(SqlReader& db, ChainVerifier& verifier) {
    const int64_t last_seq = verifier.last_sequence();
    return db.Query("SELECT seq, hash FROM chain_head WHERE id = 1", {}, [&](const SqlRow& head) {
      if (head.Int(0) > last_seq) {
        verifier.Fail(last_seq + 1, absl::StrCat("the log ends at entry ", last_seq,
                                                 " but its chain head is entry ", head.Int(0),
                                                 ": the tail was removed"));
      } else if (head.Int(0) < last_seq) {
        verifier.Fail(head.Int(0) + 1, absl::StrCat("log entries after ", head.Int(0),
                                                    " were not appended through the chain head"));
      } else if (head.Bytes(1) != verifier.last_hash()) {
        verifier.Fail(last_seq,
                      absl::StrCat("log entry ", last_seq, " differs from the chain head"));
      }
      return absl::OkStatus();
    });
  }

  // Commits `batch` in one database transaction. The batch is written with a few multi-row
  // statements; when that fails (bad data, or a concurrent insert of the same version), each
  // caller's entries are written again under a savepoint of their own, so that one failing caller
  // does not fail the others.
  absl::Status CommitBatch(const std::vector<CommitQueue::Pending>& batch,
                           CommitQueue::Results& results) {
    if (writer_ == nullptr || writer_->broken()) {
      writer_.reset();
      FHIRGW_ASSIGN_OR_RETURN(writer_, Connection::Open(pg_.dsn, "fhirgw-commit"));
    }
    Connection& conn = *writer_;
    FHIRGW_RETURN_IF_ERROR(conn.Run(postgres::kBegin));
    absl::Status status = [&]() -> absl::Status {
      Chain chain(conn);
      FHIRGW_RETURN_IF_ERROR(chain.Lock());
      std::set<std::string> inbound_clinics;
      FHIRGW_RETURN_IF_ERROR(conn.Run("SAVEPOINT bulk"));
      const Chain::Mark mark = chain.mark();
      absl::Status bulk = AppendBulk(conn, chain, batch, results, inbound_clinics);
      if (bulk.ok()) bulk = chain.Flush();
      if (bulk.ok()) {
        FHIRGW_RETURN_IF_ERROR(conn.Run("RELEASE SAVEPOINT bulk"));
      } else {
        FHIRGW_RETURN_IF_ERROR(conn.Run("ROLLBACK TO SAVEPOINT bulk"));
        FHIRGW_RETURN_IF_ERROR(conn.Run("RELEASE SAVEPOINT bulk"));
        chain.Restore(mark);
        results.clear();
        inbound_clinics.clear();
        for (const CommitQueue::Pending& p : batch) {
          results.push_back(AppendGroup(conn, chain, p.entries, p.prepared, inbound_clinics));
        }
      }
      FHIRGW_RETURN_IF_ERROR(chain.Save());
      // Delivered with the COMMIT: WatchInbound streams on every replica read the new rows.
      for (const std::string& clinic : inbound_clinics) {
        FHIRGW_RETURN_IF_ERROR(
            conn.Exec("SELECT pg_notify($1, $2)", {Text(kInboundChannel), Text(clinic)}).status());
      }
      return conn.Commit();
    }();
    if (!status.ok() && !conn.broken() && !conn.idle()) (void)conn.Run("ROLLBACK");
    return status;
  }

  // The newest version of a record as the batch being written sees it.
  struct Newest {
    LatestVersion latest;
    v1::LogEntry skeleton;  // of its log entries
  };
  using RecordKey = std::tuple<std::string, std::string, int64_t>;  // clinic, record, direction

  // Appends every entry of `batch` with a handful of statements: one query for the newest stored
  // version of every record in the batch, then multi-row inserts. Dedupe and versions follow
  // Append's rules, entry by entry in batch order (a record twice in one batch is a resend the
  // second time). Fails as a whole.
  absl::Status AppendBulk(Connection& conn, Chain& chain,
                          const std::vector<CommitQueue::Pending>& batch,
                          CommitQueue::Results& results, std::set<std::string>& inbound_clinics) {
    std::set<RecordKey> keys;
    for (const CommitQueue::Pending& p : batch) {
      for (const NewEntry& e : p.entries) keys.insert({e.clinic_id, e.record_id, e.direction});
    }
    std::map<RecordKey, Newest> newest;
    std::vector<RecordKey> ordered(keys.begin(), keys.end());
    constexpr size_t kKeysPerQuery = 300;
    for (size_t first = 0; first < ordered.size(); first += kKeysPerQuery) {
      std::string values;
      std::vector<Param> params;
      for (size_t i = first; i < std::min(ordered.size(), first + kKeysPerQuery); ++i) {
        const auto& [clinic, record, direction] = ordered[i];
        params.push_back(Text(clinic));
        params.push_back(Text(record));
        params.push_back(Int(direction));
        absl::StrAppend(&values, values.empty() ? "" : ", ", "($", params.size() - 2, ", $",
                        params.size() - 1, ", $", params.size(), ")");
      }
      // The columns of kLatestVersionSql, then kEntryColumns.
      FHIRGW_ASSIGN_OR_RETURN(
          Result rows,
          conn.Exec(
              absl::StrCat("SELECT k.c, k.r, k.d, t.* FROM (VALUES ", values,
                           ") AS k (c, r, d) JOIN LATERAL (SELECT x.id, x.version, "
                           "x.content_hash, x.status, x.alerts, x.seq, x.clinic_id, x.record_id, "
                           "x.version AS v, x.kind, x.direction, x.destination, x.patient_id, "
                           "x.status AS s FROM transactions x "
                           "WHERE x.clinic_id = k.c AND x.record_id = k.r AND x.direction = k.d "
                           "AND x.version > 0 ORDER BY x.version DESC LIMIT 1) t ON true"),
              params));
      for (int i = 0; i < rows.rows(); ++i) {
        const PgRow row(rows, i);
        Newest& n = newest[{row.Bytes(0), row.Bytes(1), row.Int(2)}];
        n.latest = LatestFromRow(row, 3);
        n.skeleton = EntryFromRow(row, 9, n.latest.duplicate.transaction_id);
      }
    }

    std::vector<Param> transaction_rows, key_rows;
    std::set<std::tuple<std::string, std::string>> keys_seen;  // (key, clinic)
    std::map<RecordKey, int64_t> rejections;  // the last rejection version given in the batch
    for (const CommitQueue::Pending& p : batch) {
      std::vector<AppendResult> group;
      for (size_t i = 0; i < p.entries.size(); ++i) {
        const NewEntry& e = p.entries[i];
        const RecordKey key{e.clinic_id, e.record_id, e.direction};
        if (e.rejected) {
          // Not a version: neither deduplicated nor the newest version of the record.
          auto [last, first] = rejections.try_emplace(key, 0);
          if (first) {
            FHIRGW_ASSIGN_OR_RETURN(last->second, NextRejection(conn, e));
          } else {
            --last->second;
          }
          AppendResult result = NewVersionResult(e, p.prepared[i], last->second, chain.next());
          AddTransactionRow(e, p.prepared[i], result, transaction_rows);
          chain.Append(RecordLoggedEntry(e, p.prepared[i], result));
          group.push_back(std::move(result));
          continue;
        }
        auto it = newest.find(key);
        if (it != newest.end() && it->second.latest.content_hash == e.content_hash) {
          const Newest& n = it->second;
          AppendResult result = n.latest.duplicate;
          FHIRGW_ASSIGN_OR_RETURN(result.alerts, OpenAlerts(cipher(), n.latest.sealed_alerts));
          chain.Append(ResentEntry(n.skeleton, e, result.status));
          group.push_back(std::move(result));
          continue;
        }
        const int64_t version = it == newest.end() ? 1 : it->second.latest.version + 1;
        AppendResult result = NewVersionResult(e, p.prepared[i], version, chain.next());
        AddTransactionRow(e, p.prepared[i], result, transaction_rows);
        v1::LogEntry logged = RecordLoggedEntry(e, p.prepared[i], result);
        for (const std::string& patient_key : e.patient_keys) {
          if (!keys_seen.insert({patient_key, e.clinic_id}).second) continue;
          key_rows.push_back(Text(patient_key));
          key_rows.push_back(Text(e.clinic_id));
          key_rows.push_back(Text(e.patient_id));
        }
        if (e.direction == v1::EHR_TO_CLINIC) inbound_clinics.insert(e.clinic_id);
        Newest& n = newest[key];
        n.latest.version = result.version;
        n.latest.content_hash = e.content_hash;
        n.latest.duplicate = result;
        n.latest.duplicate.duplicate = true;
        n.latest.duplicate.alerts.clear();
        n.latest.sealed_alerts = p.prepared[i].sealed_alerts;
        n.skeleton = logged;
        n.skeleton.clear_principal();
        n.skeleton.clear_record_sha256();
        n.skeleton.clear_fhir_sha256();
        n.skeleton.clear_event();
        n.skeleton.clear_at_ms();
        chain.Append(std::move(logged));
        group.push_back(std::move(result));
      }
      results.push_back(std::move(group));
    }
    FHIRGW_RETURN_IF_ERROR(
        InsertRows(conn, kInsertTransactions, kTransactionParams, transaction_rows));
    return InsertRows(conn, kInsertPatientKeys, 3, key_rows, "ON CONFLICT DO NOTHING");
  }

  // The parameters of a new transaction row for `e`.
  static void AddTransactionRow(const NewEntry& e, const PreparedEntry& p,
                                const AppendResult& result, std::vector<Param>& rows) {
    for (Param param : {Int(result.sequence), Text(result.transaction_id), Text(e.clinic_id),
                        Text(e.record_id), Int(result.version), Bytes(e.content_hash), Int(e.kind),
                        Int(e.direction), Int(result.status), Text(e.destination),
                        Text(e.patient_id), Text(e.principal), Int(e.received_at_ms),
                        Int(e.received_at_ms), Int(e.received_at_ms), Int(e.received_at_ms),
                        Bytes(p.sealed_record), Bytes(p.sealed_fhir), Bytes(p.sealed_alerts)}) {
      rows.push_back(std::move(param));
    }
  }

  // The slow path: one caller's entries under a savepoint of their own.
  absl::StatusOr<std::vector<AppendResult>> AppendGroup(Connection& conn, Chain& chain,
                                                        const std::vector<NewEntry>& entries,
                                                        const std::vector<PreparedEntry>& prepared,
                                                        std::set<std::string>& inbound_clinics) {
    // Earlier groups' entries are written first: a rollback to this group's savepoint keeps them.
    FHIRGW_RETURN_IF_ERROR(chain.Flush());
    for (int attempt = 0;; ++attempt) {
      FHIRGW_RETURN_IF_ERROR(conn.Run("SAVEPOINT append_group"));
      const Chain::Mark mark = chain.mark();
      std::vector<AppendResult> results;
      absl::Status status;
      for (size_t i = 0; i < entries.size(); ++i) {
        absl::StatusOr<AppendResult> result = AppendOne(conn, chain, entries[i], prepared[i]);
        if (!result.ok()) {
          status = result.status();
          break;
        }
        results.push_back(*std::move(result));
      }
      if (status.ok()) status = chain.Flush();
      if (status.ok()) {
        FHIRGW_RETURN_IF_ERROR(conn.Run("RELEASE SAVEPOINT append_group"));
        for (size_t i = 0; i < entries.size(); ++i) {
          if (!results[i].duplicate && entries[i].direction == v1::EHR_TO_CLINIC) {
            inbound_clinics.insert(entries[i].clinic_id);
          }
        }
        return results;
      }
      FHIRGW_RETURN_IF_ERROR(conn.Run("ROLLBACK TO SAVEPOINT append_group"));
      FHIRGW_RETURN_IF_ERROR(conn.Run("RELEASE SAVEPOINT append_group"));
      chain.Restore(mark);
      // Another writer logged the same version first (only possible if it bypassed the chain
      // lock): run the group again, which now sees that version and dedupes against it.
      if (SqlState(status) == postgres::kUniqueViolation && attempt < 3) continue;
      return status;
    }
  }

  // The version of the next rejection of `e`'s record (kNextRejectionSql).
  static absl::StatusOr<int64_t> NextRejection(Connection& conn, const NewEntry& e) {
    FHIRGW_ASSIGN_OR_RETURN(Result next,
                            conn.Exec(RenderPlaceholders(kNextRejectionSql, '$'),
                                      {Text(e.clinic_id), Text(e.record_id), Int(e.direction)}));
    return next.rows() > 0 ? PgRow(next, 0).Int(0) : -1;
  }

  // Inside the batch transaction, under the chain lock: dedupe against the newest version, else
  // insert the next one (a rejected entry: the record's next rejection).
  absl::StatusOr<AppendResult> AppendOne(Connection& conn, Chain& chain, const NewEntry& e,
                                         const PreparedEntry& p) {
    int64_t version = 1;
    if (e.rejected) {
      FHIRGW_ASSIGN_OR_RETURN(version, NextRejection(conn, e));
    } else {
      FHIRGW_ASSIGN_OR_RETURN(Result latest,
                              conn.Exec(RenderPlaceholders(kLatestVersionSql, '$'),
                                        {Text(e.clinic_id), Text(e.record_id), Int(e.direction)}));
      if (latest.rows() > 0) {
        LatestVersion newest = LatestFromRow(PgRow(latest, 0), 0);
        if (newest.content_hash == e.content_hash) {
          AppendResult result = std::move(newest.duplicate);
          FHIRGW_ASSIGN_OR_RETURN(result.alerts, OpenAlerts(cipher(), newest.sealed_alerts));
          FHIRGW_ASSIGN_OR_RETURN(v1::LogEntry entry, EntryFor(conn, result.transaction_id));
          chain.Append(ResentEntry(std::move(entry), e, result.status));
          return result;
        }
        version = newest.version + 1;
      }
    }
    AppendResult result = NewVersionResult(e, p, version, chain.next());
    std::vector<Param> row;
    AddTransactionRow(e, p, result, row);
    FHIRGW_RETURN_IF_ERROR(InsertRows(conn, kInsertTransactions, kTransactionParams, row));
    chain.Append(RecordLoggedEntry(e, p, result));
    std::vector<Param> keys;
    for (const std::string& key : e.patient_keys) {
      keys.push_back(Text(key));
      keys.push_back(Text(e.clinic_id));
      keys.push_back(Text(e.patient_id));
    }
    FHIRGW_RETURN_IF_ERROR(InsertRows(conn, kInsertPatientKeys, 3, keys, "ON CONFLICT DO NOTHING"));
    return result;
  }

  // Turns DELIVERING transactions whose lease ran out (their replica died, or lost the database
  // for longer than the lease) into RETRYING, due at `now_ms`, logged as RECOVERED. The lost
  // attempt keeps its number, as after a crash with SQLite. Returns how many.
  absl::StatusOr<int> ReclaimExpired(int64_t now_ms) {
    FHIRGW_ASSIGN_OR_RETURN(ConnectionPool::Handle conn, pool_.Acquire());
    // Most of the time there is nothing to do: find that out without taking the chain lock.
    FHIRGW_ASSIGN_OR_RETURN(
        Result any,
        conn->Exec(absl::StrCat("SELECT 1 FROM transactions WHERE status = 2 AND lease_until_ms < ",
                                kDbNowMs, " LIMIT 1")));
    if (any.rows() == 0) return 0;
    int recovered = 0;
    FHIRGW_RETURN_IF_ERROR(InTransaction(*conn, [&]() -> absl::Status {
      recovered = 0;
      Chain chain(*conn);
      FHIRGW_RETURN_IF_ERROR(chain.Lock());
      FHIRGW_ASSIGN_OR_RETURN(
          Result expired,
          conn->Exec(absl::StrCat("SELECT id FROM transactions WHERE status = 2 AND "
                                  "lease_until_ms < ",
                                  kDbNowMs, " ORDER BY seq FOR UPDATE SKIP LOCKED")));
      for (int i = 0; i < expired.rows(); ++i) {
        const std::string id = expired.Bytes(i, 0);
        FHIRGW_RETURN_IF_ERROR(
            conn->Exec("UPDATE transactions SET status = 4, next_attempt_at_ms = $2, "
                       "updated_at_ms = $2, attempt_count = attempt_count + 1, lease_owner = '', "
                       "lease_until_ms = 0 WHERE id = $1",
                       {Text(id), Int(now_ms)})
                .status());
        FHIRGW_ASSIGN_OR_RETURN(v1::LogEntry entry, EntryFor(*conn, id));
        chain.Append(EventEntry(std::move(entry), v1::LogEntry::RECOVERED, v1::RETRYING, now_ms));
      }
      recovered = expired.rows();
      return chain.Save();
    }));
    return recovered;
  }

  // Renews this replica's leases every lease_ms / 3 and reclaims expired ones, until destruction.
  void KeepLeases() {
    const auto period = std::chrono::milliseconds(std::clamp(pg_.lease_ms / 3, 10, 10000));
    std::unique_lock<std::mutex> lock(keeper_mu_);
    while (!keeper_cv_.wait_for(lock, period, [this] { return keeper_stop_; })) {
      lock.unlock();
      absl::Status renewed = [&]() -> absl::Status {
        FHIRGW_ASSIGN_OR_RETURN(ConnectionPool::Handle conn, pool_.Acquire());
        return InTransaction(
            *conn,
            [&]() -> absl::Status {
              return conn
                  ->Exec(absl::StrCat("UPDATE transactions SET lease_until_ms = ", kDbNowMs,
                                      " + $2 WHERE status = 2 AND lease_owner = $1"),
                         {Text(replica_id_), Int(pg_.lease_ms)})
                  .status();
            },
            kBeginUnsynced);
      }();
      if (!renewed.ok()) {
        LogWarning(absl::StrCat("cannot renew the delivery leases: ", renewed.message()));
      }
      if (pg_.reclaim_expired_leases) {
        absl::StatusOr<int> reclaimed = ReclaimExpired(base::UnixMillis());
        if (!reclaimed.ok()) {
          LogWarning(absl::StrCat("cannot reclaim expired delivery leases: ",
                                  reclaimed.status().message()));
        } else if (*reclaimed > 0) {
          LogInfo(absl::StrCat("took over ", *reclaimed,
                               " transactions whose delivery lease expired (a replica stopped)"));
        }
      }
      lock.lock();
    }
  }

  // Opens a connection that LISTENs on both channels; `*head` is the chain head once it listens
  // (everything logged after it will be notified).
  absl::StatusOr<std::unique_ptr<Connection>> Listen(int64_t* head) {
    FHIRGW_ASSIGN_OR_RETURN(std::unique_ptr<Connection> conn,
                            Connection::Open(pg_.dsn, "fhirgw-listener"));
    FHIRGW_RETURN_IF_ERROR(
        conn->Run(absl::StrCat("LISTEN ", kInboundChannel, "; LISTEN ", kStatusChannel)));
    FHIRGW_ASSIGN_OR_RETURN(Result row, conn->Exec("SELECT seq FROM chain_head WHERE id = 1"));
    *head = row.rows() == 1 ? row.Int(0, 0) : 0;
    return conn;
  }

  // Hands the notifications that arrive on `conn` (after the writers' COMMITs) to the callbacks.
  // When the connection breaks it reconnects, and wakes the streams of every clinic that received
  // hospital data since `head` (the notifications sent meanwhile are lost).
  void ListenLoop(std::shared_ptr<Connection> conn, int64_t head) {
    while (!listener_stop_) {
      if (conn == nullptr || conn->broken()) {
        conn.reset();
        int64_t new_head = 0;
        absl::StatusOr<std::unique_ptr<Connection>> opened = Listen(&new_head);
        absl::Status missed = opened.status();
        if (opened.ok() && pg_.on_inbound) {
          absl::StatusOr<Result> clinics = (*opened)->Exec(
              "SELECT DISTINCT clinic_id FROM transactions WHERE direction = 2 AND seq > $1",
              {Int(head)});
          missed = clinics.status();
          for (int i = 0; clinics.ok() && i < clinics->rows(); ++i) {
            pg_.on_inbound(clinics->Bytes(i, 0));
          }
        }
        if (!missed.ok()) {
          LogWarning(
              absl::StrCat("cannot listen for the other replicas' news: ", missed.message()));
          for (int i = 0; i < 10 && !listener_stop_; ++i) {
            std::this_thread::sleep_for(std::chrono::milliseconds(100));
          }
          continue;
        }
        conn = std::shared_ptr<Connection>(*std::move(opened));
        head = new_head;
      }
      pollfd fd{PQsocket(conn->raw()), POLLIN, 0};
      if (::poll(&fd, 1, 200) < 0) continue;
      if (PQconsumeInput(conn->raw()) == 0) {
        conn.reset();
        continue;
      }
      while (PGnotify* notify = PQnotifies(conn->raw())) {
        const std::string channel = notify->relname;
        const std::string payload = notify->extra;
        PQfreemem(notify);
        if (channel == kInboundChannel && pg_.on_inbound) {
          pg_.on_inbound(payload);
        } else if (channel == kStatusChannel && pg_.on_status) {
          std::pair<std::string, std::string> parts = absl::StrSplit(payload, ' ');
          int status = 0;
          if (absl::SimpleAtoi(parts.second, &status)) {
            pg_.on_status(parts.first, static_cast<v1::TransactionStatus>(status));
          }
        }
      }
    }
  }

  const PostgresOptions pg_;
  std::string replica_id_;
  ConnectionPool pool_;
  std::unique_ptr<Connection> writer_;  // the commit thread's own

  std::atomic<bool> listener_stop_{false};
  std::thread listener_;

  std::mutex keeper_mu_;
  std::condition_variable keeper_cv_;
  bool keeper_stop_ = false;  // guarded by keeper_mu_
  std::thread keeper_;
};

}  // namespace

absl::StatusOr<std::unique_ptr<Store>> OpenPostgresStore(const PostgresOptions& options) {
  if (options.dsn.empty()) return absl::InvalidArgumentError("store.postgres.dsn: is empty");
  auto store = std::make_unique<PostgresStore>(options);
  FHIRGW_RETURN_IF_ERROR(store->Init());
  return store;
}

absl::StatusOr<std::string> ResolvePostgresDsn(const v1::StoreConfig::Postgres& config) {
  if (!config.dsn().empty()) return config.dsn();
  if (config.dsn_env().empty()) {
    return absl::InvalidArgumentError("store.postgres: needs dsn or dsn_env");
  }
  const char* value = std::getenv(config.dsn_env().c_str());
  if (value == nullptr || *value == '\0') {
    return absl::InvalidArgumentError(absl::StrCat(
        "store.postgres.dsn_env: the environment variable ", config.dsn_env(), " is not set"));
  }
  return std::string(value);
}

}  // namespace fhirgw::gateway
