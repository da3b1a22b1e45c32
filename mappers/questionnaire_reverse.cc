// QuestionnaireResponse -> QuestionnaireRecord (the inverse of questionnaire_mapper.cc, and the
// ways hospitals write PHQ-9, GAD-7 and PHQ-2: linkIds as LOINC codes, "/44250-9", item numbers or
// "phq9-1"; answers as LA codes, digits, ordinal values or integers), and a total or panel
// Observation that stands alone -> QuestionnaireRecord with reported_total and the answers of its
// members or components.
#include <array>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "fhir/codes.h"
#include "mappers/reverse_internal.h"

namespace fhirgw::mappers::reverse_internal {
namespace {

// questionnaire_mapper.cc writes a questionnaire's timing in this extension (R4 has no element).
constexpr char kTimingExtension[] = "urn:fhirgw:extension:questionnaire-timing";

constexpr fhir::InstrumentId kInstruments[] = {fhir::InstrumentId::kPhq9, fhir::InstrumentId::kGad7,
                                               fhir::InstrumentId::kPhq2};

// The item, difficulty question or total that the LOINC `code` is within `instrument`.
ItemRef ItemForLoinc(const fhir::Instrument& instrument, absl::string_view code) {
  for (const fhir::InstrumentItem& item : instrument.items) {
    if (code == item.loinc) return {ItemRef::Kind::kItem, item.number};
  }
  if (instrument.has_difficulty && code == fhir::kLoincDifficulty) {
    return {ItemRef::Kind::kDifficulty, 0};
  }
  if (code == instrument.total_loinc) return {ItemRef::Kind::kTotal, 0};
  return {};
}

// True for the prefixes an item number may carry: "item", "q", "question", an instrument name
// ("phq9", "gad-7", ...), or a name followed by one of the others ("phq9-item").
bool IsItemPrefix(absl::string_view prefix) {
  const std::string lower = absl::AsciiStrToLower(prefix);
  absl::string_view rest = lower;
  for (absl::string_view name :
       {"phq-9", "phq_9", "phq9", "gad-7", "gad_7", "gad7", "phq-2", "phq_2", "phq2"}) {
    if (absl::ConsumePrefix(&rest, name)) {
      if (!rest.empty() && (rest.front() == '-' || rest.front() == '_' || rest.front() == '.')) {
        rest.remove_prefix(1);
      }
      break;
    }
  }
  return rest.empty() || rest == "item" || rest == "q" || rest == "question";
}

// Reads an ordinal value (0..3 or a total) from a number; -1 unless it is a whole number >= 0.
int WholeNumber(double number) {
  if (number < 0 || number > 1000 || number != static_cast<double>(static_cast<int>(number))) {
    return -1;
  }
  return static_cast<int>(number);
}

int CodingValue(const JsonValue* coding, std::span<const fhir::AnswerOption> options) {
  const absl::string_view code = StringMember(coding, "code");
  if (!code.empty()) {
    const int value = fhir::AnswerValueForCode(options, code);
    if (value >= 0) return value;
    if (code.size() == 1 && absl::ascii_isdigit(static_cast<unsigned char>(code[0]))) {
      return code[0] - '0';
    }
  }
  // The ordinal value of the answer (R4's ordinalValue extension, R5's itemWeight).
  for (const JsonValue& extension : Elements(Member(coding, "extension"))) {
    const absl::string_view url = StringMember(&extension, "url");
    if (!absl::EndsWith(url, "/ordinalValue") && !absl::EndsWith(url, "/itemWeight")) continue;
    double number = 0;
    if (Number(Member(&extension, "valueDecimal"), &number) ||
        Number(Member(&extension, "valueInteger"), &number)) {
      return WholeNumber(number);
    }
  }
  return -1;
}

// Collects the answers of one questionnaire, from wherever they come, and reports duplicates and
// values out of range.
class AnswerSheet {
 public:
  explicit AnswerSheet(const fhir::Instrument& instrument) : instrument_(instrument) {
    values_.fill(-1);
  }

  // Records `value` for `ref`, read at `path` (for issues).
  void Set(const Mapping& m, const Path& path, ItemRef ref, int value) {
    const int max = ref.kind == ItemRef::Kind::kTotal ? instrument_.max_total() : 3;
    if (value < 0 || value > max) {
      m.Warning(path, value < 0
                          ? absl::StrCat("has no answer value ", instrument_.name,
                                         " can use (an LA code, a digit 0..", max,
                                         ", an ordinal value or an integer); ignored")
                          : absl::StrCat("value ", value, " is outside 0..", max, "; ignored"));
      return;
    }
    int* slot = ref.kind == ItemRef::Kind::kItem         ? &values_[ref.item]
                : ref.kind == ItemRef::Kind::kDifficulty ? &difficulty_
                                                         : &total_;
    if (*slot >= 0) {
      if (*slot != value) {
        m.Warning(path, absl::StrCat("a second answer (", value,
                                     ") for the same question; the "
                                     "first (",
                                     *slot, ") is kept"));
      }
      return;
    }
    *slot = value;
  }

  bool has_total() const { return total_ >= 0; }

  // Writes the answers in item order, the difficulty and the total into `out`; warns at `path`
  // when some items have no answer.
  void Fill(const Mapping& m, const Path& path, bool expect_answers,
            v1::QuestionnaireRecord& out) const {
    std::string missing;
    int answered = 0;
    for (const fhir::InstrumentItem& item : instrument_.items) {
      if (values_[item.number] < 0) {
        absl::StrAppend(&missing, missing.empty() ? "" : ", ", item.number);
        continue;
      }
      v1::Answer& answer = *out.add_answers();
      answer.set_item(item.number);
      answer.set_value(values_[item.number]);
      ++answered;
    }
    if (difficulty_ >= 0) out.set_difficulty(difficulty_);
    if (total_ >= 0) out.set_reported_total(total_);
    if (!missing.empty() && (answered > 0 || expect_answers)) {
      m.Warning(path, absl::StrCat("no answer for ", instrument_.name, " item(s) ", missing));
    }
  }

 private:
  const fhir::Instrument& instrument_;
  std::array<int, 10> values_;
  int difficulty_ = -1;
  int total_ = -1;
};

std::span<const fhir::AnswerOption> OptionsFor(ItemRef ref) {
  if (ref.kind == ItemRef::Kind::kDifficulty) return fhir::DifficultyAnswers();
  if (ref.kind == ItemRef::Kind::kItem) return fhir::FrequencyAnswers();
  return {};
}

constexpr int kMaxItemDepth = 16;

// Reads the answers of the QuestionnaireResponse items `items` (and their nested items).
void ReadItems(const Mapping& m, const fhir::Instrument& instrument, const JsonValue* items,
               const Path& path, int depth, AnswerSheet& sheet) {
  if (depth > kMaxItemDepth) return;
  const std::span<const JsonValue> list = Elements(items);
  for (size_t i = 0; i < list.size(); ++i) {
    const JsonValue& item = list[i];
    const Path item_path = path.Field("item", static_cast<int>(i));
    const absl::string_view link_id = StringMember(&item, "linkId");
    const std::span<const JsonValue> answers = Elements(Member(&item, "answer"));
    const ItemRef ref = ItemForLinkId(instrument, link_id);
    if (!answers.empty()) {
      if (ref.kind == ItemRef::Kind::kNone) {
        m.Warning(item_path.Field("linkId"),
                  absl::StrCat("'", link_id, "' is not a question of ", instrument.name,
                               "; its answer is ignored"));
      } else {
        sheet.Set(m, item_path.Field("answer", 0), ref, AnswerValue(&answers[0], OptionsFor(ref)));
      }
    }
    ReadItems(m, instrument, Member(&item, "item"), item_path, depth + 1, sheet);
  }
}

// Finds the instrument a QuestionnaireResponse's canonical names ("http://loinc.org/q/44249-1",
// ".../Questionnaire/phq-9", ...).
const fhir::Instrument* InstrumentFromCanonical(absl::string_view canonical) {
  if (canonical.empty()) return nullptr;
  const std::string text = absl::AsciiStrToLower(canonical);
  if (absl::StrContains(text, "44249-1") || absl::StrContains(text, "phq-9") ||
      absl::StrContains(text, "phq9") || absl::StrContains(text, "phq_9")) {
    return &fhir::GetInstrument(fhir::InstrumentId::kPhq9);
  }
  if (absl::StrContains(text, "69737-5") || absl::StrContains(text, "gad-7") ||
      absl::StrContains(text, "gad7") || absl::StrContains(text, "gad_7")) {
    return &fhir::GetInstrument(fhir::InstrumentId::kGad7);
  }
  if (absl::StrContains(text, "55757-9") || absl::StrContains(text, "phq-2") ||
      absl::StrContains(text, "phq2") || absl::StrContains(text, "phq_2")) {
    return &fhir::GetInstrument(fhir::InstrumentId::kPhq2);
  }
  return nullptr;
}

// What the LOINC linkIds of `items` say: GAD-7 items, PHQ-9 items beyond the second, or only the
// first two (PHQ-2).
struct LinkIdEvidence {
  bool gad7 = false;
  bool phq9 = false;
  bool phq2 = false;
};

void CollectEvidence(const JsonValue* items, int depth, LinkIdEvidence& evidence) {
  if (depth > kMaxItemDepth) return;
  const fhir::Instrument& phq9 = fhir::GetInstrument(fhir::InstrumentId::kPhq9);
  const fhir::Instrument& gad7 = fhir::GetInstrument(fhir::InstrumentId::kGad7);
  const fhir::Instrument& phq2 = fhir::GetInstrument(fhir::InstrumentId::kPhq2);
  for (const JsonValue& item : Elements(items)) {
    absl::string_view link_id = StringMember(&item, "linkId");
    if (const size_t slash = link_id.rfind('/'); slash != absl::string_view::npos) {
      link_id = link_id.substr(slash + 1);
    }
    if (ItemForLoinc(gad7, link_id).kind != ItemRef::Kind::kNone) {
      evidence.gad7 = true;
    } else if (const ItemRef ref = ItemForLoinc(phq9, link_id); ref.kind != ItemRef::Kind::kNone) {
      if (ref.kind != ItemRef::Kind::kItem || ref.item > 2) {
        evidence.phq9 = true;
      } else {
        evidence.phq2 = true;
      }
    } else if (ItemForLoinc(phq2, link_id).kind != ItemRef::Kind::kNone) {
      evidence.phq2 = true;
    }
    CollectEvidence(Member(&item, "item"), depth + 1, evidence);
  }
}

const fhir::Instrument* InstrumentFromItems(const JsonValue* items) {
  LinkIdEvidence evidence;
  CollectEvidence(items, 0, evidence);
  if (evidence.gad7) return &fhir::GetInstrument(fhir::InstrumentId::kGad7);
  if (evidence.phq9) return &fhir::GetInstrument(fhir::InstrumentId::kPhq9);
  if (evidence.phq2) return &fhir::GetInstrument(fhir::InstrumentId::kPhq2);
  return nullptr;
}

v1::QuestionnaireRecord::Timing TimingOf(const JsonValue* extensions) {
  for (const JsonValue& extension : Elements(extensions)) {
    if (StringMember(&extension, "url") != kTimingExtension) continue;
    const absl::string_view code = StringMember(Member(&extension, "valueCoding"), "code");
    if (code == "intake") return v1::QuestionnaireRecord::INTAKE;
    if (code == "pre-infusion") return v1::QuestionnaireRecord::PRE_INFUSION;
    if (code == "post-infusion") return v1::QuestionnaireRecord::POST_INFUSION;
    if (code == "follow-up") return v1::QuestionnaireRecord::FOLLOW_UP;
  }
  return v1::QuestionnaireRecord::TIMING_UNSPECIFIED;
}

// Reads the LOINC code of a CodeableConcept (or a code without a system).
absl::string_view LoincCode(const JsonValue* concept_json) {
  for (const JsonValue& coding : Elements(Member(concept_json, "coding"))) {
    const absl::string_view system = StringMember(&coding, "system");
    if (system == fhir::kLoinc || system.empty()) {
      const absl::string_view code = StringMember(&coding, "code");
      if (!code.empty()) return code;
    }
  }
  return {};
}

// When an Observation was made: effective[x], else issued.
bool ReadObservationTime(const Mapping& m, const Entry& entry, google::protobuf::Timestamp* out) {
  const JsonValue* resource = entry.resource;
  for (const char* field : {"effectiveDateTime", "effectiveInstant"}) {
    const absl::string_view text = StringMember(resource, field);
    if (!text.empty()) return ReadTimestamp(m, text, entry.path.Field(field), true, out);
  }
  const absl::string_view start = StringMember(Member(resource, "effectivePeriod"), "start");
  if (!start.empty()) {
    return ReadTimestamp(m, start, entry.path.Field("effectivePeriod").Field("start"), true, out);
  }
  const absl::string_view issued = StringMember(resource, "issued");
  if (!issued.empty()) return ReadTimestamp(m, issued, entry.path.Field("issued"), true, out);
  m.Error(entry.path.Field("effectiveDateTime"),
          "is required (or effectivePeriod, effectiveInstant, issued): the record needs when the "
          "questionnaire was completed");
  return false;
}

}  // namespace

const fhir::Instrument* SurveyInstrumentOf(const JsonValue* observation, bool* is_total) {
  const JsonValue* code = Member(observation, "code");
  for (const JsonValue& coding : Elements(Member(code, "coding"))) {
    const absl::string_view system = StringMember(&coding, "system");
    if (system != fhir::kLoinc && !system.empty()) continue;
    const absl::string_view value = StringMember(&coding, "code");
    for (fhir::InstrumentId id : kInstruments) {
      const fhir::Instrument& instrument = fhir::GetInstrument(id);
      if (value == instrument.total_loinc || value == instrument.panel_loinc) {
        *is_total = value == instrument.total_loinc;
        return &instrument;
      }
    }
  }
  return nullptr;
}

v1::QuestionnaireRecord::Instrument InstrumentEnum(const fhir::Instrument& instrument) {
  switch (instrument.id) {
    case fhir::InstrumentId::kPhq9:
      return v1::QuestionnaireRecord::PHQ9;
    case fhir::InstrumentId::kGad7:
      return v1::QuestionnaireRecord::GAD7;
    case fhir::InstrumentId::kPhq2:
      return v1::QuestionnaireRecord::PHQ2;
  }
  return v1::QuestionnaireRecord::INSTRUMENT_UNSPECIFIED;
}

bool IsInstrumentItemCode(absl::string_view code) {
  if (code.empty()) return false;
  for (fhir::InstrumentId id : {fhir::InstrumentId::kPhq9, fhir::InstrumentId::kGad7}) {
    const ItemRef ref = ItemForLoinc(fhir::GetInstrument(id), code);
    if (ref.kind == ItemRef::Kind::kItem || ref.kind == ItemRef::Kind::kDifficulty) return true;
  }
  return false;
}

ItemRef ItemForLinkId(const fhir::Instrument& instrument, absl::string_view link_id) {
  link_id = absl::StripAsciiWhitespace(link_id);
  if (const size_t slash = link_id.rfind('/'); slash != absl::string_view::npos) {
    link_id = link_id.substr(slash + 1);
  }
  if (const ItemRef ref = ItemForLoinc(instrument, link_id); ref.kind != ItemRef::Kind::kNone) {
    return ref;
  }
  // An item number, possibly after a prefix: "1", "q1", "item-1", "phq9-1", "phq9_item1".
  size_t digits = link_id.size();
  while (digits > 0 && absl::ascii_isdigit(static_cast<unsigned char>(link_id[digits - 1]))) {
    --digits;
  }
  if (digits == link_id.size() || link_id.size() - digits > 2) return {};
  absl::string_view prefix = link_id.substr(0, digits);
  if (!prefix.empty() && (prefix.back() == '-' || prefix.back() == '_' || prefix.back() == '.')) {
    prefix.remove_suffix(1);
  }
  if (!IsItemPrefix(prefix)) return {};
  int number = 0;
  if (!absl::SimpleAtoi(link_id.substr(digits), &number)) return {};
  if (number >= 1 && number <= static_cast<int>(instrument.items.size())) {
    return {ItemRef::Kind::kItem, number};
  }
  if (number == 10 && instrument.has_difficulty) return {ItemRef::Kind::kDifficulty, 0};
  return {};
}

int AnswerValue(const JsonValue* holder, std::span<const fhir::AnswerOption> options) {
  if (const JsonValue* coding = Member(holder, "valueCoding")) return CodingValue(coding, options);
  if (const JsonValue* concept_json = Member(holder, "valueCodeableConcept")) {
    for (const JsonValue& coding : Elements(Member(concept_json, "coding"))) {
      const int value = CodingValue(&coding, options);
      if (value >= 0) return value;
    }
    return -1;
  }
  double number = 0;
  if (Number(Member(holder, "valueInteger"), &number) ||
      Number(Member(holder, "valueDecimal"), &number) ||
      Number(Member(Member(holder, "valueQuantity"), "value"), &number)) {
    return WholeNumber(number);
  }
  // Some EHRs send the score as text ("12"); only a plain number counts, never words.
  const absl::string_view text = absl::StripAsciiWhitespace(StringMember(holder, "valueString"));
  if (!text.empty() && absl::SimpleAtod(text, &number) && std::isfinite(number)) {
    return WholeNumber(number);
  }
  return -1;
}

namespace {

// Only results that are final count as scores: a preliminary or cancelled Observation, or an
// unfinished QuestionnaireResponse, must not reach the clinic as the patient's score.
bool IsFinalObservationStatus(absl::string_view status) {
  return status == "final" || status == "amended" || status == "corrected";
}

// Reports an error at `entry`.status unless the score may be used (or it is entered-in-error,
// which retracts); false when the resource must not be mapped.
bool CheckScoreStatus(const Mapping& m, const Entry& entry, bool observation) {
  const absl::string_view status = StringMember(entry.resource, "status");
  if (status == "entered-in-error") return true;
  // An amended QuestionnaireResponse is a completed one that was changed afterwards.
  const bool usable = observation ? IsFinalObservationStatus(status)
                                  : (status == "completed" || status == "amended");
  if (usable) return true;
  m.Error(
      entry.path.Field("status"),
      absl::StrCat(status.empty() ? std::string("is absent") : absl::StrCat("is '", status, "'"),
                   observation ? ": only a final, amended or corrected Observation counts "
                                 "as a score"
                               : ": only a completed (or amended) QuestionnaireResponse "
                                 "counts as a score"));
  return false;
}

}  // namespace

bool MapQuestionnaireResponse(const Mapping& m, const Entry& entry, ReverseRecord& out) {
  const JsonValue* resource = entry.resource;
  const absl::string_view canonical = StringMember(resource, "questionnaire");
  const fhir::Instrument* instrument = InstrumentFromCanonical(canonical);
  if (instrument == nullptr) instrument = InstrumentFromItems(Member(resource, "item"));
  if (instrument == nullptr) {
    m.Error(entry.path.Field("questionnaire"),
            absl::StrCat(canonical.empty() ? std::string("is absent")
                                           : absl::StrCat("'", canonical, "' is not PHQ-9"),
                         canonical.empty() ? "" : " (44249-1), GAD-7 (69737-5) or PHQ-2 (55757-9)",
                         ", and no item linkId is a LOINC code of PHQ-9, GAD-7 or PHQ-2: only "
                         "those questionnaires map to clinic records"));
    return false;
  }
  if (!CheckScoreStatus(m, entry, false)) return false;
  v1::QuestionnaireRecord& q = *out.record.mutable_questionnaire();
  q.set_instrument(InstrumentEnum(*instrument));
  const absl::string_view authored = StringMember(resource, "authored");
  if (authored.empty()) {
    m.Error(entry.path.Field("authored"),
            "is required: the record needs when the questionnaire was completed");
    return false;
  }
  if (!ReadTimestamp(m, authored, entry.path.Field("authored"), true, q.mutable_authored())) {
    return false;
  }
  FillRecordHeader(m, entry, SystemKind::kQuestionnaireResponse, out);
  if (StringMember(resource, "status") == "entered-in-error") {
    out.record.set_action(v1::ClinicRecord::ENTERED_IN_ERROR);
  }
  q.set_timing(TimingOf(Member(resource, "extension")));
  q.set_encounter_id(EncounterIdFromReference(m, entry, Member(resource, "encounter")));

  AnswerSheet sheet(*instrument);
  ReadItems(m, *instrument, Member(resource, "item"), entry.path, 0, sheet);
  // The total score Observation derived from this response.
  for (int index : m.input().absorbed[entry.index]) {
    const Entry& absorbed = m.input().entries[index];
    bool is_total = false;
    if (absorbed.type != "Observation" ||
        SurveyInstrumentOf(absorbed.resource, &is_total) != instrument || !is_total ||
        sheet.has_total() ||
        !(IsFinalObservationStatus(StringMember(absorbed.resource, "status")) ||
          StringMember(absorbed.resource, "status") == "entered-in-error")) {
      continue;
    }
    sheet.Set(m, absorbed.path.Field("valueQuantity"), ItemRef{ItemRef::Kind::kTotal, 0},
              AnswerValue(absorbed.resource, {}));
  }
  sheet.Fill(m, entry.path.Field("item"), true, q);
  return true;
}

bool MapSurveyObservation(const Mapping& m, const Entry& entry, ReverseRecord& out) {
  const JsonValue* resource = entry.resource;
  bool is_total = false;
  const fhir::Instrument* instrument = SurveyInstrumentOf(resource, &is_total);
  if (instrument == nullptr) return false;
  if (!CheckScoreStatus(m, entry, true)) return false;
  v1::QuestionnaireRecord& q = *out.record.mutable_questionnaire();
  q.set_instrument(InstrumentEnum(*instrument));
  if (!ReadObservationTime(m, entry, q.mutable_authored())) return false;
  FillRecordHeader(m, entry, SystemKind::kObservation, out);
  if (StringMember(resource, "status") == "entered-in-error") {
    out.record.set_action(v1::ClinicRecord::ENTERED_IN_ERROR);
  }
  q.set_encounter_id(EncounterIdFromReference(m, entry, Member(resource, "encounter")));

  AnswerSheet sheet(*instrument);
  const int own_value = AnswerValue(resource, {});
  if (own_value >= 0) {
    sheet.Set(m, entry.path.Field("valueQuantity"), ItemRef{ItemRef::Kind::kTotal, 0}, own_value);
  }
  // Answers from the members (hasMember, resolved in the input) and from components.
  const std::span<const JsonValue> members = Elements(Member(resource, "hasMember"));
  int unresolved = 0;
  for (size_t i = 0; i < members.size(); ++i) {
    const Target target = m.input().ResolveReference(entry, &members[i]);
    if (!target.found() || target.type != "Observation") {
      ++unresolved;
      continue;
    }
    const Path path = target.entry != nullptr ? target.entry->path
                                              : entry.path.Field("hasMember", static_cast<int>(i));
    const ItemRef ref = ItemForLoinc(*instrument, LoincCode(Member(target.resource, "code")));
    if (ref.kind == ItemRef::Kind::kNone) continue;
    sheet.Set(m, path, ref, AnswerValue(target.resource, OptionsFor(ref)));
  }
  if (unresolved > 0) {
    m.Warning(entry.path.Field("hasMember"),
              absl::StrCat(unresolved, " of ", members.size(),
                           " members are not in the input; their answers are missing"));
  }
  const std::span<const JsonValue> components = Elements(Member(resource, "component"));
  for (size_t i = 0; i < components.size(); ++i) {
    const ItemRef ref = ItemForLoinc(*instrument, LoincCode(Member(&components[i], "code")));
    if (ref.kind == ItemRef::Kind::kNone) continue;
    sheet.Set(m, entry.path.Field("component", static_cast<int>(i)), ref,
              AnswerValue(&components[i], OptionsFor(ref)));
  }
  sheet.Fill(m, entry.path.Field(members.empty() ? "component" : "hasMember"), false, q);
  if (q.answers_size() == 0 && !q.has_reported_total()) {
    m.Error(entry.path.Field(is_total ? "valueQuantity" : "hasMember"),
            absl::StrCat("the ", instrument->name, is_total ? " total" : " panel",
                         " holds neither a score (valueQuantity or valueInteger) nor answers "
                         "(hasMember in the input, or component)"));
    return false;
  }
  return true;
}

}  // namespace fhirgw::mappers::reverse_internal
