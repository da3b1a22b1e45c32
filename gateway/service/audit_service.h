// The AuditService gRPC service: the auditors' read-only view of the transaction log.
//
//   QueryTransactions  filters (time, clinic, patient, kind, direction, status, destination,
//                      record_id), newest first, page tokens
//   GetTransaction     the full lineage of one transaction: input, FHIR, attempts, outcome,
//   principal VerifyLog          recomputes the hash chain and checks the signed head
//   ExportAuditEvents  one FHIR R4 AuditEvent per log entry in a time range
//
// Every call is authorized as Action::kAudit; a scoped auditor sees only its clinics.
#ifndef FHIRGW_GATEWAY_SERVICE_AUDIT_SERVICE_H_
#define FHIRGW_GATEWAY_SERVICE_AUDIT_SERVICE_H_

#include <string>

#include "fhirgw/v1/audit.grpc.pb.h"
#include "gateway/security/auth.h"
#include "gateway/store/store.h"

namespace fhirgw::gateway {

// Builds the FHIR R4 AuditEvent for one log entry (JSON).
std::string AuditEventJson(const v1::LogEntry& entry);

class AuditServiceImpl final : public v1::AuditService::CallbackService {
 public:
  AuditServiceImpl(Store& store, const Authenticator& auth) : store_(store), auth_(auth) {}

  grpc::ServerUnaryReactor* QueryTransactions(grpc::CallbackServerContext* context,
                                              const v1::QueryTransactionsRequest* request,
                                              v1::QueryTransactionsResponse* response) override;
  grpc::ServerUnaryReactor* GetTransaction(grpc::CallbackServerContext* context,
                                           const v1::GetTransactionRequest* request,
                                           v1::Transaction* response) override;
  grpc::ServerUnaryReactor* VerifyLog(grpc::CallbackServerContext* context,
                                      const v1::VerifyLogRequest* request,
                                      v1::VerifyLogResponse* response) override;
  grpc::ServerWriteReactor<v1::AuditEventChunk>* ExportAuditEvents(
      grpc::CallbackServerContext* context, const v1::ExportAuditEventsRequest* request) override;

 private:
  // Authenticates the caller and authorizes kAudit on `clinic_id`; fills the caller's scope.
  absl::StatusOr<Principal> Check(const grpc::CallbackServerContext& context,
                                  absl::string_view clinic_id) const;

  Store& store_;
  const Authenticator& auth_;
};

}  // namespace fhirgw::gateway

#endif  // FHIRGW_GATEWAY_SERVICE_AUDIT_SERVICE_H_
