// What the SQLite and PostgreSQL stores share above their connections: every read of the Store
// interface (lookups, listings, audit queries, verification) and the group-commit queue. A backend
// derives from SqlStore and provides connections (WithReader, WithSnapshot) and the writes: the
// commit of a batch of appends, claims, attempts, replays, recovery, purges and signing.
#ifndef FHIRGW_GATEWAY_STORE_SQL_STORE_H_
#define FHIRGW_GATEWAY_STORE_SQL_STORE_H_

#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "gateway/security/crypto.h"
#include "gateway/store/chain_verifier.h"
#include "gateway/store/commit_queue.h"
#include "gateway/store/sql.h"
#include "gateway/store/store.h"

namespace fhirgw::gateway {

class SqlStore : public Store {
 public:
  struct Options {
    std::shared_ptr<const PayloadCipher> cipher;
    std::shared_ptr<const HeadSigner> signer;
    int max_batch = 256;
    int max_batch_delay_us = 0;
  };
  explicit SqlStore(Options options);

  void Append(NewEntry entry, AppendCallback done) override;
  void AppendAll(std::vector<NewEntry> entries, AppendAllCallback done) override;
  absl::StatusOr<std::vector<PatientMatch>> FindPatient(
      const std::vector<std::string>& keys) override;
  absl::StatusOr<bool> HasRecord(absl::string_view clinic_id, absl::string_view record_id,
                                 v1::Direction direction) override;
  absl::StatusOr<std::vector<v1::Alert>> PreviousAlerts(absl::string_view clinic_id,
                                                        absl::string_view record_id,
                                                        v1::Direction direction) override;
  absl::StatusOr<std::vector<EhrPatient>> EhrPatients(absl::string_view destination) override;
  absl::StatusOr<std::vector<InboundItem>> ListInbound(absl::string_view clinic_id,
                                                       int64_t after_sequence, int limit) override;
  absl::StatusOr<std::string> GetState(absl::string_view key) override;
  absl::StatusOr<v1::Transaction> Get(absl::string_view transaction_id, bool with_payload) override;
  absl::StatusOr<std::optional<int64_t>> NextDueAt(absl::string_view destination) override;
  absl::StatusOr<QueueStats> Stats() override;
  absl::StatusOr<TransactionPage> Query(const TransactionQuery& query) override;
  absl::StatusOr<std::vector<v1::LogEntry>> ListLogEntries(
      int64_t from_ms, int64_t to_ms, const std::vector<std::string>& clinic_scope,
      int64_t after_sequence, int limit) override;
  absl::StatusOr<v1::VerifyLogResponse> Verify() override;
  absl::Status Ping() override;

 protected:
  using Body = std::function<absl::Status(SqlReader&)>;
  // Runs `body` on a connection for reads (each statement sees what committed before it).
  virtual absl::Status WithReader(const Body& body) = 0;
  // Runs `body` inside one read-only snapshot of the whole database.
  virtual absl::Status WithSnapshot(const Body& body) = 0;
  // Where the backend keeps signed heads outside the database ("": nowhere) and its own checks.
  virtual VerifyOptions verify_options() const = 0;

  const PayloadCipher* cipher() const { return options_.cipher.get(); }
  const HeadSigner* signer() const { return options_.signer.get(); }

  const Options options_;
  CommitQueue queue_;
};

}  // namespace fhirgw::gateway

#endif  // FHIRGW_GATEWAY_STORE_SQL_STORE_H_
