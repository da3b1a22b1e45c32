// MedicationAdministration -> InfusionRecord: the inverse of infusion_mapper.cc. The record takes
// in the Observations whose partOf names the administration (vital signs, regrouped per Vitals;
// body weight), the AdverseEvents whose suspectEntity names it and the Encounter of its `context`.
// What R4 has no element for (the weight-based dose, the concentration, the session) is read back
// from fhirgw's dosage text, e.g. "0.5 mg/kg IV (36.2 mg for 72.4 kg) over 40 min at 54.3 mL/h,
// 1 mg/mL; session 3 of 6"; the same phrases in a hospital's text are understood too.
#include <algorithm>
#include <cmath>
#include <optional>
#include <vector>

#include "absl/numeric/int128.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "fhir/codes.h"
#include "fhir/primitives.h"
#include "mappers/reverse_internal.h"
#include "mappers/validate.h"

namespace fhirgw::mappers::reverse_internal {
namespace {

// ---- the dosage text ----

bool IsNumberChar(char c) { return absl::ascii_isdigit(static_cast<unsigned char>(c)) || c == '.'; }

// Reads the decimal that ends at `end` (exclusive) of `text`, skipping one space before `end`.
std::optional<double> NumberBefore(absl::string_view text, size_t end) {
  if (end > 0 && text[end - 1] == ' ') --end;
  size_t start = end;
  while (start > 0 && IsNumberChar(text[start - 1])) --start;
  if (start == end) return std::nullopt;
  if (start > 0 && absl::ascii_isalpha(static_cast<unsigned char>(text[start - 1]))) {
    return std::nullopt;
  }
  double value = 0;
  if (!absl::SimpleAtod(text.substr(start, end - start), &value)) return std::nullopt;
  return value;
}

// Reads the decimal that starts at `start` of `text`.
std::optional<double> NumberAt(absl::string_view text, size_t start, size_t* end = nullptr) {
  size_t stop = start;
  while (stop < text.size() && IsNumberChar(text[stop])) ++stop;
  double value = 0;
  if (stop == start || !absl::SimpleAtod(text.substr(start, stop - start), &value)) {
    return std::nullopt;
  }
  if (end != nullptr) *end = stop;
  return value;
}

// The number right before `unit` (a whole word: not followed by a letter or '/'), e.g. "0.5" of
// "0.5 mg/kg IV" for unit "mg/kg" (but not of "0.5 mg/kg/h", a rate).
std::optional<double> NumberWithUnit(absl::string_view text, absl::string_view unit) {
  for (size_t at = text.find(unit); at != absl::string_view::npos; at = text.find(unit, at + 1)) {
    const size_t end = at + unit.size();
    if (end < text.size() &&
        (text[end] == '/' || absl::ascii_isalpha(static_cast<unsigned char>(text[end])))) {
      continue;
    }
    if (std::optional<double> value = NumberBefore(text, at)) return value;
  }
  return std::nullopt;
}

struct DosageText {
  std::optional<double> dose_mg_per_kg;
  std::optional<double> weight_kg;
  std::optional<double> concentration_mg_per_ml;
  std::optional<int> session_number;
  std::optional<int> series_length;
};

DosageText ParseDosageText(absl::string_view text) {
  DosageText out;
  out.dose_mg_per_kg = NumberWithUnit(text, "mg/kg");
  out.concentration_mg_per_ml = NumberWithUnit(text, "mg/mL");
  if (const size_t at = text.find(" mg for "); at != absl::string_view::npos) {
    size_t end = 0;
    std::optional<double> weight = NumberAt(text, at + sizeof(" mg for ") - 1, &end);
    if (weight && absl::StartsWith(text.substr(end), " kg")) out.weight_kg = weight;
  }
  if (const size_t at = text.find("session "); at != absl::string_view::npos) {
    size_t end = 0;
    const size_t start = at + sizeof("session ") - 1;
    std::optional<double> session = NumberAt(text, start, &end);
    if (session && *session >= 1 && *session <= 1000 && *session == std::floor(*session)) {
      out.session_number = static_cast<int>(*session);
      if (absl::StartsWith(text.substr(end), " of ")) {
        std::optional<double> series = NumberAt(text, end + sizeof(" of ") - 1);
        if (series && *series >= 1 && *series <= 1000 && *series == std::floor(*series)) {
          out.series_length = static_cast<int>(*series);
        }
      }
    }
  }
  return out;
}

// ---- quantities ----

// The unit of a Quantity: its UCUM code when it has one, else the unit text.
absl::string_view UnitOf(const JsonValue* quantity) {
  const absl::string_view code = StringMember(quantity, "code");
  return code.empty() ? StringMember(quantity, "unit") : code;
}

// Converts a mass Quantity to mg; false for another unit.
bool MassInMg(const JsonValue* quantity, double* mg) {
  double value = 0;
  if (!Number(Member(quantity, "value"), &value)) return false;
  const std::string unit = absl::AsciiStrToLower(UnitOf(quantity));
  if (unit == "mg") {
    *mg = value;
  } else if (unit == "g") {
    *mg = value * 1000;
  } else if (unit == "ug" || unit == "mcg" || unit == "\xC2\xB5g") {
    *mg = value / 1000;
  } else {
    return false;
  }
  return true;
}

// Converts a volume per time Quantity (or the parts of a Ratio) to mL/h; false otherwise.
bool VolumeRate(double volume, absl::string_view volume_unit, double per, absl::string_view time,
                double* ml_per_hour) {
  const std::string v = absl::AsciiStrToLower(volume_unit);
  const std::string t = absl::AsciiStrToLower(time);
  double ml = 0;
  if (v == "ml") {
    ml = volume;
  } else if (v == "l") {
    ml = volume * 1000;
  } else {
    return false;
  }
  if (per <= 0) return false;
  if (t == "h" || t == "hr" || t == "hour") {
    *ml_per_hour = ml / per;
  } else if (t == "min") {
    *ml_per_hour = ml / per * 60;
  } else {
    return false;
  }
  return true;
}

bool RateMlPerHour(const JsonValue* dosage, double* rate) {
  if (const JsonValue* quantity = Member(dosage, "rateQuantity")) {
    double value = 0;
    if (!Number(Member(quantity, "value"), &value)) return false;
    const absl::string_view unit = UnitOf(quantity);
    const size_t slash = unit.find('/');
    if (slash == absl::string_view::npos) return false;
    return VolumeRate(value, unit.substr(0, slash), 1, unit.substr(slash + 1), rate);
  }
  if (const JsonValue* ratio = Member(dosage, "rateRatio")) {
    const JsonValue* numerator = Member(ratio, "numerator");
    const JsonValue* denominator = Member(ratio, "denominator");
    double volume = 0;
    double per = 1;
    if (!Number(Member(numerator, "value"), &volume)) return false;
    Number(Member(denominator, "value"), &per);
    return VolumeRate(volume, UnitOf(numerator), per, UnitOf(denominator), rate);
  }
  return false;
}

// ---- vital signs ----

enum class Vital {
  kNone,
  kWeight,
  kBloodPressure,
  kSystolic,
  kDiastolic,
  kHeartRate,
  kSpo2,
  kRespiratoryRate
};

Vital VitalOfCode(absl::string_view code) {
  if (code == fhir::kLoincBodyWeight || code == "3141-9") return Vital::kWeight;
  if (code == fhir::kLoincBloodPressurePanel || code == "55284-4" || code == "35094-2") {
    return Vital::kBloodPressure;
  }
  if (code == fhir::kLoincSystolic) return Vital::kSystolic;
  if (code == fhir::kLoincDiastolic) return Vital::kDiastolic;
  if (code == fhir::kLoincHeartRate) return Vital::kHeartRate;
  if (code == fhir::kLoincSpo2 || code == fhir::kLoincSpo2Base) return Vital::kSpo2;
  if (code == fhir::kLoincRespiratoryRate) return Vital::kRespiratoryRate;
  return Vital::kNone;
}

Vital VitalOf(const JsonValue* concept_json) {
  for (const JsonValue& coding : Elements(Member(concept_json, "coding"))) {
    if (StringMember(&coding, "system") != fhir::kLoinc) continue;
    const Vital vital = VitalOfCode(StringMember(&coding, "code"));
    if (vital != Vital::kNone) return vital;
  }
  return Vital::kNone;
}

// One Vitals of the record being rebuilt: keyed by fhirgw's vitals index, or else by the time of
// measurement.
struct VitalsGroup {
  bool by_index = false;
  // Nanoseconds since the epoch: 128 bits, as years up to 9999 overflow int64 (found by fuzzing).
  absl::int128 key = 0;
  v1::Vitals vitals;
};

// The vitals index i of a fhirgw identifier ".../vitals/<i>/<kind>"; -1 when there is none.
int VitalsIndex(const Mapping& m, const JsonValue* observation) {
  for (const JsonValue& identifier : Elements(Member(observation, "identifier"))) {
    if (!m.IsFhirgwSystem(StringMember(&identifier, "system"), SystemKind::kObservation)) continue;
    const absl::string_view value = StringMember(&identifier, "value");
    const size_t at = value.rfind("/vitals/");
    if (at == absl::string_view::npos) continue;
    const absl::string_view rest = value.substr(at + sizeof("/vitals/") - 1);
    int index = 0;
    if (absl::SimpleAtoi(rest.substr(0, rest.find('/')), &index) && index >= 0) return index;
  }
  return -1;
}

// Reads the whole number of a vital sign's valueQuantity (or of a component).
bool VitalInt(const JsonValue* holder, int32_t* out) {
  double value = 0;
  if (!Number(Member(Member(holder, "valueQuantity"), "value"), &value)) return false;
  if (!(std::abs(value) < 1e6)) return false;
  *out = static_cast<int32_t>(std::lround(value));
  return true;
}

class VitalsCollector {
 public:
  VitalsCollector(const Mapping& m, bool retracted) : m_(m), retracted_(retracted) {}

  // Takes in one Observation of the administration.
  void Add(const Entry& entry, v1::InfusionRecord& infusion) {
    const JsonValue* resource = entry.resource;
    const Path code_path = entry.path.Field("code");
    const Vital vital = VitalOf(Member(resource, "code"));
    if (vital == Vital::kNone) {
      m_.Warning(code_path,
                 "is not a vital sign the infusion record holds (blood pressure, heart "
                 "rate, SpO2, respiratory rate, body weight); ignored");
      return;
    }
    const absl::string_view status = StringMember(resource, "status");
    if (!retracted_ && (status == "entered-in-error" || status == "cancelled")) {
      m_.Warning(entry.path.Field("status"),
                 absl::StrCat("is '", status, "' while the administration is not; ignored"));
      return;
    }
    if (vital == Vital::kWeight) {
      AddWeight(entry, infusion);
      return;
    }
    google::protobuf::Timestamp time;
    bool has_time = false;
    for (const char* field : {"effectiveDateTime", "effectiveInstant"}) {
      const absl::string_view text = StringMember(resource, field);
      if (!text.empty()) has_time = ReadTimestamp(m_, text, entry.path.Field(field), false, &time);
    }
    const absl::string_view start = StringMember(Member(resource, "effectivePeriod"), "start");
    if (!has_time && !start.empty()) {
      has_time = ReadTimestamp(m_, start, entry.path.Field("effectivePeriod").Field("start"), false,
                               &time);
    }
    const int index = VitalsIndex(m_, resource);
    VitalsGroup& group =
        index >= 0
            ? GroupFor(true, index)
            : GroupFor(false, has_time ? absl::int128(time.seconds()) * 1'000'000'000 + time.nanos()
                                       : absl::int128(INT64_MIN));
    if (has_time && !group.vitals.has_time()) *group.vitals.mutable_time() = time;
    v1::Vitals& v = group.vitals;
    int32_t number = 0;
    switch (vital) {
      case Vital::kBloodPressure:
        for (const JsonValue& component : Elements(Member(resource, "component"))) {
          const Vital part = VitalOf(Member(&component, "code"));
          if (part == Vital::kSystolic && VitalInt(&component, &number)) {
            SetOnce(v.has_systolic_mmhg(), entry, "systolic blood pressure",
                    [&] { v.set_systolic_mmhg(number); });
          } else if (part == Vital::kDiastolic && VitalInt(&component, &number)) {
            SetOnce(v.has_diastolic_mmhg(), entry, "diastolic blood pressure",
                    [&] { v.set_diastolic_mmhg(number); });
          }
        }
        break;
      case Vital::kSystolic:
        if (VitalInt(resource, &number)) {
          SetOnce(v.has_systolic_mmhg(), entry, "systolic blood pressure",
                  [&] { v.set_systolic_mmhg(number); });
        }
        break;
      case Vital::kDiastolic:
        if (VitalInt(resource, &number)) {
          SetOnce(v.has_diastolic_mmhg(), entry, "diastolic blood pressure",
                  [&] { v.set_diastolic_mmhg(number); });
        }
        break;
      case Vital::kHeartRate:
        if (VitalInt(resource, &number)) {
          SetOnce(v.has_heart_rate_bpm(), entry, "heart rate",
                  [&] { v.set_heart_rate_bpm(number); });
        }
        break;
      case Vital::kRespiratoryRate:
        if (VitalInt(resource, &number)) {
          SetOnce(v.has_respiratory_rate(), entry, "respiratory rate",
                  [&] { v.set_respiratory_rate(number); });
        }
        break;
      case Vital::kSpo2: {
        double value = 0;
        if (Number(Member(Member(resource, "valueQuantity"), "value"), &value)) {
          SetOnce(v.has_spo2_percent(), entry, "SpO2", [&] { v.set_spo2_percent(value); });
        }
        break;
      }
      default:
        break;
    }
  }

  // Appends the groups to `infusion.vitals`: fhirgw's in index order, then the others in time
  // order.
  void Finish(v1::InfusionRecord& infusion) {
    std::stable_sort(groups_.begin(), groups_.end(),
                     [](const VitalsGroup& a, const VitalsGroup& b) {
                       if (a.by_index != b.by_index) return a.by_index;
                       return a.key < b.key;
                     });
    for (VitalsGroup& group : groups_) {
      const v1::Vitals& v = group.vitals;
      if (!v.has_systolic_mmhg() && !v.has_diastolic_mmhg() && !v.has_heart_rate_bpm() &&
          !v.has_spo2_percent() && !v.has_respiratory_rate()) {
        continue;
      }
      *infusion.add_vitals() = std::move(group.vitals);
    }
  }

 private:
  VitalsGroup& GroupFor(bool by_index, absl::int128 key) {
    for (VitalsGroup& group : groups_) {
      if (group.by_index == by_index && group.key == key) return group;
    }
    VitalsGroup& group = groups_.emplace_back();
    group.by_index = by_index;
    group.key = key;
    return group;
  }

  template <typename Setter>
  void SetOnce(bool already, const Entry& entry, absl::string_view what, Setter set) {
    if (already) {
      m_.Warning(entry.path,
                 absl::StrCat("a second ", what, " for the same measurement; the first is kept"));
      return;
    }
    set();
  }

  void AddWeight(const Entry& entry, v1::InfusionRecord& infusion) {
    const JsonValue* quantity = Member(entry.resource, "valueQuantity");
    double value = 0;
    if (!Number(Member(quantity, "value"), &value)) return;
    const std::string unit = absl::AsciiStrToLower(UnitOf(quantity));
    if (unit == "g") {
      value /= 1000;
    } else if (unit == "[lb_av]" || unit == "lb" || unit == "lbs") {
      // To the gram: a scale's pounds carry no more precision than that.
      value = std::round(value * 0.45359237 * 1000) / 1000;
    } else if (unit.empty()) {
      m_.Error(entry.path.Field("valueQuantity").Field("code"),
               absl::StrCat("is absent: a body weight of ", fhir::FormatDecimal(value),
                            " without a unit could be kg or lb; refused"));
      return;
    } else if (unit != "kg") {
      m_.Warning(entry.path.Field("valueQuantity"),
                 absl::StrCat("body weight unit '", unit, "' is not kg, g or [lb_av]; ignored"));
      return;
    }
    if (infusion.has_patient_weight_kg()) {
      m_.Warning(entry.path, "a second body weight; the first is kept");
      return;
    }
    infusion.set_patient_weight_kg(value);
  }

  const Mapping& m_;
  bool retracted_;
  std::vector<VitalsGroup> groups_;
};

// ---- adverse events ----

struct EventKind {
  v1::AdverseEvent::Kind kind;
  const char* snomed;   // "" when fhirgw writes the kind as text only
  const char* display;  // what infusion_mapper.cc writes as display (or text)
};

// What AdverseEventCode (common.cc) writes, then the codes and words other senders (and earlier
// fhirgw versions) use: 38341003 Hypertensive disorder, "Sedation".
const std::vector<EventKind>& EventKinds() {
  static const std::vector<EventKind>* kinds = [] {
    auto* out = new std::vector<EventKind>;
    for (v1::AdverseEvent::Kind kind :
         {v1::AdverseEvent::NAUSEA, v1::AdverseEvent::VOMITING, v1::AdverseEvent::HYPERTENSION,
          v1::AdverseEvent::TACHYCARDIA, v1::AdverseEvent::ANXIETY, v1::AdverseEvent::HEADACHE,
          v1::AdverseEvent::DIZZINESS, v1::AdverseEvent::DISSOCIATION, v1::AdverseEvent::SEDATION,
          v1::AdverseEvent::OTHER}) {
      const EventCode code = AdverseEventCode(kind);
      out->push_back({kind, code.code, code.display});
    }
    out->push_back({v1::AdverseEvent::HYPERTENSION, "38341003", "Hypertensive disorder"});
    out->push_back({v1::AdverseEvent::SEDATION, "", "Sedation"});
    return out;
  }();
  return *kinds;
}

void AddAdverseEvent(const Mapping& m, const Entry& entry, v1::InfusionRecord& infusion) {
  const JsonValue* resource = entry.resource;
  const JsonValue* event_concept = Member(resource, "event");
  v1::AdverseEvent& event = *infusion.add_adverse_events();
  const absl::string_view snomed = CodeInSystem(event_concept, fhir::kSnomed);
  const absl::string_view text = StringMember(event_concept, "text");
  const EventKind* known = nullptr;
  for (const EventKind& kind : EventKinds()) {
    if (known == nullptr && !snomed.empty() && snomed == kind.snomed) known = &kind;
  }
  for (const EventKind& kind : EventKinds()) {
    if (known == nullptr && absl::EqualsIgnoreCase(text, kind.display)) known = &kind;
  }
  const v1::Code code = CodeFromConcept(event_concept, fhir::kSnomed);
  if (known != nullptr) {
    event.set_kind(known->kind);
    // The text is a description when it says more than the kind's name.
    if (!text.empty() && text != known->display && text != code.display()) {
      event.set_description(std::string(text));
    }
  } else {
    event.set_kind(v1::AdverseEvent::OTHER);
    event.set_description(text.empty() ? code.display() : std::string(text));
    if (event.description().empty()) {
      m.Warning(entry.path.Field("event"), "has neither a known code nor text; kept as OTHER");
    }
  }
  const JsonValue* severity = Member(resource, "severity");
  absl::string_view level = CodeInSystem(severity, fhir::kAdverseEventSeverity);
  const v1::Code severity_code = CodeFromConcept(severity, "");
  if (level.empty())
    level = severity_code.code().empty() ? severity_code.display() : severity_code.code();
  if (absl::EqualsIgnoreCase(level, "mild")) {
    event.set_severity(v1::AdverseEvent::MILD);
  } else if (absl::EqualsIgnoreCase(level, "moderate")) {
    event.set_severity(v1::AdverseEvent::MODERATE);
  } else if (absl::EqualsIgnoreCase(level, "severe")) {
    event.set_severity(v1::AdverseEvent::SEVERE);
  } else if (!level.empty()) {
    m.Warning(entry.path.Field("severity"),
              absl::StrCat("'", level, "' is not mild, moderate or severe; left unset"));
  }
  for (const char* field : {"date", "detected"}) {
    const absl::string_view date = StringMember(resource, field);
    if (date.empty()) continue;
    ReadOptionalTimestamp(m, date, entry.path.Field(field), [&] { return event.mutable_time(); });
    break;
  }
}

v1::InfusionRecord::Status AdministrationStatus(absl::string_view status) {
  if (status == "completed") return v1::InfusionRecord::COMPLETED;
  if (status == "in-progress") return v1::InfusionRecord::IN_PROGRESS;
  if (status == "stopped") return v1::InfusionRecord::STOPPED;
  if (status == "not-done") return v1::InfusionRecord::NOT_DONE;
  if (status == "on-hold") return v1::InfusionRecord::ON_HOLD;
  return v1::InfusionRecord::STATUS_UNSPECIFIED;
}

}  // namespace

bool IsVitalSignCode(absl::string_view code) { return VitalOfCode(code) != Vital::kNone; }

bool MapMedicationAdministration(const Mapping& m, const Entry& entry, ReverseRecord& out) {
  const JsonValue* resource = entry.resource;
  v1::InfusionRecord& infusion = *out.record.mutable_infusion();
  *infusion.mutable_medication() = MedicationCode(m, entry);
  if (IsEmptyCode(infusion.medication())) return false;
  FillRecordHeader(m, entry, SystemKind::kMedicationAdministration, out);

  const absl::string_view status = StringMember(resource, "status");
  const bool retracted = status == "entered-in-error";
  if (retracted) {
    out.record.set_action(v1::ClinicRecord::ENTERED_IN_ERROR);
  } else {
    infusion.set_status(AdministrationStatus(status));
    if (infusion.status() == v1::InfusionRecord::STATUS_UNSPECIFIED && status != "unknown") {
      m.Warning(entry.path.Field("status"),
                status.empty() ? std::string("is absent; the status is left unset")
                               : absl::StrCat("'", status,
                                              "' is not an R4 MedicationAdministration status; "
                                              "left unset"));
    }
  }
  v1::Code reason = CodeFromConcept(FirstObject(Member(resource, "statusReason")), fhir::kSnomed);
  if (!IsEmptyCode(reason)) *infusion.mutable_status_reason() = std::move(reason);
  infusion.set_encounter_id(EncounterIdFromReference(m, entry, Member(resource, "context")));

  // When: a period gives start and end. A single time is the start, except for an administration
  // that was not done: there it is when that was recorded.
  if (const JsonValue* period = Member(resource, "effectivePeriod")) {
    const Path path = entry.path.Field("effectivePeriod");
    ReadOptionalTimestamp(m, StringMember(period, "start"), path.Field("start"),
                          [&] { return infusion.mutable_start_time(); });
    ReadOptionalTimestamp(m, StringMember(period, "end"), path.Field("end"),
                          [&] { return infusion.mutable_end_time(); });
  } else if (const absl::string_view when = StringMember(resource, "effectiveDateTime");
             !when.empty()) {
    const bool not_done = infusion.status() == v1::InfusionRecord::NOT_DONE;
    ReadOptionalTimestamp(m, when, entry.path.Field("effectiveDateTime"), [&] {
      return not_done ? out.record.mutable_recorded_at() : infusion.mutable_start_time();
    });
  } else {
    m.Warning(entry.path.Field("effective[x]"), "is absent: the infusion has no time");
  }

  for (const JsonValue& performer : Elements(Member(resource, "performer"))) {
    v1::Practitioner practitioner =
        PractitionerFromReference(m, entry, Member(&performer, "actor"));
    if (!practitioner.npi().empty() || !practitioner.name().empty()) {
      *infusion.mutable_performer() = std::move(practitioner);
      break;
    }
  }
  AppendCodes(Member(resource, "reasonCode"), fhir::kSnomed, infusion.mutable_reasons());
  infusion.set_note(NotesText(Member(resource, "note")));

  const JsonValue* dosage = Member(resource, "dosage");
  const Path dosage_path = entry.path.Field("dosage");
  const DosageText text = ParseDosageText(StringMember(dosage, "text"));
  if (text.dose_mg_per_kg) infusion.set_dose_mg_per_kg(*text.dose_mg_per_kg);
  if (text.concentration_mg_per_ml) {
    infusion.set_concentration_mg_per_ml(*text.concentration_mg_per_ml);
  }
  if (text.session_number) infusion.set_session_number(*text.session_number);
  if (text.series_length) infusion.set_series_length(*text.series_length);
  if (const JsonValue* route = Member(dosage, "route")) {
    infusion.set_route(RouteFromConcept(m, route, dosage_path.Field("route")));
  }
  if (const JsonValue* dose = Member(dosage, "dose")) {
    double mg = 0;
    if (MassInMg(dose, &mg)) {
      infusion.set_total_dose_mg(mg);
    } else if (absl::EqualsIgnoreCase(UnitOf(dose), "mg/kg") &&
               Number(Member(dose, "value"), &mg)) {
      if (!infusion.has_dose_mg_per_kg()) infusion.set_dose_mg_per_kg(mg);
    } else {
      m.Warning(dosage_path.Field("dose"),
                absl::StrCat("unit '", UnitOf(dose),
                             "' is not a mass (mg, g, ug); total_dose_mg is left unset"));
    }
  }
  double rate = 0;
  if (RateMlPerHour(dosage, &rate)) {
    infusion.set_rate_ml_per_hour(rate);
  } else if (Member(dosage, "rateQuantity") != nullptr || Member(dosage, "rateRatio") != nullptr) {
    m.Warning(
        dosage_path.Field(Member(dosage, "rateQuantity") != nullptr ? "rateQuantity" : "rateRatio"),
        "is not a volume per time (mL/h, mL/min); rate_ml_per_hour is left unset");
  }

  VitalsCollector vitals(m, retracted);
  for (int index : m.input().absorbed[entry.index]) {
    const Entry& absorbed = m.input().entries[index];
    if (absorbed.type == "Observation") {
      vitals.Add(absorbed, infusion);
    } else if (absorbed.type == "AdverseEvent") {
      AddAdverseEvent(m, absorbed, infusion);
    }
  }
  vitals.Finish(infusion);
  if (!infusion.has_patient_weight_kg() && text.weight_kg) {
    infusion.set_patient_weight_kg(*text.weight_kg);
  }
  // The clinic's plausibility limits apply to hospital data too (a retraction is let through: it
  // withdraws the implausible entry).
  if (retracted) return true;
  if (infusion.has_total_dose_mg() &&
      (infusion.total_dose_mg() <= 0 || infusion.total_dose_mg() > Limits::kMaxTotalDoseMg)) {
    m.Error(dosage_path.Field("dose").Field("value"),
            absl::StrCat(fhir::FormatDecimal(infusion.total_dose_mg()),
                         " mg is not a plausible dose (above 0 and at most ",
                         fhir::FormatDecimal(Limits::kMaxTotalDoseMg), " mg); refused"));
    return false;
  }
  if (infusion.has_patient_weight_kg() && (infusion.patient_weight_kg() < Limits::kMinWeightKg ||
                                           infusion.patient_weight_kg() > Limits::kMaxWeightKg)) {
    m.Error(entry.path,
            absl::StrCat("body weight ", fhir::FormatDecimal(infusion.patient_weight_kg()),
                         " kg is outside ", fhir::FormatDecimal(Limits::kMinWeightKg), "..",
                         fhir::FormatDecimal(Limits::kMaxWeightKg), " kg; refused"));
    return false;
  }
  return true;
}

}  // namespace fhirgw::mappers::reverse_internal
