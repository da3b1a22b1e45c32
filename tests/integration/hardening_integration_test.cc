// Hardening of a running gateway (issue #12): hostile JSON on the inbound endpoint is refused with
// 400 and the gateway keeps serving; the files it creates are private (0600); a key file others
// may read stops `fhirgw serve` at start.
#include <sys/stat.h>

#include <chrono>
#include <filesystem>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"
#include "tests/testing/fhirgw_cli.h"
#include "tests/testing/subprocess.h"

namespace fhirgw::testing {
namespace {

using ::testing::HasSubstr;

constexpr char kFhirJson[] = "application/fhir+json";

class HardeningIntegrationTest : public IntegrationTest {
 protected:
  HardeningIntegrationTest() : IntegrationTest("fhirgw-hardening-it-") {}
};

// Returns "path mode" for every regular file under `dir` whose group or other bits are set.
std::vector<std::string> NonPrivateFiles(const std::string& dir, std::vector<std::string>* seen) {
  std::vector<std::string> open;
  for (const auto& entry : std::filesystem::recursive_directory_iterator(dir)) {
    if (!entry.is_regular_file()) continue;
    struct stat info {};
    if (::stat(entry.path().c_str(), &info) != 0) continue;
    seen->push_back(entry.path().filename().string());
    if ((info.st_mode & 077) != 0) {
      open.push_back(absl::StrFormat("%s %04o", entry.path().string(), info.st_mode & 07777));
    }
  }
  return open;
}

TEST_F(HardeningIntegrationTest, HostileJsonIsRefusedWith400AndTheGatewayKeepsServing) {
  Gateway* gateway = StartGateway(Settings());
  ASSERT_NE(gateway, nullptr);

  const HttpAnswer deep =
      HttpSend(gateway->http_address(), "POST", "/fhir", std::string(200000, '['), kFhirJson);
  EXPECT_EQ(deep.status, 400) << deep.body;
  EXPECT_THAT(deep.body, HasSubstr("nesting deeper than 64 at offset"));

  const HttpAnswer deep_resource =
      HttpSend(gateway->http_address(), "POST", "/fhir/MedicationRequest",
               "{\"a\":" + std::string(200000, '['), kFhirJson);
  EXPECT_EQ(deep_resource.status, 400) << deep_resource.body;
  EXPECT_THAT(deep_resource.body, HasSubstr("nesting deeper than 64"));

  const HttpAnswer invalid_utf8 =
      HttpSend(gateway->http_address(), "POST", "/fhir/MedicationRequest",
               "{\"resourceType\":\"MedicationRequest\",\"id\":\"\xff\xfe\"}", kFhirJson);
  EXPECT_EQ(invalid_utf8.status, 400) << invalid_utf8.body;
  EXPECT_THAT(invalid_utf8.body, HasSubstr("invalid UTF-8 at offset"));

  EXPECT_TRUE(gateway->running());
  EXPECT_EQ(gateway->Http("/healthz").status, 200) << gateway->Describe();
}

TEST_F(HardeningIntegrationTest, DataFilesAreCreatedPrivate) {
  const std::string key = root_ + "/head-signing.pem";
  const SubprocessResult keygen =
      RunCommand({"/usr/bin/openssl", "genpkey", "-algorithm", "ed25519", "-out", key});
  ASSERT_TRUE(keygen.ExitedWith(0)) << keygen.Describe();
  std::filesystem::permissions(key, std::filesystem::perms::owner_read,
                               std::filesystem::perm_options::replace);

  GatewaySettings settings = Settings();
  settings.ehr_url = "file:" + root_ + "/data/outbox";
  settings.extra_config = "audit { signing_key_file: \"" + key + "\" sign_interval_ms: 100 }";
  Gateway* gateway = StartGateway(settings);
  ASSERT_NE(gateway, nullptr);
  v1::PushResponse response;
  const grpc::Status pushed =
      gateway->Push(Make(RecordKind::kInfusion, "hard-1", "P-1"), true, &response);
  ASSERT_TRUE(pushed.ok()) << pushed.error_message() << gateway->Describe();

  // The signed heads file appears at the next signing interval.
  const std::string heads = root_ + "/data/fhirgw.db.heads";
  for (int i = 0; i < 100 && !std::filesystem::exists(heads); ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  std::vector<std::string> seen;
  EXPECT_THAT(NonPrivateFiles(root_ + "/data", &seen), ::testing::IsEmpty());
  EXPECT_THAT(seen, ::testing::IsSupersetOf(
                        {"fhirgw.db", "fhirgw.db-wal", "fhirgw.db-shm", "fhirgw.db.heads"}));
  EXPECT_THAT(seen, ::testing::Contains(::testing::EndsWith(".ndjson")));
}

TEST_F(HardeningIntegrationTest, KeyFileReadableByOthersIsRefusedAtStart) {
  const std::string key = root_ + "/payload.key";
  ASSERT_TRUE(WriteFile(key, "MDEyMzQ1Njc4OWFiY2RlZjAxMjM0NTY3ODlhYmNkZWY=\n"));
  std::filesystem::permissions(
      key,
      std::filesystem::perms::owner_read | std::filesystem::perms::owner_write |
          std::filesystem::perms::group_read | std::filesystem::perms::others_read,
      std::filesystem::perm_options::replace);
  const std::string config = root_ + "/gateway.textproto";
  ASSERT_TRUE(WriteFile(config, "listen: \"127.0.0.1:0\"\nhttp_listen: \"off\"\ndata_dir: \"" +
                                    root_ +
                                    "/data\"\nsecurity { encryption { keys { id: \"k1\" "
                                    "key_file: \"" +
                                    key + "\" } } }\n"));
  const SubprocessResult refused = RunFhirgw({"serve", "--config=" + config});
  EXPECT_FALSE(refused.ExitedWith(0)) << refused.Describe();
  EXPECT_FALSE(refused.timed_out) << refused.Describe();
  EXPECT_THAT(refused.err, HasSubstr("security.encryption.keys[0].key_file: the key file '" + key +
                                     "' has mode 0644"));
  EXPECT_FALSE(std::filesystem::exists(root_ + "/data/fhirgw.db"));
}

}  // namespace
}  // namespace fhirgw::testing
