// MedicationStatement -> MedicationStatementRecord (the inverse of medication_statement_mapper.cc:
// adherence from R5's cross-version extension, informationSource by display or reference type),
// and MedicationRequest -> MedicationStatementRecord with information_source HOSPITAL_RECORD (a
// hospital order is what the hospital's record says the patient takes).
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "fhir/codes.h"
#include "fhir/primitives.h"
#include "mappers/reverse_internal.h"

namespace fhirgw::mappers::reverse_internal {
namespace {

using Record = v1::MedicationStatementRecord;

// Keeps a FHIR date or dateTime as text (partial dates are allowed in the record); warns about and
// drops a malformed one.
std::string EffectiveText(const Mapping& m, absl::string_view text, const Path& path) {
  if (text.empty()) return {};
  absl::StatusOr<fhir::DateTime> parsed = fhir::ParseDateTime(text);
  if (!parsed.ok()) {
    m.Warning(path, absl::StrCat(parsed.status().message(), "; left unset"));
    return {};
  }
  return std::string(text);
}

// Reads one Dosage (MedicationStatement.dosage or MedicationRequest.dosageInstruction): text,
// timing.repeat, route and the first doseQuantity. Returns the timing's boundsPeriod, if any.
const JsonValue* ReadDosage(const Mapping& m, const JsonValue* dosage, const Path& path,
                            Record& out) {
  if (dosage == nullptr) return nullptr;
  out.set_dosage_text(std::string(StringMember(dosage, "text")));
  const JsonValue* repeat = Member(Member(dosage, "timing"), "repeat");
  if (repeat != nullptr) {
    v1::Frequency frequency;
    double value = 0;
    const JsonValue* times = Member(repeat, "frequency");
    if (times != nullptr && times->IsInt()) frequency.set_times(times->GetInt());
    if (Number(Member(repeat, "period"), &value)) frequency.set_period(value);
    frequency.set_period_unit(std::string(StringMember(repeat, "periodUnit")));
    if (frequency.has_times() || frequency.has_period() || !frequency.period_unit().empty()) {
      *out.mutable_frequency() = std::move(frequency);
    }
  }
  if (const JsonValue* route = Member(dosage, "route")) {
    out.set_route(RouteFromConcept(m, route, path.Field("route")));
  }
  const std::span<const JsonValue> dose_and_rate = Elements(Member(dosage, "doseAndRate"));
  if (!dose_and_rate.empty()) {
    const JsonValue* quantity = Member(&dose_and_rate.front(), "doseQuantity");
    double value = 0;
    if (Number(Member(quantity, "value"), &value)) {
      v1::Dose& dose = *out.mutable_dose();
      dose.set_value(value);
      // The UCUM code when there is one, else the unit as written.
      const absl::string_view code = StringMember(quantity, "code");
      const absl::string_view unit = StringMember(quantity, "unit");
      const bool ucum = StringMember(quantity, "system") == fhir::kUcum;
      dose.set_unit(std::string((ucum && !code.empty()) || unit.empty() ? code : unit));
    }
  }
  return Member(repeat, "boundsPeriod");
}

// Refuses a dose the clinic could misread: without a unit, or not a plausible amount. The dose is
// taken only from doseQuantity, never guessed from the dosage text.
bool CheckDose(const Mapping& m, const Path& dosage_path, const Record& statement) {
  if (!statement.has_dose()) return true;
  const Path path = dosage_path.Field("doseAndRate", 0).Field("doseQuantity");
  const double value = statement.dose().value();
  if (!std::isfinite(value) || value <= 0 || value > 100000) {
    m.Error(path.Field("value"),
            absl::StrCat(fhir::FormatDecimal(value),
                         " is not a plausible dose (above 0 and at most 100000): not mapped"));
    return false;
  }
  if (statement.dose().unit().empty()) {
    m.Error(path.Field("unit"),
            absl::StrCat("is absent: a dose of ", fhir::FormatDecimal(value),
                         " without a unit could be read as any amount; not mapped"));
    return false;
  }
  return true;
}

Record::Status StatementStatus(absl::string_view status) {
  if (status == "active") return Record::ACTIVE;
  if (status == "completed") return Record::COMPLETED;
  if (status == "stopped") return Record::STOPPED;
  if (status == "on-hold") return Record::ON_HOLD;
  if (status == "intended") return Record::INTENDED;
  if (status == "not-taken") return Record::NOT_TAKEN;
  if (status == "entered-in-error") return Record::ENTERED_IN_ERROR;
  if (status == "unknown") return Record::UNKNOWN;
  return Record::STATUS_UNSPECIFIED;
}

Record::Status RequestStatus(absl::string_view status) {
  if (status == "active") return Record::ACTIVE;
  if (status == "completed") return Record::COMPLETED;
  if (status == "stopped") return Record::STOPPED;
  if (status == "on-hold") return Record::ON_HOLD;
  // A cancelled order was withdrawn before anything was taken; a draft is not yet in force.
  if (status == "cancelled") return Record::NOT_TAKEN;
  if (status == "draft") return Record::INTENDED;
  if (status == "entered-in-error") return Record::ENTERED_IN_ERROR;
  if (status == "unknown") return Record::UNKNOWN;
  return Record::STATUS_UNSPECIFIED;
}

void SetStatus(const Mapping& m, const Entry& entry, Record::Status status, ReverseRecord& out) {
  const absl::string_view text = StringMember(entry.resource, "status");
  if (status == Record::STATUS_UNSPECIFIED) {
    m.Warning(entry.path.Field("status"),
              text.empty()
                  ? std::string("is absent; the status is left unset")
                  : absl::StrCat("'", text, "' is not an R4 ", entry.type, " status; left unset"));
  }
  out.record.mutable_medication_statement()->set_status(status);
  if (status == Record::ENTERED_IN_ERROR) out.record.set_action(v1::ClinicRecord::ENTERED_IN_ERROR);
}

v1::Adherence::Value AdherenceOf(const Mapping& m, const JsonValue* extensions, const Path& path) {
  const std::span<const JsonValue> list = Elements(extensions);
  for (size_t i = 0; i < list.size(); ++i) {
    if (StringMember(&list[i], "url") != fhir::kAdherenceExtension) continue;
    const JsonValue* value = Member(&list[i], "valueCodeableConcept");
    const v1::Code any = CodeFromConcept(value, fhir::kMedicationStatementAdherence);
    const absl::string_view code = any.code();
    if (code == "taking-as-directed") return v1::Adherence::TAKING_AS_DIRECTED;
    if (code == "taking-not-as-directed") return v1::Adherence::TAKING_NOT_AS_DIRECTED;
    if (code == "not-taking" || absl::StartsWith(code, "stopped") ||
        absl::StartsWith(code, "on-hold")) {
      return v1::Adherence::NOT_TAKING;
    }
    if (code == "unknown") return v1::Adherence::UNKNOWN;
    m.Warning(path.Field("extension", static_cast<int>(i)),
              absl::StrCat("adherence code '", code,
                           "' does not say whether the patient takes the medication as directed; "
                           "left unset"));
  }
  return v1::Adherence::ADHERENCE_UNSPECIFIED;
}

// What kind of source informationSource names: fhirgw's displays first, then the reference's
// target type.
v1::InformationSource::Value SourceOf(const Mapping& m, const Entry& entry) {
  const JsonValue* source = Member(entry.resource, "informationSource");
  if (source == nullptr) return v1::InformationSource::INFORMATION_SOURCE_UNSPECIFIED;
  const std::string display = absl::AsciiStrToLower(StringMember(source, "display"));
  if (display == "patient reported") return v1::InformationSource::PATIENT_REPORTED;
  if (display == "clinician") return v1::InformationSource::CLINICIAN;
  if (display == "hospital record") return v1::InformationSource::HOSPITAL_RECORD;
  absl::string_view type = StringMember(source, "type");
  if (type.empty()) {
    const Target target = m.input().ResolveReference(entry, source);
    if (target.found()) {
      type = target.type;
    } else {
      // "Practitioner/123" or an absolute URL ending in it.
      absl::string_view reference = StringMember(source, "reference");
      const size_t slash = reference.rfind('/');
      if (slash != absl::string_view::npos) {
        reference = reference.substr(0, slash);
        const size_t previous = reference.rfind('/');
        type = previous == absl::string_view::npos ? reference : reference.substr(previous + 1);
      }
    }
  }
  if (type == "Patient" || type == "RelatedPerson") return v1::InformationSource::PATIENT_REPORTED;
  if (type == "Practitioner" || type == "PractitionerRole") return v1::InformationSource::CLINICIAN;
  if (type == "Organization") return v1::InformationSource::HOSPITAL_RECORD;
  return v1::InformationSource::INFORMATION_SOURCE_UNSPECIFIED;
}

}  // namespace

bool MapMedicationStatement(const Mapping& m, const Entry& entry, ReverseRecord& out) {
  const JsonValue* resource = entry.resource;
  Record& statement = *out.record.mutable_medication_statement();
  *statement.mutable_medication() = MedicationCode(m, entry);
  if (IsEmptyCode(statement.medication())) return false;
  FillRecordHeader(m, entry, SystemKind::kMedicationStatement, out);
  SetStatus(m, entry, StatementStatus(StringMember(resource, "status")), out);
  statement.set_adherence(AdherenceOf(m, Member(resource, "extension"), entry.path));

  v1::Code reason = CodeFromConcept(FirstObject(Member(resource, "statusReason")), fhir::kSnomed);
  if (!IsEmptyCode(reason)) *statement.mutable_status_reason() = std::move(reason);

  if (const JsonValue* period = Member(resource, "effectivePeriod")) {
    const Path path = entry.path.Field("effectivePeriod");
    statement.set_effective_start(
        EffectiveText(m, StringMember(period, "start"), path.Field("start")));
    statement.set_effective_end(EffectiveText(m, StringMember(period, "end"), path.Field("end")));
  } else {
    statement.set_effective_start(EffectiveText(m, StringMember(resource, "effectiveDateTime"),
                                                entry.path.Field("effectiveDateTime")));
  }
  ReadOptionalTimestamp(m, StringMember(resource, "dateAsserted"), entry.path.Field("dateAsserted"),
                        [&] { return out.record.mutable_recorded_at(); });
  statement.set_information_source(SourceOf(m, entry));
  AppendCodes(Member(resource, "reasonCode"), fhir::kSnomed, statement.mutable_reasons());
  statement.set_note(NotesText(Member(resource, "note")));
  const std::span<const JsonValue> dosages = Elements(Member(resource, "dosage"));
  if (!dosages.empty()) ReadDosage(m, &dosages[0], entry.path.Field("dosage", 0), statement);
  if (dosages.size() > 1) {
    m.Warning(entry.path.Field("dosage", 1), "only the first dosage is mapped");
  }
  return CheckDose(m, entry.path.Field("dosage", 0), statement);
}

bool MapMedicationRequest(const Mapping& m, const Entry& entry, ReverseRecord& out) {
  const JsonValue* resource = entry.resource;
  Record& statement = *out.record.mutable_medication_statement();
  *statement.mutable_medication() = MedicationCode(m, entry);
  if (IsEmptyCode(statement.medication())) return false;
  FillRecordHeader(m, entry, SystemKind::kNone, out);
  Record::Status status = RequestStatus(StringMember(resource, "status"));
  // An order not to give the drug, or a mere proposal or plan, is never a drug the patient takes.
  const JsonValue* do_not_perform = Member(resource, "doNotPerform");
  const absl::string_view intent = StringMember(resource, "intent");
  if (do_not_perform != nullptr && do_not_perform->IsBool() && do_not_perform->GetBool()) {
    m.Warning(entry.path.Field("doNotPerform"),
              "is true: the order says NOT to give the medication; mapped as NOT_TAKEN");
    if (status != Record::ENTERED_IN_ERROR) status = Record::NOT_TAKEN;
  } else if ((intent == "proposal" || intent == "plan" || intent == "option") &&
             status == Record::ACTIVE) {
    m.Warning(
        entry.path.Field("intent"),
        absl::StrCat("is '", intent, "': not an order in force; mapped as INTENDED, not ACTIVE"));
    status = Record::INTENDED;
  }
  SetStatus(m, entry, status, out);
  statement.set_information_source(v1::InformationSource::HOSPITAL_RECORD);
  if (status == Record::NOT_TAKEN && do_not_perform != nullptr && do_not_perform->IsBool() &&
      do_not_perform->GetBool()) {
    statement.set_note("Hospital order: do not give this medication (doNotPerform)");
  }

  v1::Code reason = CodeFromConcept(Member(resource, "statusReason"), fhir::kSnomed);
  if (!IsEmptyCode(reason)) *statement.mutable_status_reason() = std::move(reason);

  const std::span<const JsonValue> dosages = Elements(Member(resource, "dosageInstruction"));
  const JsonValue* bounds = nullptr;
  const Path dosage_path = entry.path.Field("dosageInstruction", 0);
  if (!dosages.empty()) bounds = ReadDosage(m, &dosages[0], dosage_path, statement);
  if (dosages.size() > 1) {
    m.Warning(entry.path.Field("dosageInstruction", 1),
              "only the first dosage instruction is mapped");
  }
  // When the order is in force: its timing's bounds, else from when it was written.
  if (bounds != nullptr) {
    const Path path = dosage_path.Field("timing").Field("repeat").Field("boundsPeriod");
    statement.set_effective_start(
        EffectiveText(m, StringMember(bounds, "start"), path.Field("start")));
    statement.set_effective_end(EffectiveText(m, StringMember(bounds, "end"), path.Field("end")));
  }
  if (statement.effective_start().empty()) {
    statement.set_effective_start(
        EffectiveText(m, StringMember(resource, "authoredOn"), entry.path.Field("authoredOn")));
  }
  AppendCodes(Member(resource, "reasonCode"), fhir::kSnomed, statement.mutable_reasons());
  const std::string notes = NotesText(Member(resource, "note"));
  if (!notes.empty()) {
    statement.set_note(statement.note().empty() ? notes
                                                : absl::StrCat(statement.note(), "\n", notes));
  }
  return CheckDose(m, dosage_path, statement);
}

}  // namespace fhirgw::mappers::reverse_internal
