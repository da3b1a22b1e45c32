// Record validation before mapping: required fields, enum values, timestamps and clinical
// plausibility. Every problem is reported with its proto field path, and all of them at once.
//
//   fhir::IssueList issues;
//   ValidateRecord(record, issues);
//   // issues: {"infusion.vitals[1].spo2_percent", "140 is outside 50..100"}, ...
#ifndef FHIRGW_MAPPERS_VALIDATE_H_
#define FHIRGW_MAPPERS_VALIDATE_H_

#include "fhir/issues.h"
#include "fhirgw/v1/records.pb.h"

namespace fhirgw::mappers {

// Appends every problem of `record` to `issues`; a record with no error may be mapped.
void ValidateRecord(const v1::ClinicRecord& record, fhir::IssueList& issues);

// Plausibility limits, in one place so that docs and tests can name them.
struct Limits {
  static constexpr double kKetamineMinMgPerKg = 0.05;
  static constexpr double kKetamineMaxMgPerKg = 3.0;
  static constexpr double kMaxMgPerKg = 10.0;
  static constexpr double kMinWeightKg = 10;
  static constexpr double kMaxWeightKg = 400;
  static constexpr double kMaxTotalDoseMg = 1000;
  static constexpr double kDoseTolerance = 0.01;
  // Esketamine nasal spray: at most three 28 mg devices a session.
  static constexpr double kEsketamineMaxTotalMg = 84;
  // Rate x duration x concentration against the stated dose: pumps are titrated and times are
  // recorded to the minute, so 10% of the larger of the two.
  static constexpr double kRateDoseTolerance = 0.10;
  static constexpr double kMaxRateMlPerHour = 1000;
  static constexpr double kMaxConcentrationMgPerMl = 100;
  static constexpr int kMinSessionMinutes = 1;
  static constexpr int kMaxSessionMinutes = 240;
  static constexpr int kMaxSeriesLength = 100;
  static constexpr int kMinSystolic = 50, kMaxSystolic = 260;
  static constexpr int kMinDiastolic = 20, kMaxDiastolic = 180;
  static constexpr int kMinHeartRate = 20, kMaxHeartRate = 250;
  static constexpr double kMinSpo2 = 50, kMaxSpo2 = 100;
  static constexpr int kMinRespiratoryRate = 4, kMaxRespiratoryRate = 60;
  // Vitals may be taken before the infusion (baseline) and during recovery, within this window.
  static constexpr int kVitalsWindowHours = 12;
  static constexpr int kMaxEncounterHours = 24;
  static constexpr size_t kMaxIdLength = 128;
  static constexpr size_t kMaxTextLength = 10000;
};

}  // namespace fhirgw::mappers

#endif  // FHIRGW_MAPPERS_VALIDATE_H_
