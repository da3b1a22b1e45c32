// FHIR R4 primitive types converted to and from text by the spec's rules.
//
// date      YYYY | YYYY-MM | YYYY-MM-DD
// dateTime  a date, or YYYY-MM-DDThh:mm:ss[.f+](Z|(+|-)hh:mm) -- a time always carries seconds and
// a zone instant   YYYY-MM-DDThh:mm:ss[.f+](Z|(+|-)hh:mm) decimal
// -?(0|[1-9][0-9]*)(\.[0-9]+)?([eE][+-]?[0-9]+)?
//
//   absl::StatusOr<DateTime> dt = ParseDateTime("2026-11-20T14:05:00+01:00");
//   if (dt.ok()) std::string text = FormatDateTime(*dt);  // the same text back
//   std::string now = FormatInstant(1763647500, 0);         // "2025-11-20T14:05:00Z"
#ifndef FHIRGW_FHIR_PRIMITIVES_H_
#define FHIRGW_FHIR_PRIMITIVES_H_

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace fhirgw::fhir {

struct DateTime {
  enum class Precision { kYear, kMonth, kDay, kSecond };
  Precision precision = Precision::kDay;
  int year = 0;
  int month = 1;  // 1..12 (1 when precision is kYear)
  int day = 1;    // 1..31 (1 when precision is coarser than kDay)
  int hour = 0;   // the fields below are meaningful only at kSecond
  int minute = 0;
  int second = 0;  // 0..60 (60 is a leap second, as the spec's regex allows)
  int32_t nanos = 0;
  // Number of fractional-second digits written in the source text (0..9), kept so text round-trips.
  int fraction_digits = 0;
  // Zone offset in minutes east of UTC; "Z" is 0 with zulu = true.
  int tz_offset_minutes = 0;
  bool zulu = false;
};

// Parses a FHIR `date`. Errors name the problem, e.g. "'2026-02-30' is not a valid date: day 30 is
// outside 1..28".
absl::StatusOr<DateTime> ParseDate(absl::string_view text);
// Parses a FHIR `dateTime` (a partial date, or a full date and time with seconds and a zone).
absl::StatusOr<DateTime> ParseDateTime(absl::string_view text);
// Parses a FHIR `instant` (full precision with a zone).
absl::StatusOr<DateTime> ParseInstant(absl::string_view text);

// Formats `value` at its precision; FormatDateTime(ParseDateTime(s)) == s for every valid s, except
// that a "-00:00" zone (which DateTime cannot tell from "+00:00") is written "+00:00".
std::string FormatDateTime(const DateTime& value);

// Returns the UTC instant "YYYY-MM-DDThh:mm:ss[.fff]Z" for Unix time `seconds` + `nanos`. The
// fraction is omitted when `nanos` is 0, otherwise written with 3, 6 or 9 digits, the fewest that
// are exact.
std::string FormatInstant(int64_t seconds, int32_t nanos);
// Returns FormatInstant of `unix_ms`, milliseconds since the Unix epoch (as the log stores times).
std::string FormatInstantMillis(int64_t unix_ms);

// Returns the Unix seconds of a value at kSecond precision (zone applied), or InvalidArgument.
absl::StatusOr<int64_t> ToUnixSeconds(const DateTime& value);

// Returns true when `text` matches the FHIR decimal grammar.
bool IsValidDecimal(absl::string_view text);

// Formats `value` as the shortest decimal text that reads back as the same double ("0.5", "35",
// "36.15"), never in exponent form for magnitudes within 1e-6..1e15.
std::string FormatDecimal(double value);

}  // namespace fhirgw::fhir

#endif  // FHIRGW_FHIR_PRIMITIVES_H_
