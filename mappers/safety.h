// Safety signals: the alerts a record raises, whether or not it is valid, and the product rules for
// ketamine and esketamine. A rejected record still carries its alerts (in the status payload), so
// that a positive PHQ-9 item 9 never goes unnoticed because another field was wrong.
//
//   std::vector<v1::Alert> alerts = SafetyAlerts(record);      // any record, even an invalid one
//   absl::Status rejected = WithAlerts(IssuesToStatus(issues), alerts);
//   for (const v1::Alert& alert : AlertsOf(rejected)) Show(alert);
#ifndef FHIRGW_MAPPERS_SAFETY_H_
#define FHIRGW_MAPPERS_SAFETY_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "fhirgw/v1/gateway.pb.h"
#include "fhirgw/v1/records.pb.h"

namespace fhirgw::mappers {

// Vital signs that raise UNSAFE_VITAL_SIGNS: beyond what is safe to keep infusing.
struct SafeVitalLimits {
  static constexpr int kSystolic = 180;           // alert at or above
  static constexpr int kDiastolic = 110;          // alert at or above
  static constexpr int kHeartRate = 130;          // alert above
  static constexpr double kSpo2 = 90;             // alert below
  static constexpr int kMinRespiratoryRate = 10;  // alert below (respiratory depression)
  static constexpr int kMaxRespiratoryRate = 30;  // alert above
};

enum class KetamineProduct { kNone, kKetamine, kEsketamine };

// Returns which ketamine product `medication` is: by RxNorm code (6130 ketamine, 2201623
// esketamine nasal spray) or by its display, case-insensitive ("esketamine", "Spravato",
// "ketamine", "Ketalar"), so that a product coded otherwise or given as text is still checked.
KetamineProduct KetamineProductOf(const v1::Code& medication);

// Describes the measurements of `vitals` beyond SafeVitalLimits ("BP 185/100 mmHg (>= 180/110),
// SpO2 88% (< 90%)"); empty when there are none.
std::string UnsafeVitals(const v1::Vitals& vitals);

// Returns the dose in mg that `infusion` delivered by rate x duration x concentration, when it has
// rate_ml_per_hour, concentration_mg_per_ml, start_time and an end_time after it.
std::optional<double> DoseFromRateMg(const v1::InfusionRecord& infusion);

// Returns the alerts of `record`: SUICIDAL_IDEATION (PHQ-9 item 9 above 0), UNSAFE_VITAL_SIGNS,
// SEVERE_ADVERSE_EVENT. Reads the record as it is, valid or not; a retraction raises none.
std::vector<v1::Alert> SafetyAlerts(const v1::ClinicRecord& record);

// The payload type of the alerts in a status (a serialized v1::AlertList).
inline constexpr char kAlertsPayloadUrl[] = "type.googleapis.com/fhirgw.v1.AlertList";

// Returns `status` with `alerts` attached (payload kAlertsPayloadUrl) and named at the end of its
// message; `status` itself when it is OK or there are no alerts.
absl::Status WithAlerts(const absl::Status& status, const std::vector<v1::Alert>& alerts);
// Returns the alerts attached to `status` by WithAlerts.
std::vector<v1::Alert> AlertsOf(const absl::Status& status);

}  // namespace fhirgw::mappers

#endif  // FHIRGW_MAPPERS_SAFETY_H_
