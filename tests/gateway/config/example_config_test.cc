// The sample configuration shipped in deploy/ must parse, pass validation and mean what the README
// says.
#include <fstream>
#include <sstream>

#include "gateway/config/config.h"
#include "gateway/security/auth.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace fhirgw::gateway {
namespace {

TEST(ExampleConfigTest, ParsesAndValidates) {
  absl::StatusOr<v1::GatewayConfig> config =
      LoadConfigFile(std::string(FHIRGW_SOURCE_DIR) + "/deploy/config/fhirgw.example.textproto");
  ASSERT_TRUE(config.ok()) << config.status();
  ApplyDefaults(*config);
  ASSERT_TRUE(ValidateConfig(*config).ok()) << ValidateConfig(*config);
  // It listens on 0.0.0.0, so it must carry TLS and valid credentials to be allowed to start.
  EXPECT_TRUE(ValidateSecurityConfig(*config).ok()) << ValidateSecurityConfig(*config);
  EXPECT_FALSE(config->security().tls().cert_file().empty());
  EXPECT_GE(config->security().credentials_size(), 4);
  EXPECT_EQ(config->destinations_size(), 4);
  EXPECT_TRUE(config->destinations(0).auth().has_oauth2());
  EXPECT_TRUE(config->destinations(1).auth().has_bearer());
  EXPECT_TRUE(config->destinations(2).auth().has_basic());
  Routing routing(*config);
  EXPECT_EQ(routing.DestinationFor("lakeside-ketamine"), "st-olaf-ehr");
  EXPECT_EQ(routing.DestinationFor("somewhere-else"), "archive");
  mappers::MapContext context = routing.ContextFor("lakeside-ketamine");
  EXPECT_EQ(context.systems.patient, "urn:oid:2.16.840.1.113883.3.4711.2");
  EXPECT_EQ(context.systems.observation, "urn:oid:2.16.840.1.113883.3.4711.3:observation");
  EXPECT_TRUE(context.item_observations);
}

// Every top-level GatewayConfig field is documented in the README's configuration reference.
TEST(ExampleConfigTest, ReadmeDocumentsEveryTopLevelField) {
  std::ifstream in(std::string(FHIRGW_SOURCE_DIR) + "/README.md");
  std::stringstream readme;
  readme << in.rdbuf();
  const google::protobuf::Descriptor* descriptor = v1::GatewayConfig::descriptor();
  ASSERT_GT(descriptor->field_count(), 5);
  for (int i = 0; i < descriptor->field_count(); ++i) {
    EXPECT_THAT(readme.str(), ::testing::HasSubstr("`" + descriptor->field(i)->name()))
        << descriptor->field(i)->name() << " is not documented in README.md";
  }
  for (const google::protobuf::Descriptor* nested :
       {v1::Destination::descriptor(), v1::RetryPolicy::descriptor(), v1::Tenant::descriptor()}) {
    for (int i = 0; i < nested->field_count(); ++i) {
      EXPECT_THAT(readme.str(), ::testing::HasSubstr(nested->field(i)->name()))
          << nested->full_name() << "." << nested->field(i)->name() << " is not documented";
    }
  }
}

}  // namespace
}  // namespace fhirgw::gateway
