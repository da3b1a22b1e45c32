// Internals of the FHIR R4 -> clinic record mappers: the parsed input with its reference index and
// element paths for issues (reverse_input.cc), readers for the FHIR datatypes that clinic records
// hold (reverse_readers.cc), and the per-kind mappers (*_reverse.cc) that reverse.cc dispatches
// to. The public API is mappers/reverse.h.
//
// Every reader takes the DOM as parsed (RapidJSON) and tolerates any shape: a member of the wrong
// JSON type reads as absent, so that hospital data never crashes the mapper.
#ifndef FHIRGW_MAPPERS_REVERSE_INTERNAL_H_
#define FHIRGW_MAPPERS_REVERSE_INTERNAL_H_

#include <cstdint>
#include <span>
#include <string>
#include <utility>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/container/inlined_vector.h"
#include "absl/strings/string_view.h"
#include "fhir/instruments.h"
#include "fhir/issues.h"
#include "fhir/json.h"
#include "fhirgw/v1/records.pb.h"
#include "google/protobuf/timestamp.pb.h"
#include "mappers/reverse.h"

namespace fhirgw::mappers::reverse_internal {

using fhir::JsonValue;

// ---- element paths ----

// A FHIR element path such as "Bundle.entry[3].resource.dosage.route", kept as segments and only
// turned into text when an issue is reported (most resources have none). Segment names must
// outlive the Path: string literals, or strings of the parsed input.
class Path {
 public:
  explicit Path(absl::string_view root) { segments_.push_back({root, -1}); }

  // Returns the path of `name` (or `name[index]`) below this one.
  Path Field(absl::string_view name, int index = -1) const {
    Path child = *this;
    child.segments_.push_back({name, index});
    return child;
  }

  std::string ToString() const;

 private:
  struct Segment {
    absl::string_view name;
    int index;
  };
  absl::InlinedVector<Segment, 8> segments_;
};

// ---- reading JSON ----

// Returns the member `key` of `object`, or nullptr when `object` is null, not an object, or has no
// such member.
// (`key` is a string_view so that the length of a literal is known where it is written.)
const JsonValue* Member(const JsonValue* object, absl::string_view key);
// Returns the string `value`, or "" when it is absent or not a string.
absl::string_view String(const JsonValue* value);
inline absl::string_view StringMember(const JsonValue* object, absl::string_view key) {
  return String(Member(object, key));
}
// Returns the elements of the array `value`; empty when it is absent or not an array.
std::span<const JsonValue> Elements(const JsonValue* value);
// Returns the first element of an array, or `value` itself when it is an object (for elements
// that are 0..1 in one resource and 0..* in another, such as identifier).
const JsonValue* FirstObject(const JsonValue* value);
// Reads a JSON number into `out`; false when `value` is absent or not a number.
bool Number(const JsonValue* value, double* out);

// ---- the input and its index ----

// One resource of the input: a Bundle entry's resource, or the single resource given.
struct Entry {
  const JsonValue* resource = nullptr;
  absl::string_view type;  // resourceType
  absl::string_view id;
  absl::string_view full_url;
  Path path{""};  // "Bundle.entry[3].resource", or the resource type for a single resource
  int index = 0;  // position among the entries
  // Grouping: the entry whose record absorbs this one (-1: none), and whether a mapped resource
  // names this Patient as its subject.
  int owner = -1;
  bool subject_of_others = false;
};

// A resolved reference: the target resource, contained in the referring resource or in the input.
struct Target {
  const JsonValue* resource = nullptr;  // nullptr when the reference names nothing in the input
  const Entry* entry = nullptr;         // the target's entry; nullptr for a contained resource
  absl::string_view type;               // the target's resourceType

  bool found() const { return resource != nullptr; }
};

class Input {
 public:
  std::vector<Entry> entries;
  bool is_bundle = false;

  // Indexes the entries by fullUrl and by "Type/id"; call once after `entries` is filled.
  void BuildIndex();

  // The entries each entry absorbs (filled by the grouping in MapFromFhir), by owner index.
  std::vector<std::vector<int>> absorbed;

  // Resolves the literal `reference` made by the resource of `from`: "#id" in its `contained`,
  // else a fullUrl or "Type/id" (also the tail of an absolute URL, without "/_history/n") of the
  // input.
  Target Resolve(const Entry& from, absl::string_view reference) const;
  // Resolves the Reference object `reference` (its `reference` member).
  Target ResolveReference(const Entry& from, const JsonValue* reference) const {
    return Resolve(from, StringMember(reference, "reference"));
  }

 private:
  absl::flat_hash_map<absl::string_view, int> by_full_url_;
  absl::flat_hash_map<std::pair<absl::string_view, absl::string_view>, int> by_type_id_;
};

// ---- one MapFromFhir call ----

// The identifier system kinds of IdentifierSystems.
enum class SystemKind {
  kPatient,
  kEncounter,
  kMedicationAdministration,
  kMedicationStatement,
  kQuestionnaireResponse,
  kObservation,
  kAdverseEvent,
  kFlag,
  kNone,  // a resource type fhirgw never writes (MedicationRequest)
};

class Mapping {
 public:
  Mapping(const ReverseContext& context, fhir::IssueList& issues, const Input& input)
      : context_(context), issues_(issues), input_(input) {}

  const ReverseContext& context() const { return context_; }
  const Input& input() const { return input_; }

  void Error(const Path& path, absl::string_view message) const;
  void Warning(const Path& path, absl::string_view message) const;

  // True when `system` is the tenant's identifier system of `kind` (or, when that system is not
  // configured and the context says match_any_tenant, fhirgw's default form
  // "urn:fhirgw:<any tenant>:<type>").
  bool IsFhirgwSystem(absl::string_view system, SystemKind kind) const;

 private:
  const ReverseContext& context_;
  fhir::IssueList& issues_;
  const Input& input_;
};

// ---- shared readers ----

// Fills what every record has: clinic_id, record_id (fhirgw's identifier of `kind`, else the first
// identifier "system|value", else "Type/id", else the fullUrl), the source fields, recorded_at from
// meta.lastUpdated, and the patient from `subject` (a Patient contained or in the input, a logical
// identifier reference, or a literal reference).
void FillRecordHeader(const Mapping& m, const Entry& entry, SystemKind kind, ReverseRecord& out);
// Fills `out.record.patient` and `out.patient_identifiers` from the Patient resource `patient`.
void FillPatient(const Mapping& m, const JsonValue* patient, ReverseRecord& out);

// Returns "system|value" (or the value alone when there is no system).
std::string SystemValue(absl::string_view system, absl::string_view value);

// Picks one coding of the CodeableConcept `concept_json`: the first with `preferred_system` and a
// code, else the first with a code. The Code's display is the coding's display, else the
// concept's text; a concept with text only gives a Code with display only. Empty when neither.
v1::Code CodeFromConcept(const JsonValue* concept_json, absl::string_view preferred_system);
bool IsEmptyCode(const v1::Code& code);
// Returns the code of `system` in the CodeableConcept (or Coding list), or "".
absl::string_view CodeInSystem(const JsonValue* concept_json, absl::string_view system);
// Appends the CodeableConcepts of the array `concepts` as Codes (preferring `preferred_system`).
void AppendCodes(const JsonValue* concepts, absl::string_view preferred_system,
                 google::protobuf::RepeatedPtrField<v1::Code>* out);

// Maps a route CodeableConcept (SNOMED CT codes, else words in its text or display). Warns at
// `path` about a route the records cannot hold.
v1::Route::Value RouteFromConcept(const Mapping& m, const JsonValue* concept_json,
                                  const Path& path);

// Reads the FHIR dateTime or instant `text` into `out` (UTC). A partial date becomes midnight UTC
// with a warning. On a malformed value: an error when `required`, else a warning; false either
// way.
bool ReadTimestamp(const Mapping& m, absl::string_view text, const Path& path, bool required,
                   google::protobuf::Timestamp* out);

// Reads the optional FHIR dateTime `text` like ReadTimestamp (warning when malformed) and sets the
// field that `mutable_field()` returns only when it parses, so that a bad value leaves it unset.
template <typename MutableField>
void ReadOptionalTimestamp(const Mapping& m, absl::string_view text, const Path& path,
                           MutableField mutable_field) {
  google::protobuf::Timestamp time;
  if (!text.empty() && ReadTimestamp(m, text, path, false, &time)) *mutable_field() = time;
}

// Joins the texts of the Annotations in `notes` with newlines.
std::string NotesText(const JsonValue* notes);

// Returns the encounter id the Reference `reference` names: from the Encounter it resolves to (its
// fhirgw identifier, else its first identifier "system|value", else "Encounter/<id>"), from a
// logical identifier reference, or the literal reference itself. "" when there is none.
std::string EncounterIdFromReference(const Mapping& m, const Entry& from,
                                     const JsonValue* reference);
// Returns the encounter id of the Encounter resource `encounter` (see EncounterIdFromReference).
std::string EncounterIdOf(const Mapping& m, const JsonValue* encounter);

// Returns the medication Code of a resource with medication[x]: a CodeableConcept (RxNorm
// preferred), or a Medication contained or in the input. Reports an error and returns an empty
// Code when there is none.
v1::Code MedicationCode(const Mapping& m, const Entry& entry);

// A Practitioner from a Reference: the NPI from its identifier (or from the Practitioner it
// resolves to) and the display (or the Practitioner's name) as name.
v1::Practitioner PractitionerFromReference(const Mapping& m, const Entry& from,
                                           const JsonValue* reference);

// ---- the instruments ----

// Returns the instrument whose total (`*is_total` true) or panel the Observation `observation`
// codes (LOINC), or nullptr.
const fhir::Instrument* SurveyInstrumentOf(const JsonValue* observation, bool* is_total);

v1::QuestionnaireRecord::Instrument InstrumentEnum(const fhir::Instrument& instrument);
// What a question's linkId or LOINC code names within `instrument`.
struct ItemRef {
  enum class Kind { kNone, kItem, kDifficulty, kTotal } kind = Kind::kNone;
  int item = 0;  // 1-based, for kItem
};
// Reads a LOINC code ("44250-9", also "/44250-9" and ".../44250-9"), an item number ("1"), or an
// item number with a prefix ("phq9-1", "item-1", "q1").
ItemRef ItemForLinkId(const fhir::Instrument& instrument, absl::string_view link_id);
// Reads an answer value 0..3 from a value[x] holder (QuestionnaireResponse answer, Observation or
// component): valueCoding or valueCodeableConcept with an LA code (of `options`), a digit code or
// an ordinalValue extension; valueInteger; valueQuantity; valueDecimal. -1 when none.
int AnswerValue(const JsonValue* holder, std::span<const fhir::AnswerOption> options);

// True when the LOINC `code` is a vital sign an InfusionRecord holds (blood pressure, heart rate,
// SpO2, respiratory rate, body weight).
bool IsVitalSignCode(absl::string_view code);
// True when the LOINC `code` is an item of PHQ-9, GAD-7 or PHQ-2 (or PHQ-9's difficulty question).
bool IsInstrumentItemCode(absl::string_view code);

// ---- the per-kind mappers ----
// Each maps the resource of `entry` (and the entries it absorbs) into `out`, or reports errors and
// returns false.

bool MapMedicationAdministration(const Mapping& m, const Entry& entry, ReverseRecord& out);
bool MapMedicationStatement(const Mapping& m, const Entry& entry, ReverseRecord& out);
bool MapMedicationRequest(const Mapping& m, const Entry& entry, ReverseRecord& out);
bool MapQuestionnaireResponse(const Mapping& m, const Entry& entry, ReverseRecord& out);
// A PHQ-9, GAD-7 or PHQ-2 total or panel Observation that no QuestionnaireResponse absorbed.
bool MapSurveyObservation(const Mapping& m, const Entry& entry, ReverseRecord& out);
bool MapEncounter(const Mapping& m, const Entry& entry, ReverseRecord& out);
bool MapPatient(const Mapping& m, const Entry& entry, ReverseRecord& out);

}  // namespace fhirgw::mappers::reverse_internal

#endif  // FHIRGW_MAPPERS_REVERSE_INTERNAL_H_
