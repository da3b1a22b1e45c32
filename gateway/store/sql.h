// What the shared SQL code (row codec, query builder, chain verification, the shared reads of
// SqlStore) needs from a backend's connection: run a statement with bound parameters and read its
// rows. SQLite and PostgreSQL implement it over their own connections.
//
// Statements are written in SQLite's syntax for parameters, ?1, ?2, ...; PostgreSQL's connection
// rewrites them to $1, $2, ... (RenderPlaceholders), the one syntax difference the shared
// statements have.
//
//   FHIRGW_RETURN_IF_ERROR(db.Query("SELECT value FROM state WHERE key = ?1", {std::string(key)},
//                                   [&](const SqlRow& row) { value = row.Bytes(0); return
//                                   absl::OkStatus(); }));
#ifndef FHIRGW_GATEWAY_STORE_SQL_H_
#define FHIRGW_GATEWAY_STORE_SQL_H_

#include <cstdint>
#include <functional>
#include <string>
#include <variant>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace fhirgw::gateway {

// A bound parameter: an integer or a text.
using SqlParam = std::variant<int64_t, std::string>;

// One row of a result. Integer columns read as int64 (NULL as 0); text and blob columns as bytes.
class SqlRow {
 public:
  virtual ~SqlRow() = default;
  virtual int64_t Int(int col) const = 0;
  virtual std::string Bytes(int col) const = 0;
  virtual bool IsNull(int col) const = 0;
};

// A connection (or a snapshot on one) that runs statements.
class SqlReader {
 public:
  using RowFn = std::function<absl::Status(const SqlRow&)>;

  virtual ~SqlReader() = default;

  // Runs `sql` with `params` bound to ?1, ?2, ..., calling `row` for every result row (in order;
  // the first error it returns stops the statement and is returned). Backends may cache the
  // prepared statement: use it for statements of a fixed text.
  virtual absl::Status Query(const std::string& sql, const std::vector<SqlParam>& params,
                             const RowFn& row) = 0;

  // As Query, for a text built per call (not worth caching).
  virtual absl::Status QueryOnce(const std::string& sql, const std::vector<SqlParam>& params,
                                 const RowFn& row) {
    return Query(sql, params, row);
  }

  // Runs `sql` for its effect; any rows are ignored.
  absl::Status Execute(const std::string& sql, const std::vector<SqlParam>& params = {}) {
    return Query(sql, params, [](const SqlRow&) { return absl::OkStatus(); });
  }
};

// Returns `sql` with every parameter ?N written `prefix`N (PostgreSQL: '$').
std::string RenderPlaceholders(absl::string_view sql, char prefix);

}  // namespace fhirgw::gateway

#endif  // FHIRGW_GATEWAY_STORE_SQL_H_
