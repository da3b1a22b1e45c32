// Clinic records as protobuf JSON (lowerCamelCase names, enum values by name), the form clinics
// write.
//
//   absl::StatusOr<v1::ClinicRecord> record = ParseRecordJson(line);
//   // error: InvalidArgument "infusion.vitals[0].spoPercent: unknown field ..."
#ifndef FHIRGW_MAPPERS_RECORD_JSON_H_
#define FHIRGW_MAPPERS_RECORD_JSON_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "fhirgw/v1/records.pb.h"

namespace fhirgw::mappers {

// Parses one ClinicRecord from protobuf JSON; unknown fields are errors (a misspelt field must not
// silently drop clinical data).
absl::StatusOr<v1::ClinicRecord> ParseRecordJson(absl::string_view json);

// Writes `record` as protobuf JSON (compact, proto field names in lowerCamelCase).
std::string RecordToJson(const v1::ClinicRecord& record);

}  // namespace fhirgw::mappers

#endif  // FHIRGW_MAPPERS_RECORD_JSON_H_
