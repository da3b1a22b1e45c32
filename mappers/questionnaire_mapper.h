// Maps a QuestionnaireRecord -> Patient, QuestionnaireResponse, a total-score Observation with its
// severity band (and item Observations when configured), and a Flag plus an alert when PHQ-9 item 9
// is above 0. When the previous version of the record raised SUICIDAL_IDEATION and this one does
// not, the same Flag is written inactive, with period.end when the correction was recorded.
#ifndef FHIRGW_MAPPERS_QUESTIONNAIRE_MAPPER_H_
#define FHIRGW_MAPPERS_QUESTIONNAIRE_MAPPER_H_

#include "mappers/common.h"

namespace fhirgw::mappers {

class QuestionnaireMapper final : public RecordMapper {
 public:
  absl::Status ToFhir(const v1::ClinicRecord& record, const PreviousVersion& previous,
                      const MapContext& context, MapOutput& out) const override;
};

}  // namespace fhirgw::mappers

#endif  // FHIRGW_MAPPERS_QUESTIONNAIRE_MAPPER_H_
