// Tests of the gateway configuration (config.h): parsing with positions, defaults, validation that
// names every bad field, routing, tenant mapping contexts and HOST:PORT splitting.
#include "gateway/config/config.h"

#include <functional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "fhirgw/v1/config.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "mappers/common.h"
#include "tests/testing/files.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"

namespace fhirgw::gateway {
namespace {

using ::fhirgw::testing::StatusIs;
using ::fhirgw::testing::TempDir;
using ::fhirgw::testing::WriteFile;
using ::testing::AllOf;
using ::testing::ContainsRegex;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// --- ParseConfig / LoadConfigFile ---

TEST(ParseConfigTest, ReadsATextproto) {
  absl::StatusOr<v1::GatewayConfig> config =
      ParseConfig(R"pb(
                    listen: "0.0.0.0:50051"
                    http_listen: "off"
                    destinations {
                      name: "st-olaf-ehr"
                      base_url: "https://ehr.example.org/fhir/R4"
                      retry { max_attempts: 3 jitter: 0.1 }
                    }
                    routes { clinic_id: "lakeside" destination: "st-olaf-ehr" }
                    tenants { clinic_id: "lakeside" item_observations: true }
                  )pb",
                  "gw.textproto");
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->listen(), "0.0.0.0:50051");
  EXPECT_EQ(config->http_listen(), "off");
  ASSERT_EQ(config->destinations_size(), 1);
  EXPECT_EQ(config->destinations(0).base_url(), "https://ehr.example.org/fhir/R4");
  EXPECT_EQ(config->destinations(0).retry().max_attempts(), 3);
  ASSERT_EQ(config->routes_size(), 1);
  EXPECT_EQ(config->routes(0).destination(), "st-olaf-ehr");
  ASSERT_EQ(config->tenants_size(), 1);
  EXPECT_TRUE(config->tenants(0).item_observations());
}

// protobuf's parser places the column after the field name; the line is what matters.
TEST(ParseConfigTest, AnUnknownFieldIsReportedWithItsLineAndColumn) {
  EXPECT_THAT(ParseConfig("listen: \"127.0.0.1:1\"\n\n  bogus_field: 1\n", "gw.textproto"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       ContainsRegex("gw\\.textproto:3:[0-9]+: .*bogus_field")));
}

TEST(ParseConfigTest, AValueOfTheWrongTypeIsReportedWithItsLineAndColumn) {
  EXPECT_THAT(ParseConfig("data_dir: \"var\"\ndrain_timeout_ms: \"soon\"\n", "gw.textproto"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("gw.textproto:2:19"), HasSubstr("soon"))));
}

TEST(ParseConfigTest, ASyntaxErrorIsReportedWithItsLineAndColumn) {
  EXPECT_THAT(ParseConfig("destinations {\n  name: \"a\"\n", "gw.textproto"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("gw.textproto:3:")));
}

TEST(LoadConfigFileTest, ReadsAFileAndNamesItInErrors) {
  TempDir dir("fhirgw_config");
  ASSERT_FALSE(dir.path().empty());
  const std::string good = dir.File("good.textproto");
  ASSERT_TRUE(WriteFile(good, "data_dir: \"/srv/fhirgw\"\n"));
  absl::StatusOr<v1::GatewayConfig> config = LoadConfigFile(good);
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_EQ(config->data_dir(), "/srv/fhirgw");

  const std::string bad = dir.File("bad.textproto");
  ASSERT_TRUE(WriteFile(bad, "data_dir: \"/srv\"\nlisten: 5000 5000\n"));
  EXPECT_THAT(LoadConfigFile(bad),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(bad + ":2:")));
}

TEST(LoadConfigFileTest, AMissingFileIsNotFound) {
  EXPECT_THAT(LoadConfigFile("/nonexistent/fhirgw.textproto"),
              StatusIs(absl::StatusCode::kNotFound, HasSubstr("/nonexistent/fhirgw.textproto")));
}

// --- ApplyDefaults ---

TEST(ApplyDefaultsTest, AnEmptyConfigGetsTheDocumentedDefaults) {
  v1::GatewayConfig config;
  ApplyDefaults(config);
  EXPECT_EQ(config.listen(), "127.0.0.1:50051");
  EXPECT_EQ(config.http_listen(), "127.0.0.1:8080");
  EXPECT_EQ(config.data_dir(), "var");
  EXPECT_EQ(config.drain_timeout_ms(), 10000);
  ASSERT_TRUE(config.store().has_sqlite());
  EXPECT_EQ(config.store().sqlite().path(), "var/fhirgw.db");
  EXPECT_EQ(config.store().max_batch(), 256);
  ASSERT_EQ(config.destinations_size(), 1);
  const v1::Destination& outbox = config.destinations(0);
  EXPECT_EQ(outbox.name(), "outbox");
  EXPECT_EQ(outbox.base_url(), "file:var/outbox");
  EXPECT_EQ(outbox.connect_timeout_ms(), 5000);
  EXPECT_EQ(outbox.request_timeout_ms(), 30000);
  EXPECT_EQ(outbox.concurrency(), 4);
  EXPECT_EQ(outbox.retry().max_attempts(), 12);
  EXPECT_EQ(outbox.retry().initial_backoff_ms(), 500);
  EXPECT_EQ(outbox.retry().multiplier(), 2.0);
  EXPECT_EQ(outbox.retry().max_backoff_ms(), 300000);
  EXPECT_EQ(outbox.retry().jitter(), 0.2);
  EXPECT_EQ(outbox.retry().max_age_ms(), 0);
  EXPECT_EQ(config.default_destination(), "outbox");
  EXPECT_EQ(config.delivery().poll_interval_ms(), 200);
  EXPECT_TRUE(ValidateConfig(config).ok()) << ValidateConfig(config);
}

// config.proto, StoreConfig: "Defaults 256 and 0" for max_batch and max_batch_delay_us (a busy
// gateway batches by itself; an idle one must not add latency).
TEST(ApplyDefaultsTest, TheGroupCommitDelayGetsItsDocumentedDefault) {
  v1::GatewayConfig config;
  ApplyDefaults(config);
  EXPECT_EQ(config.store().max_batch(), 256);
  EXPECT_EQ(config.store().max_batch_delay_us(), 0);
  config.mutable_store()->set_max_batch_delay_us(2000);
  ApplyDefaults(config);
  EXPECT_EQ(config.store().max_batch_delay_us(), 2000);
}

TEST(ApplyDefaultsTest, KeepsWhatIsSet) {
  v1::GatewayConfig config;
  config.set_listen("0.0.0.0:6000");
  config.set_data_dir("/srv/fhirgw");
  config.mutable_store()->set_max_batch(16);
  v1::Destination& ehr = *config.add_destinations();
  ehr.set_name("st-olaf-ehr");
  ehr.set_base_url("https://ehr.example.org/fhir");
  ehr.set_concurrency(8);
  ehr.mutable_retry()->set_max_attempts(3);
  ehr.mutable_retry()->set_jitter(0.5);
  ApplyDefaults(config);

  EXPECT_EQ(config.listen(), "0.0.0.0:6000");
  EXPECT_EQ(config.store().sqlite().path(), "/srv/fhirgw/fhirgw.db");
  EXPECT_EQ(config.store().max_batch(), 16);
  // A configured destination replaces the outbox and becomes the default.
  ASSERT_EQ(config.destinations_size(), 1);
  EXPECT_EQ(config.default_destination(), "st-olaf-ehr");
  EXPECT_EQ(config.destinations(0).concurrency(), 8);
  EXPECT_EQ(config.destinations(0).retry().max_attempts(), 3);
  EXPECT_EQ(config.destinations(0).retry().jitter(), 0.5);
  EXPECT_EQ(config.destinations(0).retry().initial_backoff_ms(), 500);
}

TEST(ApplyDefaultsTest, TheOutboxLivesUnderTheDataDir) {
  v1::GatewayConfig config;
  config.set_data_dir("/srv/fhirgw");
  config.mutable_store()->mutable_sqlite()->set_path("/db/log.db");
  ApplyDefaults(config);
  EXPECT_EQ(config.store().sqlite().path(), "/db/log.db");
  ASSERT_EQ(config.destinations_size(), 1);
  EXPECT_EQ(config.destinations(0).base_url(), "file:/srv/fhirgw/outbox");
}

// --- ValidateConfig ---

// A valid configuration with two destinations, a route and a tenant.
v1::GatewayConfig ValidConfig() {
  v1::GatewayConfig config;
  v1::Destination& outbox = *config.add_destinations();
  outbox.set_name("outbox");
  outbox.set_base_url("file:var/outbox");
  v1::Destination& ehr = *config.add_destinations();
  ehr.set_name("st-olaf-ehr");
  ehr.set_base_url("https://ehr.example.org/fhir/R4");
  v1::RoutingRule& route = *config.add_routes();
  route.set_clinic_id("lakeside");
  route.set_destination("st-olaf-ehr");
  config.add_tenants()->set_clinic_id("lakeside");
  ApplyDefaults(config);
  return config;
}

TEST(ValidateConfigTest, AcceptsAValidConfig) {
  EXPECT_TRUE(ValidateConfig(ValidConfig()).ok()) << ValidateConfig(ValidConfig());
  v1::GatewayConfig off = ValidConfig();
  off.set_http_listen("off");
  EXPECT_TRUE(ValidateConfig(off).ok()) << ValidateConfig(off);
  v1::GatewayConfig ipv6 = ValidConfig();
  ipv6.set_listen("[::1]:0");
  EXPECT_TRUE(ValidateConfig(ipv6).ok()) << ValidateConfig(ipv6);
}

struct BadConfigCase {
  std::string name;
  std::function<void(v1::GatewayConfig&)> mutate;
  std::string error;
};

class BadConfigTest : public ::testing::TestWithParam<BadConfigCase> {};

TEST_P(BadConfigTest, NamesTheBadField) {
  v1::GatewayConfig config = ValidConfig();
  GetParam().mutate(config);
  EXPECT_THAT(ValidateConfig(config),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(GetParam().error)));
}

v1::Auth::OAuth2& OAuth2Of(v1::GatewayConfig& c) {
  v1::Auth::OAuth2& o = *c.mutable_destinations(1)->mutable_auth()->mutable_oauth2();
  o.set_token_url("https://auth.example.org/token");
  o.set_client_id("fhirgw");
  o.set_private_key_file("/etc/fhirgw/key.pem");
  return o;
}

INSTANTIATE_TEST_SUITE_P(
    Fields, BadConfigTest,
    ::testing::Values(
        BadConfigCase{"Listen", [](v1::GatewayConfig& c) { c.set_listen("localhost"); },
                      "listen: 'localhost' is not HOST:PORT"},
        BadConfigCase{"HttpListen",
                      [](v1::GatewayConfig& c) { c.set_http_listen("127.0.0.1:70000"); },
                      "http_listen: '127.0.0.1:70000' is not HOST:PORT"},
        BadConfigCase{"BaseUrlScheme",
                      [](v1::GatewayConfig& c) {
                        c.mutable_destinations(1)->set_base_url("ftp://ehr.example.org");
                      },
                      "destinations[1].base_url: 'ftp://ehr.example.org' must start with "
                      "http://, https:// or file:"},
        BadConfigCase{"EmptyBaseUrl",
                      [](v1::GatewayConfig& c) { c.mutable_destinations(1)->clear_base_url(); },
                      "destinations[1].base_url: '' must start with"},
        BadConfigCase{
            "FileWithoutDirectory",
            [](v1::GatewayConfig& c) { c.mutable_destinations(0)->set_base_url("file:"); },
            "destinations[0].base_url: 'file:' needs a directory"},
        BadConfigCase{"DuplicateDestination",
                      [](v1::GatewayConfig& c) { c.mutable_destinations(1)->set_name("outbox"); },
                      "destinations[1].name: 'outbox' is used twice"},
        BadConfigCase{"UnnamedDestination",
                      [](v1::GatewayConfig& c) { c.mutable_destinations(0)->clear_name(); },
                      "destinations[0].name: is required"},
        BadConfigCase{"RouteToUnknownDestination",
                      [](v1::GatewayConfig& c) { c.mutable_routes(0)->set_destination("nowhere"); },
                      "routes[0].destination: 'nowhere' is not a configured destination"},
        BadConfigCase{"RouteWithoutClinic",
                      [](v1::GatewayConfig& c) { c.mutable_routes(0)->clear_clinic_id(); },
                      "routes[0].clinic_id: is required"},
        BadConfigCase{"UnknownDefaultDestination",
                      [](v1::GatewayConfig& c) { c.set_default_destination("nowhere"); },
                      "default_destination: 'nowhere' is not a configured destination"},
        BadConfigCase{"OAuth2WithoutTokenUrl",
                      [](v1::GatewayConfig& c) { OAuth2Of(c).clear_token_url(); },
                      "destinations[1].auth.oauth2.token_url: is required"},
        BadConfigCase{"OAuth2WithoutClientId",
                      [](v1::GatewayConfig& c) { OAuth2Of(c).clear_client_id(); },
                      "destinations[1].auth.oauth2.client_id: is required"},
        BadConfigCase{"OAuth2WithoutKey",
                      [](v1::GatewayConfig& c) { OAuth2Of(c).clear_private_key_file(); },
                      "destinations[1].auth.oauth2.private_key_file: is required"},
        BadConfigCase{"OAuth2Algorithm",
                      [](v1::GatewayConfig& c) { OAuth2Of(c).set_algorithm("HS256"); },
                      "destinations[1].auth.oauth2.algorithm: 'HS256' must be RS384 or ES384"},
        BadConfigCase{"BearerWithoutToken",
                      [](v1::GatewayConfig& c) {
                        c.mutable_destinations(1)->mutable_auth()->mutable_bearer();
                      },
                      "destinations[1].auth.bearer: needs token, token_env or token_file"},
        BadConfigCase{"BasicWithoutUsername",
                      [](v1::GatewayConfig& c) {
                        c.mutable_destinations(1)->mutable_auth()->mutable_basic()->set_password(
                            "secret");
                      },
                      "destinations[1].auth.basic.username: is required"},
        BadConfigCase{"JitterTooLarge",
                      [](v1::GatewayConfig& c) {
                        c.mutable_destinations(1)->mutable_retry()->set_jitter(1.5);
                      },
                      "destinations[1].retry.jitter: must be in 0..1"},
        BadConfigCase{"NegativeJitter",
                      [](v1::GatewayConfig& c) {
                        c.mutable_destinations(1)->mutable_retry()->set_jitter(-0.1);
                      },
                      "destinations[1].retry.jitter: must be in 0..1"},
        BadConfigCase{"Multiplier",
                      [](v1::GatewayConfig& c) {
                        c.mutable_destinations(1)->mutable_retry()->set_multiplier(0.5);
                      },
                      "destinations[1].retry.multiplier: must be at least 1"},
        BadConfigCase{"NegativeMaxAttempts",
                      [](v1::GatewayConfig& c) {
                        c.mutable_destinations(1)->mutable_retry()->set_max_attempts(-1);
                      },
                      "destinations[1].retry.max_attempts: must be positive"},
        BadConfigCase{"Concurrency",
                      [](v1::GatewayConfig& c) { c.mutable_destinations(1)->set_concurrency(65); },
                      "destinations[1].concurrency: must be 1..64"},
        BadConfigCase{"DuplicateTenant",
                      [](v1::GatewayConfig& c) { c.add_tenants()->set_clinic_id("lakeside"); },
                      "tenants[1].clinic_id: 'lakeside' is empty or used twice"},
        BadConfigCase{"EmptyTenant", [](v1::GatewayConfig& c) { c.add_tenants(); },
                      "tenants[1].clinic_id: '' is empty or used twice"}),
    [](const ::testing::TestParamInfo<BadConfigCase>& info) { return info.param.name; });

TEST(ValidateConfigTest, NamesEveryBadFieldInOneStatus) {
  v1::GatewayConfig config = ValidConfig();
  config.set_listen("nonsense");
  config.mutable_destinations(0)->set_base_url("ftp://x");
  v1::Destination& twin = *config.add_destinations();
  twin.set_name("st-olaf-ehr");
  twin.set_base_url("https://other.example.org/fhir");
  twin.mutable_retry()->set_multiplier(2);
  twin.set_concurrency(1);
  twin.mutable_auth()->mutable_oauth2()->set_client_id("fhirgw");
  twin.mutable_auth()->mutable_oauth2()->set_private_key_file("/etc/fhirgw/key.pem");
  config.mutable_destinations(1)->mutable_retry()->set_jitter(2);
  config.mutable_routes(0)->set_destination("nowhere");

  EXPECT_THAT(ValidateConfig(config),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("listen: 'nonsense' is not HOST:PORT"),
                             HasSubstr("destinations[0].base_url: 'ftp://x' must start with"),
                             HasSubstr("destinations[1].retry.jitter: must be in 0..1"),
                             HasSubstr("destinations[2].name: 'st-olaf-ehr' is used twice"),
                             HasSubstr("destinations[2].auth.oauth2.token_url: is required"),
                             HasSubstr("routes[0].destination: 'nowhere'"),
                             Not(HasSubstr("http_listen")), Not(HasSubstr("client_id")))));
}

// --- Routing ---

TEST(RoutingTest, TheFirstMatchingRuleWins) {
  v1::GatewayConfig config;
  config.set_default_destination("fallback");
  auto add_route = [&](const char* clinic, const char* destination) {
    v1::RoutingRule& r = *config.add_routes();
    r.set_clinic_id(clinic);
    r.set_destination(destination);
  };
  add_route("lakeside", "st-olaf-ehr");
  add_route("riverside", "mercy-ehr");
  add_route("*", "everyone-else");
  add_route("hilltop", "never-reached");
  const Routing routing(config);
  EXPECT_EQ(routing.DestinationFor("lakeside"), "st-olaf-ehr");
  EXPECT_EQ(routing.DestinationFor("riverside"), "mercy-ehr");
  EXPECT_EQ(routing.DestinationFor("hilltop"), "everyone-else");
  EXPECT_EQ(routing.DestinationFor("unknown"), "everyone-else");
}

TEST(RoutingTest, AStarRuleMatchesEveryClinic) {
  v1::GatewayConfig config;
  config.set_default_destination("fallback");
  v1::RoutingRule& all = *config.add_routes();
  all.set_clinic_id("*");
  all.set_destination("hub");
  v1::RoutingRule& later = *config.add_routes();
  later.set_clinic_id("lakeside");
  later.set_destination("st-olaf-ehr");
  const Routing routing(config);
  EXPECT_EQ(routing.DestinationFor("lakeside"), "hub");
  EXPECT_EQ(routing.DestinationFor("anyone"), "hub");
}

TEST(RoutingTest, AClinicNoRuleMatchesGoesToTheDefault) {
  v1::GatewayConfig config;
  config.set_default_destination("fallback");
  v1::RoutingRule& r = *config.add_routes();
  r.set_clinic_id("lakeside");
  r.set_destination("st-olaf-ehr");
  const Routing routing(config);
  EXPECT_EQ(routing.DestinationFor("riverside"), "fallback");
  // No prefix or case-insensitive matching.
  EXPECT_EQ(routing.DestinationFor("lakeside-2"), "fallback");
  EXPECT_EQ(routing.DestinationFor("Lakeside"), "fallback");

  v1::GatewayConfig defaulted;
  ApplyDefaults(defaulted);
  EXPECT_EQ(Routing(defaulted).DestinationFor("lakeside"), "outbox");
}

TEST(RoutingTest, ContextForAppliesTheTenantsSettings) {
  v1::GatewayConfig config;
  v1::Tenant& t = *config.add_tenants();
  t.set_clinic_id("lakeside");
  t.set_identifier_system_base("https://lakeside.example.org/ids");
  t.set_patient_identifier_system("https://lakeside.example.org/mrn");
  t.set_item_observations(true);
  const Routing routing(config);

  const mappers::MapContext context = routing.ContextFor("lakeside");
  EXPECT_EQ(context.tenant, "lakeside");
  EXPECT_EQ(context.systems.patient, "https://lakeside.example.org/mrn");
  EXPECT_EQ(context.systems.encounter, "https://lakeside.example.org/ids:encounter");
  EXPECT_EQ(context.systems.observation, "https://lakeside.example.org/ids:observation");
  EXPECT_EQ(context.systems.questionnaire_response,
            "https://lakeside.example.org/ids:questionnaire-response");
  EXPECT_TRUE(context.item_observations);
}

TEST(RoutingTest, ContextForATenantWithOnlyAPatientSystemKeepsTheOtherDefaults) {
  v1::GatewayConfig config;
  v1::Tenant& t = *config.add_tenants();
  t.set_clinic_id("lakeside");
  t.set_patient_identifier_system("https://lakeside.example.org/mrn");
  const Routing routing(config);

  const mappers::MapContext context = routing.ContextFor("lakeside");
  EXPECT_EQ(context.systems.patient, "https://lakeside.example.org/mrn");
  EXPECT_EQ(context.systems.encounter, "urn:fhirgw:lakeside:encounter");
  EXPECT_FALSE(context.item_observations);
}

TEST(RoutingTest, ContextForAnUnknownTenantIsTheDefault) {
  v1::GatewayConfig config;
  v1::Tenant& t = *config.add_tenants();
  t.set_clinic_id("lakeside");
  t.set_identifier_system_base("https://lakeside.example.org/ids");
  t.set_item_observations(true);
  const Routing routing(config);

  const mappers::MapContext context = routing.ContextFor("riverside");
  EXPECT_EQ(context.tenant, "riverside");
  EXPECT_EQ(context.systems.patient, "urn:fhirgw:riverside:patient");
  EXPECT_EQ(context.systems.encounter, "urn:fhirgw:riverside:encounter");
  EXPECT_FALSE(context.item_observations);
}

// --- SplitHostPort ---

TEST(SplitHostPortTest, SplitsHostAndPort) {
  std::string host;
  int port = -1;
  ASSERT_TRUE(SplitHostPort("127.0.0.1:50051", "listen", host, port).ok());
  EXPECT_EQ(host, "127.0.0.1");
  EXPECT_EQ(port, 50051);
  ASSERT_TRUE(SplitHostPort("gateway.example.org:0", "listen", host, port).ok());
  EXPECT_EQ(host, "gateway.example.org");
  EXPECT_EQ(port, 0);
  ASSERT_TRUE(SplitHostPort("0.0.0.0:65535", "listen", host, port).ok());
  EXPECT_EQ(port, 65535);
}

TEST(SplitHostPortTest, UnwrapsABracketedIpv6Address) {
  std::string host;
  int port = -1;
  ASSERT_TRUE(SplitHostPort("[::1]:50051", "listen", host, port).ok());
  EXPECT_EQ(host, "::1");
  EXPECT_EQ(port, 50051);
  ASSERT_TRUE(SplitHostPort("[2001:db8::7]:8080", "http_listen", host, port).ok());
  EXPECT_EQ(host, "2001:db8::7");
  EXPECT_EQ(port, 8080);
}

class BadAddressTest : public ::testing::TestWithParam<std::string> {};

TEST_P(BadAddressTest, IsInvalidAndNamesTheFieldAndValue) {
  std::string host = "untouched";
  int port = -1;
  EXPECT_THAT(
      SplitHostPort(GetParam(), "http_listen", host, port),
      StatusIs(absl::StatusCode::kInvalidArgument,
               AllOf(StartsWith("http_listen: '" + GetParam() + "'"), HasSubstr("HOST:PORT"))));
  EXPECT_EQ(host, "untouched");
}

INSTANTIATE_TEST_SUITE_P(Addresses, BadAddressTest,
                         ::testing::Values("localhost", "localhost:", "localhost:http",
                                           "localhost:65536", "localhost:-1",
                                           "localhost:99999999999", ":8080", "[::1]", "[::1]:", "",
                                           "localhost:80x"));

// An address the validation accepts must be one the gateway can listen on. gRPC is given the
// listen text as written and refuses "127.0.0.1:50051 " (trailing blank), so such a port must fail
// validation rather than startup ("cannot listen on").
TEST(SplitHostPortTest, RejectsAPortWithTrailingBlanks) {
  for (const char* address : {"localhost:80 ", "localhost:80\t"}) {
    std::string host;
    int port = -1;
    EXPECT_THAT(SplitHostPort(address, "listen", host, port),
                StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("listen: '")))
        << "'" << address << "' gave port " << port;
  }
}

}  // namespace
}  // namespace fhirgw::gateway
