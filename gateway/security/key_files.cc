#include "gateway/security/key_files.h"

#include <sys/stat.h>

#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace fhirgw::gateway {

absl::Status CheckKeyFileMode(const std::string& path, absl::string_view field) {
  struct stat info {};
  if (path.empty() || ::stat(path.c_str(), &info) != 0) return absl::OkStatus();
  const mode_t mode = info.st_mode & 07777;
  // Others: never. Group: only read, and only on a root-owned file (a mounted Secret).
  const mode_t allowed_group = info.st_uid == 0 ? S_IRGRP : 0;
  if ((mode & S_IRWXO) == 0 && (mode & S_IRWXG & ~allowed_group) == 0) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrFormat(
      "%s: the key file '%s' has mode %04o: group or others may read it; make it private with "
      "chmod 600 '%s'",
      absl::string_view(field.data(), field.size()), path, mode, path));
}

absl::Status CheckKeyFilePermissions(const v1::GatewayConfig& config) {
  std::vector<std::pair<std::string, std::string>> files = {
      {"security.tls.key_file", config.security().tls().key_file()},
      {"audit.signing_key_file", config.audit().signing_key_file()},
  };
  for (int i = 0; i < config.security().encryption().keys_size(); ++i) {
    files.emplace_back(absl::StrCat("security.encryption.keys[", i, "].key_file"),
                       config.security().encryption().keys(i).key_file());
  }
  for (int i = 0; i < config.destinations_size(); ++i) {
    files.emplace_back(absl::StrCat("destinations[", i, "].auth.oauth2.private_key_file"),
                       config.destinations(i).auth().oauth2().private_key_file());
  }
  for (const auto& [field, path] : files) {
    if (absl::Status status = CheckKeyFileMode(path, field); !status.ok()) return status;
  }
  return absl::OkStatus();
}

}  // namespace fhirgw::gateway
