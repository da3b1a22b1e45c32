// Reading a whole file into a string, with an error that names the file.
//
//   absl::StatusOr<std::string> pem = base::ReadFile(config.ca_file());
//   if (!pem.ok()) return pem.status();  // NotFound: "cannot read '/etc/ca.pem': No such file..."
#ifndef FHIRGW_BASE_FILE_H_
#define FHIRGW_BASE_FILE_H_

#include <string>

#include "absl/status/statusor.h"

namespace fhirgw::base {

// Returns the bytes of the file at `path`. On failure the code follows errno (NotFound,
// PermissionDenied, FailedPrecondition for a directory, ...) and the message is
// "cannot read '<path>': <reason>".
absl::StatusOr<std::string> ReadFile(const std::string& path);

}  // namespace fhirgw::base

#endif  // FHIRGW_BASE_FILE_H_
