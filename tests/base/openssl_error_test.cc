#include "base/openssl_error.h"

#include <openssl/err.h>
#include <openssl/pem.h>

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fhirgw::base {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;

TEST(OpenSslErrorsTest, EmptyQueue) {
  ERR_clear_error();
  EXPECT_EQ(OpenSslErrors(), "unknown OpenSSL error");
}

TEST(OpenSslErrorsTest, JoinsEveryQueuedErrorAndClearsTheQueue) {
  ERR_clear_error();
  // Reading a certificate from a file that does not exist queues a system error and a BIO error.
  EXPECT_EQ(BIO_new_file("/nonexistent/fhirgw/cert.pem", "r"), nullptr);
  const std::string text = OpenSslErrors();
  EXPECT_THAT(text, HasSubstr("error:"));
  EXPECT_THAT(text, HasSubstr("; "));
  EXPECT_THAT(text, Not(HasSubstr("unknown OpenSSL error")));
  EXPECT_EQ(ERR_peek_error(), 0u);
  EXPECT_EQ(OpenSslErrors(), "unknown OpenSSL error");
}

}  // namespace
}  // namespace fhirgw::base
