#include "gateway/store/query_builder.h"

#include <algorithm>
#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_split.h"
#include "fhir/status_macros.h"
#include "gateway/store/row_codec.h"

namespace fhirgw::gateway {

absl::StatusOr<BuiltQuery> BuildTransactionQuery(const TransactionQuery& q) {
  BuiltQuery built;
  std::vector<std::string> where;
  auto bind = [&](const std::string& value) {
    built.params.push_back(value);
    return absl::StrCat("?", built.params.size());
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
  if (!q.destination.empty()) where.push_back(absl::StrCat("destination = ", bind(q.destination)));
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
  built.page_size = std::clamp(q.page_size <= 0 ? 50 : q.page_size, 1, 1000);
  built.sql = absl::StrCat("SELECT ", kTransactionColumns, ", received_at_ms FROM transactions",
                           where.empty() ? "" : " WHERE ", absl::StrJoin(where, " AND "),
                           " ORDER BY received_at_ms DESC, seq DESC LIMIT ", built.page_size + 1);
  return built;
}

BuiltQuery BuildLogEntriesQuery(int64_t from_ms, int64_t to_ms,
                                const std::vector<std::string>& clinic_scope,
                                int64_t after_sequence, int limit) {
  BuiltQuery built;
  built.sql =
      "SELECT entry FROM audit_log WHERE seq > ?1 AND at_ms >= ?2 AND (?3 = 0 OR at_ms < ?3)";
  built.params = {after_sequence, from_ms, to_ms, int64_t{limit}};
  for (size_t i = 0; i < clinic_scope.size(); ++i) {
    built.params.push_back(clinic_scope[i]);
    absl::StrAppend(&built.sql, i == 0 ? " AND clinic_id IN (" : ", ", "?", built.params.size());
  }
  absl::StrAppend(&built.sql, clinic_scope.empty() ? "" : ")", " ORDER BY seq LIMIT ?4");
  return built;
}

absl::StatusOr<TransactionPage> QueryTransactions(SqlReader& db, const TransactionQuery& query,
                                                  const PayloadCipher* cipher) {
  FHIRGW_ASSIGN_OR_RETURN(BuiltQuery built, BuildTransactionQuery(query));
  TransactionPage page;
  int64_t last_seq = 0, last_received = 0;
  FHIRGW_RETURN_IF_ERROR(
      db.QueryOnce(built.sql, built.params, [&](const SqlRow& row) -> absl::Status {
        if (!page.next_page_token.empty()) return absl::OkStatus();
        if (static_cast<int>(page.transactions.size()) == built.page_size) {
          // There is more: the token names the last row returned.
          page.next_page_token = absl::StrCat(last_received, ".", last_seq);
          return absl::OkStatus();
        }
        FHIRGW_ASSIGN_OR_RETURN(v1::Transaction tx, RowToTransaction(row, false, cipher));
        last_seq = row.Int(kTransactionSeqColumn);
        last_received = row.Int(kTransactionSeqColumn + 1);
        page.transactions.push_back(std::move(tx));
        return absl::OkStatus();
      }));
  return page;
}

absl::StatusOr<std::vector<v1::LogEntry>> ListLogEntries(
    SqlReader& db, int64_t from_ms, int64_t to_ms, const std::vector<std::string>& clinic_scope,
    int64_t after_sequence, int limit) {
  const BuiltQuery built =
      BuildLogEntriesQuery(from_ms, to_ms, clinic_scope, after_sequence, limit);
  std::vector<v1::LogEntry> entries;
  FHIRGW_RETURN_IF_ERROR(
      db.QueryOnce(built.sql, built.params, [&](const SqlRow& row) -> absl::Status {
        if (!entries.emplace_back().ParseFromString(row.Bytes(0))) {
          return absl::DataLossError("a log entry cannot be read");
        }
        return absl::OkStatus();
      }));
  return entries;
}

}  // namespace fhirgw::gateway
