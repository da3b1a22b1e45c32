// A malicious EHR (or a hostile configuration file): deep nesting and invalid UTF-8 give errors,
// never a crash.
#include <string>

#include "absl/status/status.h"
#include "gateway/config/config.h"
#include "gateway/delivery/fhir_response.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fhirgw::gateway {
namespace {

using ::testing::HasSubstr;

TEST(HostileResponseTest, TransactionResponseWithDeepNestingIsAnError) {
  const std::string deep(200000, '[');
  const auto refs = ParseTransactionResponse(deep, "");
  ASSERT_FALSE(refs.ok());
  EXPECT_EQ(refs.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(refs.status().message(), HasSubstr("nesting deeper than 64 at offset"));

  const std::string in_bundle =
      R"({"resourceType":"Bundle","type":"transaction-response","entry":)" + deep;
  EXPECT_THAT(ParseTransactionResponse(in_bundle, "").status().message(),
              HasSubstr("nesting deeper than 64"));
}

TEST(HostileResponseTest, TransactionResponseWithInvalidUtf8IsAnError) {
  const auto refs = ParseTransactionResponse(
      "{\"resourceType\":\"Bundle\",\"type\":\"transaction-response\",\"id\":\"\xc3\x28\"}", "");
  ASSERT_FALSE(refs.ok());
  EXPECT_THAT(refs.status().message(), HasSubstr("invalid UTF-8 at offset"));
}

TEST(HostileResponseTest, OperationOutcomeWithDeepNestingGivesNoIssues) {
  EXPECT_TRUE(ParseOperationOutcome(std::string(200000, '[')).empty());
  EXPECT_TRUE(ParseOperationOutcome(R"({"resourceType":"OperationOutcome","issue":)" +
                                    std::string(200000, '{'))
                  .empty());
}

// Found by ehr_response_fuzz: absl::ParseTime takes "infinite-past", whose milliseconds overflowed.
TEST(HostileResponseTest, RetryAfterOfInfiniteTimesIsNoDate) {
  EXPECT_EQ(ParseRetryAfter("infinite-past", 1700000000000), -1);
  EXPECT_EQ(ParseRetryAfter("infinite-future", 1700000000000), -1);
  EXPECT_EQ(ParseRetryAfter("Fri, 31 Dec 9999 23:59:59 GMT", 1700000000000), 251702300799000);
}

TEST(HostileConfigTest, DeepNestingIsAnError) {
  std::string text;
  for (int i = 0; i < 100000; ++i) text += "security { ";
  const auto config = ParseConfig(text, "hostile.textproto");
  ASSERT_FALSE(config.ok());
  EXPECT_EQ(config.status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace fhirgw::gateway
