#include "gateway/service/watch_inbound.h"

#include <deque>
#include <mutex>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "gateway/ops/log.h"

namespace fhirgw::gateway {
namespace {

constexpr int kPageSize = 64;

class WatchReactor final : public grpc::ServerWriteReactor<v1::InboundEvent> {
 public:
  WatchReactor(Store& store, InboundHub& hub, std::string clinic_id, int64_t cursor)
      : store_(store), hub_(hub), clinic_id_(std::move(clinic_id)), cursor_(cursor) {
    subscription_ = hub_.Subscribe(
        clinic_id_,
        [this] {
          std::lock_guard<std::mutex> lock(mu_);
          more_ = true;
          if (!writing_ && !finished_) LoadAndWriteLocked();
        },
        [this] {
          std::lock_guard<std::mutex> lock(mu_);
          FinishLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE,
                                    "the gateway is shutting down; reconnect with your cursor"));
        });
    std::lock_guard<std::mutex> lock(mu_);
    LoadAndWriteLocked();
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mu_);
    writing_ = false;
    if (closing_) {
      FinishLocked(pending_finish_);
      return;
    }
    if (!ok) {
      FinishLocked(grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
      return;
    }
    if (!queue_.empty()) {
      WriteNextLocked();
    } else if (more_) {
      LoadAndWriteLocked();
    }
  }

  void OnCancel() override {
    std::lock_guard<std::mutex> lock(mu_);
    FinishLocked(grpc::Status::CANCELLED);
  }

  void OnDone() override {
    hub_.Unsubscribe(subscription_);
    delete this;
  }

 private:
  // Reads the next page after the cursor; the hub may wake us again while we write it.
  void LoadAndWriteLocked() {
    if (finished_ || closing_) return;
    more_ = false;
    absl::StatusOr<std::vector<InboundItem>> items =
        store_.ListInbound(clinic_id_, cursor_, kPageSize);
    if (!items.ok()) {
      LogError(absl::StrCat("WatchInbound: cannot read the log: ", items.status().message()));
      FinishLocked(grpc::Status(grpc::StatusCode::UNAVAILABLE, "the log cannot be read"));
      return;
    }
    for (InboundItem& item : *items) {
      v1::InboundEvent event;
      event.set_cursor(absl::StrCat(item.sequence));
      event.set_transaction_id(item.transaction.transaction_id());
      *event.mutable_record() = std::move(*item.transaction.mutable_record());
      *event.mutable_alerts() = std::move(*item.transaction.mutable_alerts());
      *event.mutable_received_at() = item.transaction.received_at();
      cursor_ = item.sequence;
      queue_.push_back(std::move(event));
    }
    // A full page means there may be more behind it.
    if (static_cast<int>(items->size()) == kPageSize) more_ = true;
    if (!queue_.empty() && !writing_) WriteNextLocked();
  }

  void WriteNextLocked() {
    current_ = std::move(queue_.front());
    queue_.pop_front();
    writing_ = true;
    StartWrite(&current_);
  }

  // Ends the stream. A write in flight completes first (gRPC requires it): OnWriteDone finishes
  // then.
  void FinishLocked(const grpc::Status& status) {
    if (finished_) return;
    if (writing_) {
      pending_finish_ = status;
      closing_ = true;
      return;
    }
    finished_ = true;
    Finish(status);
  }

  Store& store_;
  InboundHub& hub_;
  const std::string clinic_id_;
  int subscription_ = 0;
  std::mutex mu_;
  int64_t cursor_;                      // guarded by mu_: the last sequence queued
  std::deque<v1::InboundEvent> queue_;  // guarded by mu_
  v1::InboundEvent current_;
  bool writing_ = false;   // guarded by mu_
  bool more_ = false;      // guarded by mu_
  bool finished_ = false;  // guarded by mu_
  bool closing_ = false;   // guarded by mu_
  grpc::Status pending_finish_;
};

class FailedReactor final : public grpc::ServerWriteReactor<v1::InboundEvent> {
 public:
  explicit FailedReactor(grpc::Status status) { Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace

grpc::ServerWriteReactor<v1::InboundEvent>* StartWatchInbound(
    Store& store, InboundHub& hub, const v1::WatchInboundRequest& request) {
  if (request.clinic_id().empty()) {
    return new FailedReactor(
        grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "clinic_id: is required"));
  }
  int64_t cursor = 0;
  if (!request.cursor().empty() && (!absl::SimpleAtoi(request.cursor(), &cursor) || cursor < 0)) {
    return new FailedReactor(grpc::Status(
        grpc::StatusCode::INVALID_ARGUMENT,
        absl::StrCat("cursor: '", request.cursor(), "' is not a cursor from an InboundEvent")));
  }
  return new WatchReactor(store, hub, request.clinic_id(), cursor);
}

}  // namespace fhirgw::gateway
