#include "fhir/primitives.h"

#include <charconv>
#include <cmath>
#include <cstddef>
#include <cstdint>
#include <string>
#include <system_error>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace fhirgw::fhir {
namespace {

using Precision = DateTime::Precision;

// Which FHIR type is being parsed; decides the precisions allowed and names the type in errors.
enum class Kind { kDate, kDateTime, kInstant };

constexpr int64_t kSecondsPerDay = 86400;
constexpr int32_t kNanosPerSecond = 1'000'000'000;
constexpr int kMaxFractionDigits = 9;
constexpr int kMaxOffsetMinutes = 14 * 60;
// Longer input is cut to this many characters (and "...") when quoted in an error.
constexpr size_t kMaxQuotedLength = 40;
// 10^(9 - digits): scales a fraction of `digits` digits to nanoseconds, and back.
constexpr int32_t kFractionScale[kMaxFractionDigits + 1] = {
    1'000'000'000, 100'000'000, 10'000'000, 1'000'000, 100'000, 10'000, 1'000, 100, 10, 1};

absl::string_view KindName(Kind kind) {
  switch (kind) {
    case Kind::kDate:
      return "date";
    case Kind::kDateTime:
      return "dateTime";
    case Kind::kInstant:
      return "instant";
  }
  return "value";
}

bool IsLeapYear(int64_t year) { return year % 4 == 0 && (year % 100 != 0 || year % 400 == 0); }

// `month` must be 1..12.
int DaysInMonth(int64_t year, int month) {
  static constexpr int kDays[12] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  return month == 2 && IsLeapYear(year) ? 29 : kDays[month - 1];
}

// Days since 1970-01-01 of a proleptic Gregorian date (Howard Hinnant's days_from_civil).
int64_t DaysFromCivil(int64_t year, int month, int day) {
  year -= month <= 2 ? 1 : 0;
  const int64_t era = (year >= 0 ? year : year - 399) / 400;
  const int64_t year_of_era = year - era * 400;  // [0, 399]
  const int64_t day_of_year = (153 * (month > 2 ? month - 3 : month + 9) + 2) / 5 + day - 1;
  const int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return era * 146097 + day_of_era - 719468;
}

// The proleptic Gregorian date of `days` since 1970-01-01 (Howard Hinnant's civil_from_days).
void CivilFromDays(int64_t days, int64_t* year, int* month, int* day) {
  days += 719468;
  const int64_t era = (days >= 0 ? days : days - 146096) / 146097;
  const int64_t day_of_era = days - era * 146097;  // [0, 146096]
  const int64_t year_of_era =
      (day_of_era - day_of_era / 1460 + day_of_era / 36524 - day_of_era / 146096) / 365;
  const int64_t day_of_year =
      day_of_era - (365 * year_of_era + year_of_era / 4 - year_of_era / 100);
  const int64_t month_index = (5 * day_of_year + 2) / 153;  // [0, 11], March first
  *day = static_cast<int>(day_of_year - (153 * month_index + 2) / 5 + 1);
  *month = static_cast<int>(month_index < 10 ? month_index + 3 : month_index - 9);
  *year = year_of_era + era * 400 + (*month <= 2 ? 1 : 0);
}

// Writes `value` in decimal, zero-padded to at least `width` digits, with a '-' when negative.
// `out` must have room for 21 characters.
char* WritePadded(char* out, int64_t value, int width) {
  uint64_t magnitude = static_cast<uint64_t>(value);
  if (value < 0) {
    *out++ = '-';
    magnitude = ~magnitude + 1;  // Also right for INT64_MIN.
  }
  char digits[20];
  int count = 0;
  do {
    digits[count++] = static_cast<char>('0' + magnitude % 10);
    magnitude /= 10;
  } while (magnitude != 0);
  for (int i = count; i < width; ++i) *out++ = '0';
  while (count > 0) *out++ = digits[--count];
  return out;
}

// Writes 0..99 as exactly two digits.
char* Write2(char* out, int value) {
  out[0] = static_cast<char>('0' + value / 10);
  out[1] = static_cast<char>('0' + value % 10);
  return out + 2;
}

// The fewest of 3, 6 or 9 digits that write `nanos` (1..999'999'999) exactly.
int InstantFractionDigits(int32_t nanos) {
  if (nanos % 1'000'000 == 0) return 3;
  if (nanos % 1'000 == 0) return 6;
  return 9;
}

// Reads exactly `count` ASCII digits at `*pos`; on success advances `*pos` and sets `*value`.
bool ReadDigits(absl::string_view text, size_t* pos, int count, int* value) {
  if (text.size() - *pos < static_cast<size_t>(count)) return false;
  int result = 0;
  for (int i = 0; i < count; ++i) {
    const char c = text[*pos + i];
    if (c < '0' || c > '9') return false;
    result = result * 10 + (c - '0');
  }
  *pos += count;
  *value = result;
  return true;
}

absl::Status Invalid(absl::string_view text, Kind kind, absl::string_view reason) {
  const absl::string_view ellipsis = text.size() > kMaxQuotedLength ? "..." : "";
  return absl::InvalidArgumentError(absl::StrCat("'", text.substr(0, kMaxQuotedLength), ellipsis,
                                                 "' is not a valid ", KindName(kind), ": ",
                                                 reason));
}

constexpr absl::string_view kInstantNeedsTime = "an instant needs a full date, a time and a zone";

// Hand-written matcher for the FHIR R4 date, dateTime and instant regexes, plus the calendar check
// (the day must exist in its month) that the regexes leave out.
absl::StatusOr<DateTime> Parse(absl::string_view text, Kind kind) {
  const auto fail = [text, kind](absl::string_view reason) { return Invalid(text, kind, reason); };
  const size_t size = text.size();
  size_t pos = 0;
  DateTime out;

  if (text.empty()) return fail("the text is empty");
  if (!ReadDigits(text, &pos, 4, &out.year)) return fail("the year needs 4 digits");
  if (out.year == 0) return fail("year 0000 is outside 0001..9999");
  if (pos == size) {
    if (kind == Kind::kInstant) return fail(kInstantNeedsTime);
    out.precision = Precision::kYear;
    return out;
  }
  if (text[pos++] != '-') return fail("expected '-' after the year");

  if (!ReadDigits(text, &pos, 2, &out.month)) return fail("the month needs 2 digits");
  if (out.month < 1 || out.month > 12) {
    return fail(absl::StrCat("month ", out.month, " is outside 1..12"));
  }
  if (pos == size) {
    if (kind == Kind::kInstant) return fail(kInstantNeedsTime);
    out.precision = Precision::kMonth;
    return out;
  }
  if (text[pos++] != '-') return fail("expected '-' after the month");

  if (!ReadDigits(text, &pos, 2, &out.day)) return fail("the day needs 2 digits");
  const int days_in_month = DaysInMonth(out.year, out.month);
  if (out.day < 1 || out.day > days_in_month) {
    return fail(absl::StrCat("day ", out.day, " is outside 1..", days_in_month));
  }
  if (pos == size) {
    if (kind == Kind::kInstant) return fail(kInstantNeedsTime);
    out.precision = Precision::kDay;
    return out;
  }
  if (kind == Kind::kDate) {
    return fail(text[pos] == 'T' ? "a date cannot have a time" : "unexpected text after the day");
  }
  if (text[pos++] != 'T') return fail("expected 'T' after the day");

  if (!ReadDigits(text, &pos, 2, &out.hour)) return fail("the hour needs 2 digits");
  if (out.hour > 23) return fail(absl::StrCat("hour ", out.hour, " is outside 0..23"));
  if (pos == size || text[pos++] != ':') return fail("expected ':' after the hour");
  if (!ReadDigits(text, &pos, 2, &out.minute)) return fail("the minute needs 2 digits");
  if (out.minute > 59) return fail(absl::StrCat("minute ", out.minute, " is outside 0..59"));
  if (pos == size) return fail("a time needs seconds and a zone");
  if (text[pos++] != ':') return fail("expected ':' after the minute");
  if (!ReadDigits(text, &pos, 2, &out.second)) return fail("the second needs 2 digits");
  if (out.second > 60) return fail(absl::StrCat("second ", out.second, " is outside 0..60"));

  if (pos < size && text[pos] == '.') {
    ++pos;
    int digits = 0;
    int32_t nanos = 0;
    for (; pos < size && text[pos] >= '0' && text[pos] <= '9'; ++pos, ++digits) {
      if (digits < kMaxFractionDigits) nanos = nanos * 10 + (text[pos] - '0');
    }
    if (digits == 0) return fail("the fraction needs at least 1 digit");
    if (digits > kMaxFractionDigits) {
      return fail(absl::StrCat("the fraction has ", digits, " digits, at most 9 are supported"));
    }
    out.nanos = nanos * kFractionScale[digits];
    out.fraction_digits = digits;
  }

  if (pos == size) return fail("a time needs a zone ('Z' or '+hh:mm')");
  const char zone = text[pos++];
  if (zone == 'Z') {
    out.zulu = true;
  } else if (zone == '+' || zone == '-') {
    int zone_hours = 0;
    int zone_minutes = 0;
    if (!ReadDigits(text, &pos, 2, &zone_hours) || pos == size || text[pos++] != ':' ||
        !ReadDigits(text, &pos, 2, &zone_minutes)) {
      return fail("the zone needs the form +hh:mm or -hh:mm");
    }
    const int offset = zone_hours * 60 + zone_minutes;
    if (zone_minutes > 59 || offset > kMaxOffsetMinutes) {
      return fail(absl::StrCat("zone ", text.substr(pos - 6, 6), " is outside -14:00..+14:00"));
    }
    out.tz_offset_minutes = zone == '-' ? -offset : offset;
  } else {
    return fail("expected a zone ('Z' or '+hh:mm') after the seconds");
  }
  if (pos != size) return fail("unexpected text after the zone");
  out.precision = Precision::kSecond;
  return out;
}

}  // namespace

absl::StatusOr<DateTime> ParseDate(absl::string_view text) { return Parse(text, Kind::kDate); }

absl::StatusOr<DateTime> ParseDateTime(absl::string_view text) {
  return Parse(text, Kind::kDateTime);
}

absl::StatusOr<DateTime> ParseInstant(absl::string_view text) {
  return Parse(text, Kind::kInstant);
}

std::string FormatDateTime(const DateTime& value) {
  // Fields are written with WritePadded so that even an out-of-range value built by hand stays
  // within the buffer (at most 7 fields of 21 characters plus separators).
  char buffer[192];
  char* out = WritePadded(buffer, value.year, 4);
  if (value.precision != Precision::kYear) {
    *out++ = '-';
    out = WritePadded(out, value.month, 2);
  }
  if (value.precision == Precision::kDay || value.precision == Precision::kSecond) {
    *out++ = '-';
    out = WritePadded(out, value.day, 2);
  }
  if (value.precision == Precision::kSecond) {
    *out++ = 'T';
    out = WritePadded(out, value.hour, 2);
    *out++ = ':';
    out = WritePadded(out, value.minute, 2);
    *out++ = ':';
    out = WritePadded(out, value.second, 2);
    int digits = value.fraction_digits;
    if (digits > kMaxFractionDigits) digits = kMaxFractionDigits;
    // A value built by hand with nanos but no digit count gets the instant's 3, 6 or 9 digits.
    if (digits <= 0 && value.nanos > 0 && value.nanos < kNanosPerSecond) {
      digits = InstantFractionDigits(value.nanos);
    }
    if (digits > 0) {
      *out++ = '.';
      out = WritePadded(out, value.nanos / kFractionScale[digits], digits);
    }
    if (value.zulu && value.tz_offset_minutes == 0) {
      *out++ = 'Z';
    } else {
      // "-00:00" parses to offset 0 without zulu and is written back as "+00:00".
      *out++ = value.tz_offset_minutes < 0 ? '-' : '+';
      const int64_t offset =
          value.tz_offset_minutes < 0 ? -int64_t{value.tz_offset_minutes} : value.tz_offset_minutes;
      out = WritePadded(out, offset / 60, 2);
      *out++ = ':';
      out = WritePadded(out, offset % 60, 2);
    }
  }
  return std::string(buffer, out);
}

std::string FormatInstant(int64_t seconds, int32_t nanos) {
  if (nanos < 0 || nanos >= kNanosPerSecond) {  // Normalize to 0..999'999'999, carrying.
    int64_t carry = nanos / kNanosPerSecond;
    nanos %= kNanosPerSecond;
    if (nanos < 0) {
      nanos += kNanosPerSecond;
      --carry;
    }
    if (__builtin_add_overflow(seconds, carry, &seconds)) {
      seconds = carry < 0 ? INT64_MIN : INT64_MAX;
    }
  }
  int64_t days = seconds / kSecondsPerDay;
  int64_t second_of_day = seconds % kSecondsPerDay;
  if (second_of_day < 0) {
    second_of_day += kSecondsPerDay;
    --days;
  }
  int64_t year = 0;
  int month = 0;
  int day = 0;
  CivilFromDays(days, &year, &month, &day);
  const int time = static_cast<int>(second_of_day);

  char buffer[64];  // Year up to 21 characters, the rest 30.
  char* out = WritePadded(buffer, year, 4);
  *out++ = '-';
  out = Write2(out, month);
  *out++ = '-';
  out = Write2(out, day);
  *out++ = 'T';
  out = Write2(out, time / 3600);
  *out++ = ':';
  out = Write2(out, time / 60 % 60);
  *out++ = ':';
  out = Write2(out, time % 60);
  if (nanos != 0) {
    const int digits = InstantFractionDigits(nanos);
    *out++ = '.';
    out = WritePadded(out, nanos / kFractionScale[digits], digits);
  }
  *out++ = 'Z';
  return std::string(buffer, out);
}

std::string FormatInstantMillis(int64_t unix_ms) {
  // FormatInstant normalizes the negative remainder of a time before 1970.
  return FormatInstant(unix_ms / 1000, static_cast<int32_t>(unix_ms % 1000) * 1'000'000);
}

absl::StatusOr<int64_t> ToUnixSeconds(const DateTime& value) {
  if (value.precision != Precision::kSecond) {
    return absl::InvalidArgumentError("only a dateTime with a time has Unix seconds");
  }
  if (value.month < 1 || value.month > 12) {
    return absl::InvalidArgumentError(absl::StrCat("month ", value.month, " is outside 1..12"));
  }
  const int days_in_month = DaysInMonth(value.year, value.month);
  if (value.day < 1 || value.day > days_in_month) {
    return absl::InvalidArgumentError(
        absl::StrCat("day ", value.day, " is outside 1..", days_in_month));
  }
  if (value.hour < 0 || value.hour > 23 || value.minute < 0 || value.minute > 59 ||
      value.second < 0 || value.second > 60) {
    return absl::InvalidArgumentError(absl::StrCat("time ", value.hour, ":", value.minute, ":",
                                                   value.second, " is not a time of day"));
  }
  if (value.tz_offset_minutes < -kMaxOffsetMinutes || value.tz_offset_minutes > kMaxOffsetMinutes) {
    return absl::InvalidArgumentError(absl::StrCat("zone offset ", value.tz_offset_minutes,
                                                   " minutes is outside -14:00..+14:00"));
  }
  // A leap second (60) counts as the first second of the next minute, as POSIX time does.
  return DaysFromCivil(value.year, value.month, value.day) * kSecondsPerDay + value.hour * 3600 +
         value.minute * 60 + value.second - int64_t{value.tz_offset_minutes} * 60;
}

bool IsValidDecimal(absl::string_view text) {
  const auto is_digit = [&text](size_t i) {
    return i < text.size() && text[i] >= '0' && text[i] <= '9';
  };
  size_t pos = 0;
  if (pos < text.size() && text[pos] == '-') ++pos;
  if (!is_digit(pos)) return false;
  if (text[pos] == '0') {
    ++pos;
  } else {
    while (is_digit(pos)) ++pos;
  }
  if (pos < text.size() && text[pos] == '.') {
    ++pos;
    if (!is_digit(pos)) return false;
    while (is_digit(pos)) ++pos;
  }
  if (pos < text.size() && (text[pos] == 'e' || text[pos] == 'E')) {
    ++pos;
    if (pos < text.size() && (text[pos] == '+' || text[pos] == '-')) ++pos;
    if (!is_digit(pos)) return false;
    while (is_digit(pos)) ++pos;
  }
  return pos == text.size();
}

// NaN and infinities are not FHIR decimals; callers must not pass them (they get "0", defensively).
// Outside 1e-6..1e15 the shortest form may use an exponent, e.g. 1e-7 -> "1e-7", 1e20 -> "1e+20".
std::string FormatDecimal(double value) {
  if (!std::isfinite(value) || value == 0) return "0";  // Also turns -0.0 into "0".
  char buffer[64];
  const double magnitude = std::fabs(value);
  // Without a precision argument both forms give the shortest text that reads back exactly.
  const std::to_chars_result result =
      magnitude >= 1e-6 && magnitude <= 1e15
          ? std::to_chars(buffer, buffer + sizeof(buffer), value, std::chars_format::fixed)
          : std::to_chars(buffer, buffer + sizeof(buffer), value);
  if (result.ec != std::errc()) return "0";  // Not reachable: the shortest form fits in 64 bytes.
  std::string text(buffer, result.ptr);
  // to_chars pads the exponent to 2 digits ("1e-07"); drop the padding ("1e-7") as JSON writers do.
  const size_t exponent = text.find('e');
  if (exponent != std::string::npos) {
    size_t first_digit = exponent + 1;
    if (text[first_digit] == '+' || text[first_digit] == '-') ++first_digit;
    size_t last_zero = first_digit;
    while (last_zero + 1 < text.size() && text[last_zero] == '0') ++last_zero;
    text.erase(first_digit, last_zero - first_digit);
  }
  return text;
}

}  // namespace fhirgw::fhir
