#include "gateway/store/sql_store.h"

#include <optional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "fhir/status_macros.h"
#include "gateway/store/log_codec.h"
#include "gateway/store/query_builder.h"
#include "gateway/store/row_codec.h"

namespace fhirgw::gateway {

SqlStore::SqlStore(Options options)
    : options_(std::move(options)),
      queue_(options_.max_batch, options_.max_batch_delay_us, options_.cipher.get()) {}

void SqlStore::Append(NewEntry entry, AppendCallback done) {
  queue_.Append(std::move(entry), std::move(done));
}

void SqlStore::AppendAll(std::vector<NewEntry> entries, AppendAllCallback done) {
  queue_.AppendAll(std::move(entries), std::move(done));
}

absl::StatusOr<std::vector<PatientMatch>> SqlStore::FindPatient(
    const std::vector<std::string>& keys) {
  std::vector<PatientMatch> matches;
  FHIRGW_RETURN_IF_ERROR(WithReader([&](SqlReader& db) -> absl::Status {
    for (const std::string& key : keys) {
      FHIRGW_RETURN_IF_ERROR(db.Query(
          "SELECT clinic_id, clinic_patient_id FROM patient_keys WHERE key = ?1 ORDER BY clinic_id",
          {key}, [&](const SqlRow& row) {
            PatientMatch match{row.Bytes(0), row.Bytes(1)};
            for (const PatientMatch& m : matches) {
              if (m.clinic_id == match.clinic_id &&
                  m.clinic_patient_id == match.clinic_patient_id) {
                return absl::OkStatus();
              }
            }
            matches.push_back(std::move(match));
            return absl::OkStatus();
          }));
    }
    return absl::OkStatus();
  }));
  return matches;
}

absl::StatusOr<bool> SqlStore::HasRecord(absl::string_view clinic_id, absl::string_view record_id,
                                         v1::Direction direction) {
  bool found = false;
  FHIRGW_RETURN_IF_ERROR(WithReader([&](SqlReader& db) {
    return db.Query(
        "SELECT 1 FROM transactions WHERE clinic_id = ?1 AND record_id = ?2 AND direction = ?3 "
        "LIMIT 1",
        {std::string(clinic_id), std::string(record_id), int64_t{direction}}, [&](const SqlRow&) {
          found = true;
          return absl::OkStatus();
        });
  }));
  return found;
}

absl::StatusOr<std::vector<v1::Alert>> SqlStore::PreviousAlerts(absl::string_view clinic_id,
                                                                absl::string_view record_id,
                                                                v1::Direction direction) {
  std::optional<LatestVersion> latest;
  FHIRGW_RETURN_IF_ERROR(WithReader([&](SqlReader& db) {
    return db.Query(kLatestVersionSql,
                    {std::string(clinic_id), std::string(record_id), int64_t{direction}},
                    [&](const SqlRow& row) {
                      latest = LatestFromRow(row, 0);
                      return absl::OkStatus();
                    });
  }));
  if (!latest.has_value()) return std::vector<v1::Alert>();
  return OpenAlerts(cipher(), std::move(latest->sealed_alerts));
}

absl::StatusOr<std::vector<EhrPatient>> SqlStore::EhrPatients(absl::string_view destination) {
  const std::string prefix = absl::StrCat(destination, "|Patient/");
  std::vector<EhrPatient> patients;
  FHIRGW_RETURN_IF_ERROR(WithReader([&](SqlReader& db) {
    return db.Query(
        "SELECT key, clinic_id, clinic_patient_id FROM patient_keys WHERE key >= ?1 AND key < ?2 "
        "ORDER BY clinic_id, clinic_patient_id",
        {prefix, absl::StrCat(destination, "|Patient0")}, [&](const SqlRow& row) {
          patients.push_back({row.Bytes(1), row.Bytes(2), row.Bytes(0).substr(prefix.size())});
          return absl::OkStatus();
        });
  }));
  return patients;
}

absl::StatusOr<std::vector<InboundItem>> SqlStore::ListInbound(absl::string_view clinic_id,
                                                               int64_t after_sequence, int limit) {
  std::vector<InboundItem> items;
  FHIRGW_RETURN_IF_ERROR(WithReader([&](SqlReader& db) {
    return db.Query(absl::StrCat("SELECT ", kTransactionColumns,
                                 " FROM transactions WHERE clinic_id = ?1 AND direction = 2 "
                                 "AND seq > ?2 ORDER BY seq LIMIT ?3"),
                    {std::string(clinic_id), after_sequence, int64_t{limit}},
                    [&](const SqlRow& row) -> absl::Status {
                      FHIRGW_ASSIGN_OR_RETURN(v1::Transaction tx,
                                              RowToTransaction(row, true, cipher()));
                      items.push_back({row.Int(kTransactionSeqColumn), std::move(tx)});
                      return absl::OkStatus();
                    });
  }));
  return items;
}

absl::StatusOr<std::string> SqlStore::GetState(absl::string_view key) {
  std::string value;
  FHIRGW_RETURN_IF_ERROR(WithReader([&](SqlReader& db) {
    return db.Query("SELECT value FROM state WHERE key = ?1", {std::string(key)},
                    [&](const SqlRow& row) {
                      value = row.Bytes(0);
                      return absl::OkStatus();
                    });
  }));
  return value;
}

absl::StatusOr<v1::Transaction> SqlStore::Get(absl::string_view transaction_id, bool with_payload) {
  std::optional<v1::Transaction> tx;
  FHIRGW_RETURN_IF_ERROR(WithReader([&](SqlReader& db) -> absl::Status {
    const std::vector<SqlParam> id = {std::string(transaction_id)};
    FHIRGW_RETURN_IF_ERROR(
        db.Query(absl::StrCat("SELECT ", kTransactionColumns, " FROM transactions WHERE id = ?1"),
                 id, [&](const SqlRow& row) -> absl::Status {
                   FHIRGW_ASSIGN_OR_RETURN(tx, RowToTransaction(row, with_payload, cipher()));
                   return absl::OkStatus();
                 }));
    if (!tx.has_value()) {
      return absl::NotFoundError(absl::StrCat("no transaction ", transaction_id));
    }
    return db.Query("SELECT attempt FROM attempts WHERE transaction_id = ?1 ORDER BY number", id,
                    [&](const SqlRow& row) -> absl::Status {
                      FHIRGW_ASSIGN_OR_RETURN(std::string attempt,
                                              OpenPayload(cipher(), row.Bytes(0)));
                      tx->add_attempts()->ParseFromString(attempt);
                      return absl::OkStatus();
                    });
  }));
  return *std::move(tx);
}

absl::StatusOr<std::optional<int64_t>> SqlStore::NextDueAt(absl::string_view destination) {
  std::optional<int64_t> due;
  FHIRGW_RETURN_IF_ERROR(WithReader([&](SqlReader& db) {
    return db.Query(
        "SELECT min(next_attempt_at_ms) FROM transactions WHERE destination = ?1 AND status = 4",
        {std::string(destination)}, [&](const SqlRow& row) {
          if (!row.IsNull(0)) due = row.Int(0);
          return absl::OkStatus();
        });
  }));
  return due;
}

absl::StatusOr<QueueStats> SqlStore::Stats() {
  QueueStats stats;
  FHIRGW_RETURN_IF_ERROR(WithReader([&](SqlReader& db) {
    return db.Query(
        "SELECT (SELECT count(*) FROM transactions WHERE status IN (1, 2, 4)), "
        "(SELECT coalesce(min(received_at_ms), 0) FROM transactions WHERE status IN (1, 2, 4)), "
        "(SELECT count(*) FROM transactions WHERE status = 6)",
        {}, [&](const SqlRow& row) {
          stats.undelivered = row.Int(0);
          stats.oldest_undelivered_ms = row.Int(1);
          stats.dead_letters = row.Int(2);
          return absl::OkStatus();
        });
  }));
  return stats;
}

absl::StatusOr<TransactionPage> SqlStore::Query(const TransactionQuery& query) {
  absl::StatusOr<TransactionPage> page;
  FHIRGW_RETURN_IF_ERROR(WithReader([&](SqlReader& db) {
    page = QueryTransactions(db, query, cipher());
    return page.status();
  }));
  return page;
}

absl::StatusOr<std::vector<v1::LogEntry>> SqlStore::ListLogEntries(
    int64_t from_ms, int64_t to_ms, const std::vector<std::string>& clinic_scope,
    int64_t after_sequence, int limit) {
  absl::StatusOr<std::vector<v1::LogEntry>> entries;
  FHIRGW_RETURN_IF_ERROR(WithReader([&](SqlReader& db) {
    entries = gateway::ListLogEntries(db, from_ms, to_ms, clinic_scope, after_sequence, limit);
    return entries.status();
  }));
  return entries;
}

absl::StatusOr<v1::VerifyLogResponse> SqlStore::Verify() {
  absl::StatusOr<v1::VerifyLogResponse> response;
  const VerifyOptions options = verify_options();
  FHIRGW_RETURN_IF_ERROR(WithSnapshot([&](SqlReader& db) {
    response = VerifyLog(db, options);
    return response.status();
  }));
  return response;
}

absl::Status SqlStore::Ping() {
  return WithReader([](SqlReader& db) { return db.Execute("SELECT 1 FROM transactions LIMIT 1"); });
}

}  // namespace fhirgw::gateway
