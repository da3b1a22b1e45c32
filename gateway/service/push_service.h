// The ClinicGateway gRPC service: Push, PushStream, Translate, GetTransaction, WatchInbound,
// Replay.
//
// Every call is authenticated (auth.h) and then authorized: Push, PushStream and Translate on each
// record's clinic_id, GetTransaction on the transaction's clinic and destination, WatchInbound on
// the requested clinic, Replay for ADMIN only. Failures answer UNAUTHENTICATED or
// PERMISSION_DENIED; a PushStream record the caller may not push ends the stream with
// PERMISSION_DENIED after the answers to the records before it. The log records the caller's
// credential name as each transaction's principal.
//
// A push is validated, mapped and routed on the gRPC thread, then handed to the store's group
// commit; the answer goes out from the commit thread once the record is durable. No thread waits
// for an fsync. A record whose mapping reads its previous version from the log (a questionnaire:
// a correction resolves the earlier suicidal-ideation Flag) waits for the pushes of the same
// record before it, so that a correction streamed right behind the version it corrects sees that
// version; the next one then starts on the commit thread.
#ifndef FHIRGW_GATEWAY_SERVICE_PUSH_SERVICE_H_
#define FHIRGW_GATEWAY_SERVICE_PUSH_SERVICE_H_

#include <chrono>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "fhir/issues.h"
#include "fhirgw/v1/gateway.grpc.pb.h"
#include "gateway/config/config.h"
#include "gateway/delivery/delivery.h"
#include "gateway/inbound/inbound_hub.h"
#include "gateway/ops/metrics.h"
#include "gateway/security/auth.h"
#include "gateway/store/store.h"
#include "mappers/common.h"

namespace fhirgw::gateway {

// Calls back when a transaction reaches a final delivery status, or when its deadline passes.
class DeliveryWaiters {
 public:
  using Callback = std::function<void(bool final_status_reached)>;
  DeliveryWaiters();
  ~DeliveryWaiters();
  // Registers `done` for `transaction_id`; it runs exactly once, from another thread.
  void Wait(const std::string& transaction_id, std::chrono::system_clock::time_point deadline,
            Callback done);
  // Reports a new status; final statuses (DELIVERED, REJECTED, DEAD_LETTER) release the waiters.
  void Notify(const std::string& transaction_id, v1::TransactionStatus status);
  void Shutdown();

 private:
  void TimerLoop();
  struct Waiter {
    std::chrono::system_clock::time_point deadline;
    Callback done;
  };
  std::mutex mu_;
  std::condition_variable cv_;
  std::multimap<std::string, Waiter> waiters_;  // guarded by mu_
  bool stopping_ = false;                       // guarded by mu_
  std::thread timer_;
};

bool IsFinalStatus(v1::TransactionStatus status);

// Serializes `record` deterministically (the input of the content hash that detects resends).
std::string DeterministicBytes(const v1::ClinicRecord& record);

// Runs work one at a time per (clinic_id, record_id), in the order it was submitted; work for other
// records runs at once.
class PerRecordOrder {
 public:
  // Runs `work` now when no work of the record runs, else once the work before it is Done.
  void Run(const std::string& clinic_id, const std::string& record_id, std::function<void()> work);
  // Ends the running work of the record and runs the next one waiting, if any, on this thread.
  void Done(const std::string& clinic_id, const std::string& record_id);

 private:
  using Key = std::pair<std::string, std::string>;
  std::mutex mu_;
  // A record is present while its work runs, with the work waiting behind it; guarded by mu_.
  std::map<Key, std::deque<std::function<void()>>> waiting_;
};

// Validates, maps, routes and logs one record; shared by Push and PushStream.
class PushProcessor {
 public:
  using Done = std::function<void(absl::StatusOr<v1::PushResponse>)>;
  PushProcessor(Store& store, const Routing& routing, DeliveryService& delivery,
                MetricsRegistry& metrics);
  // Answers `done` with the response once the record is durable. A record that fails validation
  // is logged as REJECTED (never delivered; Store's NewEntry::rejected) and answered with
  // InvalidArgument naming every bad field, its alerts attached (mappers::WithAlerts).
  void Process(const v1::ClinicRecord& record, const std::string& principal, Done done);

 private:
  // Maps `record` with what the log holds of its `previous` version and logs it (or its
  // rejection).
  void MapAndLog(const v1::ClinicRecord& record, const std::string& principal,
                 const mappers::PreviousVersion& previous, Done done);
  // Logs `record`, refused by validation with `rejection` (`issues` name each bad field), then
  // answers `done` with `rejection`.
  void LogRejection(const v1::ClinicRecord& record, const std::string& principal,
                    const fhir::IssueList& issues, const absl::Status& rejection, Done done);
  void CountPush(const char* kind, const char* outcome);

  Store& store_;
  const Routing& routing_;
  DeliveryService& delivery_;
  MetricsRegistry& metrics_;
  Histogram& latency_;
  PerRecordOrder record_order_;
};

class ClinicGatewayService final : public v1::ClinicGateway::CallbackService {
 public:
  ClinicGatewayService(PushProcessor& processor, Store& store, const Routing& routing,
                       DeliveryService& delivery, DeliveryWaiters& waiters, InboundHub& hub,
                       const Authenticator& auth);

  grpc::ServerUnaryReactor* Push(grpc::CallbackServerContext* context,
                                 const v1::PushRequest* request,
                                 v1::PushResponse* response) override;
  grpc::ServerBidiReactor<v1::PushRequest, v1::PushResponse>* PushStream(
      grpc::CallbackServerContext* context) override;
  grpc::ServerUnaryReactor* Translate(grpc::CallbackServerContext* context,
                                      const v1::TranslateRequest* request,
                                      v1::TranslateResponse* response) override;
  grpc::ServerUnaryReactor* GetTransaction(grpc::CallbackServerContext* context,
                                           const v1::GetTransactionRequest* request,
                                           v1::Transaction* response) override;
  grpc::ServerWriteReactor<v1::InboundEvent>* WatchInbound(
      grpc::CallbackServerContext* context, const v1::WatchInboundRequest* request) override;
  grpc::ServerUnaryReactor* Replay(grpc::CallbackServerContext* context,
                                   const v1::ReplayRequest* request,
                                   v1::ReplayResponse* response) override;

 private:
  PushProcessor& processor_;
  Store& store_;
  const Routing& routing_;
  DeliveryService& delivery_;
  DeliveryWaiters& waiters_;
  InboundHub& hub_;
  const Authenticator& auth_;
};

}  // namespace fhirgw::gateway

#endif  // FHIRGW_GATEWAY_SERVICE_PUSH_SERVICE_H_
