// Maps an EncounterRecord -> Patient and Encounter (conditional update).
#ifndef FHIRGW_MAPPERS_ENCOUNTER_MAPPER_H_
#define FHIRGW_MAPPERS_ENCOUNTER_MAPPER_H_

#include "mappers/common.h"

namespace fhirgw::mappers {

class EncounterMapper final : public RecordMapper {
 public:
  absl::Status ToFhir(const v1::ClinicRecord& record, const PreviousVersion& previous,
                      const MapContext& context, MapOutput& out) const override;
};

}  // namespace fhirgw::mappers

#endif  // FHIRGW_MAPPERS_ENCOUNTER_MAPPER_H_
