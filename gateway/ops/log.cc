#include "gateway/ops/log.h"

#include <cstdio>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/clock.h"
#include "fhir/primitives.h"

namespace fhirgw::gateway {
namespace {

void Write(absl::string_view level, absl::string_view message) {
  std::string line = absl::StrCat(fhir::FormatInstantMillis(base::UnixMillis()), " ", level, " ",
                                  EscapeControlCharacters(message), "\n");
  // One fwrite per line keeps lines whole when threads log at once.
  std::fwrite(line.data(), 1, line.size(), stderr);
}

}  // namespace

std::string EscapeControlCharacters(absl::string_view text) {
  std::string out;
  out.reserve(text.size());
  for (const char c : text) {
    const auto byte = static_cast<unsigned char>(c);
    if (byte >= 0x20 && byte != 0x7f) {
      out.push_back(c);
    } else if (c == '\n') {
      out += "\\n";
    } else if (c == '\r') {
      out += "\\r";
    } else if (c == '\t') {
      out += "\\t";
    } else {
      absl::StrAppend(&out, "\\x", absl::Hex(byte, absl::kZeroPad2));
    }
  }
  return out;
}

void LogInfo(absl::string_view message) { Write("INFO", message); }
void LogWarning(absl::string_view message) { Write("WARN", message); }
void LogError(absl::string_view message) { Write("ERROR", message); }

}  // namespace fhirgw::gateway
