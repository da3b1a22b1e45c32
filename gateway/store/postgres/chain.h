// The hash chain of the PostgreSQL log, inside one database transaction of any replica.
#ifndef FHIRGW_GATEWAY_STORE_POSTGRES_CHAIN_H_
#define FHIRGW_GATEWAY_STORE_POSTGRES_CHAIN_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "fhirgw/v1/audit.pb.h"
#include "gateway/store/log_codec.h"
#include "gateway/store/postgres/connection.h"
#include "gateway/store/store.h"

namespace fhirgw::gateway::postgres {

// The hash chain inside one database transaction. Lock() takes the single chain_head row and holds
// it until COMMIT or ROLLBACK, so appends of all replicas are serialized and the chain order is the
// commit order; Append() adds entries after the head (buffered, written by Flush() in one
// statement); Save() flushes and writes the new head back.
class Chain {
 public:
  struct Mark {
    int64_t seq;
    std::string hash;
    size_t buffered;
  };

  explicit Chain(Connection& conn) : conn_(conn) {}

  absl::Status Lock() {
    FHIRGW_ASSIGN_OR_RETURN(Result head,
                            conn_.Exec("SELECT seq, hash FROM chain_head WHERE id = 1 FOR UPDATE"));
    if (head.rows() != 1) return absl::InternalError("postgres: the chain_head row is missing");
    seq_ = locked_seq_ = head.Int(0, 0);
    hash_ = head.Bytes(0, 1);
    return absl::OkStatus();
  }

  // The sequence the next appended entry gets.
  int64_t next() const { return seq_ + 1; }

  void Append(v1::LogEntry entry) {
    entry.set_sequence(seq_ + 1);
    if (entry.at_ms() == 0) entry.set_at_ms(WallClockMs());
    std::string canonical = Canonical(entry);
    std::string hash = ChainHash(hash_, canonical);
    for (Param p : {Int(entry.sequence()), Int(entry.at_ms()), Text(entry.transaction_id()),
                    Text(entry.clinic_id()), Bytes(canonical), Bytes(hash_), Bytes(hash)}) {
      rows_.push_back(std::move(p));
    }
    seq_ = entry.sequence();
    hash_ = std::move(hash);
  }

  // Writes the entries appended since the last Flush.
  absl::Status Flush() {
    if (rows_.empty()) return absl::OkStatus();
    FHIRGW_RETURN_IF_ERROR(InsertRows(
        conn_,
        "INSERT INTO audit_log (seq, at_ms, transaction_id, clinic_id, entry, prev_hash, hash)", 7,
        rows_));
    rows_.clear();
    return absl::OkStatus();
  }

  absl::Status Save() {
    FHIRGW_RETURN_IF_ERROR(Flush());
    if (seq_ == locked_seq_) return absl::OkStatus();
    return conn_
        .Exec("UPDATE chain_head SET seq = $1, hash = $2 WHERE id = 1", {Int(seq_), Bytes(hash_)})
        .status();
  }

  // Where the chain is now; Restore goes back there (after a ROLLBACK TO SAVEPOINT taken at the
  // mark, with nothing flushed since).
  Mark mark() const { return {seq_, hash_, rows_.size()}; }
  void Restore(const Mark& mark) {
    seq_ = mark.seq;
    hash_ = mark.hash;
    rows_.resize(std::min(rows_.size(), mark.buffered));
  }

 private:
  Connection& conn_;
  int64_t seq_ = 0;
  int64_t locked_seq_ = 0;
  std::string hash_;
  std::vector<Param> rows_;  // audit_log rows not yet written, 7 parameters each
};

}  // namespace fhirgw::gateway::postgres

#endif  // FHIRGW_GATEWAY_STORE_POSTGRES_CHAIN_H_
