// The verification of the hash chain both Store backends share (Store::Verify): the chain itself
// (sequence, links, hashes), every transaction row against its log entries (payload hashes,
// status, attempts), log entries whose transaction is gone, and the signed chain heads (so that a
// removed tail is detected). Also the heads file, where signed heads are kept outside the database.
//
// Run VerifyLog inside one read snapshot of the database:
//
//   VerifyOptions options{.cipher = cipher, .signer = signer, .heads_file = path + ".heads"};
//   FHIRGW_ASSIGN_OR_RETURN(v1::VerifyLogResponse response, VerifyLog(snapshot, options));
#ifndef FHIRGW_GATEWAY_STORE_CHAIN_VERIFIER_H_
#define FHIRGW_GATEWAY_STORE_CHAIN_VERIFIER_H_

#include <cstdint>
#include <functional>
#include <map>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "fhirgw/v1/audit.pb.h"
#include "gateway/security/crypto.h"
#include "gateway/store/sql.h"

namespace fhirgw::gateway {

// A signed chain head and where it was found ("database" or the heads file's path).
struct SignedHeadRecord {
  v1::SignedHead head;
  std::string where;
};

// Returns the canonical bytes of the head (`sequence`, `hash`) signed by `signer`.
std::string SignedHeadBytes(const HeadSigner& signer, int64_t sequence, const std::string& hash);

// Appends signed head `bytes` (SignedHeadBytes) to the heads file at `path`, durably.
absl::Status AppendToHeadsFile(const std::string& path, absl::string_view bytes);

// Returns the heads in the heads file at `path` (none when it does not exist).
std::vector<SignedHeadRecord> ReadHeadsFile(const std::string& path);

// Collects the findings of one verification; the first bad sequence wins.
class ChainVerifier {
 public:
  ChainVerifier(const PayloadCipher* cipher, const HeadSigner* signer,
                std::vector<SignedHeadRecord> heads);

  // Reports `message` about entry `sequence`.
  void Fail(int64_t sequence, std::string message);

  // Checks the next audit_log row (in sequence order).
  void AddChainRow(int64_t seq, const std::string& entry, const std::string& prev_hash,
                   const std::string& hash);
  int64_t last_sequence() const { return expected_ - 1; }
  const std::string& last_hash() const { return previous_; }

  // Checks one transaction row against its log entries (in sequence order) and its stored
  // attempts (in number order): it was logged, its payloads are the ones logged (or were purged,
  // which is logged too), its status is the last one logged, and its attempts are the logged ones.
  void CheckTransaction(const std::string& id, int status, const std::string& record,
                        const std::string& fhir,
                        const std::vector<std::pair<int64_t, v1::LogEntry>>& entries,
                        const std::vector<std::string>& attempts);

  // Checks the signed heads against the chain and returns the verdict.
  v1::VerifyLogResponse Finish();

 private:
  const PayloadCipher* cipher_;
  const HeadSigner* signer_;
  std::vector<SignedHeadRecord> heads_;
  std::set<int64_t> head_seqs_;
  std::map<int64_t, std::string> hash_at_;  // the hashes of signed entries
  v1::VerifyLogResponse response_;
  int64_t first_bad_ = 0;
  std::string problem_;
  int64_t expected_ = 1;
  std::string previous_;
};

struct VerifyOptions {
  const PayloadCipher* cipher = nullptr;
  const HeadSigner* signer = nullptr;
  std::string heads_file;  // empty: none
  // Backend checks, run after the chain was read (e.g. PostgreSQL's chain_head row).
  std::function<absl::Status(SqlReader&, ChainVerifier&)> extra_checks;
};

// Verifies the log in `db`, which must be one read snapshot. The heads file is read before the
// first statement: heads are signed only over committed entries, so every head in the file is
// then inside the snapshot (read the other way round, a head signed meanwhile would look like a
// removed tail).
absl::StatusOr<v1::VerifyLogResponse> VerifyLog(SqlReader& db, const VerifyOptions& options);

}  // namespace fhirgw::gateway

#endif  // FHIRGW_GATEWAY_STORE_CHAIN_VERIFIER_H_
