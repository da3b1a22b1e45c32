// FHIR R4 -> clinic records: the reverse direction of the mappers, for what hospitals send back
// (medication lists, orders, administrations, screening scores, encounters, patients).
//
//   ReverseContext context{"clinic-a", IdentifierSystems::ForTenant("clinic-a")};
//   fhir::IssueList issues;
//   absl::StatusOr<std::vector<ReverseRecord>> records = MapFromFhir(json, context, issues);
//   if (!records.ok()) { /* InvalidArgument: nothing could be mapped; `issues` says why */ }
//   for (const ReverseRecord& r : *records) Deliver(r.record, r.patient_identifiers);
//   // `issues` may still hold errors (resources that were skipped) and warnings, each with its
//   // FHIR element path: "Bundle.entry[3].resource.medicationReference: ...".
//
// The input is one resource or a Bundle (transaction, batch, collection, searchset, ...; not a
// transaction-response). NDJSON is split by the caller, one MapFromFhir call a line.
//
// Grouping, so that record -> FHIR -> record gives the record back:
//   - MedicationAdministration -> InfusionRecord, absorbing the Observations whose partOf names it
//     (vital signs, regrouped per Vitals by fhirgw's ".../vitals/<i>/..." identifiers or else by
//     effective time; body weight -> patient_weight_kg), the AdverseEvents whose suspectEntity
//     names it and the Encounter its `context` names.
//   - QuestionnaireResponse -> QuestionnaireRecord, absorbing the Observations derivedFrom it and
//     the Flags of the Bundle.
//   - a PHQ-9, GAD-7 or PHQ-2 total or panel Observation not derived from a QuestionnaireResponse
//   of
//     the input -> QuestionnaireRecord (reported_total, and answers from hasMember or components).
//   - MedicationStatement, and MedicationRequest (source HOSPITAL_RECORD) -> MedicationStatement-
//     Record; Encounter (not absorbed) -> EncounterRecord; Patient referenced by nothing else ->
//     PatientRecord.
// Medication, Practitioner, Organization and the like are used as reference targets in a Bundle.
#ifndef FHIRGW_MAPPERS_REVERSE_H_
#define FHIRGW_MAPPERS_REVERSE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "fhir/issues.h"
#include "fhirgw/v1/records.pb.h"
#include "mappers/common.h"

namespace fhirgw::mappers {

struct ReverseContext {
  // The tenant the records are for (may be empty offline); copied into every record's clinic_id.
  std::string clinic_id;
  // The tenant's identifier systems, to recognise fhirgw's own identifiers (record ids, the clinic
  // patient id). A system left empty recognises nothing, unless `match_any_tenant`.
  IdentifierSystems systems;
  // Where `systems` leaves a system empty, recognise fhirgw's default form for any tenant,
  // "urn:fhirgw:<tenant>:<type>". For offline translation only (the tenant is unknown there): a
  // record passed to a clinic must never carry another clinic's ids.
  bool match_any_tenant = false;

  // Returns the context of `clinic_id` with its default identifier systems.
  static ReverseContext ForTenant(absl::string_view clinic_id);
};

struct ReverseRecord {
  v1::ClinicRecord record;
  // The resource the record came from: its type ("MedicationRequest"), its id (or its fullUrl
  // when it has none) and meta.versionId when present.
  std::string source_type;
  std::string source_id;
  std::string source_version;
  // The subject Patient's identifiers as "system|value", for routing to the clinic that knows the
  // patient; "Patient/<id>" when only a literal reference is known. May be empty.
  std::vector<std::string> patient_identifiers;
};

// The resource types MapFromFhir maps, for error messages.
inline constexpr char kSupportedResourceTypes[] =
    "MedicationStatement, MedicationRequest, MedicationAdministration, QuestionnaireResponse, "
    "Observation (PHQ-9, GAD-7, PHQ-2), Encounter, Patient";

// Maps the FHIR R4 JSON `json` (one resource or a Bundle) to clinic records. Problems go to
// `issues` with FHIR element paths: errors for resources that were skipped, warnings for values
// that were left out or adjusted. Returns InvalidArgument when nothing could be mapped (malformed
// JSON, an unsupported resource, ...), else the records in the order of their resources.
absl::StatusOr<std::vector<ReverseRecord>> MapFromFhir(absl::string_view json,
                                                       const ReverseContext& context,
                                                       fhir::IssueList& issues);

}  // namespace fhirgw::mappers

#endif  // FHIRGW_MAPPERS_REVERSE_H_
