#include "gateway/security/key_files.h"

#include <sys/stat.h>
#include <unistd.h>

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/files.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fhirgw::gateway {
namespace {

using ::fhirgw::testing::IsOk;
using ::fhirgw::testing::StatusIs;
using ::testing::HasSubstr;

class KeyFilesTest : public ::testing::Test {
 protected:
  std::string Key(mode_t mode) {
    const std::string path = dir_.File("key-" + std::to_string(mode) + ".pem");
    EXPECT_TRUE(fhirgw::testing::WriteFile(path, "secret"));
    EXPECT_EQ(::chmod(path.c_str(), mode), 0);
    return path;
  }
  fhirgw::testing::TempDir dir_;
};

TEST_F(KeyFilesTest, PrivateKeysPass) {
  EXPECT_THAT(CheckKeyFileMode(Key(0600), "audit.signing_key_file"), IsOk());
  EXPECT_THAT(CheckKeyFileMode(Key(0400), "audit.signing_key_file"), IsOk());
  EXPECT_THAT(CheckKeyFileMode(dir_.File("absent.pem"), "audit.signing_key_file"), IsOk());
}

TEST_F(KeyFilesTest, KeysOthersMayReadAreRefusedWithFileAndMode) {
  const std::string path = Key(0644);
  EXPECT_THAT(
      CheckKeyFileMode(path, "security.tls.key_file"),
      StatusIs(absl::StatusCode::kFailedPrecondition,
               HasSubstr("security.tls.key_file: the key file '" + path + "' has mode 0644")));
  EXPECT_THAT(CheckKeyFileMode(Key(0604), "f"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("mode 0604")));
  EXPECT_THAT(CheckKeyFileMode(Key(0620), "f"),
              StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("mode 0620")));
}

TEST_F(KeyFilesTest, GroupReadIsAllowedOnlyOnRootOwnedFiles) {
  const std::string path = Key(0640);
  if (::geteuid() == 0) {
    EXPECT_THAT(CheckKeyFileMode(path, "f"), IsOk());  // a Kubernetes Secret mounted with fsGroup
  } else {
    EXPECT_THAT(CheckKeyFileMode(path, "f"),
                StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("mode 0640")));
  }
}

TEST_F(KeyFilesTest, ConfigNamesTheOffendingField) {
  v1::GatewayConfig config;
  config.mutable_audit()->set_signing_key_file(Key(0600));
  EXPECT_THAT(CheckKeyFilePermissions(config), IsOk());
  v1::Destination& ehr = *config.add_destinations();
  ehr.mutable_auth()->mutable_oauth2()->set_private_key_file(Key(0644));
  EXPECT_THAT(CheckKeyFilePermissions(config),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("destinations[0].auth.oauth2.private_key_file")));
}

}  // namespace
}  // namespace fhirgw::gateway
