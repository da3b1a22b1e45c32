#include "fhir/primitives.h"

#include <cmath>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <ctime>
#include <limits>
#include <random>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fhirgw::fhir {
namespace {

using ::testing::HasSubstr;
using Precision = DateTime::Precision;
using ParseFunction = absl::StatusOr<DateTime> (*)(absl::string_view);

std::string Message(const absl::Status& status) { return std::string(status.message()); }

// Valid dateTime texts; each must parse and format back to exactly the same text.
const std::vector<std::string>& ValidDateTimes() {
  static const auto* const kTexts = new std::vector<std::string>{
      "2026",
      "0001",
      "0010",
      "0100",
      "1000",
      "9999",
      "2026-01",
      "2026-11",
      "2026-12",
      "2026-11-20",
      "2024-02-29",
      "2000-02-29",
      "2026-02-28",
      "2026-04-30",
      "2026-12-31",
      "0001-01-01",
      "2026-11-20T14:05:00Z",
      "2026-11-20T14:05:00+01:00",
      "2026-11-20T14:05:00-05:00",
      "2026-11-20T14:05:00+00:00",
      "2026-11-20T14:05:00+05:30",
      "2026-11-20T14:05:00-09:45",
      "2026-11-20T14:05:00+13:59",
      "2026-11-20T14:05:00+14:00",
      "2026-11-20T14:05:00-14:00",
      "2026-11-20T00:00:00Z",
      "2026-11-20T23:59:59Z",
      "2016-12-31T23:59:60Z",
      "2026-11-20T14:05:00.1Z",
      "2026-11-20T14:05:00.10Z",
      "2026-11-20T14:05:00.000Z",
      "2026-11-20T14:05:00.250+01:00",
      "2026-11-20T14:05:00.123456Z",
      "2026-11-20T14:05:00.1234567-03:00",
      "2026-11-20T14:05:00.000000001Z",
      "2026-11-20T14:05:00.123456789Z",
      "2026-11-20T14:05:00.999999999+14:00",
      "0001-01-01T00:00:00-14:00",
      "9999-12-31T23:59:60.999999999+14:00",
      "2024-02-29T12:30:45Z",
  };
  return *kTexts;
}

bool IsFullPrecision(const std::string& text) { return text.size() > 10; }

TEST(ParseDateTimeTest, EveryValidFormRoundTrips) {
  for (const std::string& text : ValidDateTimes()) {
    SCOPED_TRACE(text);
    const absl::StatusOr<DateTime> parsed = ParseDateTime(text);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(FormatDateTime(*parsed), text);
  }
}

TEST(ParseDateTest, EveryValidDateRoundTrips) {
  for (const std::string& text : ValidDateTimes()) {
    if (IsFullPrecision(text)) continue;
    SCOPED_TRACE(text);
    const absl::StatusOr<DateTime> parsed = ParseDate(text);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(FormatDateTime(*parsed), text);
  }
}

TEST(ParseInstantTest, EveryValidInstantRoundTrips) {
  for (const std::string& text : ValidDateTimes()) {
    if (!IsFullPrecision(text)) continue;
    SCOPED_TRACE(text);
    const absl::StatusOr<DateTime> parsed = ParseInstant(text);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(parsed->precision, Precision::kSecond);
    EXPECT_EQ(FormatDateTime(*parsed), text);
  }
}

TEST(ParseDateTimeTest, FillsFieldsAtEachPrecision) {
  absl::StatusOr<DateTime> value = ParseDateTime("2026");
  ASSERT_TRUE(value.ok());
  EXPECT_EQ(value->precision, Precision::kYear);
  EXPECT_EQ(value->year, 2026);
  EXPECT_EQ(value->month, 1);
  EXPECT_EQ(value->day, 1);

  value = ParseDateTime("2026-11");
  ASSERT_TRUE(value.ok());
  EXPECT_EQ(value->precision, Precision::kMonth);
  EXPECT_EQ(value->month, 11);
  EXPECT_EQ(value->day, 1);

  value = ParseDate("2026-11-20");
  ASSERT_TRUE(value.ok());
  EXPECT_EQ(value->precision, Precision::kDay);
  EXPECT_EQ(value->day, 20);

  value = ParseDateTime("2026-11-20T14:05:09.25-03:30");
  ASSERT_TRUE(value.ok());
  EXPECT_EQ(value->precision, Precision::kSecond);
  EXPECT_EQ(value->year, 2026);
  EXPECT_EQ(value->month, 11);
  EXPECT_EQ(value->day, 20);
  EXPECT_EQ(value->hour, 14);
  EXPECT_EQ(value->minute, 5);
  EXPECT_EQ(value->second, 9);
  EXPECT_EQ(value->nanos, 250'000'000);
  EXPECT_EQ(value->fraction_digits, 2);
  EXPECT_EQ(value->tz_offset_minutes, -210);
  EXPECT_FALSE(value->zulu);

  value = ParseInstant("2026-11-20T14:05:09.000000007Z");
  ASSERT_TRUE(value.ok());
  EXPECT_EQ(value->nanos, 7);
  EXPECT_EQ(value->fraction_digits, 9);
  EXPECT_EQ(value->tz_offset_minutes, 0);
  EXPECT_TRUE(value->zulu);
}

// The regex allows "-00:00"; DateTime cannot tell it from "+00:00", so it is the one valid text
// that does not round-trip byte for byte.
TEST(ParseDateTimeTest, NegativeZeroZoneIsWrittenAsPlusZero) {
  const absl::StatusOr<DateTime> value = ParseDateTime("2026-11-20T14:05:00-00:00");
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(value->tz_offset_minutes, 0);
  EXPECT_FALSE(value->zulu);
  EXPECT_EQ(FormatDateTime(*value), "2026-11-20T14:05:00+00:00");
}

struct InvalidCase {
  ParseFunction parse;
  const char* text;
  const char* error;  // A substring the error message must contain.
};

TEST(ParseDateTimeTest, RejectsInvalidTextWithSpecificErrors) {
  const InvalidCase kCases[] = {
      {ParseDate, "", "'' is not a valid date: the text is empty"},
      {ParseDateTime, "", "'' is not a valid dateTime: the text is empty"},
      {ParseInstant, "", "'' is not a valid instant: the text is empty"},
      {ParseDate, "26", "'26' is not a valid date: the year needs 4 digits"},
      {ParseDate, "-2026", "the year needs 4 digits"},
      {ParseDate, " 2026", "the year needs 4 digits"},
      {ParseDate, "0000", "'0000' is not a valid date: year 0000 is outside 0001..9999"},
      {ParseDateTime, "0000-01-01", "year 0000 is outside 0001..9999"},
      {ParseDate, "20261", "expected '-' after the year"},
      {ParseDate, "2026/11/20", "expected '-' after the year"},
      {ParseDate, "2026-", "the month needs 2 digits"},
      {ParseDate, "2026-1", "the month needs 2 digits"},
      {ParseDate, "2026-1-05", "the month needs 2 digits"},
      {ParseDate, "2026-13", "'2026-13' is not a valid date: month 13 is outside 1..12"},
      {ParseDate, "2026-00-01", "month 0 is outside 1..12"},
      {ParseDate, "2026-011", "expected '-' after the month"},
      {ParseDate, "2026-01-5", "the day needs 2 digits"},
      {ParseDate, "2026-01-32", "'2026-01-32' is not a valid date: day 32 is outside 1..31"},
      {ParseDate, "2026-01-00", "day 0 is outside 1..31"},
      {ParseDate, "2026-02-30", "'2026-02-30' is not a valid date: day 30 is outside 1..28"},
      {ParseDate, "2026-02-29", "day 29 is outside 1..28"},
      {ParseDate, "1900-02-29", "day 29 is outside 1..28"},
      {ParseDate, "2024-02-30", "day 30 is outside 1..29"},
      {ParseDate, "2026-04-31", "day 31 is outside 1..30"},
      {ParseDate, "2026-11-31", "day 31 is outside 1..30"},
      {ParseDateTime, "2026-02-29T00:00:00Z", "day 29 is outside 1..28"},
      {ParseDate, "2026-11-20T14:05:00Z", "a date cannot have a time"},
      {ParseDate, "2026-11-20x", "unexpected text after the day"},
      {ParseDate, "2026-11-20 ", "unexpected text after the day"},
      {ParseDateTime, "2026-11-20 14:05:00Z", "expected 'T' after the day"},
      {ParseDateTime, "2026-11-20t14:05:00Z", "expected 'T' after the day"},
      {ParseDateTime, "2026-11-20T", "the hour needs 2 digits"},
      {ParseDateTime, "2026-11-20T1:05:00Z", "the hour needs 2 digits"},
      {ParseDateTime, "2026-11-20T14", "expected ':' after the hour"},
      {ParseDateTime, "2026-11-20T14-05:00Z", "expected ':' after the hour"},
      {ParseDateTime, "2026-11-20T24:00:00Z", "hour 24 is outside 0..23"},
      {ParseDateTime, "2026-11-20T14:5:00Z", "the minute needs 2 digits"},
      {ParseDateTime, "2026-11-20T14:60:00Z", "minute 60 is outside 0..59"},
      {ParseDateTime, "2026-11-20T14:05",
       "'2026-11-20T14:05' is not a valid dateTime: a time needs seconds and a zone"},
      {ParseDateTime, "2026-11-20T14:05Z", "expected ':' after the minute"},
      {ParseDateTime, "2026-11-20T14:05:0Z", "the second needs 2 digits"},
      {ParseDateTime, "2026-11-20T14:05:61Z", "second 61 is outside 0..60"},
      {ParseDateTime, "2026-11-20T14:05:00", "a time needs a zone ('Z' or '+hh:mm')"},
      {ParseInstant, "2026-11-20T14:05:00", "a time needs a zone ('Z' or '+hh:mm')"},
      {ParseDateTime, "2026-11-20T14:05:00.Z", "the fraction needs at least 1 digit"},
      {ParseDateTime, "2026-11-20T14:05:00.1234567890Z",
       "the fraction has 10 digits, at most 9 are supported"},
      {ParseDateTime, "2026-11-20T14:05:00z",
       "expected a zone ('Z' or '+hh:mm') after the seconds"},
      {ParseDateTime, "2026-11-20T14:05:00 Z",
       "expected a zone ('Z' or '+hh:mm') after the seconds"},
      {ParseDateTime, "2026-11-20T14:05:00+14:01", "zone +14:01 is outside -14:00..+14:00"},
      {ParseDateTime, "2026-11-20T14:05:00-14:30", "zone -14:30 is outside -14:00..+14:00"},
      {ParseDateTime, "2026-11-20T14:05:00+15:00", "zone +15:00 is outside -14:00..+14:00"},
      {ParseDateTime, "2026-11-20T14:05:00+01:60", "zone +01:60 is outside -14:00..+14:00"},
      {ParseDateTime, "2026-11-20T14:05:00+0100", "the zone needs the form +hh:mm or -hh:mm"},
      {ParseDateTime, "2026-11-20T14:05:00+01", "the zone needs the form +hh:mm or -hh:mm"},
      {ParseDateTime, "2026-11-20T14:05:00+1:00", "the zone needs the form +hh:mm or -hh:mm"},
      {ParseDateTime, "2026-11-20T14:05:00Zjunk", "unexpected text after the zone"},
      {ParseDateTime, "2026-11-20T14:05:00+01:00:00", "unexpected text after the zone"},
      {ParseInstant, "2026", "'2026' is not a valid instant: an instant needs a full date"},
      {ParseInstant, "2026-11", "an instant needs a full date, a time and a zone"},
      {ParseInstant, "2026-11-20", "an instant needs a full date, a time and a zone"},
      {ParseInstant, "2026-13-20T14:05:00Z", "month 13 is outside 1..12"},
  };
  for (const InvalidCase& c : kCases) {
    SCOPED_TRACE(c.text);
    const absl::StatusOr<DateTime> result = c.parse(c.text);
    ASSERT_FALSE(result.ok()) << FormatDateTime(*result);
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Message(result.status()), HasSubstr(c.error));
  }
}

TEST(ParseDateTimeTest, ErrorQuotesOnlyTheStartOfLongText) {
  const std::string text = "2026-11-20T14:05:00Z" + std::string(1000, 'x');
  const absl::StatusOr<DateTime> result = ParseDateTime(text);
  ASSERT_FALSE(result.ok());
  EXPECT_EQ(
      Message(result.status()),
      "'2026-11-20T14:05:00Zxxxxxxxxxxxxxxxxxxxx...' is not a valid dateTime: unexpected text "
      "after the zone");
}

TEST(FormatDateTimeTest, HandBuiltValueWithoutFractionDigitsWritesTheInstantFraction) {
  DateTime value;
  value.precision = Precision::kSecond;
  value.year = 2026;
  value.month = 11;
  value.day = 20;
  value.hour = 14;
  value.minute = 5;
  value.nanos = 500'000'000;
  value.tz_offset_minutes = -90;
  EXPECT_EQ(FormatDateTime(value), "2026-11-20T14:05:00.500-01:30");
  value.nanos = 0;
  value.zulu = true;
  value.tz_offset_minutes = 0;
  EXPECT_EQ(FormatDateTime(value), "2026-11-20T14:05:00Z");
}

TEST(FormatInstantTest, KnownVectors) {
  struct Case {
    int64_t seconds;
    int32_t nanos;
    const char* expected;
  };
  const Case kCases[] = {
      {0, 0, "1970-01-01T00:00:00Z"},
      {-1, 0, "1969-12-31T23:59:59Z"},
      {-86400, 0, "1969-12-31T00:00:00Z"},
      {-86401, 0, "1969-12-30T23:59:59Z"},
      {-14182940, 0, "1969-07-20T20:17:40Z"},
      {-2208988800, 0, "1900-01-01T00:00:00Z"},
      {-11670912001, 0, "1600-02-29T23:59:59Z"},
      {-62135596800, 0, "0001-01-01T00:00:00Z"},
      {1763647500, 0, "2025-11-20T14:05:00Z"},
      {951825600, 0, "2000-02-29T12:00:00Z"},
      {1483228800, 0, "2017-01-01T00:00:00Z"},
      {2147483647, 0, "2038-01-19T03:14:07Z"},
      {2147483648, 0, "2038-01-19T03:14:08Z"},
      {4107542400, 0, "2100-03-01T00:00:00Z"},
      {253402300799, 0, "9999-12-31T23:59:59Z"},
      {0, 1'000'000, "1970-01-01T00:00:00.001Z"},
      {0, 500'000'000, "1970-01-01T00:00:00.500Z"},
      {0, 1'000, "1970-01-01T00:00:00.000001Z"},
      {0, 1'500, "1970-01-01T00:00:00.000001500Z"},  // Not exact in 6 digits, so 9; no rounding.
      {0, 1, "1970-01-01T00:00:00.000000001Z"},
      {0, 999'999'999, "1970-01-01T00:00:00.999999999Z"},
      {0, 123'456'000, "1970-01-01T00:00:00.123456Z"},
      {-1, 500'000'000, "1969-12-31T23:59:59.500Z"},
      {1763647500, 250'000'000, "2025-11-20T14:05:00.250Z"},
      // Out-of-range nanos carry into the seconds.
      {0, -1, "1969-12-31T23:59:59.999999999Z"},
      {0, 1'500'000'000, "1970-01-01T00:00:01.500Z"},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.expected);
    EXPECT_EQ(FormatInstant(c.seconds, c.nanos), c.expected);
  }
}

TEST(FormatInstantTest, ExtremeSecondsDoNotCrash) {
  EXPECT_FALSE(FormatInstant(std::numeric_limits<int64_t>::max(), 999'999'999).empty());
  EXPECT_FALSE(FormatInstant(std::numeric_limits<int64_t>::min(), 0).empty());
  EXPECT_FALSE(FormatInstant(std::numeric_limits<int64_t>::min(), -1).empty());
}

// Compares against the C library over years 1000..9999 (glibc pads %Y only from year 1000 on).
TEST(FormatInstantTest, MatchesGmtime) {
  constexpr int64_t kFirst = -30610224000;  // 1000-01-01T00:00:00Z
  constexpr int64_t kLast = 253402300799;   // 9999-12-31T23:59:59Z
  constexpr int64_t kStep = 1'000'003;      // About 280,000 points, at varying times of day.
  for (int64_t seconds = kFirst; seconds <= kLast; seconds += kStep) {
    const time_t t = static_cast<time_t>(seconds);
    struct tm parts;
    ASSERT_NE(gmtime_r(&t, &parts), nullptr);
    char expected[64];
    ASSERT_GT(strftime(expected, sizeof(expected), "%Y-%m-%dT%H:%M:%SZ", &parts), 0u);
    ASSERT_EQ(FormatInstant(seconds, 0), expected) << seconds;
  }
}

TEST(FormatInstantTest, RoundTripsThroughParseInstantAndToUnixSeconds) {
  std::mt19937_64 random(20261120);
  std::uniform_int_distribution<int64_t> seconds_in(-62135596800, 253402300799);
  const int32_t kNanos[] = {0, 1, 1'000, 1'500, 1'000'000, 999'999'999, 120'000'000};
  for (int i = 0; i < 20000; ++i) {
    const int64_t seconds = i < 2000 ? i - 1000 : seconds_in(random);
    const int32_t nanos = kNanos[i % 7];
    const std::string text = FormatInstant(seconds, nanos);
    const absl::StatusOr<DateTime> parsed = ParseInstant(text);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    ASSERT_EQ(parsed->nanos, nanos) << text;
    ASSERT_EQ(FormatDateTime(*parsed), text);
    const absl::StatusOr<int64_t> back = ToUnixSeconds(*parsed);
    ASSERT_TRUE(back.ok()) << back.status();
    ASSERT_EQ(*back, seconds) << text;
  }
}

TEST(ToUnixSecondsTest, AppliesTheZoneOffset) {
  struct Case {
    const char* text;
    int64_t expected;
  };
  const Case kCases[] = {
      {"1970-01-01T00:00:00Z", 0},
      {"1970-01-01T00:00:00+00:00", 0},
      {"1970-01-01T01:00:00+01:00", 0},
      {"1969-12-31T19:00:00-05:00", 0},
      {"1970-01-01T05:30:00+05:30", 0},
      {"1969-12-31T23:59:59Z", -1},
      {"2025-11-20T14:05:00Z", 1763647500},
      {"2026-11-20T14:05:00+01:00", 1795179900},
      {"2026-11-20T14:05:00+14:00", 1795133100},
      {"2026-11-20T14:05:00-14:00", 1795233900},
      {"2026-11-20T14:05:00.999Z", 1795183500},  // The fraction is not rounded.
      {"2016-12-31T23:59:60Z", 1483228800},      // A leap second counts as the next minute.
      {"2038-01-19T03:14:08Z", 2147483648},
      {"0001-01-01T00:00:00Z", -62135596800},
      {"9999-12-31T23:59:59Z", 253402300799},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.text);
    const absl::StatusOr<DateTime> parsed = ParseDateTime(c.text);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    const absl::StatusOr<int64_t> seconds = ToUnixSeconds(*parsed);
    ASSERT_TRUE(seconds.ok()) << seconds.status();
    EXPECT_EQ(*seconds, c.expected);
  }
}

TEST(ToUnixSecondsTest, RejectsPartialPrecision) {
  for (const char* text : {"2026", "2026-11", "2026-11-20"}) {
    SCOPED_TRACE(text);
    const absl::StatusOr<DateTime> parsed = ParseDateTime(text);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    const absl::StatusOr<int64_t> seconds = ToUnixSeconds(*parsed);
    ASSERT_FALSE(seconds.ok());
    EXPECT_EQ(seconds.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(Message(seconds.status()), HasSubstr("only a dateTime with a time"));
  }
}

TEST(ToUnixSecondsTest, RejectsHandBuiltOutOfRangeFields) {
  DateTime value;
  value.precision = Precision::kSecond;
  value.year = 2026;
  value.month = 13;
  EXPECT_THAT(Message(ToUnixSeconds(value).status()), HasSubstr("month 13 is outside 1..12"));
  value.month = 2;
  value.day = 29;
  EXPECT_THAT(Message(ToUnixSeconds(value).status()), HasSubstr("day 29 is outside 1..28"));
  value.day = 1;
  value.hour = 24;
  EXPECT_THAT(Message(ToUnixSeconds(value).status()), HasSubstr("is not a time of day"));
  value.hour = 0;
  value.tz_offset_minutes = 15 * 60;
  EXPECT_THAT(Message(ToUnixSeconds(value).status()), HasSubstr("is outside -14:00..+14:00"));
}

TEST(IsValidDecimalTest, FollowsTheFhirGrammar) {
  for (const char* text : {"0", "-0", "1", "-1", "35", "36.15", "0.5", "-0.5", "0.000", "100",
                           "1e10", "1E10", "1e-10", "1E+10", "1.5e+3", "-2.50E-007",
                           "123456789012345678901234567890.123456789012345678901234567890"}) {
    EXPECT_TRUE(IsValidDecimal(text)) << text;
  }
  for (const char* text :
       {"",          "-",   "+1",   "01",  "00",    "-01",   "1.",    ".5",    "-.5",
        "1.e5",      "1e",  "1e+",  "e5",  "E5",    " 1",    "1 ",    "NaN",   "Infinity",
        "-Infinity", "1,5", "0x10", "--1", "1.2.3", "1e5.5", "1e5e5", "1_000", "\xc2\xbd"}) {
    EXPECT_FALSE(IsValidDecimal(text)) << text;
  }
}

TEST(FormatDecimalTest, KnownValues) {
  struct Case {
    double value;
    const char* expected;
  };
  const Case kCases[] = {
      {0.5, "0.5"},
      {35.0, "35"},
      {36.15, "36.15"},
      {72.3, "72.3"},
      {-12.25, "-12.25"},
      {0.0, "0"},
      {-0.0, "0"},
      {1.0, "1"},
      {-1.0, "-1"},
      {100.0, "100"},
      {0.1 + 0.2, "0.30000000000000004"},
      {123456.789, "123456.789"},
      {1e-6, "0.000001"},
      {-1e-6, "-0.000001"},
      {1e15, "1000000000000000"},
      {999999999999999.9, "999999999999999.9"},
      // Outside 1e-6..1e15 the shortest text may use an exponent (still a valid FHIR decimal).
      {1e-7, "1e-7"},
      {1.5e-10, "1.5e-10"},
      {1e20, "1e+20"},
      {-1e300, "-1e+300"},
      {5e-324, "5e-324"},
      // NaN and infinities are not FHIR decimals; callers must not pass them.
      {std::numeric_limits<double>::quiet_NaN(), "0"},
      {std::numeric_limits<double>::infinity(), "0"},
      {-std::numeric_limits<double>::infinity(), "0"},
  };
  for (const Case& c : kCases) {
    SCOPED_TRACE(c.expected);
    EXPECT_EQ(FormatDecimal(c.value), c.expected);
  }
}

TEST(FormatDecimalTest, ReadsBackAsTheSameDoubleAndIsAValidDecimal) {
  std::mt19937_64 random(42);
  std::uniform_real_distribution<double> exponent_in(-12, 22);
  for (int i = 0; i < 20000; ++i) {
    double value = 0;
    if (i % 2 == 0) {
      value = std::pow(10.0, exponent_in(random)) * (i % 4 == 0 ? 1 : -1);
    } else {
      const uint64_t bits = random();
      std::memcpy(&value, &bits, sizeof(value));
      if (!std::isfinite(value)) continue;
    }
    const std::string text = FormatDecimal(value);
    ASSERT_TRUE(IsValidDecimal(text)) << text;
    ASSERT_EQ(std::strtod(text.c_str(), nullptr), value == 0 ? 0.0 : value) << text;
    const double magnitude = std::fabs(value);
    if (magnitude >= 1e-6 && magnitude <= 1e15) {
      ASSERT_EQ(text.find_first_of("eE"), std::string::npos) << text;
    }
  }
}

}  // namespace
}  // namespace fhirgw::fhir
