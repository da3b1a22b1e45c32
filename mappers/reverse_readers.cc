// The readers of FHIR R4 datatypes that the per-kind reverse mappers (*_reverse.cc) share
// (reverse_internal.h): the record header and patient, codes, routes, timestamps, notes, encounter
// ids, medications and practitioners.
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "fhir/codes.h"
#include "fhir/primitives.h"
#include "mappers/reverse_internal.h"

namespace fhirgw::mappers::reverse_internal {

// ---- shared readers ----

std::string SystemValue(absl::string_view system, absl::string_view value) {
  if (system.empty()) return std::string(value);
  return absl::StrCat(system, "|", value);
}

namespace {

// The record id: fhirgw's identifier of `kind`, else the first identifier, else Type/id, else the
// fullUrl.
std::string RecordId(const Mapping& m, const Entry& entry, SystemKind kind) {
  const JsonValue* identifiers = Member(entry.resource, "identifier");
  const std::span<const JsonValue> list = identifiers != nullptr && identifiers->IsObject()
                                              ? std::span<const JsonValue>(identifiers, 1)
                                              : Elements(identifiers);
  std::string first;
  for (const JsonValue& identifier : list) {
    const absl::string_view system = StringMember(&identifier, "system");
    absl::string_view value = StringMember(&identifier, "value");
    if (value.empty()) continue;
    if (m.IsFhirgwSystem(system, kind)) {
      // fhirgw writes a questionnaire's total score as "<record_id>/total".
      if (kind == SystemKind::kObservation) absl::ConsumeSuffix(&value, "/total");
      return std::string(value);
    }
    if (first.empty()) first = SystemValue(system, value);
  }
  if (!first.empty()) return first;
  if (!entry.id.empty()) return absl::StrCat(entry.type, "/", entry.id);
  return std::string(entry.full_url);
}

}  // namespace

void FillRecordHeader(const Mapping& m, const Entry& entry, SystemKind kind, ReverseRecord& out) {
  v1::ClinicRecord& record = out.record;
  record.set_clinic_id(m.context().clinic_id);
  record.set_record_id(RecordId(m, entry, kind));
  if (record.record_id().empty()) {
    m.Warning(entry.path.Field("identifier"),
              "the resource has no identifier, id or fullUrl; the record has no record_id");
  }
  out.source_type = std::string(entry.type);
  out.source_id = std::string(entry.id.empty() ? entry.full_url : entry.id);
  const JsonValue* meta = Member(entry.resource, "meta");
  out.source_version = std::string(StringMember(meta, "versionId"));
  ReadOptionalTimestamp(m, StringMember(meta, "lastUpdated"),
                        entry.path.Field("meta").Field("lastUpdated"),
                        [&] { return record.mutable_recorded_at(); });

  if (entry.type == "Patient") {
    FillPatient(m, entry.resource, out);
    return;
  }
  const JsonValue* subject = Member(entry.resource, "subject");
  if (subject == nullptr) {
    m.Warning(entry.path.Field("subject"), "is absent: the record names no patient");
    return;
  }
  const Target target = m.input().ResolveReference(entry, subject);
  if (target.found() && target.type == "Patient") {
    FillPatient(m, target.resource, out);
    return;
  }
  // A logical reference: the patient's identifier.
  const JsonValue* identifier = Member(subject, "identifier");
  const absl::string_view system = StringMember(identifier, "system");
  const absl::string_view value = StringMember(identifier, "value");
  if (!value.empty()) {
    v1::PatientRef& patient = *record.mutable_patient();
    out.patient_identifiers.push_back(SystemValue(system, value));
    if (m.IsFhirgwSystem(system, SystemKind::kPatient)) {
      patient.set_clinic_patient_id(std::string(value));
    } else {
      v1::Identifier& copy = *patient.add_identifiers();
      copy.set_system(std::string(system));
      copy.set_value(std::string(value));
    }
  }
  absl::string_view reference = StringMember(subject, "reference");
  if (!reference.empty()) {
    if (target.found()) {
      m.Warning(
          entry.path.Field("subject"),
          absl::StrCat("names a ", target.type, ", not a Patient: the record names no patient"));
      return;
    }
    // The tail "Patient/<id>" of a relative or absolute literal reference.
    if (const size_t history = reference.find("/_history/"); history != absl::string_view::npos) {
      reference = reference.substr(0, history);
    }
    const size_t type_start = reference.rfind("Patient/");
    out.patient_identifiers.push_back(std::string(
        type_start == absl::string_view::npos ? reference : reference.substr(type_start)));
  }
}

bool IsEmptyCode(const v1::Code& code) {
  return code.code().empty() && code.display().empty() && code.system().empty();
}

v1::Code CodeFromConcept(const JsonValue* concept_json, absl::string_view preferred_system) {
  v1::Code code;
  const JsonValue* chosen = nullptr;
  absl::string_view display_only;
  for (const JsonValue& coding : Elements(Member(concept_json, "coding"))) {
    if (StringMember(&coding, "code").empty()) {
      if (display_only.empty()) display_only = StringMember(&coding, "display");
      continue;
    }
    if (!preferred_system.empty() && StringMember(&coding, "system") == preferred_system) {
      chosen = &coding;
      break;
    }
    if (chosen == nullptr) chosen = &coding;
  }
  const absl::string_view text = StringMember(concept_json, "text");
  if (chosen != nullptr) {
    code.set_system(std::string(StringMember(chosen, "system")));
    code.set_code(std::string(StringMember(chosen, "code")));
    const absl::string_view display = StringMember(chosen, "display");
    code.set_display(std::string(display.empty() ? text : display));
  } else {
    code.set_display(std::string(text.empty() ? display_only : text));
  }
  return code;
}

absl::string_view CodeInSystem(const JsonValue* concept_json, absl::string_view system) {
  const JsonValue* codings = Member(concept_json, "coding");
  if (codings == nullptr && concept_json != nullptr && concept_json->IsArray()) {
    codings = concept_json;
  }
  for (const JsonValue& coding : Elements(codings)) {
    if (StringMember(&coding, "system") == system) {
      const absl::string_view code = StringMember(&coding, "code");
      if (!code.empty()) return code;
    }
  }
  return {};
}

void AppendCodes(const JsonValue* concepts, absl::string_view preferred_system,
                 google::protobuf::RepeatedPtrField<v1::Code>* out) {
  for (const JsonValue& concept_json : Elements(concepts)) {
    v1::Code code = CodeFromConcept(&concept_json, preferred_system);
    if (!IsEmptyCode(code)) *out->Add() = std::move(code);
  }
}

namespace {

// True when `word` occurs in `text` (lowercase) delimited by non-alphanumeric characters.
bool HasWord(absl::string_view text, absl::string_view word) {
  for (size_t at = text.find(word); at != absl::string_view::npos; at = text.find(word, at + 1)) {
    const bool starts = at == 0 || !absl::ascii_isalnum(static_cast<unsigned char>(text[at - 1]));
    const size_t end = at + word.size();
    const bool ends =
        end == text.size() || !absl::ascii_isalnum(static_cast<unsigned char>(text[end]));
    if (starts && ends) return true;
  }
  return false;
}

v1::Route::Value RouteFromWords(absl::string_view words) {
  const std::string text = absl::AsciiStrToLower(words);
  if (absl::StrContains(text, "intravenous") || HasWord(text, "iv")) return v1::Route::INTRAVENOUS;
  if (absl::StrContains(text, "intramuscular") || HasWord(text, "im")) {
    return v1::Route::INTRAMUSCULAR;
  }
  if (absl::StrContains(text, "nasal")) return v1::Route::INTRANASAL;
  if (absl::StrContains(text, "subcutaneous") || HasWord(text, "sc") || HasWord(text, "subq")) {
    return v1::Route::SUBCUTANEOUS;
  }
  if (HasWord(text, "oral") || absl::StrContains(text, "by mouth") || HasWord(text, "po")) {
    return v1::Route::ORAL;
  }
  return v1::Route::ROUTE_UNSPECIFIED;
}

}  // namespace

v1::Route::Value RouteFromConcept(const Mapping& m, const JsonValue* concept_json,
                                  const Path& path) {
  if (concept_json == nullptr) return v1::Route::ROUTE_UNSPECIFIED;
  const absl::string_view snomed = CodeInSystem(concept_json, fhir::kSnomed);
  if (snomed == fhir::kSnomedIntravenous) return v1::Route::INTRAVENOUS;
  if (snomed == fhir::kSnomedIntramuscular) return v1::Route::INTRAMUSCULAR;
  if (snomed == fhir::kSnomedNasal) return v1::Route::INTRANASAL;
  if (snomed == fhir::kSnomedSubcutaneous) return v1::Route::SUBCUTANEOUS;
  if (snomed == fhir::kSnomedOral) return v1::Route::ORAL;
  // The FDA route codes (NCI Thesaurus), which US systems use too.
  const absl::string_view nci = CodeInSystem(concept_json, "http://ncimeta.nci.nih.gov");
  if (nci == "C38276") return v1::Route::INTRAVENOUS;
  if (nci == "C28161") return v1::Route::INTRAMUSCULAR;
  if (nci == "C38284") return v1::Route::INTRANASAL;
  if (nci == "C38299") return v1::Route::SUBCUTANEOUS;
  if (nci == "C38288") return v1::Route::ORAL;
  const v1::Code code = CodeFromConcept(concept_json, fhir::kSnomed);
  v1::Route::Value route = RouteFromWords(code.display());
  if (route == v1::Route::ROUTE_UNSPECIFIED)
    route = RouteFromWords(StringMember(concept_json, "text"));
  if (route == v1::Route::ROUTE_UNSPECIFIED) {
    m.Warning(path, absl::StrCat("route '", code.code().empty() ? code.display() : code.code(),
                                 "' is not intravenous, intramuscular, nasal, subcutaneous or "
                                 "oral; left unset"));
  }
  return route;
}

bool ReadTimestamp(const Mapping& m, absl::string_view text, const Path& path, bool required,
                   google::protobuf::Timestamp* out) {
  absl::StatusOr<fhir::DateTime> parsed = fhir::ParseDateTime(text);
  if (!parsed.ok()) {
    if (required) {
      m.Error(path, parsed.status().message());
    } else {
      m.Warning(path, absl::StrCat(parsed.status().message(), "; left unset"));
    }
    return false;
  }
  fhir::DateTime value = *parsed;
  if (value.precision != fhir::DateTime::Precision::kSecond) {
    value.precision = fhir::DateTime::Precision::kSecond;
    value.hour = value.minute = value.second = 0;
    value.nanos = 0;
    value.fraction_digits = 0;
    value.zulu = true;
    value.tz_offset_minutes = 0;
    m.Warning(path, absl::StrCat("'", text, "' has no time of day; taken as ",
                                 fhir::FormatDateTime(value)));
  }
  absl::StatusOr<int64_t> seconds = fhir::ToUnixSeconds(value);
  if (!seconds.ok()) {
    if (required) {
      m.Error(path, seconds.status().message());
    } else {
      m.Warning(path, absl::StrCat(seconds.status().message(), "; left unset"));
    }
    return false;
  }
  out->set_seconds(*seconds);
  out->set_nanos(value.nanos);
  return true;
}

std::string NotesText(const JsonValue* notes) {
  std::string text;
  for (const JsonValue& note : Elements(notes)) {
    const absl::string_view note_text = StringMember(&note, "text");
    if (note_text.empty()) continue;
    if (!text.empty()) text.push_back('\n');
    text.append(note_text.data(), note_text.size());
  }
  return text;
}

std::string EncounterIdOf(const Mapping& m, const JsonValue* encounter) {
  std::string first;
  for (const JsonValue& identifier : Elements(Member(encounter, "identifier"))) {
    const absl::string_view system = StringMember(&identifier, "system");
    const absl::string_view value = StringMember(&identifier, "value");
    if (value.empty()) continue;
    if (m.IsFhirgwSystem(system, SystemKind::kEncounter)) return std::string(value);
    if (first.empty()) first = SystemValue(system, value);
  }
  if (!first.empty()) return first;
  const absl::string_view id = StringMember(encounter, "id");
  return id.empty() ? std::string() : absl::StrCat("Encounter/", id);
}

std::string EncounterIdFromReference(const Mapping& m, const Entry& from,
                                     const JsonValue* reference) {
  if (reference == nullptr) return {};
  const Target target = m.input().ResolveReference(from, reference);
  if (target.found() && target.type == "Encounter") {
    std::string id = EncounterIdOf(m, target.resource);
    if (!id.empty()) return id;
  }
  const JsonValue* identifier = Member(reference, "identifier");
  const absl::string_view value = StringMember(identifier, "value");
  if (!value.empty()) {
    const absl::string_view system = StringMember(identifier, "system");
    if (m.IsFhirgwSystem(system, SystemKind::kEncounter)) return std::string(value);
    return SystemValue(system, value);
  }
  return std::string(StringMember(reference, "reference"));
}

v1::Code MedicationCode(const Mapping& m, const Entry& entry) {
  const JsonValue* resource = entry.resource;
  if (const JsonValue* concept_json = Member(resource, "medicationCodeableConcept")) {
    v1::Code code = CodeFromConcept(concept_json, fhir::kRxNorm);
    if (IsEmptyCode(code)) {
      m.Error(entry.path.Field("medicationCodeableConcept"),
              "has neither a coding with a code nor text");
    }
    return code;
  }
  const JsonValue* reference = Member(resource, "medicationReference");
  if (reference == nullptr) {
    m.Error(entry.path.Field("medicationCodeableConcept"),
            "is required (or medicationReference): the record needs its medication");
    return {};
  }
  const Path path = entry.path.Field("medicationReference");
  const absl::string_view literal = StringMember(reference, "reference");
  const Target target = m.input().Resolve(entry, literal);
  if (!target.found()) {
    v1::Code code;
    code.set_display(std::string(StringMember(reference, "display")));
    if (code.display().empty()) {
      m.Error(path, absl::StrCat("'", literal,
                                 "' is neither contained in the resource nor in the Bundle, and "
                                 "the reference has no display"));
    } else {
      m.Warning(path, absl::StrCat("'", literal,
                                   "' is neither contained in the resource nor in the Bundle; "
                                   "only its display is kept"));
    }
    return code;
  }
  if (target.type != "Medication") {
    m.Error(path, absl::StrCat("'", literal, "' is a ", target.type, ", not a Medication"));
    return {};
  }
  v1::Code code = CodeFromConcept(Member(target.resource, "code"), fhir::kRxNorm);
  if (!IsEmptyCode(code)) return code;
  // A compounded Medication without a code: its ingredients.
  std::vector<v1::Code> ingredients;
  for (const JsonValue& ingredient : Elements(Member(target.resource, "ingredient"))) {
    v1::Code item = CodeFromConcept(Member(&ingredient, "itemCodeableConcept"), fhir::kRxNorm);
    if (IsEmptyCode(item)) {
      item.set_display(std::string(StringMember(Member(&ingredient, "itemReference"), "display")));
    }
    if (!IsEmptyCode(item)) ingredients.push_back(std::move(item));
  }
  if (ingredients.size() == 1) return ingredients.front();
  if (ingredients.empty()) {
    m.Error(path,
            absl::StrCat("the Medication '", literal, "' has neither a code nor ingredients"));
    return {};
  }
  std::string names;
  for (const v1::Code& item : ingredients) {
    absl::StrAppend(&names, names.empty() ? "" : " + ",
                    item.display().empty() ? item.code() : item.display());
  }
  code.set_display(names);
  m.Warning(path, absl::StrCat("the Medication '", literal, "' has no code but ",
                               ingredients.size(), " ingredients; kept as text: ", names));
  return code;
}

v1::Practitioner PractitionerFromReference(const Mapping& m, const Entry& from,
                                           const JsonValue* reference) {
  v1::Practitioner practitioner;
  if (reference == nullptr) return practitioner;
  const JsonValue* identifier = Member(reference, "identifier");
  if (StringMember(identifier, "system") == fhir::kNpi) {
    practitioner.set_npi(std::string(StringMember(identifier, "value")));
  }
  practitioner.set_name(std::string(StringMember(reference, "display")));
  const Target target = m.input().ResolveReference(from, reference);
  if (target.found() && target.type == "Practitioner") {
    if (practitioner.npi().empty()) {
      for (const JsonValue& id : Elements(Member(target.resource, "identifier"))) {
        if (StringMember(&id, "system") == fhir::kNpi) {
          practitioner.set_npi(std::string(StringMember(&id, "value")));
          break;
        }
      }
    }
    if (practitioner.name().empty()) {
      const JsonValue* name = FirstObject(Member(target.resource, "name"));
      std::string text(StringMember(name, "text"));
      if (text.empty()) {
        for (const JsonValue& given : Elements(Member(name, "given"))) {
          absl::StrAppend(&text, text.empty() ? "" : " ", String(&given));
        }
        const absl::string_view family = StringMember(name, "family");
        if (!family.empty()) absl::StrAppend(&text, text.empty() ? "" : " ", family);
      }
      practitioner.set_name(text);
    }
  }
  return practitioner;
}

}  // namespace fhirgw::mappers::reverse_internal
