// The entry point for clinic record -> FHIR: validate, pick the mapper for the record's kind, map.
//
//   fhir::IssueList issues;
//   absl::StatusOr<MapOutput> out = MapToFhir(record, MapContext::ForTenant("clinic-a"), issues);
//   if (!out.ok()) { /* InvalidArgument; `issues` names every bad field */ }
//   std::string bundle = out->bundle.Write(fhir::JsonStyle::kCompact);
#ifndef FHIRGW_MAPPERS_REGISTRY_H_
#define FHIRGW_MAPPERS_REGISTRY_H_

#include "absl/status/statusor.h"
#include "fhir/issues.h"
#include "mappers/common.h"

namespace fhirgw::mappers {

// Returns the mapper for a record body, or nullptr for BODY_NOT_SET.
const RecordMapper* MapperFor(v1::ClinicRecord::BodyCase body);

// Validates `record` and maps it to a transaction Bundle. Data problems are appended to `issues`
// and give InvalidArgument listing each as "path: message"; nothing is mapped then.
absl::StatusOr<MapOutput> MapToFhir(const v1::ClinicRecord& record, const MapContext& context,
                                    fhir::IssueList& issues);

// The record kind as a short lowercase name ("infusion", ...), for metrics and logs.
const char* KindName(v1::ClinicRecord::BodyCase body);

// The record kind of the log and the audit API.
v1::RecordKind RecordKindOf(const v1::ClinicRecord& record);

}  // namespace fhirgw::mappers

#endif  // FHIRGW_MAPPERS_REGISTRY_H_
