#include "mappers/record_json.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

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

}  // namespace
}  // namespace fhirgw::mappers
