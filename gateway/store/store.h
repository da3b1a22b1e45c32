// The transaction log: where every pushed record is made durable before it is acknowledged, and
// where the delivery workers find their work.
//
// `Store` is an interface so that SQLite (the default, sqlite_store.h) and PostgreSQL (for several
// gateway replicas) behave the same. Appends are group-committed: concurrent pushes share one
// fsync, and each caller's callback runs once its record is durable.
//
//   store->Append(std::move(entry), [](absl::StatusOr<AppendResult> r) { /* ack the clinic */ });
//   std::optional<DeliveryTask> task = *store->ClaimNext("st-olaf", NowMs());
//   store->CompleteAttempt(result);
#ifndef FHIRGW_GATEWAY_STORE_STORE_H_
#define FHIRGW_GATEWAY_STORE_STORE_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/digest.h"
#include "fhirgw/v1/audit.pb.h"
#include "fhirgw/v1/gateway.pb.h"

namespace fhirgw::gateway {

// A record to log, mapped and routed.
struct NewEntry {
  std::string clinic_id;
  std::string record_id;
  std::string patient_id;    // the clinic's patient id (deliveries of one patient are serialized)
  std::string content_hash;  // SHA-256 of the record's deterministic serialization
  v1::RecordKind kind = v1::RECORD_KIND_UNSPECIFIED;
  v1::Direction direction = v1::CLINIC_TO_EHR;
  std::string destination;
  std::string record;     // serialized v1::ClinicRecord
  std::string fhir_json;  // the transaction Bundle
  std::vector<v1::Alert> alerts;
  std::string principal;
  int64_t received_at_ms = 0;
  // Keys under which the patient is known, "system|value" (outbound: the clinic's id and the other
  // identifiers pushed), so that hospital data about the patient can be routed back to the clinic.
  std::vector<std::string> patient_keys;
  // A clinic record the gateway refused (validation), logged so that auditors see every push:
  // status REJECTED, `fhir_json` the OperationOutcome naming its issues, `alerts` the ones it
  // raised anyway, no destination and no patient keys (its data is not trusted for routing). It
  // takes no version of the record: the rejections of a record are numbered -1, -2, ..., so that a
  // corrected resubmission becomes the version the rejected push would have been. It is never
  // deduplicated (each rejected push is logged) and never delivered.
  bool rejected = false;
};

struct AppendResult {
  std::string transaction_id;
  int64_t version = 0;
  bool duplicate = false;
  v1::TransactionStatus status = v1::ACCEPTED;
  std::vector<v1::Alert> alerts;  // of the original transaction when duplicate
  int64_t sequence = 0;           // position in the log (the WatchInbound cursor)
};

// A clinic that knows a patient, and its id for them.
struct PatientMatch {
  std::string clinic_id;
  std::string clinic_patient_id;
};

// A patient as the EHR behind a destination knows them (from the ids it assigned on delivery).
struct EhrPatient {
  std::string clinic_id;
  std::string clinic_patient_id;
  std::string ehr_patient_id;  // the id in Patient/<id>
};

struct InboundItem {
  int64_t sequence = 0;
  v1::Transaction transaction;  // with payload (record and source FHIR)
};

// One transaction handed to a delivery worker; it stays DELIVERING until CompleteAttempt.
struct DeliveryTask {
  std::string transaction_id;
  std::string destination;
  std::string fhir_json;
  int attempt_number = 1;   // the number of the attempt about to be made (1-based, never reused)
  int attempts_so_far = 0;  // attempts since the transaction was queued or last replayed
  int64_t queued_at_ms = 0;
};

// The outcome of one delivery attempt, and what follows from it.
struct AttemptResult {
  std::string transaction_id;
  v1::DeliveryAttempt attempt;             // number, times, HTTP status, answer, issues
  v1::TransactionStatus new_status;        // DELIVERED, RETRYING, REJECTED or DEAD_LETTER
  int64_t next_attempt_at_ms = 0;          // for RETRYING
  std::vector<v1::ResourceRef> resources;  // for DELIVERED
};

struct QueueStats {
  int64_t undelivered = 0;  // ACCEPTED, DELIVERING or RETRYING
  int64_t dead_letters = 0;
  int64_t oldest_undelivered_ms = 0;  // received_at of the oldest undelivered; 0 when none
};

// Filters of AuditService.QueryTransactions; empty fields do not filter.
struct TransactionQuery {
  int64_t from_ms = 0;
  int64_t to_ms = 0;  // exclusive; 0: no end
  std::string clinic_id;
  std::vector<std::string> clinic_scope;  // the caller's clinics (empty: all)
  // The clinic's patient id, or "system|value" of any identifier the patient is known by.
  std::string patient_identifier;
  v1::RecordKind kind = v1::RECORD_KIND_UNSPECIFIED;
  v1::Direction direction = v1::DIRECTION_UNSPECIFIED;
  v1::TransactionStatus status = v1::TRANSACTION_STATUS_UNSPECIFIED;
  std::string destination;
  std::string record_id;
  int page_size = 50;
  std::string page_token;
};

struct TransactionPage {
  std::vector<v1::Transaction> transactions;
  std::string next_page_token;
};

class Store {
 public:
  using AppendCallback = std::function<void(absl::StatusOr<AppendResult>)>;

  virtual ~Store() = default;

  // Logs `entry` durably and then calls `done` (on the store's commit thread: keep it short). A
  // resend of the same (clinic_id, record_id, content_hash) as the newest version returns that
  // transaction with duplicate = true and logs nothing; a changed content becomes version N+1. A
  // rejected entry (NewEntry::rejected) is always logged, as a rejection, not as a version.
  virtual void Append(NewEntry entry, AppendCallback done) = 0;

  // Logs every entry of `entries` in one database transaction, or none of them (for FHIR
  // transaction Bundles). Duplicates are detected per entry as in Append.
  using AppendAllCallback = std::function<void(absl::StatusOr<std::vector<AppendResult>>)>;
  virtual void AppendAll(std::vector<NewEntry> entries, AppendAllCallback done) = 0;

  // Returns the clinics that know a patient under any of `keys` ("system|value", or
  // "<destination>|Patient/<id>" for an id the EHR behind a destination assigned).
  virtual absl::StatusOr<std::vector<PatientMatch>> FindPatient(
      const std::vector<std::string>& keys) = 0;

  // True when `clinic_id` has logged a record `record_id` in `direction` (e.g. to recognise a
  // clinic's own records when the EHR returns them in a search).
  virtual absl::StatusOr<bool> HasRecord(absl::string_view clinic_id, absl::string_view record_id,
                                         v1::Direction direction) = 0;

  // Returns the alerts of the newest version of `record_id` that `clinic_id` logged in `direction`
  // (rejected pushes are not versions), or none when there is no version yet: what a correction
  // must resolve at the EHR (mappers::PreviousVersion).
  virtual absl::StatusOr<std::vector<v1::Alert>> PreviousAlerts(absl::string_view clinic_id,
                                                                absl::string_view record_id,
                                                                v1::Direction direction) = 0;

  // Returns the patients whose EHR ids are known at `destination`.
  virtual absl::StatusOr<std::vector<EhrPatient>> EhrPatients(absl::string_view destination) = 0;

  // Returns up to `limit` inbound transactions of `clinic_id` logged after `after_sequence`, oldest
  // first.
  virtual absl::StatusOr<std::vector<InboundItem>> ListInbound(absl::string_view clinic_id,
                                                               int64_t after_sequence,
                                                               int limit) = 0;

  // A small durable key-value table for pollers (e.g. the last _lastUpdated seen per search).
  virtual absl::StatusOr<std::string> GetState(absl::string_view key) = 0;
  virtual absl::Status SetState(absl::string_view key, absl::string_view value) = 0;

  // Returns the transaction with its attempts and EHR resources; payloads (record, FHIR) only when
  // `with_payload`. NotFound for an unknown id.
  virtual absl::StatusOr<v1::Transaction> Get(absl::string_view transaction_id,
                                              bool with_payload) = 0;

  // Claims the next due transaction for `destination` (status ACCEPTED or RETRYING and due by
  // `now_ms`), marking it DELIVERING. Versions of one record go in order, and no two transactions
  // of one patient are in flight at once (conditional creates of the Patient would race at the
  // EHR).
  virtual absl::StatusOr<std::optional<DeliveryTask>> ClaimNext(absl::string_view destination,
                                                                int64_t now_ms) = 0;

  // Records an attempt and the transaction's new status, durably.
  virtual absl::Status CompleteAttempt(const AttemptResult& result) = 0;

  // Returns the earliest next_attempt_at of `destination`'s RETRYING transactions, if any.
  virtual absl::StatusOr<std::optional<int64_t>> NextDueAt(absl::string_view destination) = 0;

  // After a crash, transactions left DELIVERING may or may not have reached the EHR; conditional
  // writes make a resend safe, so they become RETRYING, due at once. The lost attempt keeps its
  // number (and counts against the retry budget), so attempt numbers are never reused. Returns how
  // many.
  virtual absl::StatusOr<int> RecoverInFlight(int64_t now_ms) = 0;

  // Puts DEAD_LETTER transactions back in the queue: the given ids, or all of `clinic_id` (all
  // clinics when empty). Returns the ids replayed.
  virtual absl::StatusOr<std::vector<std::string>> Replay(const std::vector<std::string>& ids,
                                                          absl::string_view clinic_id,
                                                          int64_t now_ms) = 0;

  virtual absl::StatusOr<QueueStats> Stats() = 0;

  // --- Audit -------------------------------------------------------------------------------------

  // Returns a page of transactions matching `query`, newest first, without payloads.
  virtual absl::StatusOr<TransactionPage> Query(const TransactionQuery& query) = 0;

  // Returns up to `limit` log entries after `after_sequence`, in log order, recorded in
  // [from_ms, to_ms) (to_ms 0: no end), of the clinics in `clinic_scope` (empty: all).
  virtual absl::StatusOr<std::vector<v1::LogEntry>> ListLogEntries(
      int64_t from_ms, int64_t to_ms, const std::vector<std::string>& clinic_scope,
      int64_t after_sequence, int limit) = 0;

  // Recomputes the hash chain, checks every transaction against its log entries and the newest
  // signed chain head against the chain (so that a truncated tail is detected).
  virtual absl::StatusOr<v1::VerifyLogResponse> Verify() = 0;

  // Signs the chain head if it moved since the last signature (no-op without a signing key).
  virtual absl::Status SignHead() = 0;

  // Purges the payloads (PHI) of finished transactions received before `before_ms`; hashes and
  // metadata stay, so the chain still verifies. Returns how many transactions were purged.
  virtual absl::StatusOr<int> PurgePayloads(int64_t before_ms) = 0;

  // Checks that the store answers (for /readyz).
  virtual absl::Status Ping() = 0;

  // Commits what is queued and stops the commit thread; later Appends fail with Unavailable.
  virtual void Close() = 0;
};

// Returns a new random transaction id (UUIDv4 text).
std::string NewTransactionId();

// The log's digest: SHA-256 of `data` as 32 raw bytes (base/digest.h).
using ::fhirgw::base::Sha256;

}  // namespace fhirgw::gateway

#endif  // FHIRGW_GATEWAY_STORE_STORE_H_
