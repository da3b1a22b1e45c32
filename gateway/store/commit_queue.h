// Group commit, as both Store backends do it: Append and AppendAll queue their entries (hashed and
// encrypted on the caller's thread, PrepareEntry), and one commit thread hands every batch of
// queued appends to the backend's commit function, which writes them in one database transaction
// (one fsync), then answers every caller.
//
//   CommitQueue queue(options.max_batch, options.max_batch_delay_us, cipher);
//   queue.Start([this](const std::vector<CommitQueue::Pending>& batch, CommitQueue::Results& r) {
//     return CommitBatch(batch, r);
//   });
//   queue.Append(std::move(entry), std::move(done));
#ifndef FHIRGW_GATEWAY_STORE_COMMIT_QUEUE_H_
#define FHIRGW_GATEWAY_STORE_COMMIT_QUEUE_H_

#include <condition_variable>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "gateway/security/crypto.h"
#include "gateway/store/row_codec.h"
#include "gateway/store/store.h"

namespace fhirgw::gateway {

class CommitQueue {
 public:
  // One caller's entries, logged together or not at all.
  struct Pending {
    std::vector<NewEntry> entries;
    std::vector<PreparedEntry> prepared;  // one per entry
    Store::AppendAllCallback done;        // called by the queue, not the commit function
  };
  using Results = std::vector<absl::StatusOr<std::vector<AppendResult>>>;
  // Writes `batch` in one database transaction and fills `results` (one per Pending). An error
  // means nothing was committed: every caller of the batch gets Unavailable.
  using CommitFn = std::function<absl::Status(const std::vector<Pending>& batch, Results& results)>;

  CommitQueue(int max_batch, int max_batch_delay_us, const PayloadCipher* cipher);
  CommitQueue(const CommitQueue&) = delete;
  CommitQueue& operator=(const CommitQueue&) = delete;
  ~CommitQueue() { Close(); }

  // Starts the commit thread.
  void Start(CommitFn commit);

  void Append(NewEntry entry, Store::AppendCallback done);
  void AppendAll(std::vector<NewEntry> entries, Store::AppendAllCallback done);

  // Commits what is queued and stops the commit thread; later appends fail with Unavailable.
  void Close();

 private:
  void Enqueue(std::vector<NewEntry> entries, Store::AppendAllCallback done);
  void CommitLoop();

  const int max_batch_;
  const int max_batch_delay_us_;
  const PayloadCipher* const cipher_;
  CommitFn commit_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<Pending> queue_;  // guarded by mu_
  int queued_entries_ = 0;     // guarded by mu_
  bool closed_ = false;        // guarded by mu_
  std::thread committer_;
};

}  // namespace fhirgw::gateway

#endif  // FHIRGW_GATEWAY_STORE_COMMIT_QUEUE_H_
