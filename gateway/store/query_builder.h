// The audit queries both Store backends run, built once: QueryTransactions filters, page tokens
// and ordering (Store::Query), and the log listing (Store::ListLogEntries), as SQL text with ?N
// parameters (sql.h) and the values to bind.
//
// Integer filters are written into the text, so that the planner sees them (SQLite picks partial
// and per-column indexes only for values it can see); texts are bound.
//
//   FHIRGW_ASSIGN_OR_RETURN(TransactionPage page, QueryTransactions(db, query, cipher));
#ifndef FHIRGW_GATEWAY_STORE_QUERY_BUILDER_H_
#define FHIRGW_GATEWAY_STORE_QUERY_BUILDER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fhirgw/v1/audit.pb.h"
#include "gateway/security/crypto.h"
#include "gateway/store/sql.h"
#include "gateway/store/store.h"

namespace fhirgw::gateway {

struct BuiltQuery {
  std::string sql;
  std::vector<SqlParam> params;
  int page_size = 0;  // Store::Query: rows per page (the SQL asks for one more)
};

// Returns the statement of `query`: kTransactionColumns and received_at_ms of one page plus one
// row, newest first. InvalidArgument naming page_token when it is not one this code made.
absl::StatusOr<BuiltQuery> BuildTransactionQuery(const TransactionQuery& query);

// Returns the statement listing the log entries after `after_sequence`, at [from_ms, to_ms) (to_ms
// 0: no end), of the clinics in `clinic_scope` (empty: all), at most `limit`.
BuiltQuery BuildLogEntriesQuery(int64_t from_ms, int64_t to_ms,
                                const std::vector<std::string>& clinic_scope,
                                int64_t after_sequence, int limit);

// Runs `query` on `db`: a page of transactions without payloads and the token of the next.
absl::StatusOr<TransactionPage> QueryTransactions(SqlReader& db, const TransactionQuery& query,
                                                  const PayloadCipher* cipher);

// Runs BuildLogEntriesQuery on `db`; DataLoss when an entry does not parse.
absl::StatusOr<std::vector<v1::LogEntry>> ListLogEntries(
    SqlReader& db, int64_t from_ms, int64_t to_ms, const std::vector<std::string>& clinic_scope,
    int64_t after_sequence, int limit);

}  // namespace fhirgw::gateway

#endif  // FHIRGW_GATEWAY_STORE_QUERY_BUILDER_H_
