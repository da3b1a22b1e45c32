#include "gateway/store/chain_verifier.h"

#include <fcntl.h>
#include <unistd.h>

#include <algorithm>
#include <fstream>
#include <limits>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "fhir/status_macros.h"
#include "gateway/store/log_codec.h"
#include "gateway/store/row_codec.h"
#include "gateway/store/store.h"

namespace fhirgw::gateway {

std::string SignedHeadBytes(const HeadSigner& signer, int64_t sequence, const std::string& hash) {
  v1::SignedHead head;
  head.set_sequence(sequence);
  head.set_hash(hash);
  head.set_signature(signer.Sign(HeadMessage(sequence, hash)));
  head.set_key_id(signer.key_id());
  head.set_at_ms(WallClockMs());
  return Canonical(head);
}

absl::Status AppendToHeadsFile(const std::string& path, absl::string_view bytes) {
  const std::string line = absl::StrCat(absl::Base64Escape(bytes), "\n");
  const int fd = ::open(path.c_str(), O_WRONLY | O_CREAT | O_APPEND | O_CLOEXEC, 0640);
  if (fd < 0) return absl::UnavailableError(absl::StrCat("cannot write ", path));
  const bool ok = ::write(fd, line.data(), line.size()) == static_cast<ssize_t>(line.size()) &&
                  ::fdatasync(fd) == 0;
  ::close(fd);
  if (!ok) return absl::UnavailableError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

std::vector<SignedHeadRecord> ReadHeadsFile(const std::string& path) {
  std::vector<SignedHeadRecord> heads;
  std::ifstream file(path);
  std::string line;
  while (std::getline(file, line)) {
    std::string bytes;
    SignedHeadRecord record{v1::SignedHead(), path};
    if (!absl::Base64Unescape(line, &bytes) || !record.head.ParseFromString(bytes)) continue;
    heads.push_back(std::move(record));
  }
  return heads;
}

ChainVerifier::ChainVerifier(const PayloadCipher* cipher, const HeadSigner* signer,
                             std::vector<SignedHeadRecord> heads)
    : cipher_(cipher), signer_(signer), heads_(std::move(heads)) {
  for (const SignedHeadRecord& h : heads_) head_seqs_.insert(h.head.sequence());
}

void ChainVerifier::Fail(int64_t sequence, std::string message) {
  if (first_bad_ == 0 || sequence < first_bad_) {
    first_bad_ = sequence;
    problem_ = std::move(message);
  }
}

void ChainVerifier::AddChainRow(int64_t seq, const std::string& entry, const std::string& prev_hash,
                                const std::string& hash) {
  if (first_bad_ == 0) {
    v1::LogEntry parsed;
    if (seq != expected_) {
      Fail(expected_, absl::StrCat("log entry ", expected_, " is missing (the next is ", seq, ")"));
    } else if (prev_hash != previous_) {
      Fail(seq, absl::StrCat("log entry ", seq, " does not follow entry ", seq - 1));
    } else if (ChainHash(previous_, entry) != hash) {
      Fail(seq, absl::StrCat("log entry ", seq, " was altered (its hash does not match)"));
    } else if (!parsed.ParseFromString(entry) || parsed.sequence() != seq) {
      Fail(seq, absl::StrCat("log entry ", seq, " is not the entry its position needs"));
    }
  }
  if (head_seqs_.count(seq)) hash_at_[seq] = hash;
  previous_ = hash;
  ++expected_;
  response_.set_entries_checked(response_.entries_checked() + 1);
}

void ChainVerifier::CheckTransaction(const std::string& id, int status, const std::string& record,
                                     const std::string& fhir,
                                     const std::vector<std::pair<int64_t, v1::LogEntry>>& entries,
                                     const std::vector<std::string>& attempts) {
  if (entries.empty() || entries.front().second.event() != v1::LogEntry::RECORD_LOGGED) {
    Fail(entries.empty() ? std::numeric_limits<int64_t>::max() : entries.front().first,
         absl::StrCat("transaction ", id, " has no log entry recording it"));
    return;
  }
  const v1::LogEntry& logged = entries.front().second;
  const int64_t logged_seq = entries.front().first;
  bool purged = false;
  for (const auto& [seq, entry] : entries) purged |= entry.event() == v1::LogEntry::PURGED;
  absl::StatusOr<std::string> plain_record = OpenPayload(cipher_, record);
  absl::StatusOr<std::string> plain_fhir = OpenPayload(cipher_, fhir);
  if (!plain_record.ok() || !plain_fhir.ok()) {
    Fail(logged_seq,
         absl::StrCat("transaction ", id, ": a payload cannot be decrypted (",
                      (!plain_record.ok() ? plain_record : plain_fhir).status().message(), ")"));
    return;
  }
  const bool empty = plain_record->empty() && plain_fhir->empty();
  if (!(purged && empty) && (Sha256(*plain_record) != logged.record_sha256() ||
                             Sha256(*plain_fhir) != logged.fhir_sha256())) {
    Fail(logged_seq, absl::StrCat("transaction ", id, " (log entry ", logged_seq,
                                  "): the stored record or FHIR is not what was logged"));
  }
  // Claiming for delivery is not logged (the attempt that follows is): a DELIVERING row matches a
  // last logged status of ACCEPTED or RETRYING.
  const v1::TransactionStatus last_logged = entries.back().second.status();
  const bool in_flight =
      status == v1::DELIVERING && (last_logged == v1::ACCEPTED || last_logged == v1::RETRYING);
  if (last_logged != status && !in_flight) {
    Fail(entries.back().first,
         absl::StrCat("transaction ", id, ": its status ",
                      v1::TransactionStatus_Name(static_cast<v1::TransactionStatus>(status)),
                      " is not the status logged last (", v1::TransactionStatus_Name(last_logged),
                      ", entry ", entries.back().first, ")"));
  }
  std::vector<const std::pair<int64_t, v1::LogEntry>*> logged_attempts;
  for (const auto& e : entries) {
    if (e.second.event() == v1::LogEntry::DELIVERY_ATTEMPT) logged_attempts.push_back(&e);
  }
  size_t index = 0;
  for (const std::string& stored : attempts) {
    absl::StatusOr<std::string> bytes = OpenPayload(cipher_, stored);
    v1::DeliveryAttempt attempt;
    if (!bytes.ok() || !attempt.ParseFromString(*bytes)) {
      Fail(logged_seq, absl::StrCat("transaction ", id, ": an attempt cannot be read"));
      break;
    }
    if (index >= logged_attempts.size()) {
      // Its entry would follow the last logged attempt: report there, not at the transaction's
      // first entry, which may well be intact (a deleted or moved attempt entry shifts the
      // attempts against their entries, and the chain reports where that happened).
      Fail(logged_attempts.empty() ? logged_seq : logged_attempts.back()->first,
           absl::StrCat("transaction ", id, ": attempt ", attempt.number(), " was never logged"));
      break;
    }
    const auto& [seq, entry] = *logged_attempts[index++];
    const bool same =
        Canonical(WithoutResponse(attempt)) == Canonical(entry.attempt()) &&
        ((purged && AnswerIsEmpty(attempt)) || AnswerSha256(attempt) == entry.response_sha256());
    if (!same) {
      Fail(seq, absl::StrCat("transaction ", id, ": attempt ", attempt.number(),
                             " is not the one logged (entry ", seq, ")"));
    }
  }
  if (index < logged_attempts.size()) {
    Fail(logged_attempts[index]->first,
         absl::StrCat("transaction ", id, ": a logged attempt is missing from the database"));
  }
}

v1::VerifyLogResponse ChainVerifier::Finish() {
  const int64_t last_seq = last_sequence();
  // The newest signed head must be in the chain: a log cut short after it is detected.
  int64_t signed_seq = 0;
  for (const SignedHeadRecord& h : heads_) {
    const std::string message = HeadMessage(h.head.sequence(), h.head.hash());
    if (signer_ != nullptr && !signer_->Verify(message, h.head.signature())) {
      Fail(h.head.sequence(), absl::StrCat("the signature of chain head ", h.head.sequence(), " (",
                                           h.where, ") does not verify"));
      continue;
    }
    signed_seq = std::max(signed_seq, h.head.sequence());
    if (h.head.sequence() > last_seq) {
      Fail(last_seq + 1,
           absl::StrCat("the log ends at entry ", last_seq, " but entry ", h.head.sequence(),
                        " was signed (", h.where, "): the tail was removed"));
    } else if (hash_at_[h.head.sequence()] != h.head.hash()) {
      Fail(h.head.sequence(), absl::StrCat("log entry ", h.head.sequence(),
                                           " differs from its signed hash (", h.where, ")"));
    }
  }
  v1::VerifyLogResponse response = response_;
  response.set_signed_head_sequence(signed_seq);
  response.set_ok(first_bad_ == 0);
  response.set_first_bad_sequence(first_bad_);
  if (first_bad_ != 0) {
    response.set_message(problem_);
  } else if (signer_ == nullptr) {
    response.set_message(absl::StrCat("the chain of ", last_seq,
                                      " entries is intact; no signing key is configured, so a "
                                      "removed tail cannot be detected"));
  } else {
    response.set_message(absl::StrCat("the chain of ", last_seq,
                                      " entries is intact; signed up to entry ", signed_seq));
  }
  return response;
}

namespace {

constexpr int kChainPage = 2000;
constexpr int kTransactionPage = 500;

// Reads the chain page by page, so that a long log is never in memory at once.
absl::Status ReadChain(SqlReader& db, ChainVerifier& verifier) {
  int64_t after = 0;
  while (true) {
    int rows = 0;
    FHIRGW_RETURN_IF_ERROR(
        db.Query(absl::StrCat("SELECT seq, entry, prev_hash, hash FROM audit_log WHERE seq > ?1 "
                              "ORDER BY seq LIMIT ",
                              kChainPage),
                 {after}, [&](const SqlRow& row) {
                   ++rows;
                   after = row.Int(0);
                   verifier.AddChainRow(row.Int(0), row.Bytes(1), row.Bytes(2), row.Bytes(3));
                   return absl::OkStatus();
                 }));
    if (rows < kChainPage) return absl::OkStatus();
  }
}

// Checks every transaction against its entries, kTransactionPage at a time.
absl::Status CheckTransactions(SqlReader& db, ChainVerifier& verifier) {
  int64_t after = 0;
  while (true) {
    struct Row {
      std::string id;
      int status;
      std::string record, fhir;
    };
    std::vector<Row> txs;
    int64_t last = after;
    FHIRGW_RETURN_IF_ERROR(db.Query(
        absl::StrCat("SELECT seq, id, status, record, fhir FROM transactions WHERE seq > ?1 "
                     "ORDER BY seq LIMIT ",
                     kTransactionPage),
        {after}, [&](const SqlRow& row) {
          last = row.Int(0);
          txs.push_back({row.Bytes(1), static_cast<int>(row.Int(2)), row.Bytes(3), row.Bytes(4)});
          return absl::OkStatus();
        }));
    if (txs.empty()) return absl::OkStatus();
    std::map<std::string, std::vector<std::pair<int64_t, v1::LogEntry>>> events;
    FHIRGW_RETURN_IF_ERROR(
        db.Query("SELECT a.transaction_id, a.seq, a.entry FROM audit_log a JOIN transactions t "
                 "ON t.id = a.transaction_id WHERE t.seq > ?1 AND t.seq <= ?2 ORDER BY a.seq",
                 {after, last}, [&](const SqlRow& row) {
                   v1::LogEntry entry;
                   entry.ParseFromString(row.Bytes(2));
                   events[row.Bytes(0)].emplace_back(row.Int(1), std::move(entry));
                   return absl::OkStatus();
                 }));
    std::map<std::string, std::vector<std::string>> attempts;
    FHIRGW_RETURN_IF_ERROR(
        db.Query("SELECT a.transaction_id, a.attempt FROM attempts a JOIN transactions t ON "
                 "t.id = a.transaction_id WHERE t.seq > ?1 AND t.seq <= ?2 "
                 "ORDER BY a.transaction_id, a.number",
                 {after, last}, [&](const SqlRow& row) {
                   attempts[row.Bytes(0)].push_back(row.Bytes(1));
                   return absl::OkStatus();
                 }));
    for (const Row& tx : txs) {
      verifier.CheckTransaction(tx.id, tx.status, tx.record, tx.fhir, events[tx.id],
                                attempts[tx.id]);
    }
    after = last;
  }
}

}  // namespace

absl::StatusOr<v1::VerifyLogResponse> VerifyLog(SqlReader& db, const VerifyOptions& options) {
  std::vector<SignedHeadRecord> heads;
  if (!options.heads_file.empty()) heads = ReadHeadsFile(options.heads_file);
  FHIRGW_RETURN_IF_ERROR(
      db.Query("SELECT head FROM signed_heads ORDER BY seq", {}, [&](const SqlRow& row) {
        SignedHeadRecord record{v1::SignedHead(), "database"};
        record.head.ParseFromString(row.Bytes(0));
        heads.push_back(std::move(record));
        return absl::OkStatus();
      }));
  ChainVerifier verifier(options.cipher, options.signer, std::move(heads));
  FHIRGW_RETURN_IF_ERROR(ReadChain(db, verifier));
  if (options.extra_checks) FHIRGW_RETURN_IF_ERROR(options.extra_checks(db, verifier));
  FHIRGW_RETURN_IF_ERROR(CheckTransactions(db, verifier));
  // A log entry whose transaction row is gone: the row was deleted.
  FHIRGW_RETURN_IF_ERROR(db.Query(
      "SELECT a.seq, a.transaction_id FROM audit_log a WHERE NOT EXISTS "
      "(SELECT 1 FROM transactions t WHERE t.id = a.transaction_id) "
      "ORDER BY a.seq LIMIT 1",
      {}, [&](const SqlRow& row) {
        verifier.Fail(row.Int(0), absl::StrCat("transaction ", row.Bytes(1), " of log entry ",
                                               row.Int(0), " is missing from the database"));
        return absl::OkStatus();
      }));
  return verifier.Finish();
}

}  // namespace fhirgw::gateway
