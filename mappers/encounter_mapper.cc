#include "mappers/encounter_mapper.h"

#include "fhir/datatypes.h"

namespace fhirgw::mappers {
namespace {

using fhir::Json;
using fhir::JsonAlloc;

const char* EncounterStatus(v1::EncounterRecord::Status status) {
  switch (status) {
    case v1::EncounterRecord::PLANNED:
      return "planned";
    case v1::EncounterRecord::IN_PROGRESS:
      return "in-progress";
    case v1::EncounterRecord::FINISHED:
      return "finished";
    case v1::EncounterRecord::CANCELLED:
      return "cancelled";
    default:
      return "unknown";
  }
}

}  // namespace

absl::Status EncounterMapper::ToFhir(const v1::ClinicRecord& record,
                                     const PreviousVersion& /*previous*/, const MapContext& context,
                                     MapOutput& out) const {
  fhir::TransactionBundle& bundle = out.bundle;
  JsonAlloc& a = bundle.alloc();
  const v1::EncounterRecord& encounter = record.encounter();
  const std::string patient_urn = AddPatient(record, context, bundle);

  EncounterFields fields{
      encounter.encounter_id(),
      IsRetraction(record) ? "entered-in-error" : EncounterStatus(encounter.status()),
      encounter.kind(), encounter.has_start_time() ? Instant(encounter.start_time()) : "",
      encounter.has_end_time() ? Instant(encounter.end_time()) : ""};
  Json resource = BuildEncounter(fields, patient_urn, context, a);
  if (encounter.has_practitioner()) {
    Json participant = Json::Object(a);
    participant.Put("individual", PractitionerReference(a, encounter.practitioner()));
    resource.Put("participant", Json::Array(a).Push(std::move(participant)));
  }
  resource.Put("reasonCode", ConceptsFromCodes(a, encounter.reasons()));
  if (!encounter.location().empty()) {
    Json location = Json::Object(a);
    location.Put("location", fhir::Reference(a, "", encounter.location()));
    resource.Put("location", Json::Array(a).Push(std::move(location)));
  }
  bundle.AddConditionalUpdate(Urn(context, "Encounter", encounter.encounter_id()),
                              std::move(resource), "Encounter", context.systems.encounter,
                              encounter.encounter_id());
  return absl::OkStatus();
}

}  // namespace fhirgw::mappers
