// FHIR R4 -> clinic records (reverse.h): parsing, grouping the resources of a Bundle into
// records, and dispatch to the per-kind mappers (*_reverse.cc). The input index and the shared
// readers are in reverse_input.cc and reverse_readers.cc.
#include "mappers/reverse.h"

#include <algorithm>
#include <cstring>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "fhir/codes.h"
#include "mappers/reverse_internal.h"
#include "rapidjson/error/en.h"

namespace fhirgw::mappers {

ReverseContext ReverseContext::ForTenant(absl::string_view clinic_id) {
  ReverseContext context;
  context.clinic_id = std::string(clinic_id);
  context.systems = IdentifierSystems::ForTenant(clinic_id);
  return context;
}

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
