// The PostgreSQL transaction log: the Store (store.h) that several gateway replicas share, so that
// together they behave like one gateway.
//
//   PostgresOptions options;
//   options.dsn = "host=db.internal dbname=fhirgw user=fhirgw";
//   options.on_inbound = [&hub](const std::string& clinic) { hub.Publish(clinic); };
//   FHIRGW_ASSIGN_OR_RETURN(std::unique_ptr<Store> store, OpenPostgresStore(options));
//
// How the replicas stay one gateway:
// - Appends are group-committed by a commit thread (one database transaction per batch, with
//   synchronous_commit on), and acknowledged only after COMMIT returns.
// - Every transaction that appends to the hash chain first locks the single chain_head row
//   (SELECT ... FOR UPDATE) and holds it until COMMIT, so chain order is commit order across
//   replicas, the content-hash dedupe is serialized, and a transaction's sequence (the chain
//   sequence of its RECORD_LOGGED entry, also the WatchInbound cursor) never lets a reader skip a
//   row that commits later.
// - ClaimNext picks due rows with SELECT ... FOR UPDATE SKIP LOCKED, takes a per-patient advisory
//   lock (one transaction of a patient in flight across replicas), and marks the row DELIVERING
//   with a lease (lease_owner, lease_until_ms, by the database clock). A background thread renews
//   this replica's leases and turns expired ones (a dead replica's) into RETRYING, logged as
//   RECOVERED. CompleteAttempt applies only while the lease is still this replica's.
// - LISTEN/NOTIFY wakes WatchInbound streams and wait_for_delivery pushes on every replica.
#ifndef FHIRGW_GATEWAY_STORE_POSTGRES_POSTGRES_STORE_H_
#define FHIRGW_GATEWAY_STORE_POSTGRES_POSTGRES_STORE_H_

#include <functional>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "fhirgw/v1/config.pb.h"
#include "gateway/security/crypto.h"
#include "gateway/store/store.h"

namespace fhirgw::gateway {

struct PostgresOptions {
  // libpq connection string ("host=... dbname=... user=..." or a postgresql:// URI).
  std::string dsn;
  // How long a claimed delivery stays this replica's without renewal; renewed every lease_ms / 3
  // while the replica lives, so only a dead (or cut-off) replica's work is taken over.
  int lease_ms = 30000;
  // Group commit, as in SqliteOptions.
  int max_batch = 256;
  int max_batch_delay_us = 0;
  // Connections for reads, claims and attempts (the commit thread and the listener have their
  // own).
  int max_connections = 16;
  // Turns expired leases into RETRYING in the background (RecoverInFlight does it on demand).
  bool reclaim_expired_leases = true;
  // This replica's id in lease_owner; empty: "<hostname>/<pid>/<random>".
  std::string replica_id;
  // Encrypts payloads at rest when set.
  std::shared_ptr<const PayloadCipher> cipher = nullptr;
  // Signs the chain head when set. Signed heads go to the signed_heads table and, when
  // `heads_file` is set, to that file too (outside the database). Every replica must use the same
  // key, since Verify checks every signed head.
  std::shared_ptr<const HeadSigner> signer = nullptr;
  std::string heads_file;
  // Called on the store's listener thread with a clinic id whenever any replica logged hospital
  // data for that clinic (LISTEN/NOTIFY); must be quick.
  std::function<void(const std::string& clinic_id)> on_inbound;
  // Called on the listener thread when any replica recorded a final status (DELIVERED, REJECTED,
  // DEAD_LETTER) for a transaction; must be quick.
  std::function<void(const std::string& transaction_id, v1::TransactionStatus status)> on_status;
};

// Connects to `options.dsn`, creates the schema if needed (under an advisory lock, so replicas
// starting together do not race) and starts the commit, listener and lease threads.
absl::StatusOr<std::unique_ptr<Store>> OpenPostgresStore(const PostgresOptions& options);

// Returns the connection string of `config`: `dsn`, or the value of the environment variable
// `dsn_env`. InvalidArgument naming the field when neither gives one.
absl::StatusOr<std::string> ResolvePostgresDsn(const v1::StoreConfig::Postgres& config);

}  // namespace fhirgw::gateway

#endif  // FHIRGW_GATEWAY_STORE_POSTGRES_POSTGRES_STORE_H_
