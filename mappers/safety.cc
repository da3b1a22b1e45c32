#include "mappers/safety.h"

#include <algorithm>
#include <cmath>

#include "absl/strings/ascii.h"
#include "absl/strings/cord.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "fhir/codes.h"
#include "fhir/instruments.h"
#include "fhir/primitives.h"
#include "mappers/common.h"

namespace fhirgw::mappers {
namespace {

using V = SafeVitalLimits;

// RxNorm SCDF of esketamine nasal spray (DESIGN.md).
constexpr char kRxEsketamineNasalSpray[] = "2201623";

v1::Alert& AddAlert(std::vector<v1::Alert>& alerts, v1::Alert::Kind kind) {
  v1::Alert& alert = alerts.emplace_back();
  alert.set_kind(kind);
  return alert;
}

void AddSuicidalIdeation(const v1::QuestionnaireRecord& q, std::vector<v1::Alert>& alerts) {
  // GAD-7 and PHQ-2 have no item 9; any other record answering item 9 is a PHQ-9 (even one whose
  // instrument is missing or wrong, which is rejected: the alert still goes out).
  if (q.instrument() == v1::QuestionnaireRecord::GAD7 ||
      q.instrument() == v1::QuestionnaireRecord::PHQ2) {
    return;
  }
  int item9 = 0;
  for (const v1::Answer& answer : q.answers()) {
    if (answer.item() == 9 && answer.has_value()) item9 = std::max(item9, answer.value());
  }
  if (item9 <= 0) return;
  const auto frequency = fhir::FrequencyAnswers();
  const std::string answer = item9 < static_cast<int>(frequency.size())
                                 ? frequency[item9].display
                                 : absl::StrCat("out-of-range value ", item9);
  AddAlert(alerts, v1::Alert::SUICIDAL_IDEATION)
      .set_message(absl::StrCat(
          "PHQ-9 item 9 (thoughts of being better off dead or of self-harm) answered \"", answer,
          "\" (", item9, "): the patient needs a safety assessment today"));
}

void AddInfusionAlerts(const v1::InfusionRecord& infusion, std::vector<v1::Alert>& alerts) {
  for (int i = 0; i < infusion.vitals_size(); ++i) {
    const std::string unsafe = UnsafeVitals(infusion.vitals(i));
    if (unsafe.empty()) continue;
    AddAlert(alerts, v1::Alert::UNSAFE_VITAL_SIGNS)
        .set_message(absl::StrCat("vital signs beyond the safe infusion limits: ", unsafe,
                                  " (infusion.vitals[", i, "])"));
  }
  for (int i = 0; i < infusion.adverse_events_size(); ++i) {
    const v1::AdverseEvent& event = infusion.adverse_events(i);
    if (event.severity() != v1::AdverseEvent::SEVERE) continue;
    AddAlert(alerts, v1::Alert::SEVERE_ADVERSE_EVENT)
        .set_message(absl::StrCat(
            "severe adverse event during the infusion: ", AdverseEventCode(event.kind()).display,
            " (infusion.adverse_events[", i, "])"));
  }
}

}  // namespace

KetamineProduct KetamineProductOf(const v1::Code& medication) {
  if (medication.system() == fhir::kRxNorm) {
    if (medication.code() == fhir::kRxKetamine) return KetamineProduct::kKetamine;
    if (medication.code() == kRxEsketamineNasalSpray) return KetamineProduct::kEsketamine;
  }
  const std::string display = absl::AsciiStrToLower(medication.display());
  if (absl::StrContains(display, "esketamine") || absl::StrContains(display, "spravato")) {
    return KetamineProduct::kEsketamine;
  }
  if (absl::StrContains(display, "ketamine") || absl::StrContains(display, "ketalar")) {
    return KetamineProduct::kKetamine;
  }
  return KetamineProduct::kNone;
}

std::string UnsafeVitals(const v1::Vitals& v) {
  std::string out;
  const auto add = [&out](const std::string& part) {
    absl::StrAppend(&out, out.empty() ? "" : ", ", part);
  };
  if ((v.has_systolic_mmhg() && v.systolic_mmhg() >= V::kSystolic) ||
      (v.has_diastolic_mmhg() && v.diastolic_mmhg() >= V::kDiastolic)) {
    add(absl::StrCat("BP ", v.has_systolic_mmhg() ? absl::StrCat(v.systolic_mmhg()) : "?", "/",
                     v.has_diastolic_mmhg() ? absl::StrCat(v.diastolic_mmhg()) : "?",
                     " mmHg (>= ", V::kSystolic, "/", V::kDiastolic, ")"));
  }
  if (v.has_heart_rate_bpm() && v.heart_rate_bpm() > V::kHeartRate) {
    add(absl::StrCat("heart rate ", v.heart_rate_bpm(), "/min (> ", V::kHeartRate, ")"));
  }
  if (v.has_spo2_percent() && std::isfinite(v.spo2_percent()) && v.spo2_percent() < V::kSpo2) {
    add(absl::StrCat("SpO2 ", fhir::FormatDecimal(v.spo2_percent()), "% (< ",
                     fhir::FormatDecimal(V::kSpo2), "%)"));
  }
  if (v.has_respiratory_rate() && (v.respiratory_rate() < V::kMinRespiratoryRate ||
                                   v.respiratory_rate() > V::kMaxRespiratoryRate)) {
    add(absl::StrCat("respiratory rate ", v.respiratory_rate(), "/min (outside ",
                     V::kMinRespiratoryRate, "..", V::kMaxRespiratoryRate, ")"));
  }
  return out;
}

std::optional<double> DoseFromRateMg(const v1::InfusionRecord& infusion) {
  if (!infusion.has_rate_ml_per_hour() || !infusion.has_concentration_mg_per_ml() ||
      !infusion.has_start_time() || !infusion.has_end_time()) {
    return std::nullopt;
  }
  const int64_t seconds = infusion.end_time().seconds() - infusion.start_time().seconds();
  const double mg =
      infusion.rate_ml_per_hour() * infusion.concentration_mg_per_ml() * seconds / 3600.0;
  if (seconds <= 0 || !std::isfinite(mg)) return std::nullopt;
  return std::round(mg * 100) / 100;
}

std::vector<v1::Alert> SafetyAlerts(const v1::ClinicRecord& record) {
  std::vector<v1::Alert> alerts;
  if (IsRetraction(record)) return alerts;
  if (record.has_questionnaire()) AddSuicidalIdeation(record.questionnaire(), alerts);
  if (record.has_infusion()) AddInfusionAlerts(record.infusion(), alerts);
  return alerts;
}

absl::Status WithAlerts(const absl::Status& status, const std::vector<v1::Alert>& alerts) {
  if (status.ok() || alerts.empty()) return status;
  std::string message(status.message());
  v1::AlertList list;
  for (const v1::Alert& alert : alerts) {
    absl::StrAppend(&message, "; alert ", v1::Alert::Kind_Name(alert.kind()), ": ",
                    alert.message());
    *list.add_alerts() = alert;
  }
  absl::Status out(status.code(), message);
  status.ForEachPayload(
      [&out](absl::string_view url, const absl::Cord& payload) { out.SetPayload(url, payload); });
  out.SetPayload(kAlertsPayloadUrl, absl::Cord(list.SerializeAsString()));
  return out;
}

std::vector<v1::Alert> AlertsOf(const absl::Status& status) {
  const auto payload = status.GetPayload(kAlertsPayloadUrl);
  if (!payload.has_value()) return {};
  v1::AlertList list;
  if (!list.ParseFromString(std::string(*payload))) return {};
  return {list.alerts().begin(), list.alerts().end()};
}

}  // namespace fhirgw::mappers
