// The configuration that deploy/k8s/configmap.yaml ships (key fhirgw.textproto) must be one the
// real gateway accepts: parsed, defaulted and validated by the code `fhirgw serve --config` runs
// (EffectiveConfig), its security settings accepted for serving on 0.0.0.0 without --insecure, and
// meaning what the manifests assume (PostgreSQL from FHIRGW_PG_DSN, the ports, TLS, tokens by
// SHA-256). tests/node/deploy_check.mjs checks the manifests against each other.
//
// The ConfigMap is read with a small YAML subset reader: the literal block scalar (`key: |`) under
// `data:`, which is how configmap.yaml is written (the Node check parses it with a full YAML
// parser and checks that it is a literal block).
#include <regex>
#include <set>
#include <sstream>
#include <string>

#include "gateway/cli/serve_command.h"
#include "gateway/config/config.h"
#include "gateway/security/auth.h"
#include "gateway/store/postgres/postgres_store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/files.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/test_certs.h"

namespace fhirgw::gateway {
namespace {

using ::fhirgw::testing::ReadFile;
using ::fhirgw::testing::SourcePath;
using ::fhirgw::testing::TempDir;
using ::fhirgw::testing::WriteFile;

constexpr char kConfigMap[] = "deploy/k8s/configmap.yaml";
constexpr char kKey[] = "fhirgw.textproto";

// The value of the literal block scalar `key: |` in `yaml`, with its indentation removed; empty
// when there is none.
std::string BlockScalar(const std::string& yaml, const std::string& key) {
  std::istringstream in(yaml);
  std::string line;
  const std::regex header("^( *)" + std::regex_replace(key, std::regex(R"(\.)"), R"(\.)") +
                          R"(: *\|[-+]? *$)");
  size_t key_indent = std::string::npos;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_match(line, m, header)) {
      key_indent = m[1].length();
      break;
    }
  }
  if (key_indent == std::string::npos) return "";
  std::string value;
  std::string pending_blank;
  size_t indent = std::string::npos;
  while (std::getline(in, line)) {
    const size_t first = line.find_first_not_of(' ');
    if (first == std::string::npos) {
      pending_blank += "\n";
      continue;
    }
    if (indent == std::string::npos) {
      if (first <= key_indent) break;
      indent = first;
    }
    if (first < indent) break;
    value += pending_blank + line.substr(indent) + "\n";
    pending_blank.clear();
  }
  return value;
}

class DeployConfigTest : public ::testing::Test {
 protected:
  void SetUp() override {
    const std::string yaml = ReadFile(SourcePath(kConfigMap));
    ASSERT_FALSE(yaml.empty()) << "cannot read " << kConfigMap;
    text_ = BlockScalar(yaml, kKey);
    ASSERT_FALSE(text_.empty()) << kConfigMap << " has no `" << kKey << ": |` block";
    ASSERT_FALSE(dir_.path().empty());
    path_ = dir_.File(kKey);
    ASSERT_TRUE(WriteFile(path_, text_));
  }

  // What `fhirgw serve --config=<the ConfigMap's file>` builds before it starts.
  absl::StatusOr<v1::GatewayConfig> Effective() {
    ServeFlags flags;
    flags.config = path_;
    return EffectiveConfig(flags);
  }

  std::string text_;
  TempDir dir_{"fhirgw-deploy-config"};
  std::string path_;
};

TEST_F(DeployConfigTest, BlockScalarReaderKeepsTheText) {
  EXPECT_EQ(BlockScalar("data:\n  a.b: |\n    x {\n\n      y: 1\n    }\n  c: 2\n", "a.b"),
            "x {\n\n  y: 1\n}\n");
  EXPECT_EQ(BlockScalar("data:\n  other: |\n    x\n", "a.b"), "");
  EXPECT_THAT(text_, ::testing::HasSubstr("listen:"));
}

TEST_F(DeployConfigTest, ServeAcceptsTheConfigMap) {
  absl::StatusOr<v1::GatewayConfig> config = Effective();
  ASSERT_TRUE(config.ok()) << config.status();
  EXPECT_TRUE(ValidateSecurityConfig(*config).ok()) << ValidateSecurityConfig(*config);
}

TEST_F(DeployConfigTest, UsesPostgresFromTheEnvironmentForSeveralReplicas) {
  absl::StatusOr<v1::GatewayConfig> config = Effective();
  ASSERT_TRUE(config.ok()) << config.status();
  ASSERT_TRUE(config->store().has_postgres()) << "3 replicas cannot share a SQLite file";
  const v1::StoreConfig::Postgres& pg = config->store().postgres();
  EXPECT_EQ(pg.dsn_env(), "FHIRGW_PG_DSN");
  EXPECT_TRUE(pg.dsn().empty()) << "the DSN holds a password: it belongs in the Secret";
  EXPECT_GT(pg.lease_ms(), 0);
  // The DSN reaches the store through the variable that deployment.yaml sets from the Secret.
  ASSERT_EQ(setenv("FHIRGW_PG_DSN", "host=db dbname=fhirgw user=fhirgw", 1), 0);
  absl::StatusOr<std::string> dsn = ResolvePostgresDsn(pg);
  unsetenv("FHIRGW_PG_DSN");
  ASSERT_TRUE(dsn.ok()) << dsn.status();
  EXPECT_EQ(*dsn, "host=db dbname=fhirgw user=fhirgw");
  // No destination writes to a file: the replicas share no filesystem.
  for (const v1::Destination& d : config->destinations()) {
    EXPECT_THAT(d.base_url(), ::testing::StartsWith("https://")) << d.name();
  }
}

TEST_F(DeployConfigTest, ListensOnEveryInterfaceAtTheContainerPorts) {
  absl::StatusOr<v1::GatewayConfig> config = Effective();
  ASSERT_TRUE(config.ok()) << config.status();
  std::string host;
  int port = 0;
  ASSERT_TRUE(SplitHostPort(config->listen(), "listen", host, port).ok());
  EXPECT_EQ(host, "0.0.0.0");
  EXPECT_EQ(port, 50051);
  ASSERT_TRUE(SplitHostPort(config->http_listen(), "http_listen", host, port).ok());
  EXPECT_EQ(host, "0.0.0.0");
  EXPECT_EQ(port, 8080);
  EXPECT_EQ(config->data_dir(), "/var/lib/fhirgw");
  // deployment.yaml: terminationGracePeriodSeconds 30 > preStop 5 s + the drain.
  EXPECT_GT(config->drain_timeout_ms(), 0);
  EXPECT_LE(config->drain_timeout_ms(), 20000);
}

TEST_F(DeployConfigTest, CallersAuthenticateWithTokensByDigestOverTls) {
  absl::StatusOr<v1::GatewayConfig> config = Effective();
  ASSERT_TRUE(config.ok()) << config.status();
  const v1::SecurityConfig& security = config->security();
  EXPECT_EQ(security.tls().cert_file(), "/run/secrets/fhirgw-tls/tls.crt");
  EXPECT_EQ(security.tls().key_file(), "/run/secrets/fhirgw-tls/tls.key");
  ASSERT_FALSE(security.credentials().empty());
  std::set<v1::Credential::Role> roles;
  for (const v1::Credential& c : security.credentials()) {
    EXPECT_THAT(c.token_sha256(), ::testing::MatchesRegex("[0-9a-f]{64}")) << c.name();
    roles.insert(c.role());
  }
  EXPECT_EQ(roles.size(), 4u) << "CLINIC, HOSPITAL, AUDITOR and ADMIN credentials";
  EXPECT_TRUE(config->inbound().bearer_token_sha256().empty()) << "deprecated: use credentials";
  ASSERT_FALSE(security.encryption().keys().empty());
  for (const v1::EncryptionConfig::Key& k : security.encryption().keys()) {
    EXPECT_FALSE(k.key_env().empty()) << k.id() << ": the key comes from the Secret by env";
  }
  EXPECT_FALSE(config->audit().signing_key_file().empty());
}

// The startup policy (Authenticator::Create): on 0.0.0.0 the gateway needs TLS and credentials,
// or --insecure. With the Secret's files in place (a throwaway certificate here) it starts
// without --insecure.
TEST_F(DeployConfigTest, SecurityPolicyAllowsServingOnEveryInterfaceWithoutInsecure) {
  absl::StatusOr<v1::GatewayConfig> config = Effective();
  ASSERT_TRUE(config.ok()) << config.status();
  std::string error;
  std::unique_ptr<fhirgw::testing::TestCa> ca =
      fhirgw::testing::TestCa::Create("fhirgw CA", &error);
  ASSERT_NE(ca, nullptr) << error;
  fhirgw::testing::KeyPair server = ca->Issue(
      "fhirgw.fhirgw.svc", fhirgw::testing::CertUse::kServer,
      {"fhirgw.fhirgw.svc", "fhirgw.fhirgw.svc.cluster.local", "fhirgw-headless.fhirgw.svc"});
  ASSERT_FALSE(server.cert_pem.empty()) << ca->error();
  const std::string cert = dir_.File("tls.crt");
  const std::string key = dir_.File("tls.key");
  ASSERT_TRUE(WriteFile(cert, server.cert_pem));
  ASSERT_TRUE(WriteFile(key, server.key_pem));
  config->mutable_security()->mutable_tls()->set_cert_file(cert);
  config->mutable_security()->mutable_tls()->set_key_file(key);
  absl::StatusOr<std::unique_ptr<Authenticator>> auth = Authenticator::Create(*config, {});
  ASSERT_TRUE(auth.ok()) << auth.status();
  EXPECT_FALSE((*auth)->development_mode());
  // And a clinic's token (the digest in the ConfigMap is of this placeholder) is recognised.
  absl::StatusOr<Principal> who =
      (*auth)->Authenticate("Bearer example-lakeside-emr-token-replace-me", "");
  ASSERT_TRUE(who.ok()) << who.status();
  EXPECT_EQ(who->name, "lakeside-emr");
  EXPECT_EQ(who->role, v1::Credential::CLINIC);
}

TEST_F(DeployConfigTest, RoutesTheClinicsToTheirHospitals) {
  absl::StatusOr<v1::GatewayConfig> config = Effective();
  ASSERT_TRUE(config.ok()) << config.status();
  Routing routing(*config);
  EXPECT_EQ(routing.DestinationFor("lakeside-ketamine"), "st-olaf-ehr");
  EXPECT_EQ(routing.DestinationFor("riverside-infusions"), "riverside-ehr");
  EXPECT_EQ(routing.DestinationFor("another-clinic"), "county-hie");
}

}  // namespace
}  // namespace fhirgw::gateway
