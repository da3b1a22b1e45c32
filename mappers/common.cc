#include "mappers/common.h"

#include "absl/strings/str_cat.h"
#include "fhir/codes.h"
#include "fhir/datatypes.h"
#include "fhir/primitives.h"
#include "fhir/uuid.h"

namespace fhirgw::mappers {

using fhir::Json;
using fhir::JsonAlloc;

IdentifierSystems IdentifierSystems::ForTenant(absl::string_view tenant, absl::string_view base) {
  const std::string root = base.empty() ? absl::StrCat("urn:fhirgw:", tenant) : std::string(base);
  IdentifierSystems systems;
  systems.patient = absl::StrCat(root, ":patient");
  systems.encounter = absl::StrCat(root, ":encounter");
  systems.medication_administration = absl::StrCat(root, ":medication-administration");
  systems.medication_statement = absl::StrCat(root, ":medication-statement");
  systems.questionnaire_response = absl::StrCat(root, ":questionnaire-response");
  systems.observation = absl::StrCat(root, ":observation");
  systems.adverse_event = absl::StrCat(root, ":adverse-event");
  systems.flag = absl::StrCat(root, ":flag");
  return systems;
}

MapContext MapContext::ForTenant(absl::string_view tenant) {
  MapContext context;
  context.tenant = std::string(tenant);
  context.systems = IdentifierSystems::ForTenant(tenant);
  return context;
}

std::string Urn(const MapContext& context, absl::string_view type, absl::string_view value) {
  return fhir::ResourceUrn(context.tenant, type, value);
}

std::string Instant(const google::protobuf::Timestamp& time) {
  return fhir::FormatInstant(time.seconds(), time.nanos());
}

EventCode AdverseEventCode(v1::AdverseEvent::Kind kind) {
  switch (kind) {
    case v1::AdverseEvent::NAUSEA:
      return {"422587007", "Nausea"};
    case v1::AdverseEvent::VOMITING:
      return {"422400008", "Vomiting"};
    case v1::AdverseEvent::HYPERTENSION:
      // An acute rise during the infusion is a finding, not the chronic disorder 38341003
      // (Hypertensive disorder): 24184005 |Finding of increased blood pressure (finding)|.
      return {"24184005", "Blood pressure above reference range"};
    case v1::AdverseEvent::TACHYCARDIA:
      return {"3424008", "Tachycardia"};
    case v1::AdverseEvent::ANXIETY:
      return {"48694002", "Anxiety"};
    case v1::AdverseEvent::HEADACHE:
      return {"25064002", "Headache"};
    case v1::AdverseEvent::DIZZINESS:
      return {"404640003", "Dizziness"};
    case v1::AdverseEvent::SEDATION:
      // 17971005 |Sedated (finding)|.
      return {"17971005", "Sedated"};
    case v1::AdverseEvent::DISSOCIATION:
      // Text only: the verified concept 44376007 is |Dissociative disorder (disorder)|, a
      // psychiatric diagnosis, not the transient drug effect; no finding concept was verified.
      return {"", "Dissociation"};
    default:
      return {"", "Other adverse event"};
  }
}

bool IsRetraction(const v1::ClinicRecord& record) {
  return record.action() == v1::ClinicRecord::ENTERED_IN_ERROR;
}

Json ConceptFromCode(JsonAlloc& a, const v1::Code& code) {
  return fhir::CodeableConcept(a, code.system(), code.code(), code.display());
}

Json ConceptsFromCodes(JsonAlloc& a, const google::protobuf::RepeatedPtrField<v1::Code>& codes) {
  Json list = Json::Array(a);
  for (const v1::Code& code : codes) list.Push(ConceptFromCode(a, code));
  return list;
}

Json RouteConcept(JsonAlloc& a, v1::Route::Value route) {
  switch (route) {
    case v1::Route::INTRAVENOUS:
      return fhir::CodeableConcept(a, fhir::kSnomed, fhir::kSnomedIntravenous, "Intravenous route");
    case v1::Route::INTRAMUSCULAR:
      return fhir::CodeableConcept(a, fhir::kSnomed, fhir::kSnomedIntramuscular,
                                   "Intramuscular route");
    case v1::Route::INTRANASAL:
      return fhir::CodeableConcept(a, fhir::kSnomed, fhir::kSnomedNasal, "Nasal route");
    case v1::Route::SUBCUTANEOUS:
      return fhir::CodeableConcept(a, fhir::kSnomed, fhir::kSnomedSubcutaneous,
                                   "Subcutaneous route");
    case v1::Route::ORAL:
      return fhir::CodeableConcept(a, fhir::kSnomed, fhir::kSnomedOral, "Oral route");
    default:
      return Json::Object(a);
  }
}

Json PractitionerReference(JsonAlloc& a, const v1::Practitioner& practitioner) {
  return fhir::IdentifierReference(a, "Practitioner", fhir::kNpi, practitioner.npi(),
                                   practitioner.name());
}

Json Notes(JsonAlloc& a, absl::string_view text) {
  Json notes = Json::Array(a);
  if (!text.empty()) notes.Push(fhir::Annotation(a, text));
  return notes;
}

Json StartResource(JsonAlloc& a, const char* resource_type, absl::string_view system,
                   absl::string_view value) {
  Json resource = Json::Object(a);
  resource.Str("resourceType", resource_type);
  resource.Put("identifier", Json::Array(a).Push(fhir::Identifier(a, system, value)));
  return resource;
}

Json StartResourceWithOneIdentifier(JsonAlloc& a, const char* resource_type,
                                    absl::string_view system, absl::string_view value) {
  Json resource = Json::Object(a);
  resource.Str("resourceType", resource_type);
  resource.Put("identifier", fhir::Identifier(a, system, value));
  return resource;
}

namespace {

const char* GenderCode(v1::PatientRef::Gender gender) {
  switch (gender) {
    case v1::PatientRef::MALE:
      return "male";
    case v1::PatientRef::FEMALE:
      return "female";
    case v1::PatientRef::OTHER:
      return "other";
    case v1::PatientRef::UNKNOWN:
      return "unknown";
    default:
      return "";
  }
}

}  // namespace

std::string AddPatient(const v1::ClinicRecord& record, const MapContext& context,
                       fhir::TransactionBundle& bundle) {
  JsonAlloc& a = bundle.alloc();
  const v1::PatientRef& ref = record.patient();
  const std::string& system = context.systems.patient;
  Json patient = Json::Object(a);
  patient.Str("resourceType", "Patient");
  Json identifiers = Json::Array(a);
  identifiers.Push(fhir::Identifier(a, system, ref.clinic_patient_id()));
  for (const v1::Identifier& id : ref.identifiers()) {
    identifiers.Push(fhir::Identifier(a, id.system(), id.value()));
  }
  patient.Put("identifier", std::move(identifiers));
  Json name = Json::Object(a);
  name.Str("family", ref.family_name());
  Json given = Json::Array(a);
  for (const std::string& g : ref.given_names()) given.PushStr(g);
  name.Put("given", std::move(given));
  patient.Put("name", Json::Array(a).Push(std::move(name)));
  patient.Str("gender", GenderCode(ref.gender()));
  patient.Str("birthDate", ref.birth_date());

  std::string urn = Urn(context, "Patient", ref.clinic_patient_id());
  bundle.AddConditionalCreate(urn, std::move(patient), "Patient", system, ref.clinic_patient_id());
  return urn;
}

}  // namespace fhirgw::mappers

namespace fhirgw::mappers {

Json EncounterKindConcept(JsonAlloc& a, v1::EncounterRecord::Kind kind) {
  const char* code = "";
  const char* display = "";
  switch (kind) {
    case v1::EncounterRecord::INFUSION_SESSION:
      code = "infusion-session";
      display = "Ketamine infusion session";
      break;
    case v1::EncounterRecord::PSYCHOTHERAPY:
      code = "psychotherapy";
      display = "Psychotherapy session";
      break;
    case v1::EncounterRecord::MEDICATION_MANAGEMENT:
      code = "medication-management";
      display = "Medication management visit";
      break;
    case v1::EncounterRecord::INTAKE_ASSESSMENT:
      code = "intake-assessment";
      display = "Intake assessment";
      break;
    case v1::EncounterRecord::FOLLOW_UP:
      code = "follow-up";
      display = "Follow-up visit";
      break;
    default:
      return Json::Object(a);
  }
  return fhir::CodeableConcept(a, fhir::kFhirgwEncounterKind, code, display);
}

Json BuildEncounter(const EncounterFields& fields, absl::string_view patient_urn,
                    const MapContext& context, JsonAlloc& a) {
  Json encounter = StartResource(a, "Encounter", context.systems.encounter, fields.encounter_id);
  encounter.Str("status", fields.status);
  encounter.Put("class", fhir::Coding(a, fhir::kActCode, "AMB", "ambulatory"));
  encounter.Put("type", Json::Array(a).Push(EncounterKindConcept(a, fields.kind)));
  encounter.Put("subject", fhir::Reference(a, patient_urn));
  encounter.Put("period", fhir::Period(a, fields.start, fields.end));
  return encounter;
}

}  // namespace fhirgw::mappers
