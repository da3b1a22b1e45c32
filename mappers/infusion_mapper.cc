#include "mappers/infusion_mapper.h"

#include <cmath>
#include <optional>

#include "absl/strings/str_cat.h"
#include "fhir/codes.h"
#include "fhir/datatypes.h"
#include "fhir/primitives.h"
#include "mappers/safety.h"

namespace fhirgw::mappers {
namespace {

using fhir::FormatDecimal;
using fhir::Json;
using fhir::JsonAlloc;

const char* AdministrationStatus(v1::InfusionRecord::Status status) {
  switch (status) {
    case v1::InfusionRecord::COMPLETED:
      return "completed";
    case v1::InfusionRecord::IN_PROGRESS:
      return "in-progress";
    case v1::InfusionRecord::STOPPED:
      return "stopped";
    case v1::InfusionRecord::NOT_DONE:
      return "not-done";
    case v1::InfusionRecord::ON_HOLD:
      return "on-hold";
    default:
      return "unknown";
  }
}

const char* EncounterStatus(v1::InfusionRecord::Status status) {
  switch (status) {
    case v1::InfusionRecord::COMPLETED:
    case v1::InfusionRecord::STOPPED:
      return "finished";
    case v1::InfusionRecord::NOT_DONE:
      return "cancelled";
    default:
      return "in-progress";
  }
}

const char* RouteAbbreviation(v1::Route::Value route) {
  switch (route) {
    case v1::Route::INTRAVENOUS:
      return " IV";
    case v1::Route::INTRAMUSCULAR:
      return " IM";
    case v1::Route::INTRANASAL:
      return " intranasal";
    case v1::Route::SUBCUTANEOUS:
      return " SC";
    case v1::Route::ORAL:
      return " oral";
    default:
      return "";
  }
}

const char* SeverityCode(v1::AdverseEvent::Severity severity) {
  switch (severity) {
    case v1::AdverseEvent::MILD:
      return "mild";
    case v1::AdverseEvent::MODERATE:
      return "moderate";
    case v1::AdverseEvent::SEVERE:
      return "severe";
    default:
      return "";
  }
}

double RoundTo2(double value) { return std::round(value * 100.0) / 100.0; }

// The dose given in mg: as stated; else, for a STOPPED infusion, what the pump delivered (rate x
// duration x concentration), never the planned dose; else dose_mg_per_kg x patient_weight_kg or
// what the pump delivered. Validation guarantees a STOPPED infusion one of the first two.
bool TotalDoseMg(const v1::InfusionRecord& infusion, double* total) {
  if (infusion.has_total_dose_mg()) {
    *total = infusion.total_dose_mg();
    return true;
  }
  const std::optional<double> from_rate = DoseFromRateMg(infusion);
  if (infusion.status() != v1::InfusionRecord::STOPPED && infusion.has_dose_mg_per_kg() &&
      infusion.has_patient_weight_kg()) {
    *total = RoundTo2(infusion.dose_mg_per_kg() * infusion.patient_weight_kg());
    return true;
  }
  if (from_rate.has_value()) {
    *total = *from_rate;
    return true;
  }
  return false;
}

// Says what R4 cannot hold in elements: the weight-based dose, the session and its duration, e.g.
// "0.5 mg/kg IV (35 mg for 70 kg) over 40 min at 100 mL/h, 10 mg/mL; session 1 of 6".
std::string DosageText(const v1::InfusionRecord& infusion) {
  std::string text;
  const bool weight_based = infusion.has_dose_mg_per_kg();
  if (weight_based) {
    absl::StrAppend(&text, FormatDecimal(infusion.dose_mg_per_kg()), " mg/kg");
  }
  absl::StrAppend(&text, RouteAbbreviation(infusion.route()));
  if (weight_based && infusion.has_patient_weight_kg()) {
    const double planned = RoundTo2(infusion.dose_mg_per_kg() * infusion.patient_weight_kg());
    absl::StrAppend(&text, " (", FormatDecimal(planned), " mg for ",
                    FormatDecimal(infusion.patient_weight_kg()), " kg)");
    double given = 0;
    if (TotalDoseMg(infusion, &given) && (infusion.status() == v1::InfusionRecord::STOPPED ||
                                          std::abs(given - planned) > 0.01 * planned)) {
      absl::StrAppend(&text, ", ", FormatDecimal(given), " mg given");
    }
  } else if (double given = 0; TotalDoseMg(infusion, &given)) {
    absl::StrAppend(&text, " ", FormatDecimal(given), " mg");
  }
  if (infusion.has_start_time() && infusion.has_end_time()) {
    const int64_t minutes = (infusion.end_time().seconds() - infusion.start_time().seconds()) / 60;
    absl::StrAppend(&text, " over ", minutes, " min");
  }
  if (infusion.has_rate_ml_per_hour()) {
    absl::StrAppend(&text, " at ", FormatDecimal(infusion.rate_ml_per_hour()), " mL/h");
  }
  if (infusion.has_concentration_mg_per_ml()) {
    absl::StrAppend(&text, ", ", FormatDecimal(infusion.concentration_mg_per_ml()), " mg/mL");
  }
  if (infusion.has_session_number()) {
    absl::StrAppend(&text, "; session ", infusion.session_number());
    if (infusion.has_series_length()) absl::StrAppend(&text, " of ", infusion.series_length());
  }
  absl::string_view trimmed = text;
  while (!trimmed.empty() && trimmed.front() == ' ') trimmed.remove_prefix(1);
  return std::string(trimmed);
}

Json Dosage(JsonAlloc& a, const v1::InfusionRecord& infusion) {
  Json dosage = Json::Object(a);
  dosage.Str("text", DosageText(infusion));
  dosage.Put("route", RouteConcept(a, infusion.route()));
  double total = 0;
  if (TotalDoseMg(infusion, &total)) {
    dosage.Put("dose", fhir::UcumQuantity(a, total, fhir::kUcumMg));
  }
  if (infusion.has_rate_ml_per_hour()) {
    dosage.Put("rateQuantity",
               fhir::UcumQuantity(a, infusion.rate_ml_per_hour(), fhir::kUcumMlPerHour));
  }
  return dosage;
}

// Writes the parts every vital-sign Observation shares (R4 vital-signs profile: status, category
// vital-signs, LOINC code, subject, effective).
struct ObservationFrame {
  const MapContext& context;
  absl::string_view status;
  absl::string_view patient_urn;
  absl::string_view encounter_urn;
  absl::string_view administration_urn;
};

Json VitalSign(JsonAlloc& a, const ObservationFrame& frame, absl::string_view identifier, Json code,
               absl::string_view effective) {
  Json obs = StartResource(a, "Observation", frame.context.systems.observation, identifier);
  obs.Put("partOf", Json::Array(a).Push(fhir::Reference(a, frame.administration_urn)));
  obs.Str("status", frame.status);
  obs.Put("category", Json::Array(a).Push(fhir::CodeableConceptWithText(
                          a, fhir::kObservationCategory, fhir::kCategoryVitalSigns, "Vital Signs",
                          "Vital Signs")));
  obs.Put("code", std::move(code));
  obs.Put("subject", fhir::Reference(a, frame.patient_urn));
  if (!frame.encounter_urn.empty()) obs.Put("encounter", fhir::Reference(a, frame.encounter_urn));
  obs.Str("effectiveDateTime", effective);
  return obs;
}

Json LoincConcept(JsonAlloc& a, const char* code, const char* display) {
  return fhir::CodeableConcept(a, fhir::kLoinc, code, display);
}

void AddObservation(const ObservationFrame& frame, const std::string& identifier, Json obs,
                    fhir::TransactionBundle& bundle) {
  bundle.AddConditionalUpdate(Urn(frame.context, "Observation", identifier), std::move(obs),
                              "Observation", frame.context.systems.observation, identifier);
}

void AddVitals(const v1::ClinicRecord& record, const ObservationFrame& frame,
               fhir::TransactionBundle& bundle) {
  JsonAlloc& a = bundle.alloc();
  const v1::InfusionRecord& infusion = record.infusion();
  for (int i = 0; i < infusion.vitals_size(); ++i) {
    const v1::Vitals& v = infusion.vitals(i);
    const std::string effective = Instant(v.has_time() ? v.time() : infusion.start_time());
    const std::string prefix = absl::StrCat(record.record_id(), "/vitals/", i, "/");
    if (v.has_systolic_mmhg() && v.has_diastolic_mmhg()) {
      const std::string id = prefix + "blood-pressure";
      Json obs = VitalSign(a, frame, id,
                           LoincConcept(a, fhir::kLoincBloodPressurePanel,
                                        "Blood pressure panel with all children optional"),
                           effective);
      Json components = Json::Array(a);
      Json systolic = Json::Object(a);
      systolic.Put("code", LoincConcept(a, fhir::kLoincSystolic, "Systolic blood pressure"));
      systolic.Put("valueQuantity",
                   fhir::UcumQuantity(a, v.systolic_mmhg(), fhir::kUcumMmHg, "mmHg"));
      Json diastolic = Json::Object(a);
      diastolic.Put("code", LoincConcept(a, fhir::kLoincDiastolic, "Diastolic blood pressure"));
      diastolic.Put("valueQuantity",
                    fhir::UcumQuantity(a, v.diastolic_mmhg(), fhir::kUcumMmHg, "mmHg"));
      components.Push(std::move(systolic)).Push(std::move(diastolic));
      obs.Put("component", std::move(components));
      AddObservation(frame, id, std::move(obs), bundle);
    }
    if (v.has_heart_rate_bpm()) {
      const std::string id = prefix + "heart-rate";
      Json obs =
          VitalSign(a, frame, id, LoincConcept(a, fhir::kLoincHeartRate, "Heart rate"), effective);
      obs.Put("valueQuantity",
              fhir::UcumQuantity(a, v.heart_rate_bpm(), fhir::kUcumPerMin, "beats/minute"));
      AddObservation(frame, id, std::move(obs), bundle);
    }
    if (v.has_spo2_percent()) {
      const std::string id = prefix + "oxygen-saturation";
      Json code = Json::Object(a);
      code.Put("coding",
               Json::Array(a)
                   .Push(fhir::Coding(a, fhir::kLoinc, fhir::kLoincSpo2Base,
                                      "Oxygen saturation in Arterial blood"))
                   .Push(fhir::Coding(a, fhir::kLoinc, fhir::kLoincSpo2,
                                      "Oxygen saturation in Arterial blood by Pulse oximetry")));
      code.Str("text", "Oxygen saturation");
      Json obs = VitalSign(a, frame, id, std::move(code), effective);
      obs.Put("valueQuantity", fhir::UcumQuantity(a, v.spo2_percent(), fhir::kUcumPercent));
      AddObservation(frame, id, std::move(obs), bundle);
    }
    if (v.has_respiratory_rate()) {
      const std::string id = prefix + "respiratory-rate";
      Json obs =
          VitalSign(a, frame, id, LoincConcept(a, fhir::kLoincRespiratoryRate, "Respiratory rate"),
                    effective);
      obs.Put("valueQuantity",
              fhir::UcumQuantity(a, v.respiratory_rate(), fhir::kUcumPerMin, "breaths/minute"));
      AddObservation(frame, id, std::move(obs), bundle);
    }
  }
}

void AddAdverseEvents(const v1::ClinicRecord& record, const ObservationFrame& frame,
                      MapOutput& out) {
  fhir::TransactionBundle& bundle = out.bundle;
  JsonAlloc& a = bundle.alloc();
  const v1::InfusionRecord& infusion = record.infusion();
  const std::string& system = frame.context.systems.adverse_event;
  for (int i = 0; i < infusion.adverse_events_size(); ++i) {
    const v1::AdverseEvent& event = infusion.adverse_events(i);
    const std::string id = absl::StrCat(record.record_id(), "/adverse-event/", i);
    // R4 AdverseEvent has no `identifier` search parameter, so it cannot be written conditionally:
    // it gets a deterministic id (the uuid of its fullUrl) and is written with PUT AdverseEvent/ID.
    const std::string urn = Urn(frame.context, "AdverseEvent", id);
    const absl::string_view server_id = absl::string_view(urn).substr(sizeof("urn:uuid:") - 1);
    // R4 AdverseEvent has no status either: a retraction deletes it.
    if (IsRetraction(record)) {
      bundle.AddDeleteById("AdverseEvent", server_id);
      continue;
    }
    const EventCode code = AdverseEventCode(event.kind());
    Json resource = Json::Object(a);
    resource.Str("resourceType", "AdverseEvent").Str("id", server_id);
    resource.Put("identifier", fhir::Identifier(a, system, id));
    resource.Str("actuality", "actual");
    resource.Put("event", fhir::CodeableConceptWithText(a, fhir::kSnomed, code.code, code.display,
                                                        event.description().empty()
                                                            ? absl::string_view(code.display)
                                                            : event.description()));
    resource.Put("subject", fhir::Reference(a, frame.patient_urn));
    if (!frame.encounter_urn.empty()) {
      resource.Put("encounter", fhir::Reference(a, frame.encounter_urn));
    }
    if (event.has_time()) resource.Str("date", Instant(event.time()));
    const char* severity = SeverityCode(event.severity());
    resource.Put("severity",
                 fhir::CodeableConcept(a, fhir::kAdverseEventSeverity, severity, severity));
    Json suspect = Json::Object(a);
    suspect.Put("instance", fhir::Reference(a, frame.administration_urn));
    resource.Put("suspectEntity", Json::Array(a).Push(std::move(suspect)));
    bundle.AddUpdateById(urn, std::move(resource), "AdverseEvent", server_id);
  }
}

}  // namespace

absl::Status InfusionMapper::ToFhir(const v1::ClinicRecord& record,
                                    const PreviousVersion& /*previous*/, const MapContext& context,
                                    MapOutput& out) const {
  fhir::TransactionBundle& bundle = out.bundle;
  JsonAlloc& a = bundle.alloc();
  const v1::InfusionRecord& infusion = record.infusion();
  const bool retracted = IsRetraction(record);

  const std::string patient_urn = AddPatient(record, context, bundle);

  std::string encounter_urn;
  if (!infusion.encounter_id().empty()) {
    EncounterFields fields{infusion.encounter_id(), EncounterStatus(infusion.status()),
                           v1::EncounterRecord::INFUSION_SESSION,
                           infusion.has_start_time() ? Instant(infusion.start_time()) : "",
                           infusion.has_end_time() ? Instant(infusion.end_time()) : ""};
    encounter_urn = Urn(context, "Encounter", infusion.encounter_id());
    // A conditional update, so that a later version of the infusion (stopped, ended) updates the
    // Encounter's status and period.
    bundle.AddConditionalUpdate(encounter_urn, BuildEncounter(fields, patient_urn, context, a),
                                "Encounter", context.systems.encounter, infusion.encounter_id());
  }

  const std::string& admin_system = context.systems.medication_administration;
  const std::string admin_urn = Urn(context, "MedicationAdministration", record.record_id());
  Json admin = StartResource(a, "MedicationAdministration", admin_system, record.record_id());
  admin.Str("status", retracted ? "entered-in-error" : AdministrationStatus(infusion.status()));
  if (infusion.has_status_reason()) {
    admin.Put("statusReason", Json::Array(a).Push(ConceptFromCode(a, infusion.status_reason())));
  }
  admin.Put("medicationCodeableConcept", ConceptFromCode(a, infusion.medication()));
  admin.Put("subject", fhir::Reference(a, patient_urn));
  if (!encounter_urn.empty()) admin.Put("context", fhir::Reference(a, encounter_urn));
  if (infusion.has_start_time()) {
    admin.Put("effectivePeriod",
              fhir::Period(a, Instant(infusion.start_time()),
                           infusion.has_end_time() ? Instant(infusion.end_time()) : ""));
  } else {
    admin.Str("effectiveDateTime", Instant(record.recorded_at()));
  }
  if (infusion.has_performer()) {
    Json performer = Json::Object(a);
    performer.Put("actor", PractitionerReference(a, infusion.performer()));
    admin.Put("performer", Json::Array(a).Push(std::move(performer)));
  }
  admin.Put("reasonCode", ConceptsFromCodes(a, infusion.reasons()));
  admin.Put("note", Notes(a, infusion.note()));
  admin.Put("dosage", Dosage(a, infusion));
  bundle.AddConditionalUpdate(admin_urn, std::move(admin), "MedicationAdministration", admin_system,
                              record.record_id());

  const ObservationFrame frame{context, retracted ? "entered-in-error" : "final", patient_urn,
                               encounter_urn, admin_urn};
  if (infusion.has_patient_weight_kg()) {
    const std::string id = absl::StrCat(record.record_id(), "/body-weight");
    Json obs = VitalSign(
        a, frame, id, LoincConcept(a, fhir::kLoincBodyWeight, "Body weight"),
        Instant(infusion.has_start_time() ? infusion.start_time() : record.recorded_at()));
    obs.Put("valueQuantity", fhir::UcumQuantity(a, infusion.patient_weight_kg(), fhir::kUcumKg));
    AddObservation(frame, id, std::move(obs), bundle);
  }
  AddVitals(record, frame, bundle);
  AddAdverseEvents(record, frame, out);
  return absl::OkStatus();
}

}  // namespace fhirgw::mappers
