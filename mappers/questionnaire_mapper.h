// Maps a QuestionnaireRecord -> Patient, QuestionnaireResponse, a total-score Observation with its
// severity band (and item Observations when configured), and a Flag plus an alert when PHQ-9 item 9
// is above 0.
#ifndef FHIRGW_MAPPERS_QUESTIONNAIRE_MAPPER_H_
#define FHIRGW_MAPPERS_QUESTIONNAIRE_MAPPER_H_

#include "mappers/common.h"

namespace fhirgw::mappers {

class QuestionnaireMapper final : public RecordMapper {
 public:
  absl::Status ToFhir(const v1::ClinicRecord& record, const MapContext& context,
                      MapOutput& out) const override;
};

}  // namespace fhirgw::mappers

#endif  // FHIRGW_MAPPERS_QUESTIONNAIRE_MAPPER_H_
