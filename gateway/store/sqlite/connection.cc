#include "gateway/store/sqlite/connection.h"

#include <type_traits>
#include <variant>

#include "absl/strings/str_cat.h"
#include "fhir/status_macros.h"

namespace fhirgw::gateway::sqlite {

absl::Status SqliteError(sqlite3* db, absl::string_view what) {
  return absl::InternalError(absl::StrCat("sqlite: ", what, ": ", sqlite3_errmsg(db)));
}

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

absl::Status Statement::Prepare(sqlite3* db, const char* sql) {
  db_ = db;
  if (sqlite3_prepare_v3(db, sql, -1, SQLITE_PREPARE_PERSISTENT, &stmt_, nullptr) != SQLITE_OK) {
    return SqliteError(db, absl::StrCat("prepare ", sql));
  }
  return absl::OkStatus();
}

absl::StatusOr<bool> Statement::Step() {
  const int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return SqliteError(db_, "step");
}

absl::Status Statement::Run() {
  absl::StatusOr<bool> row = Step();
  Reset();
  return row.status();
}

std::string Statement::Bytes(int col) const {
  const void* data = sqlite3_column_blob(stmt_, col);
  const int size = sqlite3_column_bytes(stmt_, col);
  return data == nullptr ? std::string() : std::string(static_cast<const char*>(data), size);
}

absl::Status SqliteReader::Query(const std::string& sql, const std::vector<SqlParam>& params,
                                 const RowFn& row) {
  std::unique_ptr<Statement>& statement = prepared_[sql];
  if (statement == nullptr) {
    auto prepared = std::make_unique<Statement>();
    FHIRGW_RETURN_IF_ERROR(prepared->Prepare(db_, sql.c_str()));
    statement = std::move(prepared);
  }
  return Run(*statement, params, row);
}

absl::Status SqliteReader::QueryOnce(const std::string& sql, const std::vector<SqlParam>& params,
                                     const RowFn& row) {
  Statement statement;
  FHIRGW_RETURN_IF_ERROR(statement.Prepare(db_, sql.c_str()));
  return Run(statement, params, row);
}

absl::Status SqliteReader::Run(Statement& statement, const std::vector<SqlParam>& params,
                               const RowFn& row) {
  ResetOnExit reset(statement);
  for (size_t i = 0; i < params.size(); ++i) {
    const int index = static_cast<int>(i + 1);
    if (const int64_t* value = std::get_if<int64_t>(&params[i])) {
      statement.Bind(index, *value);
    } else {
      statement.Bind(index, std::get<std::string>(params[i]));
    }
  }
  while (true) {
    FHIRGW_ASSIGN_OR_RETURN(bool more, statement.Step());
    if (!more) return absl::OkStatus();
    FHIRGW_RETURN_IF_ERROR(row(statement));
  }
}

}  // namespace fhirgw::gateway::sqlite
