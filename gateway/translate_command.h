// `fhirgw translate FILE|-`: clinic records (protobuf JSON) -> FHIR R4 transaction Bundles,
// offline.
//
// A file holding one JSON record (pretty or compact) gives one pretty-printed Bundle. NDJSON (one
// record a line; detected when the first line is a complete JSON value) gives one compact Bundle a
// line. Bad records are reported on stderr as "path: message" (prefixed "line N: " for NDJSON) and
// do not stop the others. Alerts (e.g. PHQ-9 item 9 positive) are reported on stderr as "alert:
// KIND: message".
#ifndef FHIRGW_GATEWAY_TRANSLATE_COMMAND_H_
#define FHIRGW_GATEWAY_TRANSLATE_COMMAND_H_

#include <cstdio>
#include <string>

namespace fhirgw::gateway {

struct TranslateOptions {
  bool item_observations = false;
  // Force compact output for a single record (NDJSON output is always compact).
  bool compact = false;
};

// Exit statuses of the translate command.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // unreadable input, unwritable output or usage error
inline constexpr int kExitInvalid = 2;  // at least one record was invalid

// Translates `path` ("-" reads `in`), writing Bundles to `out` and problems to `err`.
int RunTranslate(const std::string& path, const TranslateOptions& options, std::FILE* in,
                 std::FILE* out, std::FILE* err);

}  // namespace fhirgw::gateway

#endif  // FHIRGW_GATEWAY_TRANSLATE_COMMAND_H_
