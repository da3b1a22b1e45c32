// Maps a MedicationStatementRecord -> Patient and MedicationStatement (conditional update, so a
// later STOPPED replaces ACTIVE).
#ifndef FHIRGW_MAPPERS_MEDICATION_STATEMENT_MAPPER_H_
#define FHIRGW_MAPPERS_MEDICATION_STATEMENT_MAPPER_H_

#include "mappers/common.h"

namespace fhirgw::mappers {

class MedicationStatementMapper final : public RecordMapper {
 public:
  absl::Status ToFhir(const v1::ClinicRecord& record, const PreviousVersion& previous,
                      const MapContext& context, MapOutput& out) const override;
};

}  // namespace fhirgw::mappers

#endif  // FHIRGW_MAPPERS_MEDICATION_STATEMENT_MAPPER_H_
