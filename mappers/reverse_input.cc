// The input of one FHIR R4 -> clinic record mapping (reverse_internal.h): element paths, the
// tolerant JSON readers, the reference index over the input's resources, and the Mapping that
// collects issues and recognises fhirgw's identifier systems.
#include <cstring>
#include <span>
#include <string>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "fhir/issues.h"
#include "mappers/reverse_internal.h"

namespace fhirgw::mappers::reverse_internal {

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

}  // namespace fhirgw::mappers::reverse_internal
