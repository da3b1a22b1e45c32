// PostgreSQL connections as the PostgreSQL store uses them: libpq connections with a cache of
// prepared statements and binary results, a pool, transactions retried on deadlocks, multi-row
// inserts, and PgReader, the shared SQL code's view (sql.h) of one connection.
#ifndef FHIRGW_GATEWAY_STORE_POSTGRES_CONNECTION_H_
#define FHIRGW_GATEWAY_STORE_POSTGRES_CONNECTION_H_

#include <libpq-fe.h>

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/cord.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "fhir/status_macros.h"
#include "gateway/ops/log.h"
#include "gateway/store/sql.h"

namespace fhirgw::gateway::postgres {

// The chain lock and the claim rules reason about READ COMMITTED (each statement sees what
// committed before it), whatever the server's default isolation.
inline constexpr char kBegin[] = "BEGIN ISOLATION LEVEL READ COMMITTED";
// For writes whose loss in a database crash is harmless (claims, lease renewals): no WAL flush
// wait.
inline constexpr char kBeginUnsynced[] =
    "BEGIN ISOLATION LEVEL READ COMMITTED; SET LOCAL synchronous_commit = off";

inline constexpr char kSqlStatePayload[] = "type.googleapis.com/fhirgw.PostgresSqlState";
inline constexpr char kUniqueViolation[] = "23505";
inline constexpr char kDeadlock[] = "40P01";
inline constexpr char kSerializationFailure[] = "40001";

// Type OIDs of the parameters we send (pg_type.h is a server header).
inline constexpr Oid kInt8Oid = 20;
inline constexpr Oid kTextOid = 25;
inline constexpr Oid kByteaOid = 17;
inline constexpr Oid kInt8ArrayOid = 1016;

// The SQLSTATE of a failed statement ("" when the failure was not the server's answer).
std::string SqlState(const absl::Status& status);

// One statement parameter, sent in binary (or text, for arrays).
struct Param {
  std::string value;
  Oid type = 0;
  int format = 1;
};

Param Int(int64_t v);
Param Text(absl::string_view v);
Param Bytes(absl::string_view v);
Param Int8Array(const std::vector<int64_t>& values);

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

// One row of `result`, as the shared SQL code reads rows.
class PgRow final : public SqlRow {
 public:
  PgRow(const Result& result, int row) : result_(result), row_(row) {}
  int64_t Int(int col) const override { return result_.Int(row_, col); }
  std::string Bytes(int col) const override { return result_.Bytes(row_, col); }
  bool IsNull(int col) const override { return result_.IsNull(row_, col); }

 private:
  const Result& result_;
  int row_;
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
                           const char* begin = kBegin);

// Inserts rows of `columns` parameters each (`params`, row after row) with multi-row VALUES:
// `head` is "INSERT INTO table (columns)", `tail` e.g. "ON CONFLICT DO NOTHING". A batch costs a
// few statements instead of one per row.
absl::Status InsertRows(Connection& conn, absl::string_view head, int columns,
                        const std::vector<Param>& params, absl::string_view tail = "");

// The shared SQL code's view of `conn` (statements with ?N parameters, rewritten to $N).
class PgReader final : public SqlReader {
 public:
  explicit PgReader(Connection& conn) : conn_(conn) {}
  absl::Status Query(const std::string& sql, const std::vector<SqlParam>& params,
                     const RowFn& row) override;
  absl::Status QueryOnce(const std::string& sql, const std::vector<SqlParam>& params,
                         const RowFn& row) override;

 private:
  Connection& conn_;
};

}  // namespace fhirgw::gateway::postgres

#endif  // FHIRGW_GATEWAY_STORE_POSTGRES_CONNECTION_H_
