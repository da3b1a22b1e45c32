#include "gateway/service/audit_service.h"

#include <deque>
#include <mutex>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "fhir/datatypes.h"
#include "fhir/json.h"
#include "fhir/primitives.h"
#include "gateway/service/status.h"

namespace fhirgw::gateway {
namespace {

int64_t ToMs(const google::protobuf::Timestamp& t) {
  return t.seconds() * 1000 + t.nanos() / 1000000;
}

struct ActionCode {
  const char* action;   // AuditEvent.action: C R U D E
  const char* subtype;  // http://hl7.org/fhir/restful-interaction
  const char* text;
};

ActionCode ActionOf(v1::LogEntry::Event event) {
  switch (event) {
    case v1::LogEntry::RECORD_LOGGED:
      return {"C", "create", "record logged"};
    case v1::LogEntry::RESENT:
      return {"C", "create", "record resent; nothing changed"};
    case v1::LogEntry::DELIVERY_ATTEMPT:
      return {"E", "transaction", "delivery attempt"};
    case v1::LogEntry::REPLAYED:
      return {"U", "update", "dead letter replayed"};
    case v1::LogEntry::RECOVERED:
      return {"U", "update", "requeued after a restart"};
    case v1::LogEntry::PURGED:
      return {"D", "delete", "payloads purged by the retention policy"};
    default:
      return {"E", "transaction", "event"};
  }
}

// AuditEvent.outcome: 0 success, 4 minor failure (refused: by the EHR, or a record the gateway
// rejected), 8 serious failure (no answer / 5xx).
const char* OutcomeOf(const v1::LogEntry& entry) {
  if (entry.event() == v1::LogEntry::RECORD_LOGGED && entry.status() == v1::REJECTED) return "4";
  if (entry.event() != v1::LogEntry::DELIVERY_ATTEMPT) return "0";
  switch (entry.attempt().outcome()) {
    case v1::DeliveryAttempt::SUCCESS:
      return "0";
    case v1::DeliveryAttempt::REJECTED:
      return "4";
    default:
      return "8";
  }
}

}  // namespace

std::string AuditEventJson(const v1::LogEntry& entry) {
  fhir::JsonDocument doc;
  fhir::JsonAlloc& a = doc.GetAllocator();
  const ActionCode action = ActionOf(entry.event());
  fhir::Json event = fhir::Json::Object(a);
  event.Str("resourceType", "AuditEvent");
  event.Put("type", fhir::Coding(a, "http://terminology.hl7.org/CodeSystem/audit-event-type",
                                 "rest", "RESTful Operation"));
  event.Put("subtype",
            fhir::Json::Array(a).Push(fhir::Coding(a, "http://hl7.org/fhir/restful-interaction",
                                                   action.subtype, action.subtype)));
  event.Str("action", action.action);
  event.Str("recorded", fhir::FormatInstantMillis(entry.at_ms()));
  event.Str("outcome", OutcomeOf(entry));
  std::string description = absl::StrCat(action.text, ": ", v1::LogEntry::Event_Name(entry.event()),
                                         ", status ", v1::TransactionStatus_Name(entry.status()));
  if (entry.event() == v1::LogEntry::DELIVERY_ATTEMPT) {
    absl::StrAppend(&description, ", attempt ", entry.attempt().number(), " to ",
                    entry.destination(),
                    entry.attempt().http_status() != 0
                        ? absl::StrCat(", HTTP ", entry.attempt().http_status())
                        : absl::StrCat(", no answer: ", entry.attempt().error()));
  }
  event.Str("outcomeDesc", description);
  event.Put("purposeOfEvent",
            fhir::Json::Array(a).Push(fhir::CodeableConcept(
                a, "http://terminology.hl7.org/CodeSystem/v3-ActReason", "TREAT", "treatment")));

  fhir::Json agent = fhir::Json::Object(a);
  agent.Put("type", fhir::CodeableConcept(
                        a, "http://terminology.hl7.org/CodeSystem/extra-security-role-type",
                        "datacollector", "data collector"));
  agent.Put("who",
            fhir::IdentifierReference(a, "Device", "urn:fhirgw:principal",
                                      entry.principal().empty() ? "fhirgw" : entry.principal(),
                                      entry.principal().empty() ? "fhirgw" : entry.principal()));
  agent.Bool("requestor",
             entry.event() == v1::LogEntry::RECORD_LOGGED || entry.event() == v1::LogEntry::RESENT);
  fhir::Json agents = fhir::Json::Array(a);
  agents.Push(std::move(agent));
  event.Put("agent", std::move(agents));

  fhir::Json source = fhir::Json::Object(a);
  source.Str("site", entry.destination());
  source.Put("observer", fhir::Reference(a, "", "fhirgw"));
  source.Put("type", fhir::Json::Array(a).Push(fhir::Coding(
                         a, "http://terminology.hl7.org/CodeSystem/security-source-type", "4",
                         "Application Server")));
  event.Put("source", std::move(source));

  fhir::Json entities = fhir::Json::Array(a);
  fhir::Json transaction = fhir::Json::Object(a);
  transaction.Put("what", fhir::IdentifierReference(a, "Bundle", "urn:fhirgw:transaction",
                                                    entry.transaction_id()));
  transaction.Put("type", fhir::Coding(a, "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                                       "2", "System Object"));
  transaction.Str("name", entry.record_id());
  transaction.Str("description", absl::StrCat(v1::RecordKind_Name(entry.kind()), " ",
                                              v1::Direction_Name(entry.direction()), " version ",
                                              entry.version(), " of clinic ", entry.clinic_id()));
  fhir::Json details = fhir::Json::Array(a);
  fhir::Json sequence = fhir::Json::Object(a);
  sequence.Str("type", "log-sequence").Str("valueString", absl::StrCat(entry.sequence()));
  details.Push(std::move(sequence));
  if (!entry.record_sha256().empty()) {
    fhir::Json digest = fhir::Json::Object(a);
    digest.Str("type", "record-sha256")
        .Str("valueBase64Binary", absl::Base64Escape(entry.record_sha256()));
    details.Push(std::move(digest));
  }
  transaction.Put("detail", std::move(details));
  entities.Push(std::move(transaction));
  if (!entry.patient_id().empty()) {
    fhir::Json patient = fhir::Json::Object(a);
    patient.Put("what",
                fhir::IdentifierReference(
                    a, "Patient", absl::StrCat("urn:fhirgw:", entry.clinic_id(), ":patient"),
                    entry.patient_id()));
    patient.Put("type", fhir::Coding(a, "http://terminology.hl7.org/CodeSystem/audit-entity-type",
                                     "1", "Person"));
    patient.Put("role", fhir::Coding(a, "http://terminology.hl7.org/CodeSystem/object-role", "1",
                                     "Patient"));
    entities.Push(std::move(patient));
  }
  event.Put("entity", std::move(entities));
  return fhir::WriteJson(event.value(), fhir::JsonStyle::kCompact);
}

absl::StatusOr<Principal> AuditServiceImpl::Check(const grpc::CallbackServerContext& context,
                                                  absl::string_view clinic_id) const {
  absl::StatusOr<Principal> who = auth_.FromGrpc(context);
  if (!who.ok()) return who.status();
  absl::Status allowed = Authorize(*who, Action::kAudit, clinic_id);
  if (!allowed.ok()) return allowed;
  return who;
}

namespace {

// The clinics an auditor may see: its scope, narrowed to `clinic_id` when one is asked for.
std::vector<std::string> ScopeOf(const Principal& who, absl::string_view clinic_id) {
  if (!clinic_id.empty()) return {std::string(clinic_id)};
  if (who.role == v1::Credential::AUDITOR) return who.clinic_ids;
  return {};
}

}  // namespace

grpc::ServerUnaryReactor* AuditServiceImpl::QueryTransactions(
    grpc::CallbackServerContext* context, const v1::QueryTransactionsRequest* request,
    v1::QueryTransactionsResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<Principal> who = Check(*context, request->clinic_id());
  if (!who.ok()) {
    reactor->Finish(ToGrpcStatus(who.status()));
    return reactor;
  }
  TransactionQuery query;
  if (request->has_from()) query.from_ms = ToMs(request->from());
  if (request->has_to()) query.to_ms = ToMs(request->to());
  query.clinic_id = request->clinic_id();
  query.clinic_scope = ScopeOf(*who, "");
  query.patient_identifier = request->patient_identifier();
  query.kind = request->kind();
  query.direction = request->direction();
  query.status = request->status();
  query.destination = request->destination();
  query.record_id = request->record_id();
  query.page_size = request->page_size();
  query.page_token = request->page_token();
  absl::StatusOr<TransactionPage> page = store_.Query(query);
  if (!page.ok()) {
    reactor->Finish(ToGrpcStatus(page.status()));
    return reactor;
  }
  for (v1::Transaction& tx : page->transactions) *response->add_transactions() = std::move(tx);
  response->set_next_page_token(page->next_page_token);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* AuditServiceImpl::GetTransaction(grpc::CallbackServerContext* context,
                                                           const v1::GetTransactionRequest* request,
                                                           v1::Transaction* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<Principal> who = Check(*context, "");
  if (!who.ok()) {
    reactor->Finish(ToGrpcStatus(who.status()));
    return reactor;
  }
  absl::StatusOr<v1::Transaction> tx = store_.Get(request->transaction_id(), true);
  if (!tx.ok()) {
    reactor->Finish(ToGrpcStatus(tx.status()));
    return reactor;
  }
  // A scoped auditor must not learn that other clinics' transactions exist.
  if (absl::Status allowed = Authorize(*who, Action::kAudit, tx->clinic_id()); !allowed.ok()) {
    reactor->Finish(grpc::Status(grpc::StatusCode::NOT_FOUND,
                                 absl::StrCat("no transaction ", request->transaction_id())));
    return reactor;
  }
  *response = std::move(*tx);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

grpc::ServerUnaryReactor* AuditServiceImpl::VerifyLog(grpc::CallbackServerContext* context,
                                                      const v1::VerifyLogRequest* request,
                                                      v1::VerifyLogResponse* response) {
  grpc::ServerUnaryReactor* reactor = context->DefaultReactor();
  absl::StatusOr<Principal> who = Check(*context, "");
  if (!who.ok()) {
    reactor->Finish(ToGrpcStatus(who.status()));
    return reactor;
  }
  absl::StatusOr<v1::VerifyLogResponse> result = store_.Verify();
  if (!result.ok()) {
    reactor->Finish(ToGrpcStatus(result.status()));
    return reactor;
  }
  *response = std::move(*result);
  reactor->Finish(grpc::Status::OK);
  return reactor;
}

namespace {

// Streams AuditEvents page by page from the log, so that a long range needs little memory.
class ExportReactor final : public grpc::ServerWriteReactor<v1::AuditEventChunk> {
 public:
  static constexpr int kPage = 256;

  ExportReactor(Store& store, int64_t from_ms, int64_t to_ms, std::vector<std::string> scope)
      : store_(store), from_ms_(from_ms), to_ms_(to_ms), scope_(std::move(scope)) {
    Next();
  }

  void OnWriteDone(bool ok) override {
    if (!ok) {
      Finish(grpc::Status(grpc::StatusCode::CANCELLED, "the client went away"));
      return;
    }
    Next();
  }

  void OnDone() override { delete this; }

 private:
  void Next() {
    if (pending_.empty() && !exhausted_) {
      absl::StatusOr<std::vector<v1::LogEntry>> page =
          store_.ListLogEntries(from_ms_, to_ms_, scope_, cursor_, kPage);
      if (!page.ok()) {
        Finish(ToGrpcStatus(page.status()));
        return;
      }
      exhausted_ = static_cast<int>(page->size()) < kPage;
      for (v1::LogEntry& entry : *page) {
        cursor_ = entry.sequence();
        pending_.push_back(std::move(entry));
      }
    }
    if (pending_.empty()) {
      Finish(grpc::Status::OK);
      return;
    }
    chunk_.set_sequence(pending_.front().sequence());
    chunk_.set_audit_event_json(AuditEventJson(pending_.front()));
    pending_.pop_front();
    StartWrite(&chunk_);
  }

  Store& store_;
  const int64_t from_ms_;
  const int64_t to_ms_;
  const std::vector<std::string> scope_;
  int64_t cursor_ = 0;
  bool exhausted_ = false;
  std::deque<v1::LogEntry> pending_;
  v1::AuditEventChunk chunk_;
};

class FailedExport final : public grpc::ServerWriteReactor<v1::AuditEventChunk> {
 public:
  explicit FailedExport(const grpc::Status& status) { Finish(status); }
  void OnDone() override { delete this; }
};

}  // namespace

grpc::ServerWriteReactor<v1::AuditEventChunk>* AuditServiceImpl::ExportAuditEvents(
    grpc::CallbackServerContext* context, const v1::ExportAuditEventsRequest* request) {
  absl::StatusOr<Principal> who = Check(*context, request->clinic_id());
  if (!who.ok()) return new FailedExport(ToGrpcStatus(who.status()));
  return new ExportReactor(store_, request->has_from() ? ToMs(request->from()) : 0,
                           request->has_to() ? ToMs(request->to()) : 0,
                           ScopeOf(*who, request->clinic_id()));
}

}  // namespace fhirgw::gateway
