// Code systems and codes fhirgw writes into FHIR R4 resources, in one place.
//
//   coding.Str("system", kLoinc).Str("code", kLoincHeartRate);
#ifndef FHIRGW_FHIR_CODES_H_
#define FHIRGW_FHIR_CODES_H_

namespace fhirgw::fhir {

// Code system URIs.
inline constexpr char kRxNorm[] = "http://www.nlm.nih.gov/research/umls/rxnorm";
inline constexpr char kSnomed[] = "http://snomed.info/sct";
inline constexpr char kLoinc[] = "http://loinc.org";
inline constexpr char kUcum[] = "http://unitsofmeasure.org";
inline constexpr char kNpi[] = "http://hl7.org/fhir/sid/us-npi";
inline constexpr char kObservationCategory[] =
    "http://terminology.hl7.org/CodeSystem/observation-category";
inline constexpr char kActCode[] = "http://terminology.hl7.org/CodeSystem/v3-ActCode";
inline constexpr char kAdverseEventSeverity[] =
    "http://terminology.hl7.org/CodeSystem/adverse-event-severity";
inline constexpr char kFlagCategory[] = "http://terminology.hl7.org/CodeSystem/flag-category";
inline constexpr char kAdministrativeGender[] = "http://hl7.org/fhir/administrative-gender";
inline constexpr char kMedicationStatementAdherence[] =
    "http://hl7.org/fhir/CodeSystem/medication-statement-adherence";
// R5's MedicationStatement.adherence, carried in R4 as a cross-version extension.
inline constexpr char kAdherenceExtension[] =
    "http://hl7.org/fhir/5.0/StructureDefinition/extension-MedicationStatement.adherence";
// fhirgw's own code system for encounter kinds (no standard code fits an infusion session).
inline constexpr char kFhirgwEncounterKind[] = "urn:fhirgw:code-system:encounter-kind";
// fhirgw's own code system for questionnaire timing relative to an infusion.
inline constexpr char kFhirgwQuestionnaireTiming[] = "urn:fhirgw:code-system:questionnaire-timing";

// Observation categories.
inline constexpr char kCategoryVitalSigns[] = "vital-signs";
inline constexpr char kCategorySurvey[] = "survey";

// Vital signs (LOINC) and their UCUM units.
inline constexpr char kLoincBloodPressurePanel[] = "85354-9";
inline constexpr char kLoincSystolic[] = "8480-6";
inline constexpr char kLoincDiastolic[] = "8462-4";
inline constexpr char kLoincHeartRate[] = "8867-4";
inline constexpr char kLoincSpo2[] = "59408-5";
inline constexpr char kLoincSpo2Base[] = "2708-6";
inline constexpr char kLoincRespiratoryRate[] = "9279-1";
inline constexpr char kLoincBodyWeight[] = "29463-7";
inline constexpr char kUcumMmHg[] = "mm[Hg]";
inline constexpr char kUcumPerMin[] = "/min";
inline constexpr char kUcumPercent[] = "%";
inline constexpr char kUcumKg[] = "kg";
inline constexpr char kUcumMg[] = "mg";
inline constexpr char kUcumMlPerHour[] = "mL/h";
inline constexpr char kUcumScore[] = "{score}";

// SNOMED CT routes of administration.
inline constexpr char kSnomedIntravenous[] = "47625008";
inline constexpr char kSnomedIntramuscular[] = "78421000";
inline constexpr char kSnomedNasal[] = "46713006";
inline constexpr char kSnomedSubcutaneous[] = "34206005";
inline constexpr char kSnomedOral[] = "26643006";

// SNOMED CT finding for the suicidal ideation Flag.
inline constexpr char kSnomedSuicidalThoughts[] = "6471006";

// RxNorm ingredients (and the esketamine nasal spray SCDF).
inline constexpr char kRxKetamine[] = "6130";
inline constexpr char kRxEsketamineNasalSpray[] = "2201623";

}  // namespace fhirgw::fhir

#endif  // FHIRGW_FHIR_CODES_H_
