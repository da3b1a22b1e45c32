// What every mapper shares: the mapping context (tenant, identifier systems), the output, the
// RecordMapper interface, and builders for the resources and datatypes several mappers write.
//
// Mappers are pure: record and context in, Bundle out. They read no clock, make no random ids and
// do no I/O, so the same input always gives byte-identical output.
#ifndef FHIRGW_MAPPERS_COMMON_H_
#define FHIRGW_MAPPERS_COMMON_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "fhir/bundle.h"
#include "fhir/json.h"
#include "fhirgw/v1/gateway.pb.h"
#include "fhirgw/v1/records.pb.h"

namespace fhirgw::mappers {

// The identifier systems of one tenant. Every resource fhirgw writes carries an identifier in the
// system for its type; by default these are "urn:fhirgw:<tenant>:<type>", e.g.
// "urn:fhirgw:clinic-a:patient". Operators may set the patient system to a URI of their own (e.g.
// the clinic's registered OID) and change the base for the rest.
struct IdentifierSystems {
  std::string patient;
  std::string encounter;
  std::string medication_administration;
  std::string medication_statement;
  std::string questionnaire_response;
  std::string observation;
  std::string adverse_event;
  std::string flag;

  // Returns the default systems for `tenant`, derived from `base` ("urn:fhirgw:<tenant>" when
  // empty).
  static IdentifierSystems ForTenant(absl::string_view tenant, absl::string_view base = {});
};

struct MapContext {
  std::string tenant;
  IdentifierSystems systems;
  // Also write one Observation per questionnaire item, linked from the total by hasMember.
  bool item_observations = false;

  static MapContext ForTenant(absl::string_view tenant);
};

struct MapOutput {
  fhir::TransactionBundle bundle;
  std::vector<v1::Alert> alerts;
};

// What the transaction log holds of the record's previous version (the newest one logged with the
// same record_id, not counting pushes the gateway rejected), for mappings that change what that
// version wrote at the EHR: a questionnaire corrected to PHQ-9 item 9 = 0 resolves the Flag the
// previous version raised. Empty for a record's first version. The caller reads it from the log
// (Store::PreviousAlerts); mappers stay pure.
struct PreviousVersion {
  std::vector<v1::Alert> alerts;  // the safety alerts the previous version raised
};

// One record kind's mapping. Implementations are stateless; `record` has passed ValidateRecord.
class RecordMapper {
 public:
  virtual ~RecordMapper() = default;
  virtual absl::Status ToFhir(const v1::ClinicRecord& record, const PreviousVersion& previous,
                              const MapContext& context, MapOutput& out) const = 0;
};

// Returns the deterministic urn:uuid of the resource `type` that the tenant identifies by `value`.
std::string Urn(const MapContext& context, absl::string_view type, absl::string_view value);

// Formats a protobuf Timestamp as a FHIR instant (UTC).
std::string Instant(const google::protobuf::Timestamp& time);

bool IsRetraction(const v1::ClinicRecord& record);

// A CodeableConcept from a clinic Code (a Code with only a display gives text only).
fhir::Json ConceptFromCode(fhir::JsonAlloc& a, const v1::Code& code);
// A list of CodeableConcepts; empty when `codes` is.
fhir::Json ConceptsFromCodes(fhir::JsonAlloc& a,
                             const google::protobuf::RepeatedPtrField<v1::Code>& codes);
// The SNOMED CT route concept; empty for ROUTE_UNSPECIFIED.
fhir::Json RouteConcept(fhir::JsonAlloc& a, v1::Route::Value route);
// A logical reference to a Practitioner by NPI, with the name as display.
fhir::Json PractitionerReference(fhir::JsonAlloc& a, const v1::Practitioner& practitioner);
// A list holding one Annotation, or empty.
fhir::Json Notes(fhir::JsonAlloc& a, absl::string_view text);

// Adds the record's Patient as a conditional create and returns its fullUrl.
std::string AddPatient(const v1::ClinicRecord& record, const MapContext& context,
                       fhir::TransactionBundle& bundle);

// The SNOMED CT finding of an adverse event kind; `code` is empty for the kinds written as text
// only (OTHER, DISSOCIATION).
struct EventCode {
  const char* code;
  const char* display;
};
EventCode AdverseEventCode(v1::AdverseEvent::Kind kind);

// The Encounter.type concept for an encounter kind (fhirgw's code system; the display as text).
fhir::Json EncounterKindConcept(fhir::JsonAlloc& a, v1::EncounterRecord::Kind kind);

// The fields of an ambulatory Encounter that infusions and encounter records both write.
struct EncounterFields {
  absl::string_view encounter_id;
  const char* status;  // planned | in-progress | finished | cancelled | entered-in-error
  v1::EncounterRecord::Kind kind;
  std::string start;
  std::string end;
};
// Builds the Encounter (class AMB) for `fields`; the caller adds further elements and the entry.
fhir::Json BuildEncounter(const EncounterFields& fields, absl::string_view patient_urn,
                          const MapContext& context, fhir::JsonAlloc& a);

// Starts a resource: resourceType, then its identifier in `system` with `value` (a list, or a
// single Identifier for the types whose identifier is 0..1, such as QuestionnaireResponse and
// AdverseEvent).
fhir::Json StartResource(fhir::JsonAlloc& a, const char* resource_type, absl::string_view system,
                         absl::string_view value);
fhir::Json StartResourceWithOneIdentifier(fhir::JsonAlloc& a, const char* resource_type,
                                          absl::string_view system, absl::string_view value);

}  // namespace fhirgw::mappers

#endif  // FHIRGW_MAPPERS_COMMON_H_
