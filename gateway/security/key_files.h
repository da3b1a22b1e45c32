// Refusing private keys that other users can read.
//
// `fhirgw serve` checks every key file its configuration names (security.tls.key_file,
// audit.signing_key_file, security.encryption.keys[].key_file, and each destination's
// auth.oauth2.private_key_file) before it starts: a key that group or others may read is refused,
// with the file and its mode in the error. As PostgreSQL does for its server key, a file owned by
// root may be group-readable (mode 0640 or less): that is how Kubernetes mounts a Secret for a
// non-root container (fsGroup).
//
//   FHIRGW_RETURN_IF_ERROR(CheckKeyFilePermissions(config));
#ifndef FHIRGW_GATEWAY_SECURITY_KEY_FILES_H_
#define FHIRGW_GATEWAY_SECURITY_KEY_FILES_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "fhirgw/v1/config.pb.h"

namespace fhirgw::gateway {

// Returns FailedPrecondition naming `field`, `path` and its mode when group or others may read or
// write the file `path` (see above for root-owned files); OK when the file is private or does not
// exist (reading it reports that).
absl::Status CheckKeyFileMode(const std::string& path, absl::string_view field);

// Runs CheckKeyFileMode on every key file `config` names.
absl::Status CheckKeyFilePermissions(const v1::GatewayConfig& config);

}  // namespace fhirgw::gateway

#endif  // FHIRGW_GATEWAY_SECURITY_KEY_FILES_H_
