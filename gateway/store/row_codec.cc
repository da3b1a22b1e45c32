#include "gateway/store/row_codec.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "fhir/status_macros.h"
#include "gateway/store/log_codec.h"

namespace fhirgw::gateway {

absl::StatusOr<v1::Transaction> RowToTransaction(const SqlRow& row, bool with_payload,
                                                 const PayloadCipher* cipher) {
  v1::Transaction tx;
  tx.set_transaction_id(row.Bytes(0));
  tx.set_clinic_id(row.Bytes(1));
  tx.set_record_id(row.Bytes(2));
  tx.set_version(row.Int(3));
  tx.set_kind(static_cast<v1::RecordKind>(row.Int(4)));
  tx.set_direction(static_cast<v1::Direction>(row.Int(5)));
  tx.set_status(static_cast<v1::TransactionStatus>(row.Int(6)));
  tx.set_destination(row.Bytes(7));
  tx.set_patient_id(row.Bytes(8));
  tx.set_principal(row.Bytes(9));
  *tx.mutable_received_at() = ToTimestamp(row.Int(10));
  *tx.mutable_updated_at() = ToTimestamp(row.Int(11));
  if (tx.status() == v1::RETRYING || tx.status() == v1::ACCEPTED) {
    *tx.mutable_next_attempt_at() = ToTimestamp(row.Int(12));
  }
  v1::Transaction extra;
  absl::StatusOr<std::string> alerts = OpenPayload(cipher, row.Bytes(13));
  if (alerts.ok()) {
    extra.ParseFromString(*alerts);
  } else if (with_payload) {
    return alerts.status();
  }
  extra.MergeFromString(row.Bytes(14));
  tx.mutable_alerts()->Swap(extra.mutable_alerts());
  tx.mutable_resources()->Swap(extra.mutable_resources());
  if (with_payload) {
    FHIRGW_ASSIGN_OR_RETURN(std::string record, OpenPayload(cipher, row.Bytes(15)));
    FHIRGW_ASSIGN_OR_RETURN(std::string fhir, OpenPayload(cipher, row.Bytes(16)));
    tx.mutable_record()->ParseFromString(record);
    tx.set_fhir_json(std::move(fhir));
  }
  return tx;
}

v1::LogEntry EntryFromRow(const SqlRow& row, int first, absl::string_view transaction_id) {
  v1::LogEntry entry;
  entry.set_transaction_id(std::string(transaction_id));
  entry.set_clinic_id(row.Bytes(first));
  entry.set_record_id(row.Bytes(first + 1));
  entry.set_version(row.Int(first + 2));
  entry.set_kind(static_cast<v1::RecordKind>(row.Int(first + 3)));
  entry.set_direction(static_cast<v1::Direction>(row.Int(first + 4)));
  entry.set_destination(row.Bytes(first + 5));
  entry.set_patient_id(row.Bytes(first + 6));
  entry.set_status(static_cast<v1::TransactionStatus>(row.Int(first + 7)));
  return entry;
}

std::string SealAlerts(const PayloadCipher* cipher, const std::vector<v1::Alert>& alerts) {
  v1::Transaction holder;
  for (const v1::Alert& alert : alerts) *holder.add_alerts() = alert;
  return SealPayload(cipher, holder.SerializeAsString());
}

absl::StatusOr<std::vector<v1::Alert>> OpenAlerts(const PayloadCipher* cipher, std::string stored) {
  FHIRGW_ASSIGN_OR_RETURN(std::string bytes, OpenPayload(cipher, std::move(stored)));
  v1::Transaction holder;
  holder.ParseFromString(bytes);
  return std::vector<v1::Alert>(holder.alerts().begin(), holder.alerts().end());
}

std::string SerializeResources(const std::vector<v1::ResourceRef>& resources) {
  if (resources.empty()) return "";
  v1::Transaction holder;
  for (const v1::ResourceRef& ref : resources) *holder.add_resources() = ref;
  return holder.SerializeAsString();
}

int64_t AttemptEndMs(const v1::DeliveryAttempt& attempt) {
  return attempt.started_at().seconds() * 1000 + attempt.started_at().nanos() / 1000000 +
         attempt.duration_ms();
}

google::protobuf::Timestamp ToTimestamp(int64_t ms) {
  google::protobuf::Timestamp t;
  t.set_seconds(ms / 1000);
  t.set_nanos(static_cast<int32_t>(ms % 1000) * 1000000);
  return t;
}

v1::DeliveryAttempt WithoutResponse(const v1::DeliveryAttempt& attempt) {
  v1::DeliveryAttempt copy = attempt;
  copy.clear_response();
  for (v1::Issue& issue : *copy.mutable_issues()) issue.clear_message();
  return copy;
}

bool AnswerIsEmpty(const v1::DeliveryAttempt& attempt) {
  if (!attempt.response().empty()) return false;
  for (const v1::Issue& issue : attempt.issues()) {
    if (!issue.message().empty()) return false;
  }
  return true;
}

std::string AnswerSha256(const v1::DeliveryAttempt& attempt) {
  bool texts = false;
  for (const v1::Issue& issue : attempt.issues()) texts = texts || !issue.message().empty();
  if (!texts) return Sha256(attempt.response());
  std::string framed =
      absl::StrCat("fhirgw-answer:", attempt.response().size(), ":", attempt.response());
  for (const v1::Issue& issue : attempt.issues()) {
    absl::StrAppend(&framed, ":", issue.message().size(), ":", issue.message());
  }
  return Sha256(framed);
}

PreparedEntry PrepareEntry(const NewEntry& entry, const PayloadCipher* cipher) {
  PreparedEntry prepared;
  prepared.transaction_id = NewTransactionId();
  prepared.record_sha256 = Sha256(entry.record);
  prepared.fhir_sha256 = Sha256(entry.fhir_json);
  prepared.sealed_record = SealPayload(cipher, entry.record);
  prepared.sealed_fhir = SealPayload(cipher, entry.fhir_json);
  prepared.sealed_alerts = SealAlerts(cipher, entry.alerts);
  return prepared;
}

LatestVersion LatestFromRow(const SqlRow& row, int first) {
  LatestVersion latest;
  latest.version = row.Int(first + 1);
  latest.content_hash = row.Bytes(first + 2);
  AppendResult& duplicate = latest.duplicate;
  duplicate.transaction_id = row.Bytes(first);
  duplicate.version = latest.version;
  duplicate.duplicate = true;
  duplicate.status = static_cast<v1::TransactionStatus>(row.Int(first + 3));
  latest.sealed_alerts = row.Bytes(first + 4);
  duplicate.sequence = row.Int(first + 5);
  return latest;
}

AppendResult NewVersionResult(const NewEntry& entry, const PreparedEntry& prepared, int64_t version,
                              int64_t sequence) {
  AppendResult result;
  result.transaction_id = prepared.transaction_id;
  result.version = version;
  result.status = entry.rejected                         ? v1::REJECTED
                  : entry.direction == v1::CLINIC_TO_EHR ? v1::ACCEPTED
                                                         : v1::RECORDED;
  result.alerts = entry.alerts;
  result.sequence = sequence;
  return result;
}

v1::LogEntry RecordLoggedEntry(const NewEntry& e, const PreparedEntry& prepared,
                               const AppendResult& result) {
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
  entry.set_record_sha256(prepared.record_sha256);
  entry.set_fhir_sha256(prepared.fhir_sha256);
  entry.set_status(result.status);
  return entry;
}

v1::LogEntry ResentEntry(v1::LogEntry skeleton, const NewEntry& entry,
                         v1::TransactionStatus status) {
  skeleton.set_event(v1::LogEntry::RESENT);
  skeleton.set_status(status);
  skeleton.set_principal(entry.principal);
  skeleton.set_at_ms(entry.received_at_ms);
  return skeleton;
}

v1::LogEntry AttemptEntry(v1::LogEntry skeleton, const AttemptResult& result) {
  skeleton.set_event(v1::LogEntry::DELIVERY_ATTEMPT);
  skeleton.set_status(result.new_status);
  *skeleton.mutable_attempt() = WithoutResponse(result.attempt);
  skeleton.set_response_sha256(AnswerSha256(result.attempt));
  return skeleton;
}

v1::LogEntry EventEntry(v1::LogEntry skeleton, v1::LogEntry::Event event,
                        v1::TransactionStatus status, int64_t at_ms) {
  skeleton.set_event(event);
  if (status != v1::TRANSACTION_STATUS_UNSPECIFIED) skeleton.set_status(status);
  if (at_ms != 0) skeleton.set_at_ms(at_ms);
  return skeleton;
}

}  // namespace fhirgw::gateway
