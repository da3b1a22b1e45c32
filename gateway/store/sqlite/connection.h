// SQLite connections as the SQLite store uses them: opening with the store's pragmas (WAL,
// synchronous=FULL), prepared statements, and SqliteReader, the shared SQL code's view (sql.h) of
// one connection.
#ifndef FHIRGW_GATEWAY_STORE_SQLITE_CONNECTION_H_
#define FHIRGW_GATEWAY_STORE_SQLITE_CONNECTION_H_

#include <sqlite3.h>

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "gateway/store/sql.h"

namespace fhirgw::gateway::sqlite {

absl::Status SqliteError(sqlite3* db, absl::string_view what);

// Runs one or more parameterless statements on `db`.
absl::Status Exec(sqlite3* db, const char* sql);

// Opens (creating if needed) the database at `path` with the store's pragmas.
absl::StatusOr<sqlite3*> OpenConnection(const std::string& path);

// A prepared statement, reset after each use.
class Statement final : public SqlRow {
 public:
  Statement() = default;
  Statement(const Statement&) = delete;
  Statement& operator=(const Statement&) = delete;
  ~Statement() override { sqlite3_finalize(stmt_); }

  bool prepared() const { return stmt_ != nullptr; }
  absl::Status Prepare(sqlite3* db, const char* sql);

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
  absl::StatusOr<bool> Step();
  // Steps to the end and resets.
  absl::Status Run();
  void Reset() {
    sqlite3_reset(stmt_);
    sqlite3_clear_bindings(stmt_);
  }

  int64_t Int(int col) const override { return sqlite3_column_int64(stmt_, col); }
  bool IsNull(int col) const override { return sqlite3_column_type(stmt_, col) == SQLITE_NULL; }
  std::string Bytes(int col) const override;

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

// The shared SQL code's view of `db`: Query keeps its statements prepared (until destruction,
// which must come before the connection closes).
class SqliteReader final : public SqlReader {
 public:
  explicit SqliteReader(sqlite3* db) : db_(db) {}

  absl::Status Query(const std::string& sql, const std::vector<SqlParam>& params,
                     const RowFn& row) override;
  absl::Status QueryOnce(const std::string& sql, const std::vector<SqlParam>& params,
                         const RowFn& row) override;

 private:
  static absl::Status Run(Statement& statement, const std::vector<SqlParam>& params,
                          const RowFn& row);

  sqlite3* db_;
  std::map<std::string, std::unique_ptr<Statement>> prepared_;
};

}  // namespace fhirgw::gateway::sqlite

#endif  // FHIRGW_GATEWAY_STORE_SQLITE_CONNECTION_H_
