// The SQLite transaction log: WAL journal, synchronous=FULL, and group commit (one writer thread
// commits every queued append in one transaction, so concurrent pushes share an fsync).
//
//   FHIRGW_ASSIGN_OR_RETURN(std::unique_ptr<Store> store, OpenSqliteStore({.path =
//   "var/fhirgw.db"}));
#ifndef FHIRGW_GATEWAY_STORE_SQLITE_SQLITE_STORE_H_
#define FHIRGW_GATEWAY_STORE_SQLITE_SQLITE_STORE_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "gateway/security/crypto.h"
#include "gateway/store/store.h"

namespace fhirgw::gateway {

struct SqliteOptions {
  std::string path;
  // Most appends committed in one transaction.
  int max_batch = 256;
  // After the first queued append, wait this long for more before committing (0: commit at once;
  // appends that arrive during a commit form the next batch anyway).
  int max_batch_delay_us = 0;
  // Encrypts payloads at rest when set.
  std::shared_ptr<const PayloadCipher> cipher = nullptr;
  // Signs the chain head when set; signed heads also go to `path` + ".heads", outside the database,
  // so that deleting the database's tail (and its signatures) is still detected.
  std::shared_ptr<const HeadSigner> signer = nullptr;
};

// Opens (creating if needed) the log at `options.path`, creating its directory and schema.
absl::StatusOr<std::unique_ptr<Store>> OpenSqliteStore(const SqliteOptions& options);

}  // namespace fhirgw::gateway

#endif  // FHIRGW_GATEWAY_STORE_SQLITE_SQLITE_STORE_H_
