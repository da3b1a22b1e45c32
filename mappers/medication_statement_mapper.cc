#include "mappers/medication_statement_mapper.h"

#include "fhir/codes.h"
#include "fhir/datatypes.h"

namespace fhirgw::mappers {
namespace {

using fhir::Json;
using fhir::JsonAlloc;

const char* StatementStatus(v1::MedicationStatementRecord::Status status) {
  switch (status) {
    case v1::MedicationStatementRecord::ACTIVE:
      return "active";
    case v1::MedicationStatementRecord::COMPLETED:
      return "completed";
    case v1::MedicationStatementRecord::STOPPED:
      return "stopped";
    case v1::MedicationStatementRecord::ON_HOLD:
      return "on-hold";
    case v1::MedicationStatementRecord::INTENDED:
      return "intended";
    case v1::MedicationStatementRecord::NOT_TAKEN:
      return "not-taken";
    case v1::MedicationStatementRecord::ENTERED_IN_ERROR:
      return "entered-in-error";
    default:
      return "unknown";
  }
}

struct AdherenceCode {
  const char* code;
  const char* display;
};

AdherenceCode Adherence(v1::Adherence::Value adherence) {
  switch (adherence) {
    case v1::Adherence::TAKING_AS_DIRECTED:
      return {"taking-as-directed", "Taking as directed"};
    case v1::Adherence::TAKING_NOT_AS_DIRECTED:
      return {"taking-not-as-directed", "Taking not as directed"};
    case v1::Adherence::NOT_TAKING:
      return {"not-taking", "Not taking"};
    case v1::Adherence::UNKNOWN:
      return {"unknown", "Unknown"};
    default:
      return {"", ""};
  }
}

Json InformationSource(JsonAlloc& a, v1::InformationSource::Value source,
                       absl::string_view patient_urn) {
  switch (source) {
    case v1::InformationSource::PATIENT_REPORTED:
      return fhir::Reference(a, patient_urn, "Patient reported");
    case v1::InformationSource::CLINICIAN:
      return fhir::Reference(a, "", "Clinician");
    case v1::InformationSource::HOSPITAL_RECORD:
      return fhir::Reference(a, "", "Hospital record");
    default:
      return Json::Object(a);
  }
}

// Builds the Dosage: the clinic's text, timing, route and dose.
Json Dosage(JsonAlloc& a, const v1::MedicationStatementRecord& statement) {
  Json dosage = Json::Object(a);
  dosage.Str("text", statement.dosage_text());
  if (statement.has_frequency()) {
    const v1::Frequency& f = statement.frequency();
    Json repeat = Json::Object(a);
    if (f.has_times()) repeat.Int("frequency", f.times());
    if (f.has_period()) repeat.Dec("period", f.period());
    repeat.Str("periodUnit", f.period_unit());
    Json timing = Json::Object(a);
    timing.Put("repeat", std::move(repeat));
    dosage.Put("timing", std::move(timing));
  }
  dosage.Put("route", RouteConcept(a, statement.route()));
  if (statement.has_dose() && statement.dose().has_value()) {
    Json dose_and_rate = Json::Object(a);
    dose_and_rate.Put("doseQuantity",
                      fhir::UcumQuantity(a, statement.dose().value(), statement.dose().unit()));
    dosage.Put("doseAndRate", Json::Array(a).Push(std::move(dose_and_rate)));
  }
  return dosage;
}

}  // namespace

absl::Status MedicationStatementMapper::ToFhir(const v1::ClinicRecord& record,
                                               const PreviousVersion& /*previous*/,
                                               const MapContext& context, MapOutput& out) const {
  fhir::TransactionBundle& bundle = out.bundle;
  JsonAlloc& a = bundle.alloc();
  const v1::MedicationStatementRecord& statement = record.medication_statement();
  const std::string patient_urn = AddPatient(record, context, bundle);

  const std::string& system = context.systems.medication_statement;
  Json resource = StartResource(a, "MedicationStatement", system, record.record_id());
  const AdherenceCode adherence = Adherence(statement.adherence());
  if (adherence.code[0] != '\0') {
    Json extension = Json::Object(a);
    extension.Str("url", fhir::kAdherenceExtension);
    extension.Put("valueCodeableConcept",
                  fhir::CodeableConcept(a, fhir::kMedicationStatementAdherence, adherence.code,
                                        adherence.display));
    resource.Put("extension", Json::Array(a).Push(std::move(extension)));
  }
  resource.Str("status",
               IsRetraction(record) ? "entered-in-error" : StatementStatus(statement.status()));
  if (statement.has_status_reason()) {
    resource.Put("statusReason",
                 Json::Array(a).Push(ConceptFromCode(a, statement.status_reason())));
  }
  resource.Put("medicationCodeableConcept", ConceptFromCode(a, statement.medication()));
  resource.Put("subject", fhir::Reference(a, patient_urn));
  if (!statement.effective_end().empty()) {
    resource.Put("effectivePeriod",
                 fhir::Period(a, statement.effective_start(), statement.effective_end()));
  } else {
    resource.Str("effectiveDateTime", statement.effective_start());
  }
  if (record.has_recorded_at()) resource.Str("dateAsserted", Instant(record.recorded_at()));
  resource.Put("informationSource",
               InformationSource(a, statement.information_source(), patient_urn));
  resource.Put("reasonCode", ConceptsFromCodes(a, statement.reasons()));
  resource.Put("note", Notes(a, statement.note()));
  resource.Put("dosage", Json::Array(a).Push(Dosage(a, statement)));

  bundle.AddConditionalUpdate(Urn(context, "MedicationStatement", record.record_id()),
                              std::move(resource), "MedicationStatement", system,
                              record.record_id());
  return absl::OkStatus();
}

}  // namespace fhirgw::mappers
