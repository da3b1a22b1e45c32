// FHIR R4 -> clinic records: parsing, the Bundle index, grouping and dispatch to the per-kind
// mappers (*_reverse.cc), and the readers they share.
#include "mappers/reverse.h"

#include <algorithm>
#include <cstring>
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
#include "rapidjson/error/en.h"

namespace fhirgw::mappers {

ReverseContext ReverseContext::ForTenant(absl::string_view clinic_id) {
  ReverseContext context;
  context.clinic_id = std::string(clinic_id);
  context.systems = IdentifierSystems::ForTenant(clinic_id);
  return context;
}

namespace reverse_internal {

// ---- element paths ----

std::string Path::ToString() const {
  std::string out;
  for (const Segment& segment : segments_) {
    if (!out.empty()) out.push_back('.');
    out.append(segment.name.data(), segment.name.size());
    if (segment.index >= 0) absl::StrAppend(&out, "[", segment.index, "]");
  }
  return out;
}

// ---- reading JSON ----

const JsonValue* Member(const JsonValue* object, absl::string_view key) {
  if (object == nullptr || !object->IsObject()) return nullptr;
  // A linear scan like FindMember's, but most names are told apart by length and first character
  // without a call to memcmp (member lookups were a tenth of MapFromFhir's time).
  for (const auto& member : object->GetObject()) {
    const JsonValue& name = member.name;
    if (name.GetStringLength() != key.size()) continue;
    const char* text = name.GetString();
    if (key.empty() || (text[0] == key[0] && std::memcmp(text, key.data(), key.size()) == 0)) {
      return &member.value;
    }
  }
  return nullptr;
}

absl::string_view String(const JsonValue* value) {
  if (value == nullptr || !value->IsString()) return {};
  return absl::string_view(value->GetString(), value->GetStringLength());
}

std::span<const JsonValue> Elements(const JsonValue* value) {
  if (value == nullptr || !value->IsArray()) return {};
  return std::span<const JsonValue>(value->Begin(), value->Size());
}

const JsonValue* FirstObject(const JsonValue* value) {
  if (value == nullptr) return nullptr;
  if (value->IsObject()) return value;
  for (const JsonValue& element : Elements(value)) {
    if (element.IsObject()) return &element;
  }
  return nullptr;
}

bool Number(const JsonValue* value, double* out) {
  if (value == nullptr || !value->IsNumber()) return false;
  *out = value->GetDouble();
  return true;
}

// ---- the input and its index ----

void Input::BuildIndex() {
  by_full_url_.reserve(entries.size());
  by_type_id_.reserve(entries.size());
  for (const Entry& entry : entries) {
    if (!entry.full_url.empty()) by_full_url_.emplace(entry.full_url, entry.index);
    if (!entry.id.empty()) by_type_id_.emplace(std::make_pair(entry.type, entry.id), entry.index);
  }
  absorbed.assign(entries.size(), {});
}

namespace {

Target TargetOf(const Entry& entry) { return Target{entry.resource, &entry, entry.type}; }

}  // namespace

Target Input::Resolve(const Entry& from, absl::string_view reference) const {
  if (reference.empty()) return {};
  if (reference.front() == '#') {
    const absl::string_view id = reference.substr(1);
    if (id.empty()) return {};
    for (const JsonValue& contained : Elements(Member(from.resource, "contained"))) {
      if (contained.IsObject() && StringMember(&contained, "id") == id) {
        return Target{&contained, nullptr, StringMember(&contained, "resourceType")};
      }
    }
    return {};
  }
  if (const auto it = by_full_url_.find(reference); it != by_full_url_.end()) {
    return TargetOf(entries[it->second]);
  }
  // "Type/id", or the tail of an absolute URL, without a version.
  absl::string_view rest = reference;
  if (const size_t history = rest.find("/_history/"); history != absl::string_view::npos) {
    rest = rest.substr(0, history);
  }
  const size_t slash = rest.rfind('/');
  if (slash == absl::string_view::npos || slash == 0) return {};
  const absl::string_view id = rest.substr(slash + 1);
  absl::string_view type = rest.substr(0, slash);
  if (const size_t previous = type.rfind('/'); previous != absl::string_view::npos) {
    type = type.substr(previous + 1);
  }
  if (const auto it = by_type_id_.find(std::make_pair(type, id)); it != by_type_id_.end()) {
    return TargetOf(entries[it->second]);
  }
  return {};
}

// ---- one MapFromFhir call ----

void Mapping::Error(const Path& path, absl::string_view message) const {
  issues_.push_back(
      fhir::Issue{path.ToString(), std::string(message), fhir::Issue::Severity::kError});
}

void Mapping::Warning(const Path& path, absl::string_view message) const {
  issues_.push_back(
      fhir::Issue{path.ToString(), std::string(message), fhir::Issue::Severity::kWarning});
}

bool Mapping::IsFhirgwSystem(absl::string_view system, SystemKind kind) const {
  const IdentifierSystems& systems = context_.systems;
  const std::string* configured = nullptr;
  absl::string_view suffix;
  switch (kind) {
    case SystemKind::kPatient:
      configured = &systems.patient;
      suffix = ":patient";
      break;
    case SystemKind::kEncounter:
      configured = &systems.encounter;
      suffix = ":encounter";
      break;
    case SystemKind::kMedicationAdministration:
      configured = &systems.medication_administration;
      suffix = ":medication-administration";
      break;
    case SystemKind::kMedicationStatement:
      configured = &systems.medication_statement;
      suffix = ":medication-statement";
      break;
    case SystemKind::kQuestionnaireResponse:
      configured = &systems.questionnaire_response;
      suffix = ":questionnaire-response";
      break;
    case SystemKind::kObservation:
      configured = &systems.observation;
      suffix = ":observation";
      break;
    case SystemKind::kAdverseEvent:
      configured = &systems.adverse_event;
      suffix = ":adverse-event";
      break;
    case SystemKind::kFlag:
      configured = &systems.flag;
      suffix = ":flag";
      break;
    case SystemKind::kNone:
      return false;
  }
  if (system.empty()) return false;
  if (!configured->empty()) return system == *configured;
  if (!context_.match_any_tenant) return false;
  constexpr absl::string_view kPrefix = "urn:fhirgw:";
  return system.size() > kPrefix.size() + suffix.size() && absl::StartsWith(system, kPrefix) &&
         absl::EndsWith(system, suffix);
}

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

}  // namespace reverse_internal

namespace {

using reverse_internal::Elements;
using reverse_internal::Entry;
using reverse_internal::Input;
using reverse_internal::JsonValue;
using reverse_internal::Mapping;
using reverse_internal::Member;
using reverse_internal::Path;
using reverse_internal::StringMember;
using reverse_internal::Target;

// Resource types that are only reference targets: in a Bundle they are used where referenced and
// otherwise passed over without an issue.
bool IsSupportingType(absl::string_view type) {
  static constexpr absl::string_view kTypes[] = {
      "Medication", "Practitioner",  "PractitionerRole", "Organization",
      "Location",   "RelatedPerson", "Questionnaire",    "Provenance",
      "Device",     "Substance",     "OperationOutcome"};
  return std::find(std::begin(kTypes), std::end(kTypes), type) != std::end(kTypes);
}

// Links the entries that another entry's record absorbs (see reverse.h), and marks the Patients
// that other resources name as subject.
void Group(Input& input) {
  std::vector<Entry>& entries = input.entries;
  bool has_questionnaire = false;
  int first_questionnaire = -1;
  for (Entry& entry : entries) {
    const JsonValue* resource = entry.resource;
    if (entry.type == "Observation") {
      for (const JsonValue& part_of : Elements(Member(resource, "partOf"))) {
        const Target target = input.ResolveReference(entry, &part_of);
        if (target.entry != nullptr && target.type == "MedicationAdministration") {
          entry.owner = target.entry->index;
          break;
        }
      }
      if (entry.owner < 0) {
        for (const JsonValue& derived_from : Elements(Member(resource, "derivedFrom"))) {
          const Target target = input.ResolveReference(entry, &derived_from);
          if (target.entry != nullptr && target.type == "QuestionnaireResponse") {
            entry.owner = target.entry->index;
            break;
          }
        }
      }
    } else if (entry.type == "AdverseEvent") {
      for (const JsonValue& suspect : Elements(Member(resource, "suspectEntity"))) {
        const Target target = input.ResolveReference(entry, Member(&suspect, "instance"));
        if (target.entry != nullptr && target.type == "MedicationAdministration") {
          entry.owner = target.entry->index;
          break;
        }
      }
    } else if (entry.type == "MedicationAdministration") {
      const Target target = input.ResolveReference(entry, Member(resource, "context"));
      if (target.entry != nullptr && target.type == "Encounter" && target.entry->owner < 0) {
        entries[target.entry->index].owner = entry.index;
      }
    } else if (entry.type == "QuestionnaireResponse") {
      has_questionnaire = true;
      if (first_questionnaire < 0) first_questionnaire = entry.index;
    }
    if (entry.type != "Patient") {
      const Target target = input.ResolveReference(entry, Member(resource, "subject"));
      if (target.entry != nullptr && target.type == "Patient") {
        entries[target.entry->index].subject_of_others = true;
      }
    }
  }
  // A total or panel Observation absorbs its members (into its own record when it stands alone,
  // else into the record that absorbs it).
  for (Entry& entry : entries) {
    if (entry.type != "Observation") continue;
    bool is_total = false;
    if (reverse_internal::SurveyInstrumentOf(entry.resource, &is_total) == nullptr) continue;
    if (entry.owner < 0) {
      has_questionnaire = true;
      if (first_questionnaire < 0) first_questionnaire = entry.index;
    }
    const int owner = entry.owner >= 0 ? entry.owner : entry.index;
    for (const JsonValue& member : Elements(Member(entry.resource, "hasMember"))) {
      const Target target = input.ResolveReference(entry, &member);
      if (target.entry != nullptr && target.type == "Observation" && target.entry->owner < 0 &&
          target.entry != &entry) {
        entries[target.entry->index].owner = owner;
      }
    }
  }
  // Flags (fhirgw's suicidal-ideation Flag) go with the questionnaire they were raised for.
  if (has_questionnaire) {
    for (Entry& entry : entries) {
      if (entry.type == "Flag" && entry.owner < 0) entry.owner = first_questionnaire;
    }
  }
  for (const Entry& entry : entries) {
    if (entry.owner >= 0) input.absorbed[entry.owner].push_back(entry.index);
  }
}

// "http://loinc.org|8867-4 (Heart rate)" for an Observation's code, for messages.
std::string DescribeCode(const JsonValue* concept_json) {
  const v1::Code code = reverse_internal::CodeFromConcept(concept_json, fhir::kLoinc);
  if (code.code().empty()) return absl::StrCat("'", code.display(), "'");
  std::string text = code.system() == fhir::kLoinc
                         ? absl::StrCat("LOINC ", code.code())
                         : reverse_internal::SystemValue(code.system(), code.code());
  if (!code.display().empty()) absl::StrAppend(&text, " (", code.display(), ")");
  return text;
}

void ReportObservation(const Mapping& m, const Entry& entry) {
  const JsonValue* code = Member(entry.resource, "code");
  const absl::string_view loinc = reverse_internal::CodeInSystem(code, fhir::kLoinc);
  const Path path = entry.path.Field("code");
  if (reverse_internal::IsVitalSignCode(loinc)) {
    m.Error(path, absl::StrCat(DescribeCode(code),
                               " is a vital sign: it is mapped only as part of an infusion, from "
                               "an Observation whose partOf names a MedicationAdministration of "
                               "the input"));
  } else if (reverse_internal::IsInstrumentItemCode(loinc)) {
    m.Error(path, absl::StrCat(DescribeCode(code),
                               " is a questionnaire item: it is mapped only with its total or "
                               "panel (hasMember) or its QuestionnaireResponse (derivedFrom) in "
                               "the same input"));
  } else {
    m.Error(path, absl::StrCat(DescribeCode(code),
                               " is not a PHQ-9, GAD-7 or PHQ-2 total (44261-6, 70274-6, "
                               "55758-7) or panel (44249-1, 69737-5, 55757-9); supported "
                               "resource types: ",
                               kSupportedResourceTypes));
  }
}

// Maps one entry that no other entry absorbed; false when it gave no record.
bool MapEntry(const Mapping& m, const Entry& entry, ReverseRecord& out) {
  const absl::string_view type = entry.type;
  // Unknown extensions are ignored, but a modifier extension changes what the resource means:
  // mapping it without understanding it could turn "not given" into "given".
  const std::span<const JsonValue> modifiers =
      Elements(Member(entry.resource, "modifierExtension"));
  if (!modifiers.empty()) {
    m.Error(entry.path.Field("modifierExtension", 0),
            absl::StrCat("'", StringMember(&modifiers[0], "url"),
                         "' is not understood, and a modifier extension changes the meaning of "
                         "the resource: it is not mapped"));
    return false;
  }
  if (type == "MedicationAdministration") {
    return reverse_internal::MapMedicationAdministration(m, entry, out);
  }
  if (type == "MedicationStatement") return reverse_internal::MapMedicationStatement(m, entry, out);
  if (type == "MedicationRequest") return reverse_internal::MapMedicationRequest(m, entry, out);
  if (type == "QuestionnaireResponse") {
    return reverse_internal::MapQuestionnaireResponse(m, entry, out);
  }
  if (type == "Encounter") return reverse_internal::MapEncounter(m, entry, out);
  if (type == "Observation") {
    bool is_total = false;
    if (reverse_internal::SurveyInstrumentOf(entry.resource, &is_total) != nullptr) {
      return reverse_internal::MapSurveyObservation(m, entry, out);
    }
    ReportObservation(m, entry);
    return false;
  }
  if (type == "Patient") {
    if (entry.subject_of_others) return false;
    return reverse_internal::MapPatient(m, entry, out);
  }
  if (type == "Flag") {
    m.Error(entry.path.Field("resourceType"),
            absl::StrCat("a Flag is mapped only together with the QuestionnaireResponse or score "
                         "Observation it was raised for; supported resource types: ",
                         kSupportedResourceTypes));
    return false;
  }
  if (type == "AdverseEvent") {
    m.Error(entry.path.Field("suspectEntity"),
            absl::StrCat("names no MedicationAdministration of the input: an AdverseEvent is "
                         "mapped only as part of an infusion; supported resource types: ",
                         kSupportedResourceTypes));
    return false;
  }
  if (m.input().is_bundle && IsSupportingType(type)) return false;
  m.Error(entry.path.Field("resourceType"),
          absl::StrCat("'", type,
                       "' is not supported; supported resource types: ", kSupportedResourceTypes));
  return false;
}

absl::Status NothingMapped(const fhir::IssueList& issues, size_t first_issue) {
  const fhir::IssueList found(issues.begin() + static_cast<std::ptrdiff_t>(first_issue),
                              issues.end());
  absl::Status status = fhir::IssuesToStatus(found);
  if (!status.ok()) return status;
  return absl::InvalidArgumentError(
      absl::StrCat("the input holds no resource that maps to a clinic record; supported resource "
                   "types: ",
                   kSupportedResourceTypes));
}

// Fills `input` from the parsed document; false (with an error) when there is nothing to map.
bool ReadInput(const JsonValue& document, const Mapping& m, Input& input) {
  if (!document.IsObject()) {
    m.Error(Path("input"), "is not a FHIR resource: expected a JSON object with a resourceType");
    return false;
  }
  const absl::string_view type = StringMember(&document, "resourceType");
  if (type.empty()) {
    m.Error(Path("resourceType"), "is required: the input is not a FHIR resource");
    return false;
  }
  if (type != "Bundle") {
    Entry entry;
    entry.resource = &document;
    entry.type = type;
    entry.id = StringMember(&document, "id");
    entry.path = Path(type);
    input.entries.push_back(std::move(entry));
    return true;
  }
  input.is_bundle = true;
  const Path bundle("Bundle");
  const absl::string_view bundle_type = StringMember(&document, "type");
  if (bundle_type == "transaction-response" || bundle_type == "batch-response") {
    m.Error(bundle.Field("type"),
            absl::StrCat("'", bundle_type,
                         "' is a server's answer, not input: send a transaction, batch, "
                         "collection or searchset Bundle"));
    return false;
  }
  const std::span<const JsonValue> entries = Elements(Member(&document, "entry"));
  input.entries.reserve(entries.size());
  for (size_t i = 0; i < entries.size(); ++i) {
    const JsonValue& element = entries[i];
    const Path path = bundle.Field("entry", static_cast<int>(i));
    if (!element.IsObject()) {
      m.Error(path, "is not a JSON object");
      continue;
    }
    // A search outcome is not data; a DELETE (fhirgw's retraction of an AdverseEvent) has no
    // resource.
    if (StringMember(Member(&element, "search"), "mode") == "outcome") continue;
    const JsonValue* resource = Member(&element, "resource");
    if (resource == nullptr) {
      if (StringMember(Member(&element, "request"), "method") != "DELETE") {
        m.Warning(path.Field("resource"), "is absent; the entry is skipped");
      }
      continue;
    }
    if (!resource->IsObject()) {
      m.Error(path.Field("resource"), "is not a JSON object");
      continue;
    }
    const absl::string_view resource_type = StringMember(resource, "resourceType");
    if (resource_type.empty()) {
      m.Error(path.Field("resource").Field("resourceType"), "is required");
      continue;
    }
    Entry entry;
    entry.resource = resource;
    entry.type = resource_type;
    entry.id = StringMember(resource, "id");
    entry.full_url = StringMember(&element, "fullUrl");
    entry.path = path.Field("resource");
    entry.index = static_cast<int>(input.entries.size());
    input.entries.push_back(std::move(entry));
  }
  if (input.entries.empty()) {
    m.Error(bundle.Field("entry"), "the Bundle holds no resources");
    return false;
  }
  return true;
}

}  // namespace

absl::StatusOr<std::vector<ReverseRecord>> MapFromFhir(absl::string_view json,
                                                       const ReverseContext& context,
                                                       fhir::IssueList& issues) {
  const size_t first_issue = issues.size();
  // Parsed in place, in a NUL-terminated copy that the DOM's strings point into. The copy and the
  // DOM share the pool's first chunk, sized to hold both for most inputs: one allocation, where
  // a separate copy and RapidJSON's default 64 KiB chunk made two, and mapping a small input
  // cost little more than allocating and freeing them.
  constexpr size_t kMinChunk = 4 * 1024;
  constexpr size_t kMaxChunk = 60 * 1024;  // below glibc's 64 KiB free-consolidation threshold
  fhir::JsonAlloc allocator(std::clamp(3 * json.size() + kMinChunk, kMinChunk, kMaxChunk));
  char* buffer = static_cast<char*>(allocator.Malloc(json.size() + 1));
  std::memcpy(buffer, json.data(), json.size());
  buffer[json.size()] = '\0';
  fhir::JsonDocument document(&allocator);
  // Iterative parsing keeps deeply nested (hostile) input from exhausting the stack.
  document.ParseInsitu<rapidjson::kParseIterativeFlag>(buffer);
  Input input;
  const Mapping m(context, issues, input);
  if (document.HasParseError()) {
    m.Error(Path("input"), absl::StrCat("is not valid JSON: ",
                                        rapidjson::GetParseError_En(document.GetParseError()),
                                        " (at offset ", document.GetErrorOffset(), ")"));
    return NothingMapped(issues, first_issue);
  }
  if (!ReadInput(document, m, input)) return NothingMapped(issues, first_issue);
  input.BuildIndex();
  Group(input);

  std::vector<ReverseRecord> records;
  records.reserve(input.entries.size());
  for (const Entry& entry : input.entries) {
    if (entry.owner >= 0) continue;
    ReverseRecord record;
    if (MapEntry(m, entry, record)) records.push_back(std::move(record));
  }
  if (records.empty()) return NothingMapped(issues, first_issue);
  return records;
}

}  // namespace fhirgw::mappers
