#include "gateway/ops/log.h"

#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/clock.h"
#include "fhir/primitives.h"

namespace fhirgw::gateway {
namespace {

void Write(absl::string_view level, absl::string_view message) {
  std::string line =
      absl::StrCat(fhir::FormatInstantMillis(base::UnixMillis()), " ", level, " ", message, "\n");
  // One fwrite per line keeps lines whole when threads log at once.
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace

void LogInfo(absl::string_view message) { Write("INFO", message); }
void LogWarning(absl::string_view message) { Write("WARN", message); }
void LogError(absl::string_view message) { Write("ERROR", message); }

}  // namespace fhirgw::gateway
