// The row codec both Store backends share: how a stored transaction row reads back as a
// v1::Transaction, how alerts and payloads are sealed (log_codec), and how the log entries of
// each event are built, so that SQLite and PostgreSQL store and log exactly the same things.
//
// What stays out of the log: log entries are neither encrypted nor purged, so they never hold the
// EHR's answer or its issue texts (EHRs echo the patient in them); WithoutResponse and
// AnswerSha256 say what the log keeps instead.
//
//   FHIRGW_ASSIGN_OR_RETURN(v1::Transaction tx, RowToTransaction(row, /*with_payload=*/true,
//   cipher));
#ifndef FHIRGW_GATEWAY_STORE_ROW_CODEC_H_
#define FHIRGW_GATEWAY_STORE_ROW_CODEC_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fhirgw/v1/audit.pb.h"
#include "fhirgw/v1/gateway.pb.h"
#include "gateway/security/crypto.h"
#include "gateway/store/sql.h"
#include "gateway/store/store.h"

namespace fhirgw::gateway {

// The transaction columns RowToTransaction reads, in order; `seq` is column kTransactionSeqColumn.
inline constexpr char kTransactionColumns[] =
    "id, clinic_id, record_id, version, kind, direction, status, destination, patient_id, "
    "principal, received_at_ms, updated_at_ms, next_attempt_at_ms, alerts, resources, record, "
    "fhir, seq";
inline constexpr int kTransactionSeqColumn = 17;

// Reads a row of kTransactionColumns. Payloads (record, FHIR) only `with_payload`. Alerts are
// encrypted (they quote answers): without their key a listing still shows the transaction,
// without its alerts, and with payloads the decryption error is the answer.
absl::StatusOr<v1::Transaction> RowToTransaction(const SqlRow& row, bool with_payload,
                                                 const PayloadCipher* cipher);

// The columns of a transaction every log entry about it repeats, in the order EntryFromRow reads.
inline constexpr char kEntryColumns[] =
    "clinic_id, record_id, version, kind, direction, destination, patient_id, status";

// The log entry skeleton of transaction `transaction_id` from kEntryColumns starting at `first`.
v1::LogEntry EntryFromRow(const SqlRow& row, int first, absl::string_view transaction_id);

// Alerts as stored: serialized and sealed (PHQ-9 item 9 answers are PHI).
std::string SealAlerts(const PayloadCipher* cipher, const std::vector<v1::Alert>& alerts);
absl::StatusOr<std::vector<v1::Alert>> OpenAlerts(const PayloadCipher* cipher, std::string stored);

// `resources` as stored in the resources column ("" when none).
std::string SerializeResources(const std::vector<v1::ResourceRef>& resources);

// When `attempt` ended, in ms since the epoch.
int64_t AttemptEndMs(const v1::DeliveryAttempt& attempt);

google::protobuf::Timestamp ToTimestamp(int64_t ms);

// A DeliveryAttempt as the log keeps it: without the EHR's answer, i.e. without the response body
// and the issue texts parsed from it (AnswerSha256 is kept instead).
v1::DeliveryAttempt WithoutResponse(const v1::DeliveryAttempt& attempt);

// True when `attempt` holds nothing of the EHR's answer (never had one, or it was purged).
bool AnswerIsEmpty(const v1::DeliveryAttempt& attempt);

// The SHA-256 the log keeps of the EHR's answer in `attempt`: of the response body alone when no
// issue has a text, else of the body and every issue text, each length-prefixed.
std::string AnswerSha256(const v1::DeliveryAttempt& attempt);

// What an append needs that does not depend on the log's state: made on the caller's thread, so
// that the one commit thread, which every push waits for, does not spend its time hashing,
// encrypting and drawing ids.
struct PreparedEntry {
  std::string transaction_id;  // used unless the entry turns out to be a resend
  std::string record_sha256;
  std::string fhir_sha256;
  std::string sealed_record;
  std::string sealed_fhir;
  std::string sealed_alerts;
};
PreparedEntry PrepareEntry(const NewEntry& entry, const PayloadCipher* cipher);

// The newest version of a record, read by kLatestVersionSql (clinic ?1, record ?2, direction ?3).
// Rejected pushes (NewEntry::rejected, versions below 0) are not versions.
inline constexpr char kLatestVersionSql[] =
    "SELECT id, version, content_hash, status, alerts, seq FROM transactions "
    "WHERE clinic_id = ?1 AND record_id = ?2 AND direction = ?3 AND version > 0 "
    "ORDER BY version DESC LIMIT 1";
// The version of a record's next rejected push: -1 for the first, then -2, ... (same parameters).
inline constexpr char kNextRejectionSql[] =
    "SELECT coalesce(min(version), 0) - 1 FROM transactions "
    "WHERE clinic_id = ?1 AND record_id = ?2 AND direction = ?3 AND version < 0";
struct LatestVersion {
  int64_t version = 0;
  std::string content_hash;
  AppendResult duplicate;     // the answer to a resend of this version, but for its alerts
  std::string sealed_alerts;  // OpenAlerts gives them
};
// Reads the columns of kLatestVersionSql's row starting at `first`.
LatestVersion LatestFromRow(const SqlRow& row, int first);

// The result of logging `entry` as a new transaction, version `version` (a rejected entry's from
// kNextRejectionSql), at chain position `sequence`.
AppendResult NewVersionResult(const NewEntry& entry, const PreparedEntry& prepared, int64_t version,
                              int64_t sequence);

// The RECORD_LOGGED entry of a new transaction.
v1::LogEntry RecordLoggedEntry(const NewEntry& entry, const PreparedEntry& prepared,
                               const AppendResult& result);

// The RESENT entry of a resend of `entry` (`skeleton` from EntryFromRow): who sent what and when is
// part of the record, though nothing changes.
v1::LogEntry ResentEntry(v1::LogEntry skeleton, const NewEntry& entry,
                         v1::TransactionStatus status);

// The DELIVERY_ATTEMPT entry of `result` (`skeleton` from EntryFromRow).
v1::LogEntry AttemptEntry(v1::LogEntry skeleton, const AttemptResult& result);

// The entry of an event without details (RECOVERED, REPLAYED, PURGED) at `at_ms` (0: now).
v1::LogEntry EventEntry(v1::LogEntry skeleton, v1::LogEntry::Event event,
                        v1::TransactionStatus status, int64_t at_ms);

}  // namespace fhirgw::gateway

#endif  // FHIRGW_GATEWAY_STORE_ROW_CODEC_H_
