// `fhirgw translate FILE|-`: clinic records (protobuf JSON) -> FHIR R4 transaction Bundles,
// offline.
//
// A file holding one JSON record (pretty or compact) gives one pretty-printed Bundle. NDJSON (one
// record a line; detected when the first line is a complete JSON value) gives one compact Bundle a
// line. Bad records are reported on stderr as "path: message" (prefixed "line N: " for NDJSON) and
// do not stop the others. Alerts (e.g. PHQ-9 item 9 positive) are reported on stderr as "alert:
// KIND: message".
//
// With `reverse`, the direction is FHIR R4 -> clinic records: the input is FHIR JSON (one resource,
// a Bundle, or NDJSON of resources and Bundles) and every record mapped is printed as compact
// protobuf JSON, one a line; problems go to stderr as "path: message" with FHIR element paths. The
// exit status is 2 only when nothing could be mapped.
#ifndef FHIRGW_GATEWAY_CLI_TRANSLATE_COMMAND_H_
#define FHIRGW_GATEWAY_CLI_TRANSLATE_COMMAND_H_

#include <cstdio>
#include <string>

namespace fhirgw::gateway {

struct TranslateOptions {
  bool item_observations = false;
  // Force compact output for a single record (NDJSON output is always compact).
  bool compact = false;
  // Map FHIR R4 JSON to clinic records instead (see above).
  bool reverse = false;
};

// Exit statuses of the translate command.
inline constexpr int kExitOk = 0;
inline constexpr int kExitFailure = 1;  // unreadable input, unwritable output or usage error
inline constexpr int kExitInvalid = 2;  // at least one record was invalid (reverse: none mapped)

// Translates `path` ("-" reads `in`), writing Bundles to `out` and problems to `err`.
int RunTranslate(const std::string& path, const TranslateOptions& options, std::FILE* in,
                 std::FILE* out, std::FILE* err);

}  // namespace fhirgw::gateway

#endif  // FHIRGW_GATEWAY_CLI_TRANSLATE_COMMAND_H_
