#include "gateway/store/postgres/postgres_store.h"

#include <fcntl.h>
#include <libpq-fe.h>
#include <poll.h>
#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <deque>
#include <fstream>
#include <limits>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/strings/cord.h"
#include "absl/strings/escaping.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "fhir/status_macros.h"
#include "gateway/ops/log.h"
#include "gateway/store/log_codec.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"

namespace fhirgw::gateway {
namespace {

// Every integer is BIGINT (binary results decode one way); every id a lookup or an ordering uses is
// COLLATE "C", so that ranges and orderings are bytewise, as in SQLite. `seq` of a transaction is
// the chain sequence of its RECORD_LOGGED entry: assigned under the chain_head lock, so its order
// is commit order.
constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS transactions (
  seq BIGINT PRIMARY KEY,
  id TEXT COLLATE "C" NOT NULL UNIQUE,
  clinic_id TEXT COLLATE "C" NOT NULL,
  record_id TEXT COLLATE "C" NOT NULL,
  version BIGINT NOT NULL,
  content_hash BYTEA NOT NULL,
  kind BIGINT NOT NULL,
  direction BIGINT NOT NULL,
  status BIGINT NOT NULL,
  destination TEXT COLLATE "C" NOT NULL,
  patient_id TEXT COLLATE "C" NOT NULL,
  principal TEXT NOT NULL,
  received_at_ms BIGINT NOT NULL,
  updated_at_ms BIGINT NOT NULL,
  queued_at_ms BIGINT NOT NULL,
  next_attempt_at_ms BIGINT NOT NULL,
  attempt_count BIGINT NOT NULL DEFAULT 0,
  attempt_base BIGINT NOT NULL DEFAULT 0,
  lease_owner TEXT NOT NULL DEFAULT '',
  lease_until_ms BIGINT NOT NULL DEFAULT 0,
  record BYTEA NOT NULL,
  fhir BYTEA NOT NULL,
  alerts BYTEA NOT NULL,
  resources BYTEA NOT NULL DEFAULT ''::bytea,
  UNIQUE (clinic_id, record_id, direction, version)
);
CREATE INDEX IF NOT EXISTS transactions_due ON transactions (destination, next_attempt_at_ms, seq)
  WHERE status IN (1, 4);
CREATE INDEX IF NOT EXISTS transactions_undelivered ON transactions (received_at_ms)
  WHERE status IN (1, 2, 4);
CREATE INDEX IF NOT EXISTS transactions_in_flight ON transactions (clinic_id, patient_id)
  WHERE status = 2;
CREATE INDEX IF NOT EXISTS transactions_leases ON transactions (lease_until_ms) WHERE status = 2;
CREATE INDEX IF NOT EXISTS transactions_owner ON transactions (lease_owner) WHERE status = 2;
CREATE INDEX IF NOT EXISTS transactions_retrying ON transactions (destination, next_attempt_at_ms)
  WHERE status = 4;
CREATE INDEX IF NOT EXISTS transactions_dead ON transactions (clinic_id) WHERE status = 6;
CREATE INDEX IF NOT EXISTS transactions_inbound ON transactions (clinic_id, seq) WHERE direction = 2;
CREATE INDEX IF NOT EXISTS transactions_purgeable ON transactions (received_at_ms)
  WHERE status IN (3, 5, 6, 7);
CREATE INDEX IF NOT EXISTS transactions_received ON transactions (received_at_ms, seq);
CREATE INDEX IF NOT EXISTS transactions_clinic ON transactions (clinic_id, received_at_ms);
CREATE INDEX IF NOT EXISTS transactions_patient ON transactions (clinic_id, patient_id, received_at_ms);
CREATE INDEX IF NOT EXISTS transactions_destination ON transactions (destination, received_at_ms);
CREATE INDEX IF NOT EXISTS transactions_status ON transactions (status, received_at_ms);
CREATE INDEX IF NOT EXISTS transactions_kind ON transactions (kind, received_at_ms);
CREATE INDEX IF NOT EXISTS transactions_direction ON transactions (direction, received_at_ms);
CREATE INDEX IF NOT EXISTS transactions_record ON transactions (record_id, received_at_ms);
CREATE TABLE IF NOT EXISTS patient_keys (
  key TEXT COLLATE "C" NOT NULL,
  clinic_id TEXT COLLATE "C" NOT NULL,
  clinic_patient_id TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY (key, clinic_id)
);
CREATE TABLE IF NOT EXISTS state (
  key TEXT COLLATE "C" PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_log (
  seq BIGINT PRIMARY KEY,
  at_ms BIGINT NOT NULL,
  transaction_id TEXT COLLATE "C" NOT NULL,
  clinic_id TEXT COLLATE "C" NOT NULL,
  entry BYTEA NOT NULL,
  prev_hash BYTEA NOT NULL,
  hash BYTEA NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_transaction ON audit_log (transaction_id, seq);
CREATE INDEX IF NOT EXISTS audit_log_at ON audit_log (at_ms);
CREATE INDEX IF NOT EXISTS audit_log_clinic ON audit_log (clinic_id, seq);
CREATE TABLE IF NOT EXISTS chain_head (
  id BIGINT PRIMARY KEY CHECK (id = 1),
  seq BIGINT NOT NULL,
  hash BYTEA NOT NULL
);
INSERT INTO chain_head (id, seq, hash) VALUES (1, 0, ''::bytea) ON CONFLICT (id) DO NOTHING;
CREATE TABLE IF NOT EXISTS signed_heads (
  seq BIGINT PRIMARY KEY,
  head BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS attempts (
  transaction_id TEXT COLLATE "C" NOT NULL,
  number BIGINT NOT NULL,
  attempt BYTEA NOT NULL,
  PRIMARY KEY (transaction_id, number)
);
)sql";

// pg_advisory_lock keys: the schema ("fhirgw" in ASCII) and the namespace of the per-patient locks.
constexpr int64_t kSchemaLockKey = 0x666869726777;
constexpr int kPatientLockSpace = 0x66687731;

// The database clock in milliseconds: leases compare against it, so that replicas with skewed
// clocks agree on when a lease ends.
constexpr char kDbNowMs[] = "(extract(epoch FROM clock_timestamp()) * 1000)::bigint";

// The chain lock and the claim rules reason about READ COMMITTED (each statement sees what
// committed before it), whatever the server's default isolation.
constexpr char kBegin[] = "BEGIN ISOLATION LEVEL READ COMMITTED";
// For writes whose loss in a database crash is harmless (claims, lease renewals): no WAL flush
// wait.
constexpr char kBeginUnsynced[] =
    "BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL synchronous_commit = off";

constexpr char kInboundChannel[] = "fhirgw_inbound";
constexpr char kStatusChannel[] = "fhirgw_status";

constexpr char kSqlStatePayload[] = "type.googleapis.com/fhirgw.PostgresSqlState";
constexpr char kUniqueViolation[] = "23505";
constexpr char kDeadlock[] = "40P01";
constexpr char kSerializationFailure[] = "40001";

// Type OIDs of the parameters we send (pg_type.h is a server header).
constexpr Oid kInt8Oid = 20;
constexpr Oid kTextOid = 25;
constexpr Oid kByteaOid = 17;
constexpr Oid kInt8ArrayOid = 1016;

// The SQLSTATE of a failed statement ("" when the failure was not the server's answer).
std::string SqlState(const absl::Status& status) {
  absl::optional<absl::Cord> state = status.GetPayload(kSqlStatePayload);
  return state ? std::string(*state) : std::string();
}

// One statement parameter, sent in binary (or text, for arrays).
struct Param {
  std::string value;
  Oid type = 0;
  int format = 1;
};

Param Int(int64_t v) {
  std::string bytes(8, '\0');
  const uint64_t u = static_cast<uint64_t>(v);
  for (int i = 0; i < 8; ++i) bytes[i] = static_cast<char>((u >> (56 - 8 * i)) & 0xff);
  return {std::move(bytes), kInt8Oid, 1};
}
Param Text(absl::string_view v) { return {std::string(v), kTextOid, 1}; }
Param Bytes(absl::string_view v) { return {std::string(v), kByteaOid, 1}; }
Param Int8Array(const std::vector<int64_t>& values) {
  return {absl::StrCat("{", absl::StrJoin(values, ","), "}"), kInt8ArrayOid, 0};
}

// A statement's result, in binary format.
class Result {
 public:
  explicit Result(PGresult* result) : result_(result, &PQclear) {}

  int rows() const { return PQntuples(result_.get()); }
  bool IsNull(int row, int col) const { return PQgetisnull(result_.get(), row, col) != 0; }
  std::string Bytes(int row, int col) const {
    return std::string(PQgetvalue(result_.get(), row, col), PQgetlength(result_.get(), row, col));
  }
  // Decodes an integer (or boolean) column; NULL reads as 0.
  int64_t Int(int row, int col) const {
    const int length = PQgetlength(result_.get(), row, col);
    const char* data = PQgetvalue(result_.get(), row, col);
    uint64_t v = 0;
    for (int i = 0; i < length; ++i) v = (v << 8) | static_cast<unsigned char>(data[i]);
    switch (length) {
      case 8:
        return static_cast<int64_t>(v);
      case 4:
        return static_cast<int32_t>(static_cast<uint32_t>(v));
      case 2:
        return static_cast<int16_t>(static_cast<uint16_t>(v));
      default:
        return static_cast<int64_t>(v);
    }
  }
  std::string CommandStatus() const { return PQcmdStatus(result_.get()); }
  PGresult* raw() const { return result_.get(); }

 private:
  std::unique_ptr<PGresult, void (*)(PGresult*)> result_;
};

// A libpq connection with a cache of prepared statements. Not thread-safe.
class Connection {
 public:
  // Connects with `dsn` (key=value or URI); `application_name` shows the connection's role in
  // pg_stat_activity.
  static absl::StatusOr<std::unique_ptr<Connection>> Open(const std::string& dsn,
                                                          const char* application_name) {
    // expand_dbname: `dsn` is a whole connection string. Its connect_timeout replaces the default
    // before it (so that /readyz answers while the database is unreachable); application_name
    // after it replaces the DSN's.
    const char* keywords[] = {"connect_timeout", "dbname", "application_name", nullptr};
    const char* values[] = {"10", dsn.c_str(), application_name, nullptr};
    PGconn* raw = PQconnectdbParams(keywords, values, /*expand_dbname=*/1);
    if (raw == nullptr || PQstatus(raw) != CONNECTION_OK) {
      std::string message = raw ? PQerrorMessage(raw) : "out of memory";
      PQfinish(raw);
      while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) {
        message.pop_back();
      }
      return absl::UnavailableError(absl::StrCat("cannot connect to PostgreSQL: ", message));
    }
    // Server notices and warnings go to the gateway's log, not straight to stderr.
    PQsetNoticeProcessor(
        raw,
        [](void*, const char* message) {
          absl::string_view text(message);
          while (!text.empty() && (text.back() == '\n' || text.back() == ' ')) {
            text.remove_suffix(1);
          }
          LogWarning(absl::StrCat("postgres: ", text));
        },
        nullptr);
    std::unique_ptr<Connection> connection(new Connection(raw));
    // Durable commits whatever the server's default; notices (e.g. "relation already exists,
    // skipping") stay out of the gateway's log.
    FHIRGW_RETURN_IF_ERROR(
        connection->Run("SET synchronous_commit = on; SET client_min_messages = warning"));
    return connection;
  }

  Connection(const Connection&) = delete;
  Connection& operator=(const Connection&) = delete;
  ~Connection() { PQfinish(conn_); }

  // Runs `sql` as a prepared statement (prepared on first use, per connection).
  absl::StatusOr<Result> Exec(const std::string& sql, const std::vector<Param>& params = {}) {
    auto it = prepared_.find(sql);
    if (it == prepared_.end()) {
      const std::string name = absl::StrCat("fhirgw_", prepared_.size());
      std::vector<Oid> types;
      for (const Param& p : params) types.push_back(p.type);
      Result prepared(PQprepare(conn_, name.c_str(), sql.c_str(), static_cast<int>(types.size()),
                                types.empty() ? nullptr : types.data()));
      FHIRGW_RETURN_IF_ERROR(Check(prepared, sql));
      it = prepared_.emplace(sql, name).first;
    }
    std::vector<const char*> values;
    std::vector<int> lengths, formats;
    for (const Param& p : params) {
      values.push_back(p.value.data());
      lengths.push_back(static_cast<int>(p.value.size()));
      formats.push_back(p.format);
    }
    Result result(PQexecPrepared(conn_, it->second.c_str(), static_cast<int>(params.size()),
                                 values.data(), lengths.data(), formats.data(), 1));
    FHIRGW_RETURN_IF_ERROR(Check(result, sql));
    return result;
  }

  // Runs `sql` once, unprepared (dynamic SQL, cursors, transaction control).
  absl::StatusOr<Result> ExecOnce(const std::string& sql, const std::vector<Param>& params = {}) {
    std::vector<Oid> types;
    std::vector<const char*> values;
    std::vector<int> lengths, formats;
    for (const Param& p : params) {
      types.push_back(p.type);
      values.push_back(p.value.data());
      lengths.push_back(static_cast<int>(p.value.size()));
      formats.push_back(p.format);
    }
    Result result(PQexecParams(conn_, sql.c_str(), static_cast<int>(params.size()),
                               types.empty() ? nullptr : types.data(), values.data(),
                               lengths.data(), formats.data(), 1));
    FHIRGW_RETURN_IF_ERROR(Check(result, sql));
    return result;
  }

  // Runs one or more parameterless statements (results ignored).
  absl::Status Run(const std::string& sql) {
    Result result(PQexec(conn_, sql.c_str()));
    return Check(result, sql);
  }

  // COMMIT, failing when the server rolled back instead (an aborted transaction).
  absl::Status Commit() {
    FHIRGW_ASSIGN_OR_RETURN(Result result, ExecOnce("COMMIT"));
    if (result.CommandStatus() != "COMMIT") {
      return absl::AbortedError("postgres: the transaction was rolled back");
    }
    return absl::OkStatus();
  }

  bool broken() const { return PQstatus(conn_) != CONNECTION_OK; }
  bool idle() const { return PQtransactionStatus(conn_) == PQTRANS_IDLE; }
  PGconn* raw() { return conn_; }

 private:
  explicit Connection(PGconn* conn) : conn_(conn) {}

  absl::Status Check(const Result& result, absl::string_view sql) {
    PGresult* r = result.raw();
    const ExecStatusType status = r ? PQresultStatus(r) : PGRES_FATAL_ERROR;
    if (status == PGRES_COMMAND_OK || status == PGRES_TUPLES_OK) return absl::OkStatus();
    std::string message = r ? PQresultErrorMessage(r) : PQerrorMessage(conn_);
    while (!message.empty() && (message.back() == '\n' || message.back() == ' ')) {
      message.pop_back();
    }
    const char* state = r ? PQresultErrorField(r, PG_DIAG_SQLSTATE) : nullptr;
    // The statement's first line names it well enough for a log line.
    absl::string_view what = absl::StripLeadingAsciiWhitespace(sql);
    what = what.substr(0, std::min(what.find('\n'), size_t{80}));
    absl::Status error(broken() ? absl::StatusCode::kUnavailable : absl::StatusCode::kInternal,
                       absl::StrCat("postgres: ", what, ": ", message));
    if (state != nullptr) error.SetPayload(kSqlStatePayload, absl::Cord(state));
    return error;
  }

  PGconn* conn_;
  std::map<std::string, std::string> prepared_;  // SQL -> statement name
};

// Connections shared by the store's callers, opened on demand up to a maximum. A connection that
// broke, or was returned inside a transaction it could not roll back, is dropped (and replaced by
// a new one on a later Acquire), so the store recovers from a database restart by itself.
class ConnectionPool {
 public:
  class Handle {
   public:
    Handle(ConnectionPool* pool, std::unique_ptr<Connection> connection)
        : pool_(pool), connection_(std::move(connection)) {}
    Handle(Handle&& other) noexcept = default;
    Handle& operator=(Handle&&) = delete;
    ~Handle() {
      if (pool_ != nullptr && connection_ != nullptr) pool_->Return(std::move(connection_));
    }
    Connection* operator->() { return connection_.get(); }
    Connection& operator*() { return *connection_; }

   private:
    ConnectionPool* pool_;
    std::unique_ptr<Connection> connection_;
  };

  ConnectionPool(std::string dsn, int max) : dsn_(std::move(dsn)), max_(std::max(1, max)) {}

  absl::StatusOr<Handle> Acquire() {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return !idle_.empty() || open_ < max_; });
    if (!idle_.empty()) {
      std::unique_ptr<Connection> connection = std::move(idle_.back());
      idle_.pop_back();
      return Handle(this, std::move(connection));
    }
    ++open_;
    lock.unlock();
    absl::StatusOr<std::unique_ptr<Connection>> connection = Connection::Open(dsn_, "fhirgw");
    if (!connection.ok()) {
      lock.lock();
      --open_;
      cv_.notify_one();
      return connection.status();
    }
    return Handle(this, *std::move(connection));
  }

 private:
  void Return(std::unique_ptr<Connection> connection) {
    if (!connection->broken() && !connection->idle()) (void)connection->Run("ROLLBACK");
    std::lock_guard<std::mutex> lock(mu_);
    if (connection->broken() || !connection->idle()) {
      --open_;
    } else {
      idle_.push_back(std::move(connection));
    }
    cv_.notify_one();
  }

  const std::string dsn_;
  const int max_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<Connection>> idle_;  // guarded by mu_
  int open_ = 0;                                   // guarded by mu_: idle and handed out
};

// Runs `body` between BEGIN (`begin`) and COMMIT on `conn`, rolling back when it fails. A deadlock
// or serialization failure (PostgreSQL aborts one side) runs `body` again, so `body` must start
// from scratch each time.
absl::Status InTransaction(Connection& conn, const std::function<absl::Status()>& body,
                           const char* begin = kBegin) {
  for (int attempt = 0;; ++attempt) {
    FHIRGW_RETURN_IF_ERROR(conn.Run(begin));
    absl::Status status = body();
    if (status.ok()) {
      status = conn.Commit();
    }
    if (!status.ok() && !conn.broken() && !conn.idle()) (void)conn.Run("ROLLBACK");
    if (status.ok()) return status;
    const std::string state = SqlState(status);
    if ((state == kDeadlock || state == kSerializationFailure) && attempt < 5) continue;
    return status;
  }
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
    "fhir, seq";

absl::StatusOr<v1::Transaction> RowToTransaction(const Result& r, int row, bool with_payload,
                                                 const PayloadCipher* cipher) {
  v1::Transaction tx;
  tx.set_transaction_id(r.Bytes(row, 0));
  tx.set_clinic_id(r.Bytes(row, 1));
  tx.set_record_id(r.Bytes(row, 2));
  tx.set_version(r.Int(row, 3));
  tx.set_kind(static_cast<v1::RecordKind>(r.Int(row, 4)));
  tx.set_direction(static_cast<v1::Direction>(r.Int(row, 5)));
  tx.set_status(static_cast<v1::TransactionStatus>(r.Int(row, 6)));
  tx.set_destination(r.Bytes(row, 7));
  tx.set_patient_id(r.Bytes(row, 8));
  tx.set_principal(r.Bytes(row, 9));
  *tx.mutable_received_at() = ToTimestamp(r.Int(row, 10));
  *tx.mutable_updated_at() = ToTimestamp(r.Int(row, 11));
  if (tx.status() == v1::RETRYING || tx.status() == v1::ACCEPTED) {
    *tx.mutable_next_attempt_at() = ToTimestamp(r.Int(row, 12));
  }
  v1::Transaction extra;
  extra.ParseFromString(r.Bytes(row, 13));
  extra.MergeFromString(r.Bytes(row, 14));
  tx.mutable_alerts()->Swap(extra.mutable_alerts());
  tx.mutable_resources()->Swap(extra.mutable_resources());
  if (with_payload) {
    FHIRGW_ASSIGN_OR_RETURN(std::string record, OpenPayload(cipher, r.Bytes(row, 15)));
    FHIRGW_ASSIGN_OR_RETURN(std::string fhir, OpenPayload(cipher, r.Bytes(row, 16)));
    tx.mutable_record()->ParseFromString(record);
    tx.set_fhir_json(std::move(fhir));
  }
  return tx;
}

// A DeliveryAttempt as the log keeps it: without the EHR's answer (its SHA-256 is kept instead).
v1::DeliveryAttempt WithoutResponse(const v1::DeliveryAttempt& attempt) {
  v1::DeliveryAttempt copy = attempt;
  copy.clear_response();
  return copy;
}

bool IsFinal(v1::TransactionStatus status) {
  return status == v1::DELIVERED || status == v1::REJECTED || status == v1::DEAD_LETTER;
}

// Inserts rows of `columns` parameters each (`params`, row after row) with multi-row VALUES:
// `head` is "INSERT INTO table (columns)", `tail` e.g. "ON CONFLICT DO NOTHING". A batch costs a
// few statements instead of one per row.
absl::Status InsertRows(Connection& conn, absl::string_view head, int columns,
                        const std::vector<Param>& params, absl::string_view tail = "") {
  constexpr int kMaxParams = 4000;
  const int total_rows = static_cast<int>(params.size()) / columns;
  const int rows_per_statement = std::max(1, kMaxParams / columns);
  for (int first = 0; first < total_rows; first += rows_per_statement) {
    const int rows = std::min(rows_per_statement, total_rows - first);
    std::string sql = absl::StrCat(head, " VALUES ");
    std::vector<Param> chunk;
    chunk.reserve(static_cast<size_t>(rows) * columns);
    for (int r = 0; r < rows; ++r) {
      absl::StrAppend(&sql, r == 0 ? "(" : ", (");
      for (int c = 0; c < columns; ++c) {
        chunk.push_back(params[static_cast<size_t>(first + r) * columns + c]);
        absl::StrAppend(&sql, c == 0 ? "$" : ", $", chunk.size());
      }
      absl::StrAppend(&sql, ")");
    }
    if (!tail.empty()) absl::StrAppend(&sql, " ", tail);
    // Prepared and cached per row count: a bounded number of statements per connection.
    FHIRGW_RETURN_IF_ERROR(conn.Exec(sql, chunk).status());
  }
  return absl::OkStatus();
}

constexpr char kInsertTransactions[] =
    "INSERT INTO transactions (seq, id, clinic_id, record_id, version, content_hash, kind, "
    "direction, status, destination, patient_id, principal, received_at_ms, updated_at_ms, "
    "queued_at_ms, next_attempt_at_ms, record, fhir, alerts)";
constexpr int kTransactionParams = 19;
constexpr char kInsertPatientKeys[] =
    "INSERT INTO patient_keys (key, clinic_id, clinic_patient_id)";

// The hash chain inside one database transaction. Lock() takes the single chain_head row and holds
// it until COMMIT or ROLLBACK, so appends of all replicas are serialized and the chain order is the
// commit order; Append() adds entries after the head (buffered, written by Flush() in one
// statement); Save() flushes and writes the new head back.
class Chain {
 public:
  struct Mark {
    int64_t seq;
    std::string hash;
    size_t buffered;
  };

  explicit Chain(Connection& conn) : conn_(conn) {}

  absl::Status Lock() {
    FHIRGW_ASSIGN_OR_RETURN(Result head,
                            conn_.Exec("SELECT seq, hash FROM chain_head WHERE id = 1 FOR UPDATE"));
    if (head.rows() != 1) return absl::InternalError("postgres: the chain_head row is missing");
    seq_ = locked_seq_ = head.Int(0, 0);
    hash_ = head.Bytes(0, 1);
    return absl::OkStatus();
  }

  // The sequence the next appended entry gets.
  int64_t next() const { return seq_ + 1; }

  void Append(v1::LogEntry entry) {
    entry.set_sequence(seq_ + 1);
    if (entry.at_ms() == 0) entry.set_at_ms(WallClockMs());
    std::string canonical = Canonical(entry);
    std::string hash = ChainHash(hash_, canonical);
    for (Param p : {Int(entry.sequence()), Int(entry.at_ms()), Text(entry.transaction_id()),
                    Text(entry.clinic_id()), Bytes(canonical), Bytes(hash_), Bytes(hash)}) {
      rows_.push_back(std::move(p));
    }
    seq_ = entry.sequence();
    hash_ = std::move(hash);
  }

  // Writes the entries appended since the last Flush.
  absl::Status Flush() {
    if (rows_.empty()) return absl::OkStatus();
    FHIRGW_RETURN_IF_ERROR(InsertRows(
        conn_,
        "INSERT INTO audit_log (seq, at_ms, transaction_id, clinic_id, entry, prev_hash, hash)", 7,
        rows_));
    rows_.clear();
    return absl::OkStatus();
  }

  absl::Status Save() {
    FHIRGW_RETURN_IF_ERROR(Flush());
    if (seq_ == locked_seq_) return absl::OkStatus();
    return conn_
        .Exec("UPDATE chain_head SET seq = $1, hash = $2 WHERE id = 1", {Int(seq_), Bytes(hash_)})
        .status();
  }

  // Where the chain is now; Restore goes back there (after a ROLLBACK TO SAVEPOINT taken at the
  // mark, with nothing flushed since).
  Mark mark() const { return {seq_, hash_, rows_.size()}; }
  void Restore(const Mark& mark) {
    seq_ = mark.seq;
    hash_ = mark.hash;
    rows_.resize(std::min(rows_.size(), mark.buffered));
  }

 private:
  Connection& conn_;
  int64_t seq_ = 0;
  int64_t locked_seq_ = 0;
  std::string hash_;
  std::vector<Param> rows_;  // audit_log rows not yet written, 7 parameters each
};

// The log entry skeleton of an existing transaction.
absl::StatusOr<v1::LogEntry> EntryFor(Connection& conn, const std::string& transaction_id) {
  FHIRGW_ASSIGN_OR_RETURN(
      Result row,
      conn.Exec("SELECT clinic_id, record_id, version, kind, direction, destination, patient_id, "
                "status FROM transactions WHERE id = $1",
                {Text(transaction_id)}));
  if (row.rows() == 0) return absl::NotFoundError(absl::StrCat("no transaction ", transaction_id));
  v1::LogEntry entry;
  entry.set_transaction_id(transaction_id);
  entry.set_clinic_id(row.Bytes(0, 0));
  entry.set_record_id(row.Bytes(0, 1));
  entry.set_version(row.Int(0, 2));
  entry.set_kind(static_cast<v1::RecordKind>(row.Int(0, 3)));
  entry.set_direction(static_cast<v1::Direction>(row.Int(0, 4)));
  entry.set_destination(row.Bytes(0, 5));
  entry.set_patient_id(row.Bytes(0, 6));
  entry.set_status(static_cast<v1::TransactionStatus>(row.Int(0, 7)));
  return entry;
}

std::string HostName() {
  char name[256] = {};
  if (::gethostname(name, sizeof name - 1) != 0) return "host";
  return name;
}

class PostgresStore final : public Store {
 public:
  explicit PostgresStore(PostgresOptions options)
      : options_(std::move(options)), pool_(options_.dsn, options_.max_connections) {
    replica_id_ = options_.replica_id.empty() ? absl::StrCat(HostName(), "/", ::getpid(), "/",
                                                             NewTransactionId().substr(0, 8))
                                              : options_.replica_id;
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
    if (options_.lease_ms <= 0) {
      return absl::InvalidArgumentError("store.postgres.lease_ms: must be positive");
    }
    FHIRGW_ASSIGN_OR_RETURN(writer_, Connection::Open(options_.dsn, "fhirgw-commit"));
    // Replicas starting together would race on CREATE ... IF NOT EXISTS (a unique violation in the
    // catalog): one creates the schema while the others wait.
    FHIRGW_RETURN_IF_ERROR(
        writer_->ExecOnce("SELECT pg_advisory_lock($1)", {Int(kSchemaLockKey)}).status());
    absl::Status schema = writer_->Run(kSchema);
    (void)writer_->ExecOnce("SELECT pg_advisory_unlock($1)", {Int(kSchemaLockKey)});
    FHIRGW_RETURN_IF_ERROR(schema);
    committer_ = std::thread([this] { CommitLoop(); });
    if (options_.on_inbound || options_.on_status) {
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
    FHIRGW_ASSIGN_OR_RETURN(ConnectionPool::Handle conn, pool_.Acquire());
    std::vector<PatientMatch> matches;
    for (const std::string& key : keys) {
      FHIRGW_ASSIGN_OR_RETURN(Result rows, conn->Exec("SELECT clinic_id, clinic_patient_id FROM "
                                                      "patient_keys WHERE key = $1 ORDER BY "
                                                      "clinic_id",
                                                      {Text(key)}));
      for (int i = 0; i < rows.rows(); ++i) {
        PatientMatch match{rows.Bytes(i, 0), rows.Bytes(i, 1)};
        bool seen = false;
        for (const PatientMatch& m : matches) {
          seen = seen ||
                 (m.clinic_id == match.clinic_id && m.clinic_patient_id == match.clinic_patient_id);
        }
        if (!seen) matches.push_back(std::move(match));
      }
    }
    return matches;
  }

  absl::StatusOr<bool> HasRecord(absl::string_view clinic_id, absl::string_view record_id,
                                 v1::Direction direction) override {
    FHIRGW_ASSIGN_OR_RETURN(ConnectionPool::Handle conn, pool_.Acquire());
    FHIRGW_ASSIGN_OR_RETURN(
        Result rows, conn->Exec("SELECT 1 FROM transactions WHERE clinic_id = $1 AND record_id = "
                                "$2 AND direction = $3 LIMIT 1",
                                {Text(clinic_id), Text(record_id), Int(direction)}));
    return rows.rows() > 0;
  }

  absl::StatusOr<std::vector<EhrPatient>> EhrPatients(absl::string_view destination) override {
    FHIRGW_ASSIGN_OR_RETURN(ConnectionPool::Handle conn, pool_.Acquire());
    const std::string prefix = absl::StrCat(destination, "|Patient/");
    FHIRGW_ASSIGN_OR_RETURN(
        Result rows,
        conn->Exec("SELECT key, clinic_id, clinic_patient_id FROM patient_keys WHERE key >= $1 "
                   "AND key < $2 ORDER BY clinic_id, clinic_patient_id",
                   {Text(prefix), Text(absl::StrCat(destination, "|Patient0"))}));
    std::vector<EhrPatient> patients;
    for (int i = 0; i < rows.rows(); ++i) {
      patients.push_back(
          {rows.Bytes(i, 1), rows.Bytes(i, 2), rows.Bytes(i, 0).substr(prefix.size())});
    }
    return patients;
  }

  absl::StatusOr<std::vector<InboundItem>> ListInbound(absl::string_view clinic_id,
                                                       int64_t after_sequence, int limit) override {
    FHIRGW_ASSIGN_OR_RETURN(ConnectionPool::Handle conn, pool_.Acquire());
    FHIRGW_ASSIGN_OR_RETURN(
        Result rows,
        conn->Exec(absl::StrCat("SELECT ", kTransactionColumns,
                                " FROM transactions WHERE clinic_id = $1 AND direction = 2 AND "
                                "seq > $2 ORDER BY seq LIMIT $3"),
                   {Text(clinic_id), Int(after_sequence), Int(limit)}));
    std::vector<InboundItem> items;
    for (int i = 0; i < rows.rows(); ++i) {
      FHIRGW_ASSIGN_OR_RETURN(v1::Transaction tx, RowToTransaction(rows, i, true, cipher()));
      items.push_back({rows.Int(i, 17), std::move(tx)});
    }
    return items;
  }

  absl::StatusOr<std::string> GetState(absl::string_view key) override {
    FHIRGW_ASSIGN_OR_RETURN(ConnectionPool::Handle conn, pool_.Acquire());
    FHIRGW_ASSIGN_OR_RETURN(Result rows,
                            conn->Exec("SELECT value FROM state WHERE key = $1", {Text(key)}));
    return rows.rows() > 0 ? rows.Bytes(0, 0) : std::string();
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

  absl::StatusOr<v1::Transaction> Get(absl::string_view transaction_id,
                                      bool with_payload) override {
    FHIRGW_ASSIGN_OR_RETURN(ConnectionPool::Handle conn, pool_.Acquire());
    FHIRGW_ASSIGN_OR_RETURN(Result row, conn->Exec(absl::StrCat("SELECT ", kTransactionColumns,
                                                                " FROM transactions WHERE id = $1"),
                                                   {Text(transaction_id)}));
    if (row.rows() == 0) {
      return absl::NotFoundError(absl::StrCat("no transaction ", transaction_id));
    }
    FHIRGW_ASSIGN_OR_RETURN(v1::Transaction tx, RowToTransaction(row, 0, with_payload, cipher()));
    FHIRGW_ASSIGN_OR_RETURN(
        Result attempts,
        conn->Exec("SELECT attempt FROM attempts WHERE transaction_id = $1 ORDER BY number",
                   {Text(transaction_id)}));
    for (int i = 0; i < attempts.rows(); ++i) {
      FHIRGW_ASSIGN_OR_RETURN(std::string attempt, OpenPayload(cipher(), attempts.Bytes(i, 0)));
      tx.add_attempts()->ParseFromString(attempt);
    }
    return tx;
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
                    {Int(seq), Int(now_ms), Text(replica_id_), Int(options_.lease_ms)}));
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
          Result row,
          conn->Exec("SELECT status, lease_owner, clinic_id, record_id, version, kind, direction, "
                     "destination, patient_id FROM transactions WHERE id = $1 FOR UPDATE",
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
      v1::LogEntry entry;
      entry.set_transaction_id(result.transaction_id);
      entry.set_clinic_id(row.Bytes(0, 2));
      entry.set_record_id(row.Bytes(0, 3));
      entry.set_version(row.Int(0, 4));
      entry.set_kind(static_cast<v1::RecordKind>(row.Int(0, 5)));
      entry.set_direction(static_cast<v1::Direction>(row.Int(0, 6)));
      entry.set_destination(row.Bytes(0, 7));
      entry.set_patient_id(row.Bytes(0, 8));
      entry.set_event(v1::LogEntry::DELIVERY_ATTEMPT);
      entry.set_status(result.new_status);
      *entry.mutable_attempt() = WithoutResponse(result.attempt);
      entry.set_response_sha256(Sha256(result.attempt.response()));
      chain.Append(std::move(entry));
      std::string resources;
      if (!result.resources.empty()) {
        v1::Transaction holder;
        for (const v1::ResourceRef& ref : result.resources) *holder.add_resources() = ref;
        resources = holder.SerializeAsString();
      }
      const int64_t ended_ms = result.attempt.started_at().seconds() * 1000 +
                               result.attempt.started_at().nanos() / 1000000 +
                               result.attempt.duration_ms();
      // Still in flight (an attempt lost on a dead connection, resent at once) keeps the lease.
      FHIRGW_RETURN_IF_ERROR(
          conn->Exec("UPDATE transactions SET status = $2, attempt_count = attempt_count + 1, "
                     "next_attempt_at_ms = $3, updated_at_ms = $4, "
                     "resources = CASE WHEN length($5) > 0 THEN $5 ELSE resources END, "
                     "lease_owner = CASE WHEN $2 = 2 THEN lease_owner ELSE '' END, "
                     "lease_until_ms = CASE WHEN $2 = 2 THEN lease_until_ms ELSE 0 END "
                     "WHERE id = $1",
                     {Text(result.transaction_id), Int(result.new_status),
                      Int(result.next_attempt_at_ms), Int(ended_ms), Bytes(resources)})
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

  absl::StatusOr<std::optional<int64_t>> NextDueAt(absl::string_view destination) override {
    FHIRGW_ASSIGN_OR_RETURN(ConnectionPool::Handle conn, pool_.Acquire());
    FHIRGW_ASSIGN_OR_RETURN(Result row, conn->Exec("SELECT min(next_attempt_at_ms) FROM "
                                                   "transactions WHERE destination = $1 AND "
                                                   "status = 4",
                                                   {Text(destination)}));
    if (row.rows() == 0 || row.IsNull(0, 0)) return std::nullopt;
    return row.Int(0, 0);
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
        entry.set_event(v1::LogEntry::REPLAYED);
        entry.set_status(v1::ACCEPTED);
        entry.set_at_ms(now_ms);
        chain.Append(std::move(entry));
      }
      return chain.Save();
    }));
    return replayed;
  }

  absl::StatusOr<QueueStats> Stats() override {
    FHIRGW_ASSIGN_OR_RETURN(ConnectionPool::Handle conn, pool_.Acquire());
    FHIRGW_ASSIGN_OR_RETURN(
        Result row,
        conn->Exec("SELECT (SELECT count(*) FROM transactions WHERE status IN (1, 2, 4)), "
                   "(SELECT coalesce(min(received_at_ms), 0) FROM transactions "
                   "WHERE status IN (1, 2, 4)), "
                   "(SELECT count(*) FROM transactions WHERE status = 6)"));
    QueueStats stats;
    if (row.rows() > 0) {
      stats.undelivered = row.Int(0, 0);
      stats.oldest_undelivered_ms = row.Int(0, 1);
      stats.dead_letters = row.Int(0, 2);
    }
    return stats;
  }

  absl::StatusOr<TransactionPage> Query(const TransactionQuery& q) override {
    std::vector<std::string> where;
    std::vector<Param> params;  // bound in order as $1, $2, ...
    auto bind = [&](absl::string_view value) {
      params.push_back(Text(value));
      return absl::StrCat("$", params.size());
    };
    if (q.from_ms > 0) where.push_back(absl::StrCat("received_at_ms >= ", q.from_ms));
    if (q.to_ms > 0) where.push_back(absl::StrCat("received_at_ms < ", q.to_ms));
    if (!q.clinic_id.empty()) where.push_back(absl::StrCat("clinic_id = ", bind(q.clinic_id)));
    if (!q.clinic_scope.empty()) {
      std::vector<std::string> placeholders;
      for (const std::string& clinic : q.clinic_scope) placeholders.push_back(bind(clinic));
      where.push_back(absl::StrCat("clinic_id IN (", absl::StrJoin(placeholders, ", "), ")"));
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
    FHIRGW_ASSIGN_OR_RETURN(ConnectionPool::Handle conn, pool_.Acquire());
    FHIRGW_ASSIGN_OR_RETURN(Result rows, conn->ExecOnce(sql, params));
    TransactionPage page;
    for (int i = 0; i < rows.rows(); ++i) {
      if (static_cast<int>(page.transactions.size()) == page_size) {
        // There is more: the token names the last row returned.
        page.next_page_token = absl::StrCat(rows.Int(i - 1, 18), ".", rows.Int(i - 1, 17));
        break;
      }
      FHIRGW_ASSIGN_OR_RETURN(v1::Transaction tx, RowToTransaction(rows, i, false, cipher()));
      page.transactions.push_back(std::move(tx));
    }
    return page;
  }

  absl::StatusOr<std::vector<v1::LogEntry>> ListLogEntries(
      int64_t from_ms, int64_t to_ms, const std::vector<std::string>& clinic_scope,
      int64_t after_sequence, int limit) override {
    std::string sql =
        "SELECT entry FROM audit_log WHERE seq > $1 AND at_ms >= $2 AND ($3 = 0 OR at_ms < $3)";
    std::vector<Param> params = {Int(after_sequence), Int(from_ms), Int(to_ms), Int(limit)};
    for (size_t i = 0; i < clinic_scope.size(); ++i) {
      params.push_back(Text(clinic_scope[i]));
      absl::StrAppend(&sql, i == 0 ? " AND clinic_id IN (" : ", ", "$", params.size());
    }
    absl::StrAppend(&sql, clinic_scope.empty() ? "" : ")", " ORDER BY seq LIMIT $4");
    FHIRGW_ASSIGN_OR_RETURN(ConnectionPool::Handle conn, pool_.Acquire());
    FHIRGW_ASSIGN_OR_RETURN(Result rows, conn->ExecOnce(sql, params));
    std::vector<v1::LogEntry> entries;
    for (int i = 0; i < rows.rows(); ++i) {
      v1::LogEntry& entry = entries.emplace_back();
      if (!entry.ParseFromString(rows.Bytes(i, 0))) {
        return absl::DataLossError("a log entry cannot be read");
      }
    }
    return entries;
  }

  absl::StatusOr<v1::VerifyLogResponse> Verify() override {
    FHIRGW_ASSIGN_OR_RETURN(ConnectionPool::Handle conn, pool_.Acquire());
    v1::VerifyLogResponse response;
    // One snapshot of the whole database while the replicas keep writing.
    FHIRGW_RETURN_IF_ERROR(InTransaction(
        *conn, [&]() -> absl::Status { return VerifyIn(*conn, response); },
        "BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
    return response;
  }

  absl::Status SignHead() override {
    if (options_.signer == nullptr) return absl::OkStatus();
    FHIRGW_ASSIGN_OR_RETURN(ConnectionPool::Handle conn, pool_.Acquire());
    FHIRGW_ASSIGN_OR_RETURN(
        Result head,
        conn->Exec("SELECT h.seq, h.hash, (SELECT coalesce(max(s.seq), 0) FROM signed_heads s) "
                   "FROM chain_head h WHERE h.id = 1"));
    if (head.rows() != 1) return absl::InternalError("postgres: the chain_head row is missing");
    const int64_t seq = head.Int(0, 0);
    const std::string hash = head.Bytes(0, 1);
    // Another replica may have signed this head already: one signature per head is enough.
    if (seq == 0 || seq == head.Int(0, 2)) return absl::OkStatus();
    v1::SignedHead signed_head;
    signed_head.set_sequence(seq);
    signed_head.set_hash(hash);
    signed_head.set_signature(options_.signer->Sign(HeadMessage(seq, hash)));
    signed_head.set_key_id(options_.signer->key_id());
    signed_head.set_at_ms(WallClockMs());
    const std::string bytes = Canonical(signed_head);
    FHIRGW_RETURN_IF_ERROR(conn->Exec("INSERT INTO signed_heads (seq, head) VALUES ($1, $2) ON "
                                      "CONFLICT (seq) DO NOTHING",
                                      {Int(seq), Bytes(bytes)})
                               .status());
    if (options_.heads_file.empty()) return absl::OkStatus();
    // Outside the database too: deleting the database's tail must not take the evidence with it.
    const std::string line = absl::StrCat(absl::Base64Escape(bytes), "\n");
    const int fd =
        ::open(options_.heads_file.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
    if (fd < 0) return absl::UnavailableError(absl::StrCat("cannot write ", options_.heads_file));
    const bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
                    ::fdatasync(fd) == 0;
    ::close(fd);
    if (!ok) return absl::UnavailableError(absl::StrCat("cannot write ", options_.heads_file));
    return absl::OkStatus();
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
          FHIRGW_RETURN_IF_ERROR(conn->Exec("UPDATE transactions SET record = ''::bytea, fhir = "
                                            "''::bytea WHERE id = $1",
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
          entry.set_event(v1::LogEntry::PURGED);
          chain.Append(std::move(entry));
        }
        batch = ids.rows();
        return chain.Save();
      }));
      if (batch == 0) return purged;
      purged += batch;
    }
  }

  absl::Status Ping() override {
    FHIRGW_ASSIGN_OR_RETURN(ConnectionPool::Handle conn, pool_.Acquire());
    return conn->Exec("SELECT 1 FROM transactions LIMIT 1").status();
  }

  void Close() override {
    {
      std::lock_guard<std::mutex> lock(queue_mu_);
      if (closed_) return;
      closed_ = true;
      queue_cv_.notify_all();
    }
    if (committer_.joinable()) committer_.join();
    listener_stop_ = true;
    if (listener_.joinable()) listener_.join();
    // The lease keeper runs on: attempts still in flight during a drain are recorded after Close.
  }

 private:
  struct Pending {
    std::vector<NewEntry> entries;
    AppendAllCallback done;
  };

  const PayloadCipher* cipher() const { return options_.cipher.get(); }

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

  // Commits `batch` in one database transaction, then answers every caller. The batch is written
  // with a few multi-row statements; when that fails (bad data, or a concurrent insert of the same
  // version), each caller's entries are written again under a savepoint of their own, so that one
  // failing caller does not fail the others.
  void CommitBatch(std::vector<Pending>& batch) {
    std::vector<absl::StatusOr<std::vector<AppendResult>>> results;
    absl::Status commit = [&]() -> absl::Status {
      if (writer_ == nullptr || writer_->broken()) {
        writer_.reset();
        FHIRGW_ASSIGN_OR_RETURN(writer_, Connection::Open(options_.dsn, "fhirgw-commit"));
      }
      Connection& conn = *writer_;
      FHIRGW_RETURN_IF_ERROR(conn.Run(kBegin));
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
          for (Pending& p : batch) {
            results.push_back(AppendGroup(conn, chain, p.entries, inbound_clinics));
          }
        }
        FHIRGW_RETURN_IF_ERROR(chain.Save());
        // Delivered with the COMMIT: WatchInbound streams on every replica read the new rows.
        for (const std::string& clinic : inbound_clinics) {
          FHIRGW_RETURN_IF_ERROR(
              conn.Exec("SELECT pg_notify($1, $2)", {Text(kInboundChannel), Text(clinic)})
                  .status());
        }
        return conn.Commit();
      }();
      if (!status.ok() && !conn.broken() && !conn.idle()) (void)conn.Run("ROLLBACK");
      return status;
    }();
    for (size_t i = 0; i < batch.size(); ++i) {
      if (!commit.ok()) {
        batch[i].done(
            absl::UnavailableError(absl::StrCat("the record was not logged: ", commit.message())));
      } else {
        batch[i].done(std::move(results[i]));
      }
    }
  }

  // The newest version of a record as the batch being written sees it.
  struct Newest {
    std::string transaction_id;
    int64_t version = 0;
    std::string content_hash;
    v1::TransactionStatus status = v1::TRANSACTION_STATUS_UNSPECIFIED;
    std::vector<v1::Alert> alerts;
    int64_t sequence = 0;
    v1::RecordKind kind = v1::RECORD_KIND_UNSPECIFIED;
    std::string destination;
    std::string patient_id;
  };
  using RecordKey = std::tuple<std::string, std::string, int64_t>;  // clinic, record, direction

  // Appends every entry of `batch` with a handful of statements: one query for the newest stored
  // version of every record in the batch, then multi-row inserts. Dedupe and versions follow
  // Append's rules, entry by entry in batch order (a record twice in one batch is a resend the
  // second time). Fails as a whole.
  absl::Status AppendBulk(Connection& conn, Chain& chain, const std::vector<Pending>& batch,
                          std::vector<absl::StatusOr<std::vector<AppendResult>>>& results,
                          std::set<std::string>& inbound_clinics) {
    std::set<RecordKey> keys;
    for (const Pending& p : batch) {
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
      FHIRGW_ASSIGN_OR_RETURN(
          Result rows,
          conn.Exec(
              absl::StrCat("SELECT k.c, k.r, k.d, t.id, t.version, t.content_hash, t.status, "
                           "t.alerts, t.seq, t.kind, t.destination, t.patient_id FROM (VALUES ",
                           values,
                           ") AS k (c, r, d) JOIN LATERAL (SELECT x.id, x.version, x.content_hash, "
                           "x.status, x.alerts, x.seq, x.kind, x.destination, x.patient_id "
                           "FROM transactions x "
                           "WHERE x.clinic_id = k.c AND x.record_id = k.r AND x.direction = k.d "
                           "ORDER BY x.version DESC LIMIT 1) t ON true"),
              params));
      for (int i = 0; i < rows.rows(); ++i) {
        Newest& n = newest[{rows.Bytes(i, 0), rows.Bytes(i, 1), rows.Int(i, 2)}];
        n.transaction_id = rows.Bytes(i, 3);
        n.version = rows.Int(i, 4);
        n.content_hash = rows.Bytes(i, 5);
        n.status = static_cast<v1::TransactionStatus>(rows.Int(i, 6));
        n.alerts = ParseAlerts(rows.Bytes(i, 7));
        n.sequence = rows.Int(i, 8);
        n.kind = static_cast<v1::RecordKind>(rows.Int(i, 9));
        n.destination = rows.Bytes(i, 10);
        n.patient_id = rows.Bytes(i, 11);
      }
    }

    std::vector<Param> transaction_rows, key_rows;
    std::set<std::tuple<std::string, std::string>> keys_seen;  // (key, clinic)
    for (const Pending& p : batch) {
      std::vector<AppendResult> group;
      for (const NewEntry& e : p.entries) {
        const RecordKey key{e.clinic_id, e.record_id, e.direction};
        auto it = newest.find(key);
        AppendResult result;
        if (it != newest.end() && it->second.content_hash == e.content_hash) {
          const Newest& n = it->second;
          result.transaction_id = n.transaction_id;
          result.version = n.version;
          result.duplicate = true;
          result.status = n.status;
          result.alerts = n.alerts;
          result.sequence = n.sequence;
          // A resend changes nothing, but who sent what and when is part of the record.
          v1::LogEntry entry;
          entry.set_event(v1::LogEntry::RESENT);
          entry.set_transaction_id(n.transaction_id);
          entry.set_clinic_id(e.clinic_id);
          entry.set_record_id(e.record_id);
          entry.set_version(n.version);
          entry.set_kind(n.kind);
          entry.set_direction(e.direction);
          entry.set_destination(n.destination);
          entry.set_patient_id(n.patient_id);
          entry.set_status(n.status);
          entry.set_principal(e.principal);
          entry.set_at_ms(e.received_at_ms);
          chain.Append(std::move(entry));
          group.push_back(std::move(result));
          continue;
        }
        result.transaction_id = NewTransactionId();
        result.version = it == newest.end() ? 1 : it->second.version + 1;
        result.status = e.direction == v1::CLINIC_TO_EHR ? v1::ACCEPTED : v1::RECORDED;
        result.alerts = e.alerts;
        result.sequence = chain.next();
        AddTransactionRow(e, result, transaction_rows);
        chain.Append(RecordLogged(e, result));
        for (const std::string& patient_key : e.patient_keys) {
          if (!keys_seen.insert({patient_key, e.clinic_id}).second) continue;
          key_rows.push_back(Text(patient_key));
          key_rows.push_back(Text(e.clinic_id));
          key_rows.push_back(Text(e.patient_id));
        }
        if (e.direction == v1::EHR_TO_CLINIC) inbound_clinics.insert(e.clinic_id);
        newest[key] = {
            result.transaction_id, result.version, e.content_hash, result.status, e.alerts,
            result.sequence,       e.kind,         e.destination,  e.patient_id};
        group.push_back(std::move(result));
      }
      results.push_back(std::move(group));
    }
    FHIRGW_RETURN_IF_ERROR(
        InsertRows(conn, kInsertTransactions, kTransactionParams, transaction_rows));
    return InsertRows(conn, kInsertPatientKeys, 3, key_rows, "ON CONFLICT DO NOTHING");
  }

  // The parameters of a new transaction row for `e`.
  void AddTransactionRow(const NewEntry& e, const AppendResult& result, std::vector<Param>& rows) {
    for (Param p :
         {Int(result.sequence), Text(result.transaction_id), Text(e.clinic_id), Text(e.record_id),
          Int(result.version), Bytes(e.content_hash), Int(e.kind), Int(e.direction),
          Int(result.status), Text(e.destination), Text(e.patient_id), Text(e.principal),
          Int(e.received_at_ms), Int(e.received_at_ms), Int(e.received_at_ms),
          Int(e.received_at_ms), Bytes(SealPayload(cipher(), e.record)),
          Bytes(SealPayload(cipher(), e.fhir_json)), Bytes(SerializeAlerts(e.alerts))}) {
      rows.push_back(std::move(p));
    }
  }

  // The RECORD_LOGGED entry of a new transaction.
  static v1::LogEntry RecordLogged(const NewEntry& e, const AppendResult& result) {
    v1::LogEntry entry;
    entry.set_event(v1::LogEntry::RECORD_LOGGED);
    entry.set_at_ms(e.received_at_ms);
    entry.set_transaction_id(result.transaction_id);
    entry.set_clinic_id(e.clinic_id);
    entry.set_record_id(e.record_id);
    entry.set_version(result.version);
    entry.set_kind(e.kind);
    entry.set_direction(e.direction);
    entry.set_destination(e.destination);
    entry.set_principal(e.principal);
    entry.set_patient_id(e.patient_id);
    entry.set_record_sha256(Sha256(e.record));
    entry.set_fhir_sha256(Sha256(e.fhir_json));
    entry.set_status(result.status);
    return entry;
  }

  // The slow path: one caller's entries under a savepoint of their own.
  absl::StatusOr<std::vector<AppendResult>> AppendGroup(Connection& conn, Chain& chain,
                                                        const std::vector<NewEntry>& entries,
                                                        std::set<std::string>& inbound_clinics) {
    // Earlier groups' entries are written first: a rollback to this group's savepoint keeps them.
    FHIRGW_RETURN_IF_ERROR(chain.Flush());
    for (int attempt = 0;; ++attempt) {
      FHIRGW_RETURN_IF_ERROR(conn.Run("SAVEPOINT append_group"));
      const Chain::Mark mark = chain.mark();
      std::vector<AppendResult> results;
      absl::Status status;
      for (const NewEntry& entry : entries) {
        absl::StatusOr<AppendResult> result = AppendOne(conn, chain, entry);
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
      if (SqlState(status) == kUniqueViolation && attempt < 3) continue;
      return status;
    }
  }

  // Inside the batch transaction, under the chain lock: dedupe against the newest version, else
  // insert the next one.
  absl::StatusOr<AppendResult> AppendOne(Connection& conn, Chain& chain, const NewEntry& e) {
    AppendResult result;
    int64_t version = 1;
    FHIRGW_ASSIGN_OR_RETURN(
        Result latest,
        conn.Exec("SELECT id, version, content_hash, status, alerts, seq FROM transactions "
                  "WHERE clinic_id = $1 AND record_id = $2 AND direction = $3 "
                  "ORDER BY version DESC LIMIT 1",
                  {Text(e.clinic_id), Text(e.record_id), Int(e.direction)}));
    if (latest.rows() > 0) {
      if (latest.Bytes(0, 2) == e.content_hash) {
        result.transaction_id = latest.Bytes(0, 0);
        result.version = latest.Int(0, 1);
        result.duplicate = true;
        result.status = static_cast<v1::TransactionStatus>(latest.Int(0, 3));
        result.alerts = ParseAlerts(latest.Bytes(0, 4));
        result.sequence = latest.Int(0, 5);
        // A resend changes nothing, but who sent what and when is part of the record.
        FHIRGW_ASSIGN_OR_RETURN(v1::LogEntry entry, EntryFor(conn, result.transaction_id));
        entry.set_event(v1::LogEntry::RESENT);
        entry.set_status(result.status);
        entry.set_principal(e.principal);
        entry.set_at_ms(e.received_at_ms);
        chain.Append(std::move(entry));
        return result;
      }
      version = latest.Int(0, 1) + 1;
    }
    result.transaction_id = NewTransactionId();
    result.version = version;
    result.status = e.direction == v1::CLINIC_TO_EHR ? v1::ACCEPTED : v1::RECORDED;
    result.alerts = e.alerts;
    result.sequence = chain.next();
    std::vector<Param> row;
    AddTransactionRow(e, result, row);
    FHIRGW_RETURN_IF_ERROR(InsertRows(conn, kInsertTransactions, kTransactionParams, row));
    chain.Append(RecordLogged(e, result));
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
        entry.set_event(v1::LogEntry::RECOVERED);
        entry.set_status(v1::RETRYING);
        entry.set_at_ms(now_ms);
        chain.Append(std::move(entry));
      }
      recovered = expired.rows();
      return chain.Save();
    }));
    return recovered;
  }

  // Renews this replica's leases every lease_ms / 3 and reclaims expired ones, until destruction.
  void KeepLeases() {
    const auto period = std::chrono::milliseconds(std::clamp(options_.lease_ms / 3, 10, 10000));
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
                         {Text(replica_id_), Int(options_.lease_ms)})
                  .status();
            },
            kBeginUnsynced);
      }();
      if (!renewed.ok()) {
        LogWarning(absl::StrCat("cannot renew the delivery leases: ", renewed.message()));
      }
      if (options_.reclaim_expired_leases) {
        absl::StatusOr<int> reclaimed = ReclaimExpired(WallClockMs());
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
                            Connection::Open(options_.dsn, "fhirgw-listener"));
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
        if (opened.ok() && options_.on_inbound) {
          absl::StatusOr<Result> clinics = (*opened)->Exec(
              "SELECT DISTINCT clinic_id FROM transactions WHERE direction = 2 AND seq > $1",
              {Int(head)});
          missed = clinics.status();
          for (int i = 0; clinics.ok() && i < clinics->rows(); ++i) {
            options_.on_inbound(clinics->Bytes(i, 0));
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
        if (channel == kInboundChannel && options_.on_inbound) {
          options_.on_inbound(payload);
        } else if (channel == kStatusChannel && options_.on_status) {
          std::pair<std::string, std::string> parts = absl::StrSplit(payload, ' ');
          int status = 0;
          if (absl::SimpleAtoi(parts.second, &status)) {
            options_.on_status(parts.first, static_cast<v1::TransactionStatus>(status));
          }
        }
      }
    }
  }

  using FailFn = std::function<void(int64_t, std::string)>;

  struct SignedHeadRecord {
    v1::SignedHead head;
    std::string where;  // "database" or the heads file
  };

  // The checks of Verify, inside its snapshot transaction on `conn`.
  absl::Status VerifyIn(Connection& conn, v1::VerifyLogResponse& response) {
    response.Clear();
    int64_t first_bad = 0;
    std::string problem;
    const FailFn fail = [&](int64_t seq, std::string message) {
      if (first_bad == 0 || seq < first_bad) {
        first_bad = seq;
        problem = std::move(message);
      }
    };

    // 1. The chain itself, read through a cursor so that a long log is never in memory at once.
    std::vector<SignedHeadRecord> heads;
    FHIRGW_RETURN_IF_ERROR(ReadSignedHeads(conn, heads));
    std::set<int64_t> head_seqs;
    for (const SignedHeadRecord& h : heads) head_seqs.insert(h.head.sequence());
    std::map<int64_t, std::string> hash_at;  // the hashes of signed entries
    int64_t expected = 1;
    std::string previous;
    FHIRGW_RETURN_IF_ERROR(conn.ExecOnce("DECLARE chain_scan NO SCROLL CURSOR FOR SELECT seq, "
                                         "entry, prev_hash, hash FROM audit_log ORDER BY seq")
                               .status());
    while (true) {
      FHIRGW_ASSIGN_OR_RETURN(Result rows, conn.ExecOnce("FETCH FORWARD 2000 FROM chain_scan"));
      if (rows.rows() == 0) break;
      for (int i = 0; i < rows.rows(); ++i) {
        const int64_t seq = rows.Int(i, 0);
        const std::string entry = rows.Bytes(i, 1);
        const std::string stored_prev = rows.Bytes(i, 2);
        const std::string stored_hash = rows.Bytes(i, 3);
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
    FHIRGW_RETURN_IF_ERROR(conn.ExecOnce("CLOSE chain_scan").status());
    const int64_t last_seq = expected - 1;
    // The chain head every append starts from must be the log's last entry: a removed tail (with
    // or without a signing key) leaves it pointing past the end.
    FHIRGW_ASSIGN_OR_RETURN(Result head,
                            conn.ExecOnce("SELECT seq, hash FROM chain_head WHERE id = 1"));
    if (head.rows() == 1 && head.Int(0, 0) > last_seq) {
      fail(last_seq + 1,
           absl::StrCat("the log ends at entry ", last_seq, " but its chain head is entry ",
                        head.Int(0, 0), ": the tail was removed"));
    } else if (head.rows() == 1 && head.Int(0, 0) < last_seq) {
      fail(head.Int(0, 0) + 1, absl::StrCat("log entries after ", head.Int(0, 0),
                                            " were not appended through the chain head"));
    } else if (head.rows() == 1 && head.Bytes(0, 1) != previous) {
      fail(last_seq, absl::StrCat("log entry ", last_seq, " differs from the chain head"));
    }

    // 2. Every transaction against its entries, 500 at a time.
    int64_t after = 0;
    while (true) {
      FHIRGW_ASSIGN_OR_RETURN(Result txs, conn.Exec("SELECT seq, id, status, record, fhir FROM "
                                                    "transactions WHERE seq > $1 ORDER BY seq "
                                                    "LIMIT 500",
                                                    {Int(after)}));
      if (txs.rows() == 0) break;
      const int64_t last = txs.Int(txs.rows() - 1, 0);
      std::map<std::string, std::vector<std::pair<int64_t, v1::LogEntry>>> events;
      FHIRGW_ASSIGN_OR_RETURN(
          Result logged,
          conn.Exec("SELECT a.transaction_id, a.seq, a.entry FROM audit_log a JOIN transactions t "
                    "ON t.id = a.transaction_id WHERE t.seq > $1 AND t.seq <= $2 ORDER BY a.seq",
                    {Int(after), Int(last)}));
      for (int i = 0; i < logged.rows(); ++i) {
        v1::LogEntry entry;
        entry.ParseFromString(logged.Bytes(i, 2));
        events[logged.Bytes(i, 0)].emplace_back(logged.Int(i, 1), std::move(entry));
      }
      std::map<std::string, std::vector<std::string>> attempts;
      FHIRGW_ASSIGN_OR_RETURN(
          Result stored,
          conn.Exec("SELECT a.transaction_id, a.attempt FROM attempts a JOIN transactions t ON "
                    "t.id = a.transaction_id WHERE t.seq > $1 AND t.seq <= $2 "
                    "ORDER BY a.transaction_id, a.number",
                    {Int(after), Int(last)}));
      for (int i = 0; i < stored.rows(); ++i) {
        attempts[stored.Bytes(i, 0)].push_back(stored.Bytes(i, 1));
      }
      for (int i = 0; i < txs.rows(); ++i) {
        const std::string id = txs.Bytes(i, 1);
        CheckTransaction(id, static_cast<int>(txs.Int(i, 2)), txs.Bytes(i, 3), txs.Bytes(i, 4),
                         events[id], attempts[id], fail);
      }
      after = last;
    }
    // A log entry whose transaction row is gone: the row was deleted.
    FHIRGW_ASSIGN_OR_RETURN(
        Result orphan,
        conn.ExecOnce("SELECT a.seq, a.transaction_id FROM audit_log a WHERE NOT EXISTS "
                      "(SELECT 1 FROM transactions t WHERE t.id = a.transaction_id) "
                      "ORDER BY a.seq LIMIT 1"));
    if (orphan.rows() > 0) {
      fail(orphan.Int(0, 0), absl::StrCat("transaction ", orphan.Bytes(0, 1), " of log entry ",
                                          orphan.Int(0, 0), " is missing from the database"));
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
    return absl::OkStatus();
  }

  // Reads the signed heads from the database and from the heads file, when one is configured.
  absl::Status ReadSignedHeads(Connection& conn, std::vector<SignedHeadRecord>& heads) {
    FHIRGW_ASSIGN_OR_RETURN(Result rows,
                            conn.ExecOnce("SELECT head FROM signed_heads ORDER BY seq"));
    for (int i = 0; i < rows.rows(); ++i) {
      SignedHeadRecord record{v1::SignedHead(), "database"};
      record.head.ParseFromString(rows.Bytes(i, 0));
      heads.push_back(std::move(record));
    }
    if (options_.heads_file.empty()) return absl::OkStatus();
    std::ifstream file(options_.heads_file);
    std::string line;
    while (std::getline(file, line)) {
      std::string bytes;
      SignedHeadRecord record{v1::SignedHead(), options_.heads_file};
      if (!absl::Base64Unescape(line, &bytes) || !record.head.ParseFromString(bytes)) continue;
      heads.push_back(std::move(record));
    }
    return absl::OkStatus();
  }

  // Checks one transaction row against its log entries: it was logged, its payloads are the ones
  // logged (or were purged, which is logged too), its status is the last one logged, and its
  // attempts are the logged ones. A claim is not logged, so DELIVERING matches a transaction whose
  // last logged status is one a claim starts from.
  void CheckTransaction(const std::string& id, int status, const std::string& record,
                        const std::string& fhir,
                        const std::vector<std::pair<int64_t, v1::LogEntry>>& entries,
                        const std::vector<std::string>& attempts, const FailFn& fail) {
    if (entries.empty() || entries.front().second.event() != v1::LogEntry::RECORD_LOGGED) {
      fail(entries.empty() ? std::numeric_limits<int64_t>::max() : entries.front().first,
           absl::StrCat("transaction ", id, " has no log entry recording it"));
      return;
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
      return;
    }
    const bool empty = plain_record->empty() && plain_fhir->empty();
    if (!(purged && empty) && (Sha256(*plain_record) != logged.record_sha256() ||
                               Sha256(*plain_fhir) != logged.fhir_sha256())) {
      fail(logged_seq, absl::StrCat("transaction ", id, " (log entry ", logged_seq,
                                    "): the stored record or FHIR is not what was logged"));
    }
    const v1::TransactionStatus last_logged = entries.back().second.status();
    const bool claimed =
        status == v1::DELIVERING && (last_logged == v1::ACCEPTED || last_logged == v1::RETRYING);
    if (last_logged != status && !claimed) {
      fail(entries.back().first,
           absl::StrCat("transaction ", id, ": its status ",
                        v1::TransactionStatus_Name(static_cast<v1::TransactionStatus>(status)),
                        " is not the status logged last (", v1::TransactionStatus_Name(last_logged),
                        ", entry ", entries.back().first, ")"));
    }
    std::vector<const std::pair<int64_t, v1::LogEntry>*> logged_attempts;
    for (const auto& e : entries) {
      if (e.second.event() == v1::LogEntry::DELIVERY_ATTEMPT) logged_attempts.push_back(&e);
    }
    size_t index = 0;
    for (const std::string& stored : attempts) {
      absl::StatusOr<std::string> bytes = OpenPayload(cipher(), stored);
      v1::DeliveryAttempt attempt;
      if (!bytes.ok() || !attempt.ParseFromString(*bytes)) {
        fail(logged_seq, absl::StrCat("transaction ", id, ": an attempt cannot be read"));
        return;
      }
      if (index >= logged_attempts.size()) {
        fail(logged_seq,
             absl::StrCat("transaction ", id, ": attempt ", attempt.number(), " was never logged"));
        return;
      }
      const auto& [seq, entry] = *logged_attempts[index++];
      const bool same = Canonical(WithoutResponse(attempt)) == Canonical(entry.attempt()) &&
                        ((purged && attempt.response().empty()) ||
                         Sha256(attempt.response()) == entry.response_sha256());
      if (!same) {
        fail(seq, absl::StrCat("transaction ", id, ": attempt ", attempt.number(),
                               " is not the one logged (entry ", seq, ")"));
      }
    }
    if (index < logged_attempts.size()) {
      fail(logged_attempts[index]->first,
           absl::StrCat("transaction ", id, ": a logged attempt is missing from the database"));
    }
  }

  const PostgresOptions options_;
  std::string replica_id_;
  ConnectionPool pool_;
  std::unique_ptr<Connection> writer_;  // the commit thread's own

  std::mutex queue_mu_;
  std::condition_variable queue_cv_;
  std::deque<Pending> queue_;  // guarded by queue_mu_
  int queued_entries_ = 0;     // guarded by queue_mu_
  bool closed_ = false;        // guarded by queue_mu_
  std::thread committer_;

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
