// The entry point for clinic record -> FHIR: validate, pick the mapper for the record's kind, map.
//
//   fhir::IssueList issues;
//   absl::StatusOr<MapOutput> out = MapToFhir(record, MapContext::ForTenant("clinic-a"), issues);
//   if (!out.ok()) { /* InvalidArgument; `issues` names every bad field */ }
//   // A later version of a record: pass what the log holds of the version before.
//   out = MapToFhir(correction, context, issues, PreviousVersion{.alerts = logged_alerts});
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
// and give InvalidArgument listing each as "path: message"; nothing is mapped then. `previous` is
// what the log holds of the record's previous version (see UsesPreviousVersion); a dry run such as
// `fhirgw translate` maps without it.
absl::StatusOr<MapOutput> MapToFhir(const v1::ClinicRecord& record, const MapContext& context,
                                    fhir::IssueList& issues, const PreviousVersion& previous = {});

// True when the mapping of `record` depends on its PreviousVersion (a questionnaire: its
// correction resolves the suicidal-ideation Flag of the version before), so that callers read the
// log only for the records that need it.
bool UsesPreviousVersion(const v1::ClinicRecord& record);

// The record kind as a short lowercase name ("infusion", ...), for metrics and logs.
const char* KindName(v1::ClinicRecord::BodyCase body);

// The record kind of the log and the audit API.
v1::RecordKind RecordKindOf(const v1::ClinicRecord& record);

}  // namespace fhirgw::mappers

#endif  // FHIRGW_MAPPERS_REGISTRY_H_
