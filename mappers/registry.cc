#include "mappers/registry.h"

#include "fhir/status_macros.h"
#include "mappers/encounter_mapper.h"
#include "mappers/infusion_mapper.h"
#include "mappers/medication_statement_mapper.h"
#include "mappers/questionnaire_mapper.h"
#include "mappers/safety.h"
#include "mappers/validate.h"

namespace fhirgw::mappers {

const RecordMapper* MapperFor(v1::ClinicRecord::BodyCase body) {
  static const InfusionMapper kInfusion;
  static const MedicationStatementMapper kMedicationStatement;
  static const QuestionnaireMapper kQuestionnaire;
  static const EncounterMapper kEncounter;
  switch (body) {
    case v1::ClinicRecord::kInfusion:
      return &kInfusion;
    case v1::ClinicRecord::kMedicationStatement:
      return &kMedicationStatement;
    case v1::ClinicRecord::kQuestionnaire:
      return &kQuestionnaire;
    case v1::ClinicRecord::kEncounter:
      return &kEncounter;
    case v1::ClinicRecord::kPatientRecord:
    case v1::ClinicRecord::BODY_NOT_SET:
      break;
  }
  return nullptr;
}

absl::StatusOr<MapOutput> MapToFhir(const v1::ClinicRecord& record, const MapContext& context,
                                    fhir::IssueList& issues, const PreviousVersion& previous) {
  const size_t first_new = issues.size();
  ValidateRecord(record, issues);
  fhir::IssueList found(issues.begin() + static_cast<std::ptrdiff_t>(first_new), issues.end());
  // The alerts come from the record as it is, so that a rejected record still raises them.
  std::vector<v1::Alert> alerts = SafetyAlerts(record);
  FHIRGW_RETURN_IF_ERROR(WithAlerts(fhir::IssuesToStatus(found), alerts));
  const RecordMapper* mapper = MapperFor(record.body_case());
  if (mapper == nullptr) return absl::InvalidArgumentError("body: no record kind is set");
  MapOutput out;
  FHIRGW_RETURN_IF_ERROR(mapper->ToFhir(record, previous, context, out));
  out.alerts = std::move(alerts);
  return out;
}

bool UsesPreviousVersion(const v1::ClinicRecord& record) { return record.has_questionnaire(); }

const char* KindName(v1::ClinicRecord::BodyCase body) {
  switch (body) {
    case v1::ClinicRecord::kInfusion:
      return "infusion";
    case v1::ClinicRecord::kMedicationStatement:
      return "medication_statement";
    case v1::ClinicRecord::kQuestionnaire:
      return "questionnaire";
    case v1::ClinicRecord::kEncounter:
      return "encounter";
    case v1::ClinicRecord::kPatientRecord:
      return "patient";
    case v1::ClinicRecord::BODY_NOT_SET:
      break;
  }
  return "none";
}

}  // namespace fhirgw::mappers

namespace fhirgw::mappers {

v1::RecordKind RecordKindOf(const v1::ClinicRecord& record) {
  switch (record.body_case()) {
    case v1::ClinicRecord::kInfusion:
      return v1::INFUSION;
    case v1::ClinicRecord::kMedicationStatement:
      return v1::MEDICATION_STATEMENT;
    case v1::ClinicRecord::kQuestionnaire:
      return v1::QUESTIONNAIRE;
    case v1::ClinicRecord::kEncounter:
      return v1::ENCOUNTER;
    case v1::ClinicRecord::kPatientRecord:
      return v1::PATIENT;
    case v1::ClinicRecord::BODY_NOT_SET:
      break;
  }
  return v1::RECORD_KIND_UNSPECIFIED;
}

}  // namespace fhirgw::mappers
