#include "gateway/store/postgres/schema.h"

namespace fhirgw::gateway::postgres {
namespace {

// Every integer is BIGINT (binary results decode one way); every id a lookup or an ordering uses is
// COLLATE "C", so that ranges and orderings are bytewise, as in SQLite. `seq` of a transaction is
// the chain sequence of its RECORD_LOGGED entry: assigned under the chain_head lock, so its order
// is commit order.
constexpr char kSchema[] = R"sql(
CREATE TABLE IF NOT EXISTS transactions (
  seq BIGINT PRIMARY KEY,
  id TEXT COLLATE "C" NOT NULL UNIQUE,
  clinic_id TEXT COLLATE "C" NOT NULL,
  record_id TEXT COLLATE "C" NOT NULL,
  version BIGINT NOT NULL,
  content_hash BYTEA NOT NULL,
  kind BIGINT NOT NULL,
  direction BIGINT NOT NULL,
  status BIGINT NOT NULL,
  destination TEXT COLLATE "C" NOT NULL,
  patient_id TEXT COLLATE "C" NOT NULL,
  principal TEXT NOT NULL,
  received_at_ms BIGINT NOT NULL,
  updated_at_ms BIGINT NOT NULL,
  queued_at_ms BIGINT NOT NULL,
  next_attempt_at_ms BIGINT NOT NULL,
  attempt_count BIGINT NOT NULL DEFAULT 0,
  attempt_base BIGINT NOT NULL DEFAULT 0,
  lease_owner TEXT NOT NULL DEFAULT '',
  lease_until_ms BIGINT NOT NULL DEFAULT 0,
  record BYTEA NOT NULL,
  fhir BYTEA NOT NULL,
  alerts BYTEA NOT NULL,
  resources BYTEA NOT NULL DEFAULT ''::bytea,
  UNIQUE (clinic_id, record_id, direction, version)
);
CREATE INDEX IF NOT EXISTS transactions_due ON transactions (destination, next_attempt_at_ms, seq)
  WHERE status IN (1, 4);
CREATE INDEX IF NOT EXISTS transactions_undelivered ON transactions (received_at_ms)
  WHERE status IN (1, 2, 4);
CREATE INDEX IF NOT EXISTS transactions_in_flight ON transactions (clinic_id, patient_id)
  WHERE status = 2;
CREATE INDEX IF NOT EXISTS transactions_leases ON transactions (lease_until_ms) WHERE status = 2;
CREATE INDEX IF NOT EXISTS transactions_owner ON transactions (lease_owner) WHERE status = 2;
CREATE INDEX IF NOT EXISTS transactions_retrying ON transactions (destination, next_attempt_at_ms)
  WHERE status = 4;
CREATE INDEX IF NOT EXISTS transactions_dead ON transactions (clinic_id) WHERE status = 6;
CREATE INDEX IF NOT EXISTS transactions_inbound ON transactions (clinic_id, seq) WHERE direction = 2;
CREATE INDEX IF NOT EXISTS transactions_purgeable ON transactions (received_at_ms)
  WHERE status IN (3, 5, 6, 7);
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
CREATE TABLE IF NOT EXISTS patient_keys (
  key TEXT COLLATE "C" NOT NULL,
  clinic_id TEXT COLLATE "C" NOT NULL,
  clinic_patient_id TEXT COLLATE "C" NOT NULL,
  PRIMARY KEY (key, clinic_id)
);
CREATE TABLE IF NOT EXISTS state (
  key TEXT COLLATE "C" PRIMARY KEY,
  value TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS audit_log (
  seq BIGINT PRIMARY KEY,
  at_ms BIGINT NOT NULL,
  transaction_id TEXT COLLATE "C" NOT NULL,
  clinic_id TEXT COLLATE "C" NOT NULL,
  entry BYTEA NOT NULL,
  prev_hash BYTEA NOT NULL,
  hash BYTEA NOT NULL
);
CREATE INDEX IF NOT EXISTS audit_log_transaction ON audit_log (transaction_id, seq);
CREATE INDEX IF NOT EXISTS audit_log_at ON audit_log (at_ms);
CREATE INDEX IF NOT EXISTS audit_log_clinic ON audit_log (clinic_id, seq);
CREATE TABLE IF NOT EXISTS chain_head (
  id BIGINT PRIMARY KEY CHECK (id = 1),
  seq BIGINT NOT NULL,
  hash BYTEA NOT NULL
);
INSERT INTO chain_head (id, seq, hash) VALUES (1, 0, ''::bytea) ON CONFLICT (id) DO NOTHING;
CREATE TABLE IF NOT EXISTS signed_heads (
  seq BIGINT PRIMARY KEY,
  head BYTEA NOT NULL
);
CREATE TABLE IF NOT EXISTS attempts (
  transaction_id TEXT COLLATE "C" NOT NULL,
  number BIGINT NOT NULL,
  attempt BYTEA NOT NULL,
  PRIMARY KEY (transaction_id, number)
);
)sql";

// pg_advisory_lock key of the schema ("fhirgw" in ASCII).
constexpr int64_t kSchemaLockKey = 0x666869726777;

}  // namespace

absl::Status CreateSchema(Connection& conn) {
  // Replicas starting together would race on CREATE ... IF NOT EXISTS (a unique violation in the
  // catalog): one creates the schema while the others wait.
  FHIRGW_RETURN_IF_ERROR(
      conn.ExecOnce("SELECT pg_advisory_lock($1)", {Int(kSchemaLockKey)}).status());
  absl::Status schema = conn.Run(kSchema);
  (void)conn.ExecOnce("SELECT pg_advisory_unlock($1)", {Int(kSchemaLockKey)});
  return schema;
}

}  // namespace fhirgw::gateway::postgres
