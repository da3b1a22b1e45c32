#include "gateway/store/commit_queue.h"

#include <chrono>
#include <utility>

#include "absl/strings/str_cat.h"

namespace fhirgw::gateway {

CommitQueue::CommitQueue(int max_batch, int max_batch_delay_us, const PayloadCipher* cipher)
    : max_batch_(max_batch), max_batch_delay_us_(max_batch_delay_us), cipher_(cipher) {}

void CommitQueue::Start(CommitFn commit) {
  commit_ = std::move(commit);
  committer_ = std::thread([this] { CommitLoop(); });
}

void CommitQueue::Append(NewEntry entry, Store::AppendCallback done) {
  std::vector<NewEntry> entries;
  entries.push_back(std::move(entry));
  Enqueue(std::move(entries),
          [done = std::move(done)](absl::StatusOr<std::vector<AppendResult>> results) {
            if (!results.ok()) {
              done(results.status());
            } else {
              done(std::move(results->front()));
            }
          });
}

void CommitQueue::AppendAll(std::vector<NewEntry> entries, Store::AppendAllCallback done) {
  if (entries.empty()) {
    done(std::vector<AppendResult>());
    return;
  }
  Enqueue(std::move(entries), std::move(done));
}

void CommitQueue::Close() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (closed_) return;
    closed_ = true;
    cv_.notify_all();
  }
  if (committer_.joinable()) committer_.join();
}

void CommitQueue::Enqueue(std::vector<NewEntry> entries, Store::AppendAllCallback done) {
  std::vector<PreparedEntry> prepared;
  prepared.reserve(entries.size());
  for (const NewEntry& entry : entries) prepared.push_back(PrepareEntry(entry, cipher_));
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!closed_) {
      queued_entries_ += static_cast<int>(entries.size());
      queue_.push_back({std::move(entries), std::move(prepared), std::move(done)});
      cv_.notify_one();
      return;
    }
  }
  done(absl::UnavailableError("the transaction log is closed"));
}

void CommitQueue::CommitLoop() {
  std::vector<Pending> batch;
  while (true) {
    {
      std::unique_lock<std::mutex> lock(mu_);
      cv_.wait(lock, [this] { return closed_ || !queue_.empty(); });
      if (queue_.empty()) return;  // closed and drained
      if (max_batch_delay_us_ > 0 && queued_entries_ < max_batch_ && !closed_) {
        cv_.wait_for(lock, std::chrono::microseconds(max_batch_delay_us_),
                     [this] { return closed_ || queued_entries_ >= max_batch_; });
      }
      int taken = 0;
      while (!queue_.empty() && (taken == 0 || taken < max_batch_)) {
        taken += static_cast<int>(queue_.front().entries.size());
        queued_entries_ -= static_cast<int>(queue_.front().entries.size());
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
    }
    Results results;
    results.reserve(batch.size());
    const absl::Status commit = commit_(batch, results);
    for (size_t i = 0; i < batch.size(); ++i) {
      if (!commit.ok()) {
        batch[i].done(
            absl::UnavailableError(absl::StrCat("the record was not logged: ", commit.message())));
      } else {
        batch[i].done(std::move(results[i]));
      }
    }
    batch.clear();
  }
}

}  // namespace fhirgw::gateway
