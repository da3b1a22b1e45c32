#include "gateway/store/sqlite/schema.h"

#include "gateway/store/sqlite/connection.h"

namespace fhirgw::gateway::sqlite {
namespace {

constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS transactions (
  seq INTEGER PRIMARY KEY AUTOINCREMENT,
  id TEXT NOT NULL UNIQUE,
  clinic_id TEXT NOT NULL,
  record_id TEXT NOT NULL,
  version INTEGER NOT NULL,
  content_hash BLOB NOT NULL,
  kind INTEGER NOT NULL,
  direction INTEGER NOT NULL,
  status INTEGER NOT NULL,
  destination TEXT NOT NULL,
  patient_id TEXT NOT NULL,
  principal TEXT NOT NULL,
  received_at_ms INTEGER NOT NULL,
  updated_at_ms INTEGER NOT NULL,
  queued_at_ms INTEGER NOT NULL,
  next_attempt_at_ms INTEGER NOT NULL,
  attempt_count INTEGER NOT NULL DEFAULT 0,
  attempt_base INTEGER NOT NULL DEFAULT 0,
  record BLOB NOT NULL,
  fhir TEXT NOT NULL,
  alerts BLOB NOT NULL,
  resources BLOB NOT NULL DEFAULT x'',
  UNIQUE (clinic_id, record_id, direction, version)
);
CREATE INDEX IF NOT EXISTS transactions_due ON transactions (destination, next_attempt_at_ms, seq)
  WHERE status IN (1, 4);
CREATE INDEX IF NOT EXISTS transactions_undelivered ON transactions (received_at_ms)
  WHERE status IN (1, 2, 4);
CREATE INDEX IF NOT EXISTS transactions_in_flight ON transactions (clinic_id, patient_id)
  WHERE status = 2;
CREATE INDEX IF NOT EXISTS transactions_dead ON transactions (clinic_id) WHERE status = 6;
CREATE INDEX IF NOT EXISTS transactions_inbound ON transactions (clinic_id, seq) WHERE direction = 2;
CREATE TABLE IF NOT EXISTS patient_keys (
  key TEXT NOT NULL,
  clinic_id TEXT NOT NULL,
  clinic_patient_id TEXT NOT NULL,
  PRIMARY KEY (key, clinic_id)
) WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS state (
  key TEXT PRIMARY KEY,
  value TEXT NOT NULL
) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS transactions_received ON transactions (received_at_ms, seq);
CREATE INDEX IF NOT EXISTS transactions_clinic ON transactions (clinic_id, received_at_ms);
CREATE INDEX IF NOT EXISTS transactions_patient ON transactions (clinic_id, patient_id, received_at_ms);
-- QueryTransactions by the clinic's patient id alone (any clinic): without it the query walks every
-- transaction in time order.
CREATE INDEX IF NOT EXISTS transactions_patient_id ON transactions (patient_id, received_at_ms);
CREATE INDEX IF NOT EXISTS transactions_destination ON transactions (destination, received_at_ms);
CREATE INDEX IF NOT EXISTS transactions_status ON transactions (status, received_at_ms);
CREATE INDEX IF NOT EXISTS transactions_kind ON transactions (kind, received_at_ms);
CREATE INDEX IF NOT EXISTS transactions_direction ON transactions (direction, received_at_ms);
CREATE INDEX IF NOT EXISTS transactions_record ON transactions (record_id, received_at_ms);
CREATE TABLE IF NOT EXISTS audit_log (
  seq INTEGER PRIMARY KEY,
  at_ms INTEGER NOT NULL,
  transaction_id TEXT NOT NULL,
  clinic_id TEXT NOT NULL,
  entry BLOB NOT NULL,
  prev_hash BLOB NOT NULL,
  hash BLOB NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_transaction ON audit_log (transaction_id, seq);
CREATE INDEX IF NOT EXISTS audit_log_at ON audit_log (at_ms);
CREATE INDEX IF NOT EXISTS audit_log_clinic ON audit_log (clinic_id, seq);
CREATE TABLE IF NOT EXISTS signed_heads (
  seq INTEGER PRIMARY KEY,
  head BLOB NOT NULL
);
CREATE TABLE IF NOT EXISTS attempts (
  transaction_id TEXT NOT NULL,
  number INTEGER NOT NULL,
  attempt BLOB NOT NULL,
  PRIMARY KEY (transaction_id, number)
);
)sql";

}  // namespace

absl::Status CreateSchema(sqlite3* db) { return Exec(db, kSchema); }

}  // namespace fhirgw::gateway::sqlite
