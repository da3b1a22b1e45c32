#include "mappers/record_json.h"

#include <cstdint>
#include <filesystem>
#include <random>
#include <string>
#include <vector>

#include "gmock/gmock.h"
#include "google/protobuf/arena.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"
#include "tests/testing/files.h"

namespace fhirgw::mappers {
namespace {

using ::testing::HasSubstr;

TEST(ParseRecordJsonTest, ParsesCamelCaseAndEnumNames) {
  absl::StatusOr<v1::ClinicRecord> record = ParseRecordJson(
      R"({"recordId":"r1","clinicId":"c1","infusion":{"route":"INTRAVENOUS","doseMgPerKg":0.5}})");
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(record->record_id(), "r1");
  EXPECT_EQ(record->infusion().route(), v1::Route::INTRAVENOUS);
  EXPECT_TRUE(record->infusion().has_dose_mg_per_kg());
  EXPECT_FALSE(record->infusion().has_total_dose_mg());
}

TEST(ParseRecordJsonTest, AcceptsProtoFieldNames) {
  absl::StatusOr<v1::ClinicRecord> record = ParseRecordJson(R"({"record_id":"r1"})");
  ASSERT_TRUE(record.ok()) << record.status();
  EXPECT_EQ(record->record_id(), "r1");
}

TEST(ParseRecordJsonTest, UnknownFieldNamesItsPath) {
  absl::StatusOr<v1::ClinicRecord> record =
      ParseRecordJson(R"({"recordId":"r1","patient":{"clinicPatientId":"p","mrn":"x"}})");
  ASSERT_FALSE(record.ok());
  EXPECT_EQ(record.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(record.status().message(), "patient.mrn: unknown field");
}

TEST(ParseRecordJsonTest, WrongTypeNamesItsPath) {
  absl::StatusOr<v1::ClinicRecord> record =
      ParseRecordJson(R"({"infusion":{"vitals":[{},{"heartRateBpm":"fast"}]}})");
  ASSERT_FALSE(record.ok());
  EXPECT_THAT(std::string(record.status().message()),
              HasSubstr("infusion.vitals[1].heart_rate_bpm: invalid value"));
}

TEST(ParseRecordJsonTest, BadEnumNamesItsPathWithoutTypeUrl) {
  absl::StatusOr<v1::ClinicRecord> record = ParseRecordJson(R"({"infusion":{"route":"IV"}})");
  ASSERT_FALSE(record.ok());
  EXPECT_THAT(std::string(record.status().message()), HasSubstr("infusion.route: "));
  EXPECT_THAT(std::string(record.status().message()),
              ::testing::Not(HasSubstr("type.googleapis.com")));
}

TEST(ParseRecordJsonTest, MalformedJsonIsOneLine) {
  absl::StatusOr<v1::ClinicRecord> record = ParseRecordJson(R"({"recordId": )");
  ASSERT_FALSE(record.ok());
  const std::string message(record.status().message());
  EXPECT_THAT(message, HasSubstr("record: invalid JSON"));
  EXPECT_EQ(message.find('\n'), std::string::npos);
}

TEST(RecordToJsonTest, RoundTrips) {
  v1::ClinicRecord record;
  record.set_record_id("r1");
  record.mutable_questionnaire()->set_instrument(v1::QuestionnaireRecord::PHQ9);
  v1::Answer* answer = record.mutable_questionnaire()->add_answers();
  answer->set_item(9);
  answer->set_value(0);  // optional: zero must survive the round trip
  absl::StatusOr<v1::ClinicRecord> back = ParseRecordJson(RecordToJson(record));
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(back->SerializeAsString(), record.SerializeAsString());
  EXPECT_TRUE(back->questionnaire().answers(0).has_value());
}

// ---- the fast path against protobuf's parser ----
//
// ParseRecordJson reads common records with a RapidJSON fast path and falls back to protobuf's
// parser for anything else; both must give the same message, or the same error, for every input.

namespace fs = std::filesystem;
using ::fhirgw::testing::ReadFile;

std::string Compact(const std::string& json) {
  rapidjson::Document doc;
  doc.Parse(json.data(), json.size());
  if (doc.HasParseError()) return json;
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  doc.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

// Every record JSON the repository holds: examples/ and tests/golden/**/*.record.json.
std::vector<std::string> AllRecordTexts() {
  std::vector<std::string> texts;
  const fs::path root(FHIRGW_SOURCE_DIR);
  for (const auto& entry : fs::directory_iterator(root / "examples")) {
    if (entry.path().extension() == ".json") texts.push_back(ReadFile(entry.path()));
  }
  for (const auto& entry : fs::recursive_directory_iterator(root / "tests" / "golden")) {
    if (entry.path().string().ends_with(".record.json")) texts.push_back(ReadFile(entry.path()));
  }
  return texts;
}

// Expects ParseRecordJson(json) to be exactly ParseRecordJsonWithProtobuf(json).
void ExpectSameAsProtobuf(const std::string& json) {
  const absl::StatusOr<v1::ClinicRecord> fast = ParseRecordJson(json);
  const absl::StatusOr<v1::ClinicRecord> reference = ParseRecordJsonWithProtobuf(json);
  ASSERT_EQ(fast.status(), reference.status()) << json;
  if (fast.ok()) {
    EXPECT_EQ(fast->SerializeAsString(), reference->SerializeAsString())
        << json << "\nfast: " << fast->ShortDebugString()
        << "\nprotobuf: " << reference->ShortDebugString();
  }
}

TEST(RecordJsonFastPathTest, RepositoryRecordsParseAsProtobufDoes) {
  const std::vector<std::string> texts = AllRecordTexts();
  ASSERT_GE(texts.size(), 60u);  // the goldens were found
  for (const std::string& text : texts) {
    ExpectSameAsProtobuf(text);
    ExpectSameAsProtobuf(Compact(text));
  }
}

TEST(RecordJsonFastPathTest, ExamplesTakeTheFastPath) {
  RecordJsonReader reader;
  google::protobuf::Arena arena;
  int examples = 0;
  for (const auto& entry : fs::directory_iterator(fs::path(FHIRGW_SOURCE_DIR) / "examples")) {
    if (entry.path().extension() != ".json") continue;
    ++examples;
    auto* record = google::protobuf::Arena::CreateMessage<v1::ClinicRecord>(&arena);
    ASSERT_TRUE(reader.Read(Compact(ReadFile(entry.path())), *record).ok()) << entry.path();
    EXPECT_EQ(record->SerializeAsString(),
              ParseRecordJsonWithProtobuf(ReadFile(entry.path()))->SerializeAsString());
  }
  EXPECT_GE(examples, 6);
  EXPECT_EQ(reader.fast_reads(), examples);
  EXPECT_EQ(reader.fallback_reads(), 0);
}

TEST(RecordJsonFastPathTest, ErrorsComeFromProtobuf) {
  RecordJsonReader reader;
  v1::ClinicRecord record;
  const absl::Status status = reader.Read(R"({"infusion":{"route":"IV"}})", record);
  EXPECT_EQ(status, ParseRecordJsonWithProtobuf(R"({"infusion":{"route":"IV"}})").status());
  EXPECT_EQ(reader.fast_reads(), 0);
  EXPECT_EQ(reader.fallback_reads(), 1);
}

TEST(RecordJsonFastPathTest, EdgeCasesParseAsProtobufDoes) {
  const std::vector<std::string> cases = {
      "{}",
      "  {\"recordId\":\"r\"}\n",
      "[]",
      "\"x\"",
      "{}x",
      "{} {}",
      std::string("{\"recordId\":\"r\"}\0", 17),
      std::string("{\"recordId\":\"a\0b\"}", 18),
      R"({"recordId":"a\u0000b"})",
      R"({"recordId":"\ud800"})",
      R"({"recordId":"\ud83d\ude00 \u00e9\n\t\"\\\/"})",
      "{\"recordId\":\"\xff\"}",
      "{\"recordId\":\"\xc3\xa9\"}",
      R"({"recordId":"a","recordId":"b"})",
      R"({"recordId":"a","record_id":"b"})",
      R"({"record_id":"a","clinic_id":"c","recorded_at":"2026-11-20T15:02:10Z"})",
      R"({"recordId":null})",
      R"({"recordId":1})",
      R"({"recordId":true})",
      R"({"patient":null})",
      R"({"patient":[]})",
      R"({"patient":{"givenNames":"x"}})",
      R"({"patient":{"givenNames":["a",null]}})",
      R"({"patient":{"givenNames":["a",1]}})",
      R"({"patient":{"gender":2}})",
      R"({"patient":{"gender":"2"}})",
      R"({"patient":{"gender":"female"}})",
      R"({"patient":{"gender":"GENDER_UNSPECIFIED"}})",
      R"({"action":"ENTERED_IN_ERROR"})",
      R"({"infusion":{},"encounter":{}})",
      R"({"infusion":{},"infusion":{}})",
      R"({"infusion":null})",
      R"({"patientRecord":{"active":true,"deceased":false}})",
      R"({"patientRecord":{"active":"true"}})",
      R"({"patientRecord":{"active":1}})",
      R"({"infusion":{"sessionNumber":0}})",
      R"({"infusion":{"sessionNumber":-0}})",
      R"({"infusion":{"sessionNumber":-7}})",
      R"({"infusion":{"sessionNumber":1.0}})",
      R"({"infusion":{"sessionNumber":1e2}})",
      R"({"infusion":{"sessionNumber":"3"}})",
      R"({"infusion":{"sessionNumber":2147483647}})",
      R"({"infusion":{"sessionNumber":2147483648}})",
      R"({"infusion":{"sessionNumber":-2147483648}})",
      R"({"infusion":{"sessionNumber":-2147483649}})",
      R"({"infusion":{"sessionNumber":1.5}})",
      R"({"infusion":{"doseMgPerKg":0}})",
      R"({"infusion":{"doseMgPerKg":-0}})",
      R"({"infusion":{"doseMgPerKg":0.0}})",
      R"({"infusion":{"doseMgPerKg":-0.0}})",
      R"({"infusion":{"doseMgPerKg":0.1}})",
      R"({"infusion":{"doseMgPerKg":72.4}})",
      R"({"infusion":{"doseMgPerKg":1e-400}})",
      R"({"infusion":{"doseMgPerKg":1e400}})",
      R"({"infusion":{"doseMgPerKg":2.2250738585072011e-308}})",
      R"({"infusion":{"doseMgPerKg":0.30000000000000004}})",
      R"({"infusion":{"doseMgPerKg":9007199254740993}})",
      R"({"infusion":{"doseMgPerKg":9007199254740992}})",
      R"({"infusion":{"doseMgPerKg":-9007199254740993}})",
      R"({"infusion":{"doseMgPerKg":123456789012345678901234567890}})",
      R"({"infusion":{"doseMgPerKg":1.7976931348623157e308}})",
      R"({"infusion":{"doseMgPerKg":"0.5"}})",
      R"({"infusion":{"doseMgPerKg":"NaN"}})",
      R"({"infusion":{"doseMgPerKg":"Infinity"}})",
      R"({"infusion":{"doseMgPerKg":01}})",
      R"({"infusion":{"doseMgPerKg":.5}})",
      R"({"infusion":{"doseMgPerKg":5.}})",
      R"({"infusion":{"doseMgPerKg":+5}})",
      R"({"infusion":{"doseMgPerKg":NaN}})",
      R"({"infusion":{"vitals":[{"spo2Percent":97.5},{}]}})",
      R"({"infusion":{"vitals":[null]}})",
      R"({"infusion":{"vitals":{}}})",
      R"({"infusion":{"vitals":[]}})",
      R"({"recordedAt":"2026-11-20T15:02:10Z"})",
      R"({"recordedAt":"2026-11-20T15:02:10.5Z"})",
      R"({"recordedAt":"2026-11-20T15:02:10.123456789Z"})",
      R"({"recordedAt":"2026-11-20T15:02:10.1234567891Z"})",
      R"({"recordedAt":"2026-11-20T15:02:10.Z"})",
      R"({"recordedAt":"2026-11-20T15:02:10+01:00"})",
      R"({"recordedAt":"2026-11-20T15:02:10-05:30"})",
      R"({"recordedAt":"2026-11-20T15:02:10z"})",
      R"({"recordedAt":"2026-11-20t15:02:10Z"})",
      R"({"recordedAt":"2026-11-20 15:02:10Z"})",
      R"({"recordedAt":"2026-11-20T15:02Z"})",
      R"({"recordedAt":"2026-11-20"})",
      R"({"recordedAt":"2024-02-29T00:00:00Z"})",
      R"({"recordedAt":"2023-02-29T00:00:00Z"})",
      R"({"recordedAt":"2000-02-29T00:00:00Z"})",
      R"({"recordedAt":"1900-02-29T00:00:00Z"})",
      R"({"recordedAt":"2026-04-31T00:00:00Z"})",
      R"({"recordedAt":"2026-13-01T00:00:00Z"})",
      R"({"recordedAt":"2026-00-01T00:00:00Z"})",
      R"({"recordedAt":"2026-11-20T24:00:00Z"})",
      R"({"recordedAt":"2026-11-20T23:60:00Z"})",
      R"({"recordedAt":"2026-11-20T23:59:60Z"})",
      R"({"recordedAt":"1970-01-01T00:00:00Z"})",
      R"({"recordedAt":"1969-12-31T23:59:59.999Z"})",
      R"({"recordedAt":"0001-01-01T00:00:00Z"})",
      R"({"recordedAt":"0000-01-01T00:00:00Z"})",
      R"({"recordedAt":"9999-12-31T23:59:59.999999999Z"})",
      R"({"recordedAt":"+2026-11-20T15:02:10Z"})",
      R"({"recordedAt":"2026-1-20T15:02:10Z"})",
      R"({"recordedAt":" 2026-11-20T15:02:10Z"})",
      R"({"recordedAt":1763650930})",
      R"({"recordedAt":{"seconds":1}})",
      R"({"recordedAt":null})",
      R"({"questionnaire":{"answers":[{"item":1,"value":0},{"item":2}]}})",
      R"({"recordId":"r",})",
      R"({"recordId":"r" /* c */})",
      R"({recordId:"r"})",
      R"({'recordId':'r'})",
      "{\"recordId\":\"r\"\v}",
      "{\"recordId\":\"r\"\f}",
      "{\"recordId\":\"r\x01\"}",
      "\xef\xbb\xbf{\"recordId\":\"r\"}",
      R"({"reco\u0072dId":"r"})",
      R"({"RecordId":"r"})",
      R"({"recordid":"r"})",
      "",
      "   ",
  };
  for (const std::string& json : cases) ExpectSameAsProtobuf(json);
}

// Random byte edits of the examples: whatever they do to the text, both parsers must agree.
TEST(RecordJsonFastPathTest, MutatedRecordsParseAsProtobufDoes) {
  std::vector<std::string> seeds;
  for (const std::string& text : AllRecordTexts()) seeds.push_back(Compact(text));
  ASSERT_FALSE(seeds.empty());
  std::mt19937 random(20261120);  // fixed: the same inputs every run
  static constexpr char kAlphabet[] = "{}[]\":,.-+eE0123456789 aZtrufnl\\\x00\xff";
  const std::string alphabet(kAlphabet, sizeof(kAlphabet) - 1);
  for (int i = 0; i < 3000; ++i) {
    std::string json = seeds[random() % seeds.size()];
    const int edits = 1 + static_cast<int>(random() % 3);
    for (int e = 0; e < edits && !json.empty(); ++e) {
      const size_t at = random() % json.size();
      switch (random() % 3) {
        case 0:
          json[at] = alphabet[random() % alphabet.size()];
          break;
        case 1:
          json.erase(at, 1 + random() % 4);
          break;
        default:
          json.insert(at, 1, alphabet[random() % alphabet.size()]);
          break;
      }
    }
    ExpectSameAsProtobuf(json);
    if (HasFailure()) break;
  }
}

}  // namespace
}  // namespace fhirgw::mappers
