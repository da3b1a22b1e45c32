// End-to-end tests of `fhirgw translate`: the real binary runs as a child process.
//
// Expectations come from the examples in examples/ and from properties of the output (one Bundle
// per record, determinism, compact == pretty), not from golden Bundles.
#include <unistd.h>

#include <algorithm>
#include <optional>
#include <sstream>
#include <string>
#include <string_view>
#include <vector>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "rapidjson/error/en.h"
#include "rapidjson/prettywriter.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"
#include "tests/testing/fhirgw_cli.h"
#include "tests/testing/files.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/temp_dir.h"

namespace fhirgw::gateway {
namespace {

using ::fhirgw::testing::ReadFile;
using ::fhirgw::testing::RunFhirgw;
using ::fhirgw::testing::SourcePath;
using ::fhirgw::testing::SubprocessResult;
using ::fhirgw::testing::TempDir;
using ::fhirgw::testing::WriteFile;
using ::testing::AllOf;
using ::testing::ElementsAre;
using ::testing::EndsWith;
using ::testing::HasSubstr;
using ::testing::IsEmpty;
using ::testing::Not;
using ::testing::SizeIs;
using ::testing::StartsWith;

constexpr char kInfusion[] = "examples/ketamine-infusion.json";
constexpr char kStoppedInfusion[] = "examples/infusion-stopped-hypertension.json";
constexpr char kEncounter[] = "examples/infusion-encounter.json";
constexpr char kGad7[] = "examples/gad7.json";
constexpr char kPhq9Item9Positive[] = "examples/phq9-item9-positive.json";

constexpr int kParseFlags = rapidjson::kParseFullPrecisionFlag;

// A file `name` holding `content` in a fresh temporary directory, removed at the end of the test.
class TempFile {
 public:
  TempFile(const std::string& name, std::string_view content) : path_(dir_.File(name)) {
    EXPECT_TRUE(WriteFile(path_, content)) << "cannot write " << path_;
  }
  const std::string& path() const { return path_; }

 private:
  TempDir dir_{"fhirgw-translate"};
  std::string path_;
};

::testing::AssertionResult ParseJson(const std::string& text, rapidjson::Document& doc) {
  doc.Parse<kParseFlags>(text.data(), text.size());
  if (doc.HasParseError()) {
    return ::testing::AssertionFailure()
           << "not one JSON value: " << rapidjson::GetParseError_En(doc.GetParseError())
           << " at offset " << doc.GetErrorOffset() << " of:\n"
           << text.substr(0, 2000);
  }
  return ::testing::AssertionSuccess();
}

rapidjson::Document LoadExample(std::string_view relative) {
  rapidjson::Document doc;
  EXPECT_TRUE(ParseJson(ReadFile(SourcePath(relative)), doc)) << relative;
  return doc;
}

std::string CompactJson(const rapidjson::Value& value) {
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  value.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

std::string PrettyJson(const rapidjson::Value& value) {
  rapidjson::StringBuffer buffer;
  rapidjson::PrettyWriter<rapidjson::StringBuffer> writer(buffer);
  writer.SetIndent(' ', 2);
  value.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize()) + "\n";
}

// An example record re-serialized on one line (an NDJSON line, without the newline).
std::string CompactExample(std::string_view relative) { return CompactJson(LoadExample(relative)); }

// The stopped-infusion example with an impossible SpO2 at vitals[1]: exactly one issue.
constexpr char kSpo2Issue[] = "infusion.vitals[1].spo2_percent: 140 is outside 50..100";
std::string CompactStoppedInfusionWithBadSpo2() {
  rapidjson::Document doc = LoadExample(kStoppedInfusion);
  doc["infusion"]["vitals"][1]["spo2Percent"].SetInt(140);
  return CompactJson(doc);
}

// The lines of `text`, which must be empty or end with a newline.
std::vector<std::string> Lines(const std::string& text) {
  EXPECT_TRUE(text.empty() || text.back() == '\n') << "output does not end with a newline";
  std::vector<std::string> lines;
  std::istringstream stream(text);
  for (std::string line; std::getline(stream, line);) lines.push_back(line);
  return lines;
}

::testing::AssertionResult IsTransactionBundle(const rapidjson::Value& bundle) {
  if (!bundle.IsObject()) return ::testing::AssertionFailure() << "not an object";
  if (!bundle.HasMember("resourceType") || bundle["resourceType"] != "Bundle") {
    return ::testing::AssertionFailure() << "resourceType is not Bundle";
  }
  if (!bundle.HasMember("type") || bundle["type"] != "transaction") {
    return ::testing::AssertionFailure() << "type is not transaction";
  }
  if (!bundle.HasMember("entry") || !bundle["entry"].IsArray() || bundle["entry"].Empty()) {
    return ::testing::AssertionFailure() << "no entries";
  }
  for (const rapidjson::Value& entry : bundle["entry"].GetArray()) {
    if (!entry.IsObject() || !entry.HasMember("fullUrl") || !entry["fullUrl"].IsString() ||
        std::string_view(entry["fullUrl"].GetString()).substr(0, 9) != "urn:uuid:" ||
        !entry.HasMember("resource") || !entry["resource"].HasMember("resourceType") ||
        !entry.HasMember("request") || !entry["request"].HasMember("method") ||
        !entry["request"].HasMember("url")) {
      return ::testing::AssertionFailure()
             << "entry without urn:uuid fullUrl, resource or request: " << CompactJson(entry);
    }
  }
  return ::testing::AssertionSuccess();
}

std::vector<const rapidjson::Value*> EntriesOf(const rapidjson::Value& bundle,
                                               std::string_view resource_type) {
  std::vector<const rapidjson::Value*> entries;
  if (!bundle.IsObject() || !bundle.HasMember("entry") || !bundle["entry"].IsArray()) {
    return entries;
  }
  for (const rapidjson::Value& entry : bundle["entry"].GetArray()) {
    if (entry.HasMember("resource") && entry["resource"].HasMember("resourceType") &&
        entry["resource"]["resourceType"].GetString() == resource_type) {
      entries.push_back(&entry);
    }
  }
  return entries;
}

// The NDJSON output `out`: one compact Bundle a line.
void ExpectCompactBundleLines(const std::string& out, size_t count) {
  const std::vector<std::string> lines = Lines(out);
  ASSERT_THAT(lines, SizeIs(count)) << out;
  for (size_t i = 0; i < lines.size(); ++i) {
    SCOPED_TRACE("output line " + std::to_string(i + 1));
    rapidjson::Document bundle;
    ASSERT_TRUE(ParseJson(lines[i], bundle));
    EXPECT_TRUE(IsTransactionBundle(bundle));
    EXPECT_EQ(lines[i], CompactJson(bundle)) << "not compact";
  }
}

// ---- one record ----

TEST(TranslateCliTest, InfusionExampleGivesOnePrettyTransactionBundle) {
  const SubprocessResult r = RunFhirgw({"translate", kInfusion});
  ASSERT_TRUE(r.ExitedWith(0)) << r.Describe();
  EXPECT_EQ(r.err, "");

  rapidjson::Document bundle;
  ASSERT_TRUE(ParseJson(r.out, bundle));  // exactly one JSON value: trailing text would fail
  ASSERT_TRUE(IsTransactionBundle(bundle));
  EXPECT_GT(bundle["entry"].Size(), 5u);

  // Pretty: two-space indents, one member a line, a final newline.
  EXPECT_THAT(r.out, StartsWith("{\n  \"resourceType\": \"Bundle\",\n"));
  EXPECT_THAT(r.out, EndsWith("}\n"));
  EXPECT_GT(std::count(r.out.begin(), r.out.end(), '\n'), 100);

  const rapidjson::Document record = LoadExample(kInfusion);
  const std::vector<const rapidjson::Value*> administrations =
      EntriesOf(bundle, "MedicationAdministration");
  ASSERT_THAT(administrations, SizeIs(1));
  const rapidjson::Value& request = (*administrations[0])["request"];
  EXPECT_STREQ(request["method"].GetString(), "PUT");
  EXPECT_THAT(request["url"].GetString(), AllOf(StartsWith("MedicationAdministration?identifier="),
                                                HasSubstr(record["recordId"].GetString())));
  EXPECT_THAT(EntriesOf(bundle, "Patient"), SizeIs(1));
  // Every vital sign becomes an Observation (plus the body weight).
  EXPECT_GT(EntriesOf(bundle, "Observation").size(), record["infusion"]["vitals"].Size());
}

TEST(TranslateCliTest, OutputIsDeterministic) {
  const SubprocessResult first = RunFhirgw({"translate", kInfusion});
  const SubprocessResult second = RunFhirgw({"translate", kInfusion});
  ASSERT_TRUE(first.ExitedWith(0)) << first.Describe();
  ASSERT_TRUE(second.ExitedWith(0)) << second.Describe();
  EXPECT_THAT(first.out, Not(IsEmpty()));
  EXPECT_EQ(first.out, second.out);
}

TEST(TranslateCliTest, CompactFlagGivesTheSameBundleOnOneLine) {
  const SubprocessResult pretty = RunFhirgw({"translate", kInfusion});
  const SubprocessResult compact = RunFhirgw({"translate", "--compact", kInfusion});
  ASSERT_TRUE(pretty.ExitedWith(0)) << pretty.Describe();
  ASSERT_TRUE(compact.ExitedWith(0)) << compact.Describe();
  EXPECT_EQ(compact.err, "");

  ASSERT_THAT(Lines(compact.out), SizeIs(1)) << compact.out;
  EXPECT_LT(compact.out.size(), pretty.out.size());
  rapidjson::Document from_pretty, from_compact;
  ASSERT_TRUE(ParseJson(pretty.out, from_pretty));
  ASSERT_TRUE(ParseJson(compact.out, from_compact));
  EXPECT_TRUE(from_compact == from_pretty);
  EXPECT_EQ(compact.out, CompactJson(from_compact) + "\n");

  // The flag may also follow the path.
  const SubprocessResult flag_last = RunFhirgw({"translate", kInfusion, "--compact"});
  EXPECT_TRUE(flag_last.ExitedWith(0)) << flag_last.Describe();
  EXPECT_EQ(flag_last.out, compact.out);
}

TEST(TranslateCliTest, StdinDashGivesTheSameOutputAsTheFile) {
  const SubprocessResult from_file = RunFhirgw({"translate", kInfusion});
  const SubprocessResult from_stdin =
      RunFhirgw({"translate", "-"}, ReadFile(SourcePath(kInfusion)));
  ASSERT_TRUE(from_file.ExitedWith(0)) << from_file.Describe();
  ASSERT_TRUE(from_stdin.ExitedWith(0)) << from_stdin.Describe();
  EXPECT_THAT(from_stdin.out, Not(IsEmpty()));
  EXPECT_EQ(from_stdin.out, from_file.out);
  EXPECT_EQ(from_stdin.err, "");
}

TEST(TranslateCliTest, ReformattedRecordGivesTheSameBundle) {
  // The same record written with other whitespace (RapidJSON's pretty form) maps identically.
  const SubprocessResult original = RunFhirgw({"translate", kInfusion});
  const SubprocessResult reformatted =
      RunFhirgw({"translate", "-"}, PrettyJson(LoadExample(kInfusion)));
  ASSERT_TRUE(original.ExitedWith(0)) << original.Describe();
  ASSERT_TRUE(reformatted.ExitedWith(0)) << reformatted.Describe();
  rapidjson::Document bundle;
  ASSERT_TRUE(ParseJson(original.out, bundle));
  EXPECT_TRUE(IsTransactionBundle(bundle));
  EXPECT_EQ(reformatted.out, original.out);
}

TEST(TranslateCliTest, OneLineRecordGivesOneBundle) {
  // A record written compactly on one line: one Bundle with the same content. (The header calls
  // this both "one JSON record (pretty or compact) -> pretty" and "NDJSON -> compact"; the layout
  // is therefore not asserted here.)
  const SubprocessResult pretty = RunFhirgw({"translate", kInfusion});
  const SubprocessResult one_line = RunFhirgw({"translate", "-"}, CompactExample(kInfusion) + "\n");
  ASSERT_TRUE(pretty.ExitedWith(0)) << pretty.Describe();
  ASSERT_TRUE(one_line.ExitedWith(0)) << one_line.Describe();
  EXPECT_EQ(one_line.err, "");
  rapidjson::Document from_pretty, from_one_line;
  ASSERT_TRUE(ParseJson(pretty.out, from_pretty));
  ASSERT_TRUE(ParseJson(one_line.out, from_one_line));
  EXPECT_TRUE(from_one_line == from_pretty);
}

TEST(TranslateCliTest, Phq9Item9PositiveAlertsAndAddsAFlag) {
  const SubprocessResult r = RunFhirgw({"translate", kPhq9Item9Positive});
  ASSERT_TRUE(r.ExitedWith(0)) << r.Describe();
  EXPECT_THAT(Lines(r.err), ElementsAre(StartsWith("alert: SUICIDAL_IDEATION: "))) << r.err;

  rapidjson::Document bundle;
  ASSERT_TRUE(ParseJson(r.out, bundle));
  ASSERT_TRUE(IsTransactionBundle(bundle));
  const std::vector<const rapidjson::Value*> flags = EntriesOf(bundle, "Flag");
  ASSERT_THAT(flags, SizeIs(1));
  EXPECT_STREQ((*flags[0])["request"]["method"].GetString(), "PUT");
  EXPECT_THAT(EntriesOf(bundle, "QuestionnaireResponse"), SizeIs(1));
}

TEST(TranslateCliTest, SevereAdverseEventAlerts) {
  const SubprocessResult r = RunFhirgw({"translate", kStoppedInfusion});
  ASSERT_TRUE(r.ExitedWith(0)) << r.Describe();
  // BP 181/106 is beyond the safe infusion limit (systolic at least 180).
  EXPECT_THAT(Lines(r.err), ElementsAre(StartsWith("alert: UNSAFE_VITAL_SIGNS: "),
                                        StartsWith("alert: SEVERE_ADVERSE_EVENT: ")))
      << r.err;
  rapidjson::Document bundle;
  ASSERT_TRUE(ParseJson(r.out, bundle));
  ASSERT_TRUE(IsTransactionBundle(bundle));
  EXPECT_THAT(EntriesOf(bundle, "AdverseEvent"), SizeIs(1));
}

TEST(TranslateCliTest, QuestionnaireWithoutAlertPrintsNothingOnStderr) {
  const SubprocessResult r = RunFhirgw({"translate", kGad7});
  ASSERT_TRUE(r.ExitedWith(0)) << r.Describe();
  EXPECT_EQ(r.err, "");
  rapidjson::Document bundle;
  ASSERT_TRUE(ParseJson(r.out, bundle));
  EXPECT_THAT(EntriesOf(bundle, "Flag"), IsEmpty());
  EXPECT_THAT(EntriesOf(bundle, "QuestionnaireResponse"), SizeIs(1));
}

TEST(TranslateCliTest, ItemObservationsFlagAddsOneObservationPerAnswer) {
  const SubprocessResult plain = RunFhirgw({"translate", kPhq9Item9Positive});
  const SubprocessResult items =
      RunFhirgw({"translate", "--item_observations", kPhq9Item9Positive});
  ASSERT_TRUE(plain.ExitedWith(0)) << plain.Describe();
  ASSERT_TRUE(items.ExitedWith(0)) << items.Describe();
  rapidjson::Document plain_bundle, items_bundle;
  ASSERT_TRUE(ParseJson(plain.out, plain_bundle));
  ASSERT_TRUE(ParseJson(items.out, items_bundle));

  const size_t answers = LoadExample(kPhq9Item9Positive)["questionnaire"]["answers"].Size();
  const size_t plain_observations = EntriesOf(plain_bundle, "Observation").size();
  EXPECT_EQ(EntriesOf(items_bundle, "Observation").size(), plain_observations + answers);
  // The total score lists the item Observations as members.
  size_t members = 0;
  for (const rapidjson::Value* entry : EntriesOf(items_bundle, "Observation")) {
    if ((*entry)["resource"].HasMember("hasMember")) {
      members = std::max<size_t>(members, (*entry)["resource"]["hasMember"].Size());
    }
  }
  EXPECT_EQ(members, answers);
}

// ---- NDJSON ----

TEST(TranslateCliTest, NdjsonGivesOneCompactBundleALine) {
  const std::string input = CompactExample(kInfusion) + "\n" + CompactExample(kEncounter) + "\n" +
                            CompactExample(kGad7) + "\n";
  const SubprocessResult r = RunFhirgw({"translate", "-"}, input);
  ASSERT_TRUE(r.ExitedWith(0)) << r.Describe();
  EXPECT_EQ(r.err, "");
  ExpectCompactBundleLines(r.out, 3);
}

TEST(TranslateCliTest, NdjsonInvalidLineIsReportedAndTheOthersTranslated) {
  const std::string input = CompactExample(kInfusion) + "\n" + CompactStoppedInfusionWithBadSpo2() +
                            "\n" + CompactExample(kGad7) + "\n";
  const TempFile file("bad-line-2.ndjson", input);
  const SubprocessResult r = RunFhirgw({"translate", file.path()});
  EXPECT_TRUE(r.ExitedWith(2)) << r.Describe();
  EXPECT_THAT(Lines(r.err),
              ElementsAre(
                  // The rejected record still prints its alerts first.
                  StartsWith(std::string("line 2: ") + "alert: UNSAFE_VITAL_SIGNS: "),
                  StartsWith(std::string("line 2: ") + "alert: SEVERE_ADVERSE_EVENT: "),
                  std::string("line 2: ") + kSpo2Issue, "fhirgw translate: 1 of 3 records failed"))
      << r.err;
  ExpectCompactBundleLines(r.out, 2);

  // The Bundles are those of lines 1 and 3, in order; line 1's is the --compact translation of the
  // same record.
  const std::vector<std::string> lines = Lines(r.out);
  ASSERT_THAT(lines, SizeIs(2));
  const SubprocessResult single = RunFhirgw({"translate", "--compact", kInfusion});
  ASSERT_TRUE(single.ExitedWith(0)) << single.Describe();
  EXPECT_EQ(lines[0] + "\n", single.out);
  rapidjson::Document third;
  ASSERT_TRUE(ParseJson(lines[1], third));
  EXPECT_THAT(EntriesOf(third, "QuestionnaireResponse"), SizeIs(1));
  EXPECT_THAT(EntriesOf(third, "MedicationAdministration"), IsEmpty());
}

TEST(TranslateCliTest, NdjsonBlankLineIsSkippedButCounted) {
  const std::string input = CompactExample(kInfusion) + "\n\n" +
                            CompactStoppedInfusionWithBadSpo2() + "\n" + CompactExample(kGad7) +
                            "\n";
  const SubprocessResult r = RunFhirgw({"translate", "-"}, input);
  EXPECT_TRUE(r.ExitedWith(2)) << r.Describe();
  EXPECT_THAT(Lines(r.err),
              ElementsAre(
                  // The rejected record still prints its alerts first.
                  StartsWith(std::string("line 3: ") + "alert: UNSAFE_VITAL_SIGNS: "),
                  StartsWith(std::string("line 3: ") + "alert: SEVERE_ADVERSE_EVENT: "),
                  std::string("line 3: ") + kSpo2Issue, "fhirgw translate: 1 of 3 records failed"))
      << r.err;
  ExpectCompactBundleLines(r.out, 2);
}

TEST(TranslateCliTest, NdjsonLeadingAndWhitespaceOnlyLinesAreCounted) {
  const std::string input = "\n" + CompactExample(kInfusion) + "\n \t \n" +
                            CompactStoppedInfusionWithBadSpo2() + "\n" + CompactExample(kGad7) +
                            "\n\n";
  const SubprocessResult r = RunFhirgw({"translate", "-"}, input);
  EXPECT_TRUE(r.ExitedWith(2)) << r.Describe();
  EXPECT_THAT(Lines(r.err),
              ElementsAre(
                  // The rejected record still prints its alerts first.
                  StartsWith(std::string("line 4: ") + "alert: UNSAFE_VITAL_SIGNS: "),
                  StartsWith(std::string("line 4: ") + "alert: SEVERE_ADVERSE_EVENT: "),
                  std::string("line 4: ") + kSpo2Issue, "fhirgw translate: 1 of 3 records failed"))
      << r.err;
  ExpectCompactBundleLines(r.out, 2);
}

TEST(TranslateCliTest, NdjsonWithCrLfLineEndsAndNoFinalNewline) {
  const std::string input = CompactExample(kInfusion) + "\r\n" +
                            CompactStoppedInfusionWithBadSpo2() + "\r\n" + CompactExample(kGad7);
  const SubprocessResult r = RunFhirgw({"translate", "-"}, input);
  EXPECT_TRUE(r.ExitedWith(2)) << r.Describe();
  EXPECT_THAT(Lines(r.err),
              ElementsAre(
                  // The rejected record still prints its alerts first.
                  StartsWith(std::string("line 2: ") + "alert: UNSAFE_VITAL_SIGNS: "),
                  StartsWith(std::string("line 2: ") + "alert: SEVERE_ADVERSE_EVENT: "),
                  std::string("line 2: ") + kSpo2Issue, "fhirgw translate: 1 of 3 records failed"))
      << r.err;
  ExpectCompactBundleLines(r.out, 2);
}

TEST(TranslateCliTest, NdjsonMalformedLineIsReportedWithItsNumber) {
  const std::string input =
      CompactExample(kInfusion) + "\n{\"recordId\": \"inf-1\",\n" + CompactExample(kGad7) + "\n";
  const SubprocessResult r = RunFhirgw({"translate", "-"}, input);
  EXPECT_TRUE(r.ExitedWith(2)) << r.Describe();
  EXPECT_THAT(Lines(r.err), ElementsAre(StartsWith("line 2: record: invalid JSON"),
                                        "fhirgw translate: 1 of 3 records failed"))
      << r.err;
  ExpectCompactBundleLines(r.out, 2);
}

TEST(TranslateCliTest, NdjsonAllLinesInvalid) {
  const std::string bad = CompactStoppedInfusionWithBadSpo2();
  const SubprocessResult r = RunFhirgw({"translate", "-"}, bad + "\n" + bad + "\n");
  EXPECT_TRUE(r.ExitedWith(2)) << r.Describe();
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(Lines(r.err),
              ElementsAre(
                  // The rejected record still prints its alerts first.
                  StartsWith(std::string("line 1: ") + "alert: UNSAFE_VITAL_SIGNS: "),
                  StartsWith(std::string("line 1: ") + "alert: SEVERE_ADVERSE_EVENT: "),
                  std::string("line 1: ") + kSpo2Issue,
                  StartsWith(std::string("line 2: ") + "alert: UNSAFE_VITAL_SIGNS: "),
                  StartsWith(std::string("line 2: ") + "alert: SEVERE_ADVERSE_EVENT: "),
                  std::string("line 2: ") + kSpo2Issue, "fhirgw translate: 2 of 2 records failed"))
      << r.err;
}

TEST(TranslateCliTest, NdjsonAlertsNameTheirLine) {
  const std::string input =
      CompactExample(kGad7) + "\n" + CompactExample(kPhq9Item9Positive) + "\n";
  const SubprocessResult r = RunFhirgw({"translate", "-"}, input);
  ASSERT_TRUE(r.ExitedWith(0)) << r.Describe();
  EXPECT_THAT(Lines(r.err), ElementsAre(StartsWith("line 2: alert: SUICIDAL_IDEATION: "))) << r.err;
  ExpectCompactBundleLines(r.out, 2);
  const std::vector<std::string> lines = Lines(r.out);
  ASSERT_THAT(lines, SizeIs(2));
  rapidjson::Document second;
  ASSERT_TRUE(ParseJson(lines[1], second));
  EXPECT_THAT(EntriesOf(second, "Flag"), SizeIs(1));
}

TEST(TranslateCliTest, ManyNdjsonRecordsStreamThrough) {
  // Megabytes each way: more than any pipe buffer holds.
  constexpr int kRecords = 300;
  std::string input;
  for (int i = 0; i < kRecords; ++i) input += CompactExample(i % 2 == 0 ? kInfusion : kGad7) + "\n";
  const SubprocessResult r = RunFhirgw({"translate", "-"}, input);
  ASSERT_TRUE(r.ExitedWith(0)) << r.Describe();
  EXPECT_EQ(r.err, "");
  const std::vector<std::string> lines = Lines(r.out);
  ASSERT_THAT(lines, SizeIs(kRecords));
  for (int i = 2; i < kRecords; ++i) {
    ASSERT_EQ(lines[i], lines[i % 2]) << "line " << i + 1 << " differs from the same record's";
  }
  EXPECT_NE(lines[0], lines[1]);
}

// ---- bad input ----

TEST(TranslateCliTest, InvalidRecordListsEveryIssueAndPrintsNoBundle) {
  rapidjson::Document record = LoadExample(kInfusion);
  rapidjson::Value& vitals = record["infusion"]["vitals"];
  vitals[0]["heartRateBpm"].SetInt(300);
  vitals[1]["spo2Percent"].SetInt(140);
  vitals[2].AddMember("respiratoryRate", 2, record.GetAllocator());
  const TempFile file("invalid.json", PrettyJson(record));

  const SubprocessResult r = RunFhirgw({"translate", file.path()});
  EXPECT_TRUE(r.ExitedWith(2)) << r.Describe();
  EXPECT_EQ(r.out, "");
  // The alerts of the rejected record, then one "path: message" line per issue; no "line N: "
  // prefix and no summary for a single record.
  EXPECT_THAT(
      Lines(r.err),
      ElementsAre(StartsWith("alert: UNSAFE_VITAL_SIGNS: "),
                  StartsWith("alert: UNSAFE_VITAL_SIGNS: "),
                  StartsWith("infusion.vitals[0].heart_rate_bpm: 300 is outside "), kSpo2Issue,
                  StartsWith("infusion.vitals[2].respiratory_rate: 2 is outside ")))
      << r.err;
}

TEST(TranslateCliTest, MalformedJsonIsReported) {
  const std::string truncated = ReadFile(SourcePath(kInfusion)).substr(0, 200);
  const SubprocessResult r = RunFhirgw({"translate", "-"}, truncated);
  EXPECT_TRUE(r.ExitedWith(2)) << r.Describe();
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(Lines(r.err), ElementsAre(StartsWith("record: invalid JSON"))) << r.err;

  const SubprocessResult not_json = RunFhirgw({"translate", "-"}, "hello\n");
  EXPECT_TRUE(not_json.ExitedWith(2)) << not_json.Describe();
  EXPECT_EQ(not_json.out, "");
  EXPECT_THAT(not_json.err, StartsWith("record: invalid JSON")) << not_json.err;
}

TEST(TranslateCliTest, UnknownFieldIsNamedByItsPath) {
  rapidjson::Document record = LoadExample(kInfusion);
  record["infusion"]["vitals"][0].AddMember("spo2", 98, record.GetAllocator());
  const SubprocessResult r = RunFhirgw({"translate", "-"}, PrettyJson(record));
  EXPECT_TRUE(r.ExitedWith(2)) << r.Describe();
  EXPECT_EQ(r.out, "");
  EXPECT_EQ(r.err, "infusion.vitals[0].spo2: unknown field\n");

  rapidjson::Document top_level = LoadExample(kGad7);
  top_level.AddMember("recordID", "x", top_level.GetAllocator());
  const SubprocessResult top = RunFhirgw({"translate", "-"}, PrettyJson(top_level));
  EXPECT_TRUE(top.ExitedWith(2)) << top.Describe();
  EXPECT_EQ(top.out, "");
  EXPECT_EQ(top.err, "recordID: unknown field\n");
}

TEST(TranslateCliTest, MissingFileIsUnreadableInput) {
  const std::string path =
      ::testing::TempDir() + "fhirgw-no-such-dir-" + std::to_string(::getpid()) + "/record.json";
  const SubprocessResult r = RunFhirgw({"translate", path});
  EXPECT_TRUE(r.ExitedWith(1)) << r.Describe();
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr(path));
}

TEST(TranslateCliTest, DirectoryIsUnreadableInput) {
  // "Exit status ... 1 unreadable input": a directory cannot be read as records.
  const SubprocessResult r = RunFhirgw({"translate", "examples"});
  EXPECT_TRUE(r.ExitedWith(1)) << r.Describe();
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr("examples"));
}

TEST(TranslateCliTest, EmptyInputHoldsNoRecord) {
  // RunTranslate counts an input without a record as one failed record: exit 2.
  const SubprocessResult empty_stdin = RunFhirgw({"translate", "-"}, "");
  EXPECT_TRUE(empty_stdin.ExitedWith(2)) << empty_stdin.Describe();
  EXPECT_EQ(empty_stdin.out, "");
  EXPECT_EQ(empty_stdin.err, "fhirgw translate: - holds no record\n");

  const SubprocessResult blank_stdin = RunFhirgw({"translate", "-"}, "\n  \n\t\n");
  EXPECT_TRUE(blank_stdin.ExitedWith(2)) << blank_stdin.Describe();
  EXPECT_EQ(blank_stdin.out, "");
  EXPECT_EQ(blank_stdin.err, "fhirgw translate: - holds no record\n");

  const TempFile file("empty.json", "");
  const SubprocessResult empty_file = RunFhirgw({"translate", file.path()});
  EXPECT_TRUE(empty_file.ExitedWith(2)) << empty_file.Describe();
  EXPECT_EQ(empty_file.out, "");
  EXPECT_EQ(empty_file.err, "fhirgw translate: " + file.path() + " holds no record\n");
}

// ---- usage (the commands in general: cli_test.cc) ----

TEST(TranslateCliTest, TranslateNeedsExactlyOnePath) {
  for (const std::vector<std::string>& args :
       {std::vector<std::string>{"translate"},
        std::vector<std::string>{"translate", kInfusion, kGad7}}) {
    const SubprocessResult r = RunFhirgw(args);
    EXPECT_TRUE(r.ExitedWith(1)) << r.Describe();
    EXPECT_EQ(r.out, "");
    EXPECT_EQ(r.err, "usage: fhirgw translate FILE|-\n");
  }
}

TEST(TranslateCliTest, UnknownFlagIsAUsageError) {
  const SubprocessResult r = RunFhirgw({"translate", "--no_such_flag", kInfusion});
  EXPECT_TRUE(r.ExitedWith(1)) << r.Describe();
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr("no_such_flag"));
}

// ---- translate --reverse: FHIR R4 -> clinic records ----

constexpr char kHospitalMedicationList[] =
    "tests/golden/reverse/hospital-medication-list.fhir.json";
constexpr char kHospitalPhq9[] = "tests/golden/reverse/hospital-phq9-response.fhir.json";

// The clinic records printed by translate --reverse: one compact protobuf-JSON object a line.
std::vector<rapidjson::Document> RecordLines(const std::string& out) {
  std::vector<rapidjson::Document> records;
  for (const std::string& line : Lines(out)) {
    rapidjson::Document record;
    EXPECT_TRUE(ParseJson(line, record));
    EXPECT_TRUE(record.IsObject() && record.HasMember("recordId")) << line;
    EXPECT_EQ(line, CompactJson(record)) << "not compact";
    records.push_back(std::move(record));
  }
  return records;
}

TEST(TranslateReverseCliTest, BundleGivesOneRecordALineAndIssuesWithPaths) {
  const SubprocessResult r = RunFhirgw({"translate", "--reverse", kHospitalMedicationList});
  ASSERT_TRUE(r.ExitedWith(0)) << r.Describe();
  const std::vector<rapidjson::Document> records = RecordLines(r.out);
  ASSERT_THAT(records, SizeIs(3));
  EXPECT_STREQ(records[0]["recordId"].GetString(), "https://ehr.mercy.example.org/orders|ORD-11");
  EXPECT_STREQ(records[0]["medicationStatement"]["informationSource"].GetString(),
               "HOSPITAL_RECORD");
  EXPECT_STREQ(records[1]["medicationStatement"]["status"].GetString(), "NOT_TAKEN");
  EXPECT_STREQ(records[2]["medicationStatement"]["adherence"].GetString(),
               "TAKING_NOT_AS_DIRECTED");
  EXPECT_EQ(r.err,
            "Bundle.entry[4].resource.resourceType: 'Condition' is not supported; supported "
            "resource types: MedicationStatement, MedicationRequest, MedicationAdministration, "
            "QuestionnaireResponse, Observation (PHQ-9, GAD-7, PHQ-2), Encounter, Patient\n");
}

TEST(TranslateReverseCliTest, ForwardOutputComesBackAsTheRecord) {
  const SubprocessResult forward = RunFhirgw({"translate", kInfusion});
  ASSERT_TRUE(forward.ExitedWith(0)) << forward.Describe();
  const SubprocessResult r = RunFhirgw({"translate", "--reverse", "-"}, forward.out);
  ASSERT_TRUE(r.ExitedWith(0)) << r.Describe();
  EXPECT_EQ(r.err, "");
  const std::vector<rapidjson::Document> records = RecordLines(r.out);
  ASSERT_THAT(records, SizeIs(1));
  const rapidjson::Document example = LoadExample(kInfusion);
  EXPECT_EQ(records[0]["recordId"], example["recordId"]);
  EXPECT_EQ(records[0]["patient"], example["patient"]);
  // Offline the tenant is unknown: fhirgw's identifiers are recognised, no clinicId is invented.
  EXPECT_FALSE(records[0].HasMember("clinicId"));
  const rapidjson::Value& infusion = records[0]["infusion"];
  EXPECT_EQ(infusion["vitals"], example["infusion"]["vitals"]);
  EXPECT_EQ(infusion["doseMgPerKg"], example["infusion"]["doseMgPerKg"]);
  EXPECT_EQ(infusion["sessionNumber"], example["infusion"]["sessionNumber"]);
  EXPECT_EQ(infusion["adverseEvents"], example["infusion"]["adverseEvents"]);
}

TEST(TranslateReverseCliTest, NdjsonProblemsArePrefixedWithTheirLine) {
  const std::string ndjson =
      CompactExample(kHospitalPhq9) + "\n" + R"({"resourceType":"Condition","id":"c1"})" + "\n\n" +
      R"({"resourceType":"MedicationStatement","id":"ms1","status":"active",)"
      R"("medicationCodeableConcept":{"text":"sertraline"},"subject":{"reference":"Patient/p1"},)"
      R"("effectiveDateTime":"2025-13"})" +
      "\n";
  TempFile file("reverse.ndjson", ndjson);
  const SubprocessResult r = RunFhirgw({"translate", "--reverse", file.path()});
  ASSERT_TRUE(r.ExitedWith(0)) << r.Describe();
  const std::vector<rapidjson::Document> records = RecordLines(r.out);
  ASSERT_THAT(records, SizeIs(2));
  EXPECT_TRUE(records[0].HasMember("questionnaire"));
  EXPECT_TRUE(records[1].HasMember("medicationStatement"));
  const std::vector<std::string> err = Lines(r.err);
  ASSERT_THAT(err, SizeIs(3)) << r.err;
  EXPECT_THAT(err[0], StartsWith("line 1: QuestionnaireResponse.item[3].linkId: "));
  EXPECT_THAT(err[1], StartsWith("line 2: Condition.resourceType: 'Condition' is not supported"));
  EXPECT_THAT(err[2], AllOf(StartsWith("line 4: MedicationStatement.effectiveDateTime: "),
                            HasSubstr("month 13"), EndsWith("(warning)")));
}

TEST(TranslateReverseCliTest, NothingMappedExitsTwo) {
  for (const std::string& input :
       {std::string(R"({"resourceType":"Condition","id":"c1"})"), std::string("{not json"),
        std::string(R"({"resourceType":"Bundle","type":"transaction-response","entry":[]})")}) {
    SCOPED_TRACE(input);
    const SubprocessResult r = RunFhirgw({"translate", "--reverse", "-"}, input);
    EXPECT_TRUE(r.ExitedWith(2)) << r.Describe();
    EXPECT_EQ(r.out, "");
    EXPECT_THAT(r.err, AllOf(HasSubstr(": "),
                             EndsWith("fhirgw translate: nothing could be mapped to a clinic "
                                      "record\n")));
  }
  const SubprocessResult condition =
      RunFhirgw({"translate", "--reverse", "-"}, R"({"resourceType":"Condition","id":"c1"})");
  EXPECT_THAT(condition.err, HasSubstr("Condition.resourceType: 'Condition' is not supported; "
                                       "supported resource types: MedicationStatement"));
  const SubprocessResult malformed = RunFhirgw({"translate", "--reverse", "-"}, "{not json");
  EXPECT_THAT(malformed.err, StartsWith("input: is not valid JSON"));
}

TEST(TranslateReverseCliTest, UnreadableInputExitsOne) {
  const SubprocessResult r = RunFhirgw({"translate", "--reverse", "no/such/bundle.json"});
  EXPECT_TRUE(r.ExitedWith(1)) << r.Describe();
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, HasSubstr("cannot read no/such/bundle.json"));
}

}  // namespace
}  // namespace fhirgw::gateway
