#include "gateway/store/postgres/connection.h"

#include <algorithm>
#include <utility>
#include <variant>

#include "absl/strings/str_join.h"

namespace fhirgw::gateway::postgres {

std::string SqlState(const absl::Status& status) {
  absl::optional<absl::Cord> state = status.GetPayload(kSqlStatePayload);
  return state ? std::string(*state) : std::string();
}

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

absl::Status InTransaction(Connection& conn, const std::function<absl::Status()>& body,
                           const char* begin) {
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

absl::Status InsertRows(Connection& conn, absl::string_view head, int columns,
                        const std::vector<Param>& params, absl::string_view tail) {
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

namespace {

std::vector<Param> ToParams(const std::vector<SqlParam>& params) {
  std::vector<Param> converted;
  converted.reserve(params.size());
  for (const SqlParam& p : params) {
    if (const int64_t* value = std::get_if<int64_t>(&p)) {
      converted.push_back(Int(*value));
    } else {
      converted.push_back(Text(std::get<std::string>(p)));
    }
  }
  return converted;
}

absl::Status EachRow(const Result& result, const SqlReader::RowFn& row) {
  for (int i = 0; i < result.rows(); ++i) FHIRGW_RETURN_IF_ERROR(row(PgRow(result, i)));
  return absl::OkStatus();
}

}  // namespace

absl::Status PgReader::Query(const std::string& sql, const std::vector<SqlParam>& params,
                             const RowFn& row) {
  FHIRGW_ASSIGN_OR_RETURN(Result result,
                          conn_.Exec(RenderPlaceholders(sql, '$'), ToParams(params)));
  return EachRow(result, row);
}

absl::Status PgReader::QueryOnce(const std::string& sql, const std::vector<SqlParam>& params,
                                 const RowFn& row) {
  FHIRGW_ASSIGN_OR_RETURN(Result result,
                          conn_.ExecOnce(RenderPlaceholders(sql, '$'), ToParams(params)));
  return EachRow(result, row);
}

}  // namespace fhirgw::gateway::postgres
