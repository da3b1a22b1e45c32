#include "gateway/service/push_service.h"

#include <deque>

#include "absl/strings/str_cat.h"
#include "base/clock.h"
#include "base/digest.h"
#include "fhir/issues.h"
#include "fhir/json.h"
#include "gateway/ops/log.h"
#include "gateway/service/status.h"
#include "gateway/service/watch_inbound.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream_impl_lite.h"
#include "mappers/registry.h"
#include "mappers/safety.h"

namespace fhirgw::gateway {

std::string DeterministicBytes(const v1::ClinicRecord& record) {
  std::string bytes;
  {
    google::protobuf::io::StringOutputStream stream(&bytes);
    google::protobuf::io::CodedOutputStream coded(&stream);
    coded.SetSerializationDeterministic(true);
    record.SerializeToCodedStream(&coded);
  }
  return bytes;
}

namespace {

// Authenticates the caller of `context` and authorizes `action` (see Authorize); failures are
// logged with the RPC `method` and the peer address, never with record content.
absl::StatusOr<Principal> Check(const Authenticator& auth,
                                const grpc::CallbackServerContext& context,
                                absl::string_view method, Action action,
                                absl::string_view clinic_id = {},
                                absl::string_view destination = {}) {
  absl::StatusOr<Principal> who = auth.FromGrpc(context);
  absl::Status status = who.status();
  if (who.ok()) status = Authorize(*who, action, clinic_id, destination);
  if (!status.ok()) {
    LogWarning(absl::StrCat(method, " from ", context.peer(), ": ",
                            absl::StatusCodeToString(status.code()), ": ", status.message()));
    return status;
  }
  return who;
}

// Streams that end before they start (unauthenticated callers).
class FailedBidiReactor final : public grpc::ServerBidiReactor<v1::PushRequest, v1::PushResponse> {
 public:
  explicit FailedBidiReactor(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

class FailedWriteReactor final : public grpc::ServerWriteReactor<v1::InboundEvent> {
 public:
  explicit FailedWriteReactor(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace

bool IsFinalStatus(v1::TransactionStatus status) {
  return status == v1::DELIVERED || status == v1::REJECTED || status == v1::DEAD_LETTER ||
         status == v1::RECORDED;
}

// --- DeliveryWaiters --------------------------------------------------------------------------

DeliveryWaiters::DeliveryWaiters() : timer_([this] { TimerLoop(); }) {}

DeliveryWaiters::~DeliveryWaiters() { Shutdown(); }

void DeliveryWaiters::Wait(const std::string& transaction_id,
                           std::chrono::system_clock::time_point deadline, Callback done) {
  std::lock_guard<std::mutex> lock(mu_);
  if (stopping_) {
    done(false);
    return;
  }
  waiters_.emplace(transaction_id, Waiter{deadline, std::move(done)});
  cv_.notify_all();
}

void DeliveryWaiters::Notify(const std::string& transaction_id, v1::TransactionStatus status) {
  if (!IsFinalStatus(status)) return;
  std::vector<Callback> ready;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto [begin, end] = waiters_.equal_range(transaction_id);
    for (auto it = begin; it != end; ++it) ready.push_back(std::move(it->second.done));
    waiters_.erase(begin, end);
  }
  for (Callback& done : ready) done(true);
}

void DeliveryWaiters::Shutdown() {
  std::vector<Callback> left;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (stopping_) return;
    stopping_ = true;
    for (auto& [id, waiter] : waiters_) left.push_back(std::move(waiter.done));
    waiters_.clear();
    cv_.notify_all();
  }
  for (Callback& done : left) done(false);
  if (timer_.joinable()) timer_.join();
}

void DeliveryWaiters::TimerLoop() {
  std::unique_lock<std::mutex> lock(mu_);
  while (!stopping_) {
    auto next = std::chrono::system_clock::time_point::max();
    const auto now = std::chrono::system_clock::now();
    std::vector<Callback> expired;
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      if (it->second.deadline <= now) {
        expired.push_back(std::move(it->second.done));
        it = waiters_.erase(it);
      } else {
        next = std::min(next, it->second.deadline);
        ++it;
      }
    }
    if (!expired.empty()) {
      lock.unlock();
      for (Callback& done : expired) done(false);
      lock.lock();
      continue;
    }
    if (next == std::chrono::system_clock::time_point::max()) {
      cv_.wait(lock);
    } else {
      cv_.wait_until(lock, next);
    }
  }
}

// --- PerRecordOrder ---------------------------------------------------------------------------

void PerRecordOrder::Run(const std::string& clinic_id, const std::string& record_id,
                         std::function<void()> work) {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto [it, idle] = waiting_.try_emplace(Key(clinic_id, record_id));
    if (!idle) {
      it->second.push_back(std::move(work));
      return;
    }
  }
  work();
}

void PerRecordOrder::Done(const std::string& clinic_id, const std::string& record_id) {
  std::function<void()> next;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = waiting_.find(Key(clinic_id, record_id));
    if (it == waiting_.end()) return;
    if (it->second.empty()) {
      waiting_.erase(it);
      return;
    }
    next = std::move(it->second.front());
    it->second.pop_front();
  }
  next();
}

// --- PushProcessor ----------------------------------------------------------------------------

namespace {

// What the log keeps of a rejection: an OperationOutcome naming every issue of the record (or the
// rejection's message when validation named none).
std::string RejectionOutcome(const fhir::IssueList& issues, const absl::Status& rejection) {
  fhir::JsonDocument doc;
  const fhir::IssueList listed =
      issues.empty() ? fhir::IssueList{{"", std::string(rejection.message())}} : issues;
  return fhir::WriteJson(fhir::OperationOutcome(listed, "invalid", doc.GetAllocator()).value(),
                         fhir::JsonStyle::kCompact);
}

// The fields of `record`'s log entry that do not depend on its mapping.
NewEntry EntryOf(const v1::ClinicRecord& record, const std::string& principal) {
  NewEntry entry;
  entry.clinic_id = record.clinic_id();
  entry.record_id = record.record_id();
  entry.patient_id = record.patient().clinic_patient_id();
  entry.record = DeterministicBytes(record);
  entry.content_hash = base::Sha256(entry.record);
  entry.kind = mappers::RecordKindOf(record);
  entry.direction = v1::CLINIC_TO_EHR;
  entry.principal = principal;
  entry.received_at_ms = base::UnixMillis();
  return entry;
}

}  // namespace

PushProcessor::PushProcessor(Store& store, const Routing& routing, DeliveryService& delivery,
                             MetricsRegistry& metrics)
    : store_(store),
      routing_(routing),
      delivery_(delivery),
      metrics_(metrics),
      latency_(metrics.GetHistogram("fhirgw_push_latency_seconds",
                                    "Time from receiving a push to its durable acknowledgement",
                                    LatencyBuckets())) {}

void PushProcessor::CountPush(const char* kind, const char* outcome) {
  metrics_
      .GetCounter("fhirgw_pushes_total", "Pushes by record kind and outcome",
                  {{"kind", kind}, {"outcome", outcome}})
      .Inc();
}

void PushProcessor::Process(const v1::ClinicRecord& record, const std::string& principal,
                            Done done) {
  if (!mappers::UsesPreviousVersion(record)) {
    MapAndLog(record, principal, mappers::PreviousVersion(), std::move(done));
    return;
  }
  // One push of the record at a time (see the header); replicas sharing PostgreSQL do not order
  // pushes between them.
  record_order_.Run(
      record.clinic_id(), record.record_id(),
      [this, record, principal, done = std::move(done)]() mutable {
        Done finish = [this, clinic_id = record.clinic_id(), record_id = record.record_id(),
                       done = std::move(done)](absl::StatusOr<v1::PushResponse> result) {
          done(std::move(result));
          record_order_.Done(clinic_id, record_id);
        };
        absl::StatusOr<std::vector<v1::Alert>> alerts =
            store_.PreviousAlerts(record.clinic_id(), record.record_id(), v1::CLINIC_TO_EHR);
        if (!alerts.ok()) {
          CountPush(mappers::KindName(record.body_case()), "error");
          LogError(absl::StrCat("record ", record.record_id(), " not mapped: its previous version ",
                                "cannot be read: ", alerts.status().message()));
          finish(alerts.status());
          return;
        }
        MapAndLog(record, principal, mappers::PreviousVersion{*std::move(alerts)},
                  std::move(finish));
      });
}

void PushProcessor::MapAndLog(const v1::ClinicRecord& record, const std::string& principal,
                              const mappers::PreviousVersion& previous, Done done) {
  const base::Stopwatch watch;
  const char* kind = mappers::KindName(record.body_case());
  fhir::IssueList issues;
  const mappers::MapContext context = routing_.ContextFor(record.clinic_id());
  absl::StatusOr<mappers::MapOutput> mapped = mappers::MapToFhir(record, context, issues, previous);
  if (!mapped.ok()) {
    CountPush(kind, "invalid");
    for (const v1::Alert& alert : mappers::AlertsOf(mapped.status())) {
      // The alert kind only: its message may hold clinical detail.
      LogWarning(absl::StrCat("record ", record.record_id(), " of ", record.clinic_id(),
                              " rejected as invalid; it raised alert ",
                              v1::Alert::Kind_Name(alert.kind())));
    }
    if (mapped.status().code() != absl::StatusCode::kInvalidArgument) {
      done(mapped.status());
      return;
    }
    LogRejection(record, principal, issues, mapped.status(), std::move(done));
    return;
  }
  NewEntry entry = EntryOf(record, principal);
  entry.destination = routing_.DestinationFor(record.clinic_id());
  entry.fhir_json = mapped->bundle.Write(fhir::JsonStyle::kCompact);
  entry.alerts = std::move(mapped->alerts);
  entry.patient_keys.push_back(
      absl::StrCat(context.systems.patient, "|", record.patient().clinic_patient_id()));
  for (const v1::Identifier& id : record.patient().identifiers()) {
    entry.patient_keys.push_back(absl::StrCat(id.system(), "|", id.value()));
  }
  store_.Append(std::move(entry), [this, kind, watch, record_id = record.record_id(),
                                   done = std::move(done)](absl::StatusOr<AppendResult> result) {
    if (!result.ok()) {
      CountPush(kind, "error");
      LogError(absl::StrCat("record ", record_id, " not logged: ", result.status().message()));
      done(result.status());
      return;
    }
    v1::PushResponse response;
    response.set_transaction_id(result->transaction_id);
    response.set_status(result->status);
    response.set_duplicate(result->duplicate);
    response.set_record_id(record_id);
    response.set_version(result->version);
    for (v1::Alert& alert : result->alerts) *response.add_alerts() = std::move(alert);
    CountPush(kind, result->duplicate ? "duplicate" : "accepted");
    latency_.Observe(watch.ElapsedSeconds());
    if (!result->duplicate) delivery_.Wake();
    done(std::move(response));
  });
}

void PushProcessor::LogRejection(const v1::ClinicRecord& record, const std::string& principal,
                                 const fhir::IssueList& issues, const absl::Status& rejection,
                                 Done done) {
  NewEntry entry = EntryOf(record, principal);
  entry.rejected = true;
  entry.fhir_json = RejectionOutcome(issues, rejection);
  entry.alerts = mappers::AlertsOf(rejection);
  store_.Append(std::move(entry),
                [record_id = record.record_id(), clinic_id = record.clinic_id(), rejection,
                 done = std::move(done)](absl::StatusOr<AppendResult> logged) {
                  // The clinic still learns what to fix; the operator learns the log missed it.
                  if (!logged.ok()) {
                    LogError(absl::StrCat("the rejection of record ", record_id, " of ", clinic_id,
                                          " was not logged: ", logged.status().message()));
                  }
                  done(rejection);
                });
}

// --- ClinicGatewayService ---------------------------------------------------------------------

ClinicGatewayService::ClinicGatewayService(PushProcessor& processor, Store& store,
                                           const Routing& routing, DeliveryService& delivery,
                                           DeliveryWaiters& waiters, InboundHub& hub,
                                           const Authenticator& auth)
    : processor_(processor),
      store_(store),
      routing_(routing),
      delivery_(delivery),
      waiters_(waiters),
      hub_(hub),
      auth_(auth) {}

grpc::ServerWriteReactor<v1::InboundEvent>* ClinicGatewayService::WatchInbound(
    grpc::CallbackServerContext* context, const v1::WatchInboundRequest* request) {
  absl::StatusOr<Principal> who = auth_.FromGrpc(*context);
  if (!who.ok()) {
    LogWarning(absl::StrCat("WatchInbound from ", context->peer(), ": ", who.status().message()));
    return new FailedWriteReactor(ToGrpcStatus(who.status()));
  }
  v1::WatchInboundRequest effective = *request;
  // An empty clinic_id means the caller's own clinic, when it has exactly one.
  if (effective.clinic_id().empty() && who->role == v1::Credential::CLINIC &&
      who->clinic_ids.size() == 1) {
    effective.set_clinic_id(who->clinic_ids.front());
  }
  if (!effective.clinic_id().empty()) {
    if (absl::Status allowed = Authorize(*who, Action::kWatchInbound, effective.clinic_id());
        !allowed.ok()) {
      LogWarning(absl::StrCat("WatchInbound from ", context->peer(), ": ", allowed.message()));
      return new FailedWriteReactor(ToGrpcStatus(allowed));
    }
  }
  return StartWatchInbound(store_, hub_, effective);
}

grpc::ServerUnaryReactor* ClinicGatewayService::Push(grpc::CallbackServerContext* context,
                                                     const v1::PushRequest* request,
                                                     v1::PushResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<Principal> who =
      Check(auth_, *context, "Push", Action::kPush, request->record().clinic_id());
  if (!who.ok()) {
    reactor->Finish(ToGrpcStatus(who.status()));
    return reactor;
  }
  const bool wait = request->wait_for_delivery();
  const auto deadline = context->deadline();
  processor_.Process(
      request->record(), who->name,
      [this, reactor, response, wait, deadline](absl::StatusOr<v1::PushResponse> result) {
        if (!result.ok()) {
          reactor->Finish(ToGrpcStatus(result.status()));
          return;
        }
        *response = std::move(*result);
        if (!wait || IsFinalStatus(response->status())) {
          reactor->Finish(grpc::Status::OK);
          return;
        }
        // Wait for the EHR's answer (or the deadline), then report the status at that moment.
        const auto capped =
            std::min(deadline, std::chrono::system_clock::now() + std::chrono::hours(1));
        // Once the waiter is registered the call may finish (and `response` be freed) at any
        // moment, so only the local copy of the id is used after Wait.
        const std::string id = response->transaction_id();
        waiters_.Wait(id, capped, [this, reactor, response, id](bool) {
          absl::StatusOr<v1::Transaction> tx = store_.Get(id, false);
          if (tx.ok()) response->set_status(tx->status());
          reactor->Finish(grpc::Status::OK);
        });
        // The delivery may have finished before the waiter was registered.
        absl::StatusOr<v1::Transaction> now = store_.Get(id, false);
        if (now.ok() && IsFinalStatus(now->status())) waiters_.Notify(id, now->status());
      });
  return reactor;
}

namespace {

// PushStream: one response per request, in request order, with at most kWindow records in flight
// so that a fast uploader is slowed to the log's pace (flow control).
class PushStreamReactor final : public grpc::ServerBidiReactor<v1::PushRequest, v1::PushResponse> {
 public:
  static constexpr int kWindow = 64;

  PushStreamReactor(PushProcessor& processor, Principal principal, std::string peer)
      : processor_(processor), principal_(std::move(principal)), peer_(std::move(peer)) {
    StartRead(&request_);
  }

  void OnReadDone(bool ok) override {
    std::unique_lock<std::mutex> lock(mu_);
    if (!ok) {
      reads_done_ = true;
      MaybeFinishLocked();
      return;
    }
    if (absl::Status allowed = Authorize(principal_, Action::kPush, request_.record().clinic_id());
        !allowed.ok()) {
      // Stop reading; the records before this one are answered, then the stream ends with it.
      LogWarning(absl::StrCat("PushStream from ", peer_, ": ", allowed.message()));
      final_status_ = ToGrpcStatus(allowed);
      reads_done_ = true;
      PumpLocked();
      return;
    }
    Slot* slot = &slots_.emplace_back();
    ++in_flight_;
    ++pending_callbacks_;
    v1::ClinicRecord record = std::move(*request_.mutable_record());
    const bool read_more = in_flight_ < kWindow;
    if (read_more) {
      StartRead(&request_);
    } else {
      read_paused_ = true;
    }
    lock.unlock();
    processor_.Process(
        record, principal_.name,
        [this, slot, record_id = record.record_id()](absl::StatusOr<v1::PushResponse> result) {
          bool last;
          {
            std::lock_guard<std::mutex> lock(mu_);
            if (result.ok()) {
              slot->response = std::move(*result);
            } else {
              // The record was not logged; say why, with every issue, in the response for it.
              slot->response.set_record_id(record_id);
              v1::Issue* issue = slot->response.add_issues();
              issue->set_severity(v1::Issue::ERROR);
              issue->set_message(std::string(result.status().message()));
              for (v1::Alert& alert : mappers::AlertsOf(result.status())) {
                *slot->response.add_alerts() = std::move(alert);
              }
            }
            slot->ready = true;
            --pending_callbacks_;
            PumpLocked();
            last = ShouldDeleteLocked();
          }
          if (last) delete this;
        });
  }

  void OnWriteDone(bool ok) override {
    std::lock_guard<std::mutex> lock(mu_);
    writing_ = false;
    if (!ok) {
      failed_ = true;
      MaybeFinishLocked();
      return;
    }
    --in_flight_;
    if (read_paused_ && !reads_done_ && in_flight_ < kWindow) {
      read_paused_ = false;
      StartRead(&request_);
    }
    PumpLocked();
  }

  void OnDone() override {
    bool last;
    {
      std::lock_guard<std::mutex> lock(mu_);
      done_ = true;
      last = ShouldDeleteLocked();
    }
    if (last) delete this;
  }

  void OnCancel() override {
    std::lock_guard<std::mutex> lock(mu_);
    failed_ = true;
  }

 private:
  struct Slot {
    v1::PushResponse response;
    bool ready = false;
  };

  void PumpLocked() {
    if (writing_ || finished_ || failed_ || slots_.empty() || !slots_.front().ready) {
      MaybeFinishLocked();
      return;
    }
    current_ = std::move(slots_.front().response);
    slots_.pop_front();
    writing_ = true;
    StartWrite(&current_);
  }

  void MaybeFinishLocked() {
    if (finished_ || writing_) return;
    if (failed_ || (reads_done_ && slots_.empty())) {
      finished_ = true;
      Finish(failed_ ? grpc::Status(grpc::StatusCode::CANCELLED, "stream ended early")
                     : final_status_);
    }
  }

  // True once gRPC is done with the reactor and no push callback can touch it any more; the caller
  // deletes it after releasing the lock.
  bool ShouldDeleteLocked() {
    if (done_ && pending_callbacks_ == 0 && !deleting_) {
      deleting_ = true;
      return true;
    }
    return false;
  }

  PushProcessor& processor_;
  const Principal principal_;
  const std::string peer_;
  std::mutex mu_;
  grpc::Status final_status_;  // guarded by mu_: OK, or why the stream stopped reading
  v1::PushRequest request_;
  v1::PushResponse current_;
  std::deque<Slot> slots_;  // request order; std::deque keeps element addresses stable
  int in_flight_ = 0;
  int pending_callbacks_ = 0;
  bool reads_done_ = false;
  bool read_paused_ = false;
  bool writing_ = false;
  bool finished_ = false;
  bool failed_ = false;
  bool done_ = false;
  bool deleting_ = false;
};

}  // namespace

grpc::ServerBidiReactor<v1::PushRequest, v1::PushResponse>* ClinicGatewayService::PushStream(
    grpc::CallbackServerContext* context) {
  absl::StatusOr<Principal> who = auth_.FromGrpc(*context);
  if (!who.ok()) {
    LogWarning(absl::StrCat("PushStream from ", context->peer(), ": ", who.status().message()));
    return new FailedBidiReactor(ToGrpcStatus(who.status()));
  }
  return new PushStreamReactor(processor_, *std::move(who), context->peer());
}

grpc::ServerUnaryReactor* ClinicGatewayService::Translate(grpc::CallbackServerContext* context,
                                                          const v1::TranslateRequest* request,
                                                          v1::TranslateResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<Principal> who =
      Check(auth_, *context, "Translate", Action::kPush, request->record().clinic_id());
  if (!who.ok()) {
    reactor->Finish(ToGrpcStatus(who.status()));
    return reactor;
  }
  fhir::IssueList issues;
  absl::StatusOr<mappers::MapOutput> mapped = mappers::MapToFhir(
      request->record(), routing_.ContextFor(request->record().clinic_id()), issues);
  if (!mapped.ok()) {
    reactor->Finish(ToGrpcStatus(mapped.status()));
    return reactor;
  }
  response->set_bundle_json(mapped->bundle.Write(fhir::JsonStyle::kCompact));
  for (v1::Alert& alert : mapped->alerts) *response->add_alerts() = std::move(alert);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* ClinicGatewayService::GetTransaction(
    grpc::CallbackServerContext* context, const v1::GetTransactionRequest* request,
    v1::Transaction* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<Principal> who = auth_.FromGrpc(*context);
  if (!who.ok()) {
    LogWarning(absl::StrCat("GetTransaction from ", context->peer(), ": ", who.status().message()));
    reactor->Finish(ToGrpcStatus(who.status()));
    return reactor;
  }
  if (request->transaction_id().empty()) {
    reactor->Finish(
        grpc::Status(grpc::StatusCode::INVALID_ARGUMENT, "transaction_id: is required"));
    return reactor;
  }
  absl::StatusOr<v1::Transaction> tx = store_.Get(request->transaction_id(), true);
  if (!tx.ok()) {
    reactor->Finish(ToGrpcStatus(tx.status()));
    return reactor;
  }
  if (absl::Status allowed =
          Authorize(*who, Action::kReadTransaction, tx->clinic_id(), tx->destination());
      !allowed.ok()) {
    LogWarning(absl::StrCat("GetTransaction from ", context->peer(), ": ", allowed.message()));
    reactor->Finish(ToGrpcStatus(allowed));
    return reactor;
  }
  *response = std::move(*tx);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* ClinicGatewayService::Replay(grpc::CallbackServerContext* context,
                                                       const v1::ReplayRequest* request,
                                                       v1::ReplayResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<Principal> who = Check(auth_, *context, "Replay", Action::kReplay);
  if (!who.ok()) {
    reactor->Finish(ToGrpcStatus(who.status()));
    return reactor;
  }
  std::vector<std::string> ids(request->transaction_ids().begin(),
                               request->transaction_ids().end());
  absl::StatusOr<std::vector<std::string>> replayed =
      store_.Replay(ids, request->clinic_id(), base::UnixMillis());
  if (!replayed.ok()) {
    reactor->Finish(ToGrpcStatus(replayed.status()));
    return reactor;
  }
  response->set_replayed(static_cast<int32_t>(replayed->size()));
  for (std::string& id : *replayed) response->add_transaction_ids(std::move(id));
  if (!replayed->empty()) delivery_.Wake();
  LogInfo(absl::StrCat(who->name, " replayed ", replayed->size(), " dead-lettered transactions"));
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

}  // namespace fhirgw::gateway
