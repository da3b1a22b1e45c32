// Parsing JSON that comes from outside the process.
//
// Every reader of untrusted JSON (inbound FHIR bodies, EHR and OAuth responses, polling results,
// clinic records, CLI input) parses through these functions, so that no input can crash or exhaust
// the gateway: parsing is iterative (deep nesting cannot overflow the stack), at most
// `kMaxJsonDepth` arrays and objects may nest, and strings must be valid UTF-8 (so that no invalid
// text reaches a protobuf string field or a WatchInbound stream).
//
//   fhir::JsonDocument doc;
//   absl::Status parsed = fhir::ParseJson(body, doc);
//   if (!parsed.ok()) return parsed;  // "nesting deeper than 64 at offset 64"
//
// Errors are kInvalidArgument and name the problem and its byte offset; callers add what was read:
//   "nesting deeper than 64 at offset N", "invalid UTF-8 at offset N",
//   "Missing a comma or ']' after an array element. at offset N".
#ifndef FHIRGW_FHIR_JSON_PARSE_H_
#define FHIRGW_FHIR_JSON_PARSE_H_

#include <cstddef>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "fhir/json.h"

namespace fhirgw::fhir {

// The deepest nesting of arrays and objects any reader accepts; FHIR resources nest far less.
inline constexpr int kMaxJsonDepth = 64;

enum class JsonNumbers {
  kFast,           // RapidJSON's default double conversion
  kFullPrecision,  // correctly rounded (kParseFullPrecisionFlag)
};

// Parses `text` into `doc`. On error `doc` is null.
absl::Status ParseJson(absl::string_view text, JsonDocument& doc,
                       JsonNumbers numbers = JsonNumbers::kFast);

// Parses the NUL-terminated `buffer` in place: the strings of `doc` point into it.
absl::Status ParseJsonInsitu(char* buffer, JsonDocument& doc,
                             JsonNumbers numbers = JsonNumbers::kFast);

// Checks the limits alone, before another parser (protobuf's) reads `text`: nesting of at most
// `kMaxJsonDepth` outside strings, and valid UTF-8 throughout. Syntax errors are left to that
// parser.
absl::Status CheckJsonLimits(absl::string_view text);

// The offset of the first byte of `text` that does not begin a valid UTF-8 sequence (overlong
// forms, surrogates and code points above U+10FFFF are invalid), or npos.
size_t FindInvalidUtf8(absl::string_view text);

}  // namespace fhirgw::fhir

#endif  // FHIRGW_FHIR_JSON_PARSE_H_
