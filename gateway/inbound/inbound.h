// Hospital -> clinic: FHIR R4 in, clinic records out.
//
// Hospitals POST FHIR to the HTTP listener:
//   POST /fhir/{Type}   one resource                -> 201 Created (200 for a resend), Location
//   POST /fhir          a transaction or batch Bundle -> a transaction-response / batch-response
//   Bundle
// authenticated (auth.h: a HOSPITAL bearer token or client certificate; 401 with WWW-Authenticate
// without valid credentials, 403 for another role), application/fhir+json. Each resource is mapped
// to clinic records (mappers/reverse.h), routed to the clinic(s) that know the patient (from the
// patient identifiers clinics have pushed, or the ids the EHR assigned on delivery, or inbound
// routing rules), and logged as EHR_TO_CLINIC transactions; WatchInbound streams carry them to the
// clinic. Anything that cannot be mapped or routed is answered 400/422 with an OperationOutcome
// naming the element.
//
// The poller (poller.h) feeds what it finds at an EHR through the same Ingest.
#ifndef FHIRGW_GATEWAY_INBOUND_INBOUND_H_
#define FHIRGW_GATEWAY_INBOUND_INBOUND_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "fhir/issues.h"
#include "fhirgw/v1/config.pb.h"
#include "gateway/config/config.h"
#include "gateway/inbound/inbound_hub.h"
#include "gateway/ops/http_server.h"
#include "gateway/ops/metrics.h"
#include "gateway/security/auth.h"
#include "gateway/store/store.h"
#include "mappers/reverse.h"

namespace fhirgw::gateway {

// A record ready to log, routed to one clinic.
struct RoutedRecord {
  mappers::ReverseRecord source;
  v1::ClinicRecord record;  // with clinic_id and the clinic's patient id
};

// Where records of a poll go: the clinic and patient whose data was searched.
struct KnownPatient {
  std::string clinic_id;
  std::string clinic_patient_id;
};

class InboundService {
 public:
  // `auth` decides who may post; in development mode the deprecated
  // inbound.bearer_token_sha256 tokens, when configured, are still required.
  InboundService(Store& store, const v1::GatewayConfig& config, InboundHub& hub,
                 MetricsRegistry& metrics, const Authenticator& auth);

  // Registers POST /fhir and POST /fhir/{Type} on `server`.
  void Register(HttpServer& server);

  struct Outcome {
    std::vector<RoutedRecord> routed;
    std::vector<AppendResult> appended;  // one per routed record, same order
    fhir::IssueList issues;              // mapping and routing problems, with element paths
  };

  // Maps `json` (a resource or a Bundle), routes every record and logs them all atomically.
  // With `patient`, every record goes to that clinic and patient (polling); otherwise routing finds
  // the clinic. `source` names where it came from (a destination, or "http"). Returns
  // InvalidArgument (with `issues` in the outcome's status message) when any record cannot be
  // mapped or routed and `all_or_nothing`; otherwise logs what it can. `principal` is logged as
  // who did it (default: `source`).
  absl::StatusOr<Outcome> Ingest(absl::string_view json, absl::string_view source,
                                 const KnownPatient* patient, bool all_or_nothing,
                                 absl::string_view principal = {});

 private:
  absl::Status Route(std::vector<mappers::ReverseRecord>& records, const KnownPatient* patient,
                     std::vector<RoutedRecord>& routed, fhir::IssueList& issues);
  absl::StatusOr<std::vector<AppendResult>> Log(const std::vector<RoutedRecord>& routed,
                                                absl::string_view json, absl::string_view source,
                                                absl::string_view principal);
  // The caller of an inbound request when it may post FHIR; otherwise answers 401 or 403.
  std::optional<Principal> Admit(const httplib::Request& req, httplib::Response& res) const;

  Store& store_;
  const v1::GatewayConfig& config_;
  InboundHub& hub_;
  MetricsRegistry& metrics_;
  const Authenticator& auth_;
};

}  // namespace fhirgw::gateway

#endif  // FHIRGW_GATEWAY_INBOUND_INBOUND_H_
