#include "mappers/validate.h"

#include <algorithm>
#include <cmath>
#include <optional>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "fhir/codes.h"
#include "fhir/instruments.h"
#include "fhir/primitives.h"
#include "mappers/safety.h"

namespace fhirgw::mappers {
namespace {

using fhir::IssueScope;
using google::protobuf::Timestamp;
using L = Limits;

// Formats a number for a message the way the clinic wrote it ("140", "0.5").
std::string Num(double value) { return fhir::FormatDecimal(value); }

void CheckText(const IssueScope& s, absl::string_view field, absl::string_view value,
               size_t max_length) {
  if (value.size() > max_length) {
    s.Error(field, absl::StrCat("is ", value.size(), " characters long; at most ", max_length,
                                " are allowed"));
  }
}

// Ids travel in identifiers and URLs: printable, no surrounding blanks, bounded length.
void CheckId(const IssueScope& s, absl::string_view field, absl::string_view value, bool required) {
  if (value.empty()) {
    if (required) s.Error(field, "is required");
    return;
  }
  CheckText(s, field, value, L::kMaxIdLength);
  for (char c : value) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) {
      s.Error(field, "must not contain control characters");
      return;
    }
  }
  if (absl::ascii_isspace(static_cast<unsigned char>(value.front())) ||
      absl::ascii_isspace(static_cast<unsigned char>(value.back()))) {
    s.Error(field, absl::StrCat("'", value, "' must not begin or end with a blank"));
  }
}

// The tenant id becomes part of URN identifier systems, so it is restricted to URN-safe characters.
void CheckClinicId(const IssueScope& s, absl::string_view value) {
  if (value.empty()) {
    s.Error("clinic_id", "is required");
    return;
  }
  bool ok = value.size() <= 64;
  for (char c : value) {
    ok = ok &&
         (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_');
  }
  if (!ok) {
    s.Error("clinic_id",
            absl::StrCat("'", value, "' must be 1 to 64 letters, digits, '-', '.' or '_'"));
  }
}

bool LooksLikeUri(absl::string_view system) {
  const size_t colon = system.find(':');
  return colon != absl::string_view::npos && colon > 0 &&
         system.find(' ') == absl::string_view::npos;
}

// A Code needs a code (with its system) or at least a display.
void CheckCode(const IssueScope& s, absl::string_view field, const v1::Code& code, bool present,
               bool required) {
  if (!present || (code.code().empty() && code.display().empty() && code.system().empty())) {
    if (required) s.Error(field, "is required");
    return;
  }
  const IssueScope c = s.Field(field);
  if (code.code().empty() && code.display().empty()) {
    c.Error("", "needs a code or a display");
  }
  if (!code.code().empty() && code.system().empty()) {
    c.Error("system", absl::StrCat("is required with code '", code.code(), "'"));
  }
  if (!code.system().empty() && !LooksLikeUri(code.system())) {
    c.Error("system", absl::StrCat("'", code.system(), "' is not an absolute URI"));
  }
  CheckText(c, "display", code.display(), 1000);
}

template <typename Codes>
void CheckCodes(const IssueScope& s, absl::string_view field, const Codes& codes) {
  for (int i = 0; i < codes.size(); ++i) {
    const IssueScope item = s.Field(field, i);
    if (codes[i].code().empty() && codes[i].display().empty()) {
      item.Error("", "needs a code or a display");
      continue;
    }
    CheckCode(item, "", codes[i], true, true);
  }
}

template <typename IsValid>
void CheckEnum(const IssueScope& s, absl::string_view field, int value, IsValid is_valid,
               bool required, absl::string_view type_name) {
  if (!is_valid(value)) {
    s.Error(field, absl::StrCat(value, " is not a valid ", type_name));
  } else if (required && value == 0) {
    s.Error(field, "is required");
  }
}

bool CheckFinite(const IssueScope& s, absl::string_view field, double value) {
  if (!std::isfinite(value)) {
    s.Error(field, "must be a finite number");
    return false;
  }
  return true;
}

void CheckRange(const IssueScope& s, absl::string_view field, double value, double min,
                double max) {
  if (!CheckFinite(s, field, value)) return;
  if (value < min || value > max) {
    s.Error(field, absl::StrCat(Num(value), " is outside ", Num(min), "..", Num(max)));
  }
}

void CheckPositive(const IssueScope& s, absl::string_view field, double value, double max) {
  if (!CheckFinite(s, field, value)) return;
  if (value <= 0 || value > max) {
    s.Error(field, absl::StrCat(Num(value), " must be above 0 and at most ", Num(max)));
  }
}

// Timestamps: within years 1900..9999 and with valid nanos (a protobuf Timestamp sent in binary
// form is not checked by the parser).
constexpr int64_t kYear1900 = -2208988800;
constexpr int64_t kYear10000 = 253402300800;

void CheckTime(const IssueScope& s, absl::string_view field, const Timestamp& t) {
  if (t.nanos() < 0 || t.nanos() > 999999999) {
    s.Error(field, absl::StrCat("nanos ", t.nanos(), " is outside 0..999999999"));
  } else if (t.seconds() < kYear1900 || t.seconds() >= kYear10000) {
    s.Error(field, "must be between the years 1900 and 9999");
  }
}

bool IsValidNpi(absl::string_view npi) {
  if (npi.size() != 10) return false;
  for (char c : npi) {
    if (!absl::ascii_isdigit(static_cast<unsigned char>(c))) return false;
  }
  // Luhn over the card-issuer prefix 80840 and the first nine digits (CMS NPI check digit).
  int sum = 24;  // the prefix 80840's contribution
  for (int i = 8; i >= 0; --i) {
    int digit = npi[i] - '0';
    if ((8 - i) % 2 == 0) {
      digit *= 2;
      if (digit > 9) digit -= 9;
    }
    sum += digit;
  }
  return (10 - sum % 10) % 10 == npi[9] - '0';
}

void CheckPractitioner(const IssueScope& s, absl::string_view field, const v1::Practitioner& p) {
  const IssueScope ps = s.Field(field);
  if (p.npi().empty() && p.name().empty()) {
    ps.Error("", "needs an npi or a name");
  }
  if (!p.npi().empty() && !IsValidNpi(p.npi())) {
    ps.Error("npi", absl::StrCat("'", p.npi(),
                                 "' is not a valid NPI (10 digits with a Luhn check digit)"));
  }
  CheckText(ps, "name", p.name(), 200);
}

void CheckPatient(const IssueScope& s, const v1::ClinicRecord& record) {
  if (!record.has_patient()) {
    s.Error("patient", "is required");
    return;
  }
  const v1::PatientRef& p = record.patient();
  const IssueScope ps = s.Field("patient");
  CheckId(ps, "clinic_patient_id", p.clinic_patient_id(), true);
  for (int i = 0; i < p.identifiers_size(); ++i) {
    const IssueScope is = ps.Field("identifiers", i);
    const v1::Identifier& id = p.identifiers(i);
    if (id.system().empty()) {
      is.Error("system", "is required");
    } else if (!LooksLikeUri(id.system())) {
      is.Error("system", absl::StrCat("'", id.system(), "' is not an absolute URI"));
    }
    CheckId(is, "value", id.value(), true);
  }
  CheckText(ps, "family_name", p.family_name(), 200);
  for (int i = 0; i < p.given_names_size(); ++i) {
    if (p.given_names(i).empty()) ps.Field("given_names", i).Error("", "must not be empty");
    CheckText(ps.Field("given_names", i), "", p.given_names(i), 200);
  }
  if (!p.birth_date().empty()) {
    absl::StatusOr<fhir::DateTime> date = fhir::ParseDate(p.birth_date());
    if (!date.ok()) {
      ps.Error("birth_date", date.status().message());
    } else if (date->precision != fhir::DateTime::Precision::kDay) {
      ps.Error("birth_date", absl::StrCat("'", p.birth_date(), "' must be a full date YYYY-MM-DD"));
    } else if (date->year < 1900) {
      ps.Error("birth_date", absl::StrCat("'", p.birth_date(), "' is before 1900"));
    }
  }
  CheckEnum(ps, "gender", p.gender(), v1::PatientRef::Gender_IsValid, false, "gender");
}

void CheckInfusion(const IssueScope& s, const v1::InfusionRecord& inf,
                   const v1::ClinicRecord& record) {
  CheckId(s, "encounter_id", inf.encounter_id(), false);
  CheckCode(s, "medication", inf.medication(), inf.has_medication(), true);
  CheckEnum(s, "route", inf.route(), v1::Route::Value_IsValid, true, "route");
  CheckEnum(s, "status", inf.status(), v1::InfusionRecord::Status_IsValid, true, "infusion status");
  const bool stopped = inf.status() == v1::InfusionRecord::STOPPED;
  const bool not_done = inf.status() == v1::InfusionRecord::NOT_DONE;
  if ((stopped || not_done) && !inf.has_status_reason()) {
    s.Error("status_reason", "is required for a STOPPED or NOT_DONE infusion");
  } else {
    CheckCode(s, "status_reason", inf.status_reason(), inf.has_status_reason(), false);
  }

  // Dose: weight-based dose, weight and total must agree.
  const KetamineProduct product = KetamineProductOf(inf.medication());
  const bool ketamine = product != KetamineProduct::kNone;
  const double max_mg_per_kg = ketamine ? L::kKetamineMaxMgPerKg : L::kMaxMgPerKg;
  if (inf.has_dose_mg_per_kg()) {
    if (ketamine) {
      CheckRange(s, "dose_mg_per_kg", inf.dose_mg_per_kg(), L::kKetamineMinMgPerKg,
                 L::kKetamineMaxMgPerKg);
    } else {
      CheckPositive(s, "dose_mg_per_kg", inf.dose_mg_per_kg(), L::kMaxMgPerKg);
    }
  }
  if (inf.has_patient_weight_kg()) {
    CheckRange(s, "patient_weight_kg", inf.patient_weight_kg(), L::kMinWeightKg, L::kMaxWeightKg);
  }
  if (inf.has_total_dose_mg()) {
    CheckPositive(
        s, "total_dose_mg", inf.total_dose_mg(),
        product == KetamineProduct::kEsketamine ? L::kEsketamineMaxTotalMg : L::kMaxTotalDoseMg);
  }
  if (product == KetamineProduct::kEsketamine && inf.route() != v1::Route::INTRANASAL &&
      v1::Route::Value_IsValid(inf.route()) && inf.route() != v1::Route::ROUTE_UNSPECIFIED) {
    s.Error("route", absl::StrCat(v1::Route::Value_Name(inf.route()), " does not fit '",
                                  inf.medication().display(),
                                  "': esketamine nasal spray is given only INTRANASAL"));
  }
  // The total checked against the weight, however it was given.
  if (inf.has_total_dose_mg() && inf.has_patient_weight_kg() &&
      std::isfinite(inf.total_dose_mg()) && std::isfinite(inf.patient_weight_kg()) &&
      inf.patient_weight_kg() > 0 &&
      inf.total_dose_mg() / inf.patient_weight_kg() > max_mg_per_kg) {
    s.Error(
        "total_dose_mg",
        absl::StrCat(Num(inf.total_dose_mg()), " mg for ", Num(inf.patient_weight_kg()), " kg is ",
                     Num(std::round(inf.total_dose_mg() / inf.patient_weight_kg() * 100) / 100),
                     " mg/kg; at most ", Num(max_mg_per_kg), " mg/kg is allowed",
                     ketamine ? " for ketamine" : ""));
  }
  if (inf.has_rate_ml_per_hour()) {
    CheckPositive(s, "rate_ml_per_hour", inf.rate_ml_per_hour(), L::kMaxRateMlPerHour);
  }
  if (inf.has_concentration_mg_per_ml()) {
    CheckPositive(s, "concentration_mg_per_ml", inf.concentration_mg_per_ml(),
                  L::kMaxConcentrationMgPerMl);
  }
  if (inf.has_dose_mg_per_kg() && inf.has_patient_weight_kg() && inf.has_total_dose_mg() &&
      std::isfinite(inf.dose_mg_per_kg()) && std::isfinite(inf.patient_weight_kg()) &&
      std::isfinite(inf.total_dose_mg())) {
    const double planned = inf.dose_mg_per_kg() * inf.patient_weight_kg();
    const double total = inf.total_dose_mg();
    const double tolerance = L::kDoseTolerance * planned;
    // A stopped infusion delivered less than planned; it may never deliver more.
    const bool ok = stopped ? total <= planned + tolerance : std::abs(total - planned) <= tolerance;
    if (!ok) {
      s.Error("total_dose_mg",
              absl::StrCat(Num(total), " does not match dose_mg_per_kg x patient_weight_kg = ",
                           Num(inf.dose_mg_per_kg()), " x ", Num(inf.patient_weight_kg()), " = ",
                           Num(std::round(planned * 100) / 100), " (tolerance 1%",
                           stopped ? "; a stopped infusion may be lower" : "", ")"));
    }
  }
  if (inf.has_dose_mg_per_kg() && !inf.has_patient_weight_kg() && !inf.has_total_dose_mg()) {
    s.Error("patient_weight_kg", "is required to compute the total dose from dose_mg_per_kg");
  }
  const std::optional<double> from_rate = DoseFromRateMg(inf);
  // A stopped infusion did not deliver the planned dose: the dose given must be stated, or follow
  // from the pump (rate x duration x concentration); it is never taken from dose_mg_per_kg.
  if (stopped && !inf.has_total_dose_mg() && !from_rate.has_value()) {
    s.Error("total_dose_mg",
            "is required for a STOPPED infusion (the planned dose_mg_per_kg x patient_weight_kg "
            "was not given), unless rate_ml_per_hour, concentration_mg_per_ml, start_time and "
            "end_time give it");
  }
  // The pump's delivered amount and the stated (or weight-based) dose must agree.
  const bool weight_based_total =
      !stopped && inf.has_dose_mg_per_kg() && inf.has_patient_weight_kg();
  const int64_t seconds = inf.end_time().seconds() - inf.start_time().seconds();
  const bool plausible_duration =
      seconds >= L::kMinSessionMinutes * 60 && seconds <= L::kMaxSessionMinutes * 60;
  if (from_rate.has_value() && *from_rate > 0 && plausible_duration &&
      (inf.has_total_dose_mg() || weight_based_total)) {
    const double stated =
        inf.has_total_dose_mg()
            ? inf.total_dose_mg()
            : std::round(inf.dose_mg_per_kg() * inf.patient_weight_kg() * 100) / 100;
    if (std::isfinite(stated) &&
        std::abs(stated - *from_rate) > L::kRateDoseTolerance * std::max(stated, *from_rate)) {
      const int64_t minutes = seconds / 60;
      s.Error(inf.has_total_dose_mg() ? "total_dose_mg" : "rate_ml_per_hour",
              absl::StrCat(inf.has_total_dose_mg() ? "" : "the dose ", Num(stated),
                           " mg does not match rate_ml_per_hour x duration x "
                           "concentration_mg_per_ml = ",
                           Num(inf.rate_ml_per_hour()), " mL/h x ", minutes, " min x ",
                           Num(inf.concentration_mg_per_ml()), " mg/mL = ", Num(*from_rate),
                           " mg (tolerance 10%)"));
    }
  }
  const bool has_dose =
      inf.has_total_dose_mg() || (inf.has_dose_mg_per_kg() && inf.has_patient_weight_kg());
  if (!not_done && !has_dose && !inf.has_rate_ml_per_hour()) {
    s.Error("total_dose_mg",
            "a dose (total_dose_mg, or dose_mg_per_kg with patient_weight_kg) or rate_ml_per_hour "
            "is required");
  }

  // Times: start required unless NOT_DONE; end required once finished; 1..240 minutes.
  if (inf.has_start_time()) CheckTime(s, "start_time", inf.start_time());
  if (inf.has_end_time()) CheckTime(s, "end_time", inf.end_time());
  if (!inf.has_start_time() && !not_done) {
    s.Error("start_time", "is required");
  }
  if (not_done && !inf.has_start_time() && !record.has_recorded_at()) {
    s.Error("start_time", "is required when recorded_at is absent");
  }
  if ((inf.status() == v1::InfusionRecord::COMPLETED || stopped) && !inf.has_end_time()) {
    s.Error("end_time", "is required for a COMPLETED or STOPPED infusion");
  }
  if (inf.has_end_time() && !inf.has_start_time()) {
    s.Error("end_time", "needs start_time");
  }
  if (inf.has_start_time() && inf.has_end_time()) {
    const int64_t seconds = inf.end_time().seconds() - inf.start_time().seconds();
    if (seconds <= 0) {
      s.Error("end_time", "must be after start_time");
    } else if (seconds < L::kMinSessionMinutes * 60 || seconds > L::kMaxSessionMinutes * 60) {
      s.Error("end_time", absl::StrCat("the session lasts ", seconds / 60, " min; it must last ",
                                       L::kMinSessionMinutes, "..", L::kMaxSessionMinutes, " min"));
    }
  }

  if (inf.has_series_length()) {
    CheckRange(s, "series_length", inf.series_length(), 1, L::kMaxSeriesLength);
  }
  if (inf.has_session_number()) {
    const int max = inf.has_series_length() ? inf.series_length() : L::kMaxSeriesLength;
    CheckRange(s, "session_number", inf.session_number(), 1, std::max(1, max));
  }
  if (inf.has_performer()) CheckPractitioner(s, "performer", inf.performer());
  CheckCodes(s, "reasons", inf.reasons());
  CheckText(s, "note", inf.note(), L::kMaxTextLength);

  for (int i = 0; i < inf.vitals_size(); ++i) {
    const v1::Vitals& v = inf.vitals(i);
    const IssueScope vs = s.Field("vitals", i);
    if (!v.has_systolic_mmhg() && !v.has_diastolic_mmhg() && !v.has_heart_rate_bpm() &&
        !v.has_spo2_percent() && !v.has_respiratory_rate()) {
      vs.Error("", "holds no measurement");
    }
    if (v.has_systolic_mmhg()) {
      CheckRange(vs, "systolic_mmhg", v.systolic_mmhg(), L::kMinSystolic, L::kMaxSystolic);
      if (!v.has_diastolic_mmhg()) vs.Error("diastolic_mmhg", "is required with systolic_mmhg");
    }
    if (v.has_diastolic_mmhg()) {
      CheckRange(vs, "diastolic_mmhg", v.diastolic_mmhg(), L::kMinDiastolic, L::kMaxDiastolic);
      if (!v.has_systolic_mmhg()) vs.Error("systolic_mmhg", "is required with diastolic_mmhg");
    }
    if (v.has_systolic_mmhg() && v.has_diastolic_mmhg() &&
        v.diastolic_mmhg() >= v.systolic_mmhg()) {
      vs.Error("diastolic_mmhg", absl::StrCat(v.diastolic_mmhg(), " must be below systolic_mmhg ",
                                              v.systolic_mmhg()));
    }
    if (v.has_heart_rate_bpm()) {
      CheckRange(vs, "heart_rate_bpm", v.heart_rate_bpm(), L::kMinHeartRate, L::kMaxHeartRate);
    }
    if (v.has_spo2_percent()) {
      CheckRange(vs, "spo2_percent", v.spo2_percent(), L::kMinSpo2, L::kMaxSpo2);
    }
    if (v.has_respiratory_rate()) {
      CheckRange(vs, "respiratory_rate", v.respiratory_rate(), L::kMinRespiratoryRate,
                 L::kMaxRespiratoryRate);
    }
    if (v.has_time()) {
      CheckTime(vs, "time", v.time());
      if (inf.has_start_time()) {
        const int64_t from_start = v.time().seconds() - inf.start_time().seconds();
        if (std::abs(from_start) > int64_t{L::kVitalsWindowHours} * 3600) {
          vs.Error("time", absl::StrCat("is more than ", L::kVitalsWindowHours,
                                        " hours from the infusion's start_time"));
        }
      }
    } else if (!inf.has_start_time()) {
      vs.Error("time", "is required when the infusion has no start_time");
    }
  }

  for (int i = 0; i < inf.adverse_events_size(); ++i) {
    const v1::AdverseEvent& e = inf.adverse_events(i);
    const IssueScope es = s.Field("adverse_events", i);
    CheckEnum(es, "kind", e.kind(), v1::AdverseEvent::Kind_IsValid, true, "adverse event kind");
    CheckEnum(es, "severity", e.severity(), v1::AdverseEvent::Severity_IsValid, true,
              "adverse event severity");
    if (e.kind() == v1::AdverseEvent::OTHER && e.description().empty()) {
      es.Error("description", "is required when kind is OTHER");
    }
    CheckText(es, "description", e.description(), 1000);
    if (e.has_time()) CheckTime(es, "time", e.time());
  }
}

// Compares two FHIR dateTimes at the precision both have; returns <0, 0 or >0.
int CompareDateTimes(const fhir::DateTime& a, const fhir::DateTime& b) {
  if (a.precision == fhir::DateTime::Precision::kSecond &&
      b.precision == fhir::DateTime::Precision::kSecond) {
    const int64_t sa = fhir::ToUnixSeconds(a).value_or(0);
    const int64_t sb = fhir::ToUnixSeconds(b).value_or(0);
    return sa < sb ? -1 : (sa > sb ? 1 : 0);
  }
  const int pa = static_cast<int>(std::min(a.precision, b.precision));
  const int fields_a[] = {a.year, a.month, a.day};
  const int fields_b[] = {b.year, b.month, b.day};
  for (int i = 0; i <= std::min(pa, 2); ++i) {
    if (fields_a[i] != fields_b[i]) return fields_a[i] < fields_b[i] ? -1 : 1;
  }
  return 0;
}

void CheckMedicationStatement(const IssueScope& s, const v1::MedicationStatementRecord& m) {
  CheckCode(s, "medication", m.medication(), m.has_medication(), true);
  CheckEnum(s, "status", m.status(), v1::MedicationStatementRecord::Status_IsValid, true,
            "medication statement status");
  CheckCode(s, "status_reason", m.status_reason(), m.has_status_reason(), false);
  absl::StatusOr<fhir::DateTime> start, end;
  if (!m.effective_start().empty()) {
    start = fhir::ParseDateTime(m.effective_start());
    if (!start.ok()) s.Error("effective_start", start.status().message());
  }
  if (!m.effective_end().empty()) {
    end = fhir::ParseDateTime(m.effective_end());
    if (!end.ok()) s.Error("effective_end", end.status().message());
  }
  if (!m.effective_start().empty() && !m.effective_end().empty() && start.ok() && end.ok() &&
      CompareDateTimes(*start, *end) > 0) {
    s.Error("effective_end", absl::StrCat("'", m.effective_end(), "' is before effective_start '",
                                          m.effective_start(), "'"));
  }
  if (m.has_dose()) {
    const IssueScope ds = s.Field("dose");
    if (!m.dose().has_value()) {
      ds.Error("value", "is required");
    } else {
      CheckPositive(ds, "value", m.dose().value(), 100000);
    }
    if (m.dose().unit().empty()) {
      ds.Error("unit", "is required (a UCUM unit such as mg)");
    } else if (m.dose().unit().find(' ') != std::string::npos) {
      ds.Error("unit", absl::StrCat("'", m.dose().unit(), "' is not a UCUM unit"));
    }
  }
  if (m.has_frequency()) {
    const v1::Frequency& f = m.frequency();
    const IssueScope fs = s.Field("frequency");
    if (f.has_times()) CheckRange(fs, "times", f.times(), 1, 100);
    if (f.has_period()) CheckPositive(fs, "period", f.period(), 1000);
    static constexpr absl::string_view kUnits[] = {"h", "d", "wk", "mo"};
    bool unit_ok = false;
    for (absl::string_view unit : kUnits) unit_ok = unit_ok || f.period_unit() == unit;
    if (f.period_unit().empty()) {
      if (f.has_period()) fs.Error("period_unit", "is required with period (h, d, wk or mo)");
    } else if (!unit_ok) {
      fs.Error("period_unit", absl::StrCat("'", f.period_unit(), "' is not one of h, d, wk, mo"));
    }
    if (!f.has_times() && !f.has_period()) fs.Error("", "needs times and period");
  }
  CheckText(s, "dosage_text", m.dosage_text(), 1000);
  CheckEnum(s, "route", m.route(), v1::Route::Value_IsValid, false, "route");
  CheckCodes(s, "reasons", m.reasons());
  CheckEnum(s, "information_source", m.information_source(), v1::InformationSource::Value_IsValid,
            false, "information source");
  CheckEnum(s, "adherence", m.adherence(), v1::Adherence::Value_IsValid, false, "adherence");
  CheckText(s, "note", m.note(), L::kMaxTextLength);
}

void CheckQuestionnaire(const IssueScope& s, const v1::QuestionnaireRecord& q) {
  CheckEnum(s, "instrument", q.instrument(), v1::QuestionnaireRecord::Instrument_IsValid, true,
            "instrument");
  CheckEnum(s, "timing", q.timing(), v1::QuestionnaireRecord::Timing_IsValid, false, "timing");
  CheckId(s, "encounter_id", q.encounter_id(), false);
  if (!q.has_authored()) {
    s.Error("authored", "is required");
  } else {
    CheckTime(s, "authored", q.authored());
  }
  if (q.instrument() == v1::QuestionnaireRecord::INSTRUMENT_UNSPECIFIED ||
      !v1::QuestionnaireRecord::Instrument_IsValid(q.instrument())) {
    return;
  }
  const fhir::InstrumentId id =
      q.instrument() == v1::QuestionnaireRecord::GAD7   ? fhir::InstrumentId::kGad7
      : q.instrument() == v1::QuestionnaireRecord::PHQ2 ? fhir::InstrumentId::kPhq2
                                                        : fhir::InstrumentId::kPhq9;
  const fhir::Instrument& instrument = fhir::GetInstrument(id);
  const int item_count = static_cast<int>(instrument.items.size());
  int first_index[10] = {-1, -1, -1, -1, -1, -1, -1, -1, -1, -1};
  int total = 0;
  bool complete = true;
  for (int i = 0; i < q.answers_size(); ++i) {
    const v1::Answer& answer = q.answers(i);
    const IssueScope as = s.Field("answers", i);
    if (answer.item() < 1 || answer.item() > item_count) {
      as.Error("item", absl::StrCat(answer.item(), " is outside 1..", item_count, " for ",
                                    instrument.name));
      complete = false;
      continue;
    }
    if (first_index[answer.item()] >= 0) {
      as.Error("item", absl::StrCat("item ", answer.item(), " is answered twice (also answers[",
                                    first_index[answer.item()], "])"));
      complete = false;
      continue;
    }
    first_index[answer.item()] = i;
    if (!answer.has_value()) {
      as.Error("value", "is required");
      complete = false;
    } else if (answer.value() < 0 || answer.value() > 3) {
      as.Error("value", absl::StrCat(answer.value(), " is outside 0..3"));
      complete = false;
    } else {
      total += answer.value();
    }
  }
  for (int item = 1; item <= item_count; ++item) {
    if (first_index[item] < 0) {
      s.Error("answers", absl::StrCat("item ", item, " of ", instrument.name, " is not answered"));
      complete = false;
    }
  }
  if (q.has_difficulty()) {
    if (!instrument.has_difficulty) {
      s.Error("difficulty",
              absl::StrCat("only PHQ-9 has a difficulty item, not ", instrument.name));
    } else {
      CheckRange(s, "difficulty", q.difficulty(), 0, 3);
    }
  }
  if (q.has_reported_total() && complete && q.reported_total() != total) {
    s.Error("reported_total",
            absl::StrCat(q.reported_total(), " does not equal the computed total ", total));
  }
}

void CheckEncounter(const IssueScope& s, const v1::EncounterRecord& e) {
  CheckId(s, "encounter_id", e.encounter_id(), true);
  CheckEnum(s, "kind", e.kind(), v1::EncounterRecord::Kind_IsValid, true, "encounter kind");
  CheckEnum(s, "status", e.status(), v1::EncounterRecord::Status_IsValid, true, "encounter status");
  if (e.has_start_time()) CheckTime(s, "start_time", e.start_time());
  if (e.has_end_time()) CheckTime(s, "end_time", e.end_time());
  const bool started =
      e.status() == v1::EncounterRecord::IN_PROGRESS || e.status() == v1::EncounterRecord::FINISHED;
  if (started && !e.has_start_time()) {
    s.Error("start_time", "is required for an IN_PROGRESS or FINISHED encounter");
  }
  if (e.has_start_time() && e.has_end_time()) {
    const int64_t seconds = e.end_time().seconds() - e.start_time().seconds();
    if (seconds <= 0) {
      s.Error("end_time", "must be after start_time");
    } else if (seconds > int64_t{L::kMaxEncounterHours} * 3600) {
      s.Error("end_time",
              absl::StrCat("the encounter lasts more than ", L::kMaxEncounterHours, " hours"));
    }
  }
  if (e.has_practitioner()) CheckPractitioner(s, "practitioner", e.practitioner());
  CheckText(s, "location", e.location(), 200);
  CheckCodes(s, "reasons", e.reasons());
}

}  // namespace

void ValidateRecord(const v1::ClinicRecord& record, fhir::IssueList& issues) {
  const IssueScope s(issues);
  CheckId(s, "record_id", record.record_id(), true);
  CheckClinicId(s, record.clinic_id());
  CheckPatient(s, record);
  if (record.has_recorded_at()) CheckTime(s, "recorded_at", record.recorded_at());
  CheckEnum(s, "action", record.action(), v1::ClinicRecord::Action_IsValid, false, "action");
  switch (record.body_case()) {
    case v1::ClinicRecord::kInfusion:
      CheckInfusion(s.Field("infusion"), record.infusion(), record);
      break;
    case v1::ClinicRecord::kMedicationStatement:
      CheckMedicationStatement(s.Field("medication_statement"), record.medication_statement());
      break;
    case v1::ClinicRecord::kQuestionnaire:
      CheckQuestionnaire(s.Field("questionnaire"), record.questionnaire());
      break;
    case v1::ClinicRecord::kEncounter:
      CheckEncounter(s.Field("encounter"), record.encounter());
      break;
    case v1::ClinicRecord::kPatientRecord:
      s.Error("patient_record",
              "comes only from hospitals; clinics send patient details in patient");
      break;
    case v1::ClinicRecord::BODY_NOT_SET:
      s.Error("body",
              "one of infusion, medication_statement, questionnaire or encounter is required");
      break;
  }
}

}  // namespace fhirgw::mappers
