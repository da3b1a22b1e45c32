// Maps an InfusionRecord -> Patient, Encounter (when encounter_id is set),
// MedicationAdministration, vital-sign Observations, a body-weight Observation and one AdverseEvent
// per adverse event.
#ifndef FHIRGW_MAPPERS_INFUSION_MAPPER_H_
#define FHIRGW_MAPPERS_INFUSION_MAPPER_H_

#include "mappers/common.h"

namespace fhirgw::mappers {

class InfusionMapper final : public RecordMapper {
 public:
  absl::Status ToFhir(const v1::ClinicRecord& record, const PreviousVersion& previous,
                      const MapContext& context, MapOutput& out) const override;
};

}  // namespace fhirgw::mappers

#endif  // FHIRGW_MAPPERS_INFUSION_MAPPER_H_
