// GoogleMock matchers for absl::Status and absl::StatusOr, shared by every test.
//
//   EXPECT_THAT(LoadConfigFile(path), StatusIs(absl::StatusCode::kNotFound, HasSubstr(path)));
//   EXPECT_THAT(store->Append(record), IsOk());
#ifndef FHIRGW_TESTS_TESTING_STATUS_MATCHERS_H_
#define FHIRGW_TESTS_TESTING_STATUS_MATCHERS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "gmock/gmock.h"

namespace fhirgw::testing {

inline const absl::Status& StatusOf(const absl::Status& status) { return status; }
template <typename T>
const absl::Status& StatusOf(const absl::StatusOr<T>& status_or) {
  return status_or.status();
}

// Matches an absl::Status (or the status of an absl::StatusOr) whose code is `code` and whose
// message matches `message_matcher`.
MATCHER_P2(StatusIs, code, message_matcher,
           std::string(negation ? "isn't" : "is") + " a status with code " +
               absl::StatusCodeToString(code)) {
  const absl::Status& status = ::fhirgw::testing::StatusOf(arg);
  if (status.code() != code) {
    *result_listener << "whose code is " << absl::StatusCodeToString(status.code()) << ": "
                     << status.message();
    return false;
  }
  return ::testing::ExplainMatchResult(message_matcher, std::string(status.message()),
                                       result_listener);
}

// Matches an OK absl::Status or absl::StatusOr; on failure prints the status.
MATCHER(IsOk, std::string(negation ? "isn't" : "is") + " OK") {
  const absl::Status& status = ::fhirgw::testing::StatusOf(arg);
  if (!status.ok()) *result_listener << "whose status is " << status.ToString();
  return status.ok();
}

}  // namespace fhirgw::testing

#endif  // FHIRGW_TESTS_TESTING_STATUS_MATCHERS_H_
