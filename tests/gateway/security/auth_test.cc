// Unit tests of gateway/security/auth.h: the authorization truth table, token and certificate
// matching, the startup policy, and the messages of credential validation.
#include "gateway/security/auth.h"

#include <memory>
#include <ostream>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "gateway/config/config.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/files.h"
#include "tests/testing/status_matchers.h"
#include "tests/testing/temp_dir.h"
#include "tests/testing/test_certs.h"

namespace fhirgw::gateway {
namespace {

using ::fhirgw::testing::CertUse;
using ::fhirgw::testing::KeyPair;
using ::fhirgw::testing::Sha256Hex;
using ::fhirgw::testing::StatusIs;
using ::fhirgw::testing::TempDir;
using ::fhirgw::testing::TestCa;
using ::fhirgw::testing::WriteFile;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

Principal Make(const std::string& name, v1::Credential::Role role,
               std::vector<std::string> clinics = {}, std::vector<std::string> destinations = {}) {
  Principal p;
  p.name = name;
  p.role = role;
  p.clinic_ids = std::move(clinics);
  p.destinations = std::move(destinations);
  return p;
}

Principal Dev() {
  Principal p = Make("dev", v1::Credential::ADMIN);
  p.development = true;
  return p;
}

// ---- Authorize: the truth table ----------------------------------------------------------------

struct AuthorizeCase {
  const char* label;
  Principal who;
  Action action;
  const char* clinic;
  const char* destination;
  bool allowed;
};

const Principal kClinicA = Make("clinic-a", v1::Credential::CLINIC, {"clinic-a"});
const Principal kClinicAB = Make("clinic-ab", v1::Credential::CLINIC, {"clinic-a", "clinic-b"});
const Principal kHospital = Make("st-olaf", v1::Credential::HOSPITAL, {}, {"ehr"});
const Principal kHospitalAll = Make("any-hospital", v1::Credential::HOSPITAL);
const Principal kAuditor = Make("auditor", v1::Credential::AUDITOR);
const Principal kAuditorB = Make("auditor-b", v1::Credential::AUDITOR, {"clinic-b"});
const Principal kAdmin = Make("admin", v1::Credential::ADMIN);
const Principal kNoRole = Make("nobody", v1::Credential::ROLE_UNSPECIFIED);

std::vector<AuthorizeCase> AuthorizeCases() {
  const Action kPush = Action::kPush, kRead = Action::kReadTransaction,
               kWatch = Action::kWatchInbound, kReplay = Action::kReplay, kAudit = Action::kAudit,
               kInbound = Action::kInboundFhir, kMetrics = Action::kMetrics;
  return {
      // CLINIC: its clinics only.
      {"clinic_push_own", kClinicA, kPush, "clinic-a", "", true},
      {"clinic_push_other", kClinicA, kPush, "clinic-b", "", false},
      {"clinic_push_empty", kClinicA, kPush, "", "", false},
      {"clinic_two_push_second", kClinicAB, kPush, "clinic-b", "", true},
      {"clinic_read_own", kClinicA, kRead, "clinic-a", "ehr", true},
      {"clinic_read_other", kClinicA, kRead, "clinic-b", "ehr", false},
      {"clinic_watch_own", kClinicA, kWatch, "clinic-a", "", true},
      {"clinic_watch_other", kClinicA, kWatch, "clinic-b", "", false},
      {"clinic_replay", kClinicA, kReplay, "", "", false},
      {"clinic_audit", kClinicA, kAudit, "clinic-a", "", false},
      {"clinic_audit_all", kClinicA, kAudit, "", "", false},
      {"clinic_inbound", kClinicA, kInbound, "", "", false},
      {"clinic_metrics", kClinicA, kMetrics, "", "", false},
      // HOSPITAL: inbound FHIR, and transactions of its destinations.
      {"hospital_inbound", kHospital, kInbound, "", "", true},
      {"hospital_inbound_own_destination", kHospital, kInbound, "", "ehr", true},
      {"hospital_inbound_other_destination", kHospital, kInbound, "", "other-ehr", false},
      {"hospital_all_inbound_any_destination", kHospitalAll, kInbound, "", "other-ehr", true},
      {"hospital_read_own_destination", kHospital, kRead, "clinic-a", "ehr", true},
      {"hospital_read_other_destination", kHospital, kRead, "clinic-a", "other-ehr", false},
      {"hospital_all_read_any_destination", kHospitalAll, kRead, "clinic-a", "other-ehr", true},
      {"hospital_push", kHospital, kPush, "clinic-a", "", false},
      {"hospital_watch", kHospital, kWatch, "clinic-a", "", false},
      {"hospital_replay", kHospital, kReplay, "", "", false},
      {"hospital_audit", kHospital, kAudit, "", "", false},
      {"hospital_metrics", kHospital, kMetrics, "", "", false},
      // AUDITOR: audit, reading and metrics; all clinics or the listed ones.
      {"auditor_audit_all", kAuditor, kAudit, "", "", true},
      {"auditor_audit_clinic", kAuditor, kAudit, "clinic-a", "", true},
      {"auditor_read", kAuditor, kRead, "clinic-a", "ehr", true},
      {"auditor_metrics", kAuditor, kMetrics, "", "", true},
      {"auditor_push", kAuditor, kPush, "clinic-a", "", false},
      {"auditor_watch", kAuditor, kWatch, "clinic-a", "", false},
      {"auditor_replay", kAuditor, kReplay, "", "", false},
      {"auditor_inbound", kAuditor, kInbound, "", "", false},
      {"scoped_auditor_audit_in_scope", kAuditorB, kAudit, "clinic-b", "", true},
      {"scoped_auditor_audit_out_of_scope", kAuditorB, kAudit, "clinic-a", "", false},
      {"scoped_auditor_audit_unfiltered", kAuditorB, kAudit, "", "", true},
      {"scoped_auditor_read_in_scope", kAuditorB, kRead, "clinic-b", "ehr", true},
      {"scoped_auditor_read_out_of_scope", kAuditorB, kRead, "clinic-a", "ehr", false},
      {"scoped_auditor_metrics", kAuditorB, kMetrics, "", "", true},
      // ADMIN and the development principal: everything.
      {"admin_push", kAdmin, kPush, "clinic-z", "", true},
      {"admin_read", kAdmin, kRead, "clinic-z", "x", true},
      {"admin_watch", kAdmin, kWatch, "clinic-z", "", true},
      {"admin_replay", kAdmin, kReplay, "", "", true},
      {"admin_audit", kAdmin, kAudit, "clinic-z", "", true},
      {"admin_inbound", kAdmin, kInbound, "", "", true},
      {"admin_metrics", kAdmin, kMetrics, "", "", true},
      {"dev_push", Dev(), kPush, "clinic-z", "", true},
      {"dev_replay", Dev(), kReplay, "", "", true},
      {"dev_audit", Dev(), kAudit, "clinic-z", "", true},
      {"dev_inbound", Dev(), kInbound, "", "", true},
      // A principal without a role may do nothing.
      {"no_role_push", kNoRole, kPush, "clinic-a", "", false},
      {"no_role_read", kNoRole, kRead, "clinic-a", "ehr", false},
      {"no_role_metrics", kNoRole, kMetrics, "", "", false},
  };
}

// Failure messages name the case, not its bytes.
void PrintTo(const AuthorizeCase& c, std::ostream* os) { *os << c.label; }

class AuthorizeTest : public ::testing::TestWithParam<AuthorizeCase> {};

TEST_P(AuthorizeTest, Decides) {
  const AuthorizeCase& c = GetParam();
  const absl::Status status = Authorize(c.who, c.action, c.clinic, c.destination);
  if (c.allowed) {
    EXPECT_TRUE(status.ok()) << status;
  } else {
    EXPECT_THAT(status, StatusIs(absl::StatusCode::kPermissionDenied,
                                 AllOf(HasSubstr("'" + c.who.name + "'"),
                                       HasSubstr(RoleName(c.who.role)))));
  }
}

INSTANTIATE_TEST_SUITE_P(TruthTable, AuthorizeTest, ::testing::ValuesIn(AuthorizeCases()),
                         [](const ::testing::TestParamInfo<AuthorizeCase>& info) {
                           return std::string(info.param.label);
                         });

// Every action appears in the table with both an allowed and a denied case (so a new Action
// without cases fails here).
TEST(AuthorizeTableTest, CoversEveryActionBothWays) {
  const std::vector<AuthorizeCase> cases = AuthorizeCases();
  for (Action action : {Action::kPush, Action::kReadTransaction, Action::kWatchInbound,
                        Action::kReplay, Action::kAudit, Action::kInboundFhir, Action::kMetrics}) {
    int allowed = 0, denied = 0;
    for (const AuthorizeCase& c : cases) {
      if (c.action != action) continue;
      (c.allowed ? allowed : denied)++;
    }
    EXPECT_GT(allowed, 0) << "action " << static_cast<int>(action);
    EXPECT_GT(denied, 0) << "action " << static_cast<int>(action);
  }
}

TEST(AuthorizeTest, MessagesNameTheScope) {
  EXPECT_THAT(Authorize(kClinicA, Action::kPush, "clinic-b"),
              StatusIs(absl::StatusCode::kPermissionDenied,
                       AllOf(HasSubstr("clinic 'clinic-b'"), HasSubstr("its clinics: clinic-a"))));
  EXPECT_THAT(Authorize(kAuditor, Action::kReplay, ""),
              StatusIs(absl::StatusCode::kPermissionDenied, HasSubstr("Replay needs an ADMIN")));
  EXPECT_THAT(
      Authorize(kHospital, Action::kReadTransaction, "clinic-a", "other-ehr"),
      StatusIs(absl::StatusCode::kPermissionDenied,
               AllOf(HasSubstr("destination 'other-ehr'"), HasSubstr("its destinations: ehr"))));
}

TEST(InScopeTest, FollowsTheRole) {
  EXPECT_TRUE(InScope(kClinicA, "clinic-a"));
  EXPECT_FALSE(InScope(kClinicA, "clinic-b"));
  EXPECT_FALSE(InScope(kClinicA, ""));
  EXPECT_TRUE(InScope(kAuditor, "anything"));
  EXPECT_TRUE(InScope(kAuditorB, "clinic-b"));
  EXPECT_FALSE(InScope(kAuditorB, "clinic-a"));
  EXPECT_FALSE(InScope(kHospital, "clinic-a"));
  EXPECT_TRUE(InScope(kAdmin, "clinic-z"));
  EXPECT_TRUE(InScope(Dev(), "clinic-z"));
  EXPECT_TRUE(InDestinationScope(kHospital, "ehr"));
  EXPECT_FALSE(InDestinationScope(kHospital, "other-ehr"));
  EXPECT_TRUE(InDestinationScope(kHospitalAll, "other-ehr"));
  EXPECT_FALSE(InDestinationScope(kAuditor, "ehr"));
}

TEST(IsLoopbackHostTest, KnowsLoopback) {
  EXPECT_TRUE(IsLoopbackHost("127.0.0.1"));
  EXPECT_TRUE(IsLoopbackHost("127.1.2.3"));
  EXPECT_TRUE(IsLoopbackHost("::1"));
  EXPECT_TRUE(IsLoopbackHost("localhost"));
  EXPECT_FALSE(IsLoopbackHost("0.0.0.0"));
  EXPECT_FALSE(IsLoopbackHost("::"));
  EXPECT_FALSE(IsLoopbackHost("10.0.0.7"));
  EXPECT_FALSE(IsLoopbackHost("gateway.example.org"));
}

// ---- configurations ----------------------------------------------------------------------------

constexpr char kClinicToken[] = "clinic-a-token-3q2+7w";
constexpr char kHospitalToken[] = "hospital-token-9zz";
constexpr char kAdminToken[] = "admin-token-1";
constexpr char kLegacyToken[] = "legacy-inbound-token";

v1::GatewayConfig Parse(const std::string& text) {
  absl::StatusOr<v1::GatewayConfig> config = ParseConfig(text, "test");
  EXPECT_TRUE(config.ok()) << config.status();
  v1::GatewayConfig result = config.ok() ? *config : v1::GatewayConfig();
  if (result.listen().empty()) result.set_listen("127.0.0.1:50051");
  if (result.http_listen().empty()) result.set_http_listen("127.0.0.1:8080");
  return result;
}

std::string Credentials() {
  return std::string("security {\n") +
         "  credentials { name: \"clinic-a\" role: CLINIC clinic_ids: \"clinic-a\" token_sha256: "
         "\"" +
         Sha256Hex(kClinicToken) + "\" }\n" +
         "  credentials { name: \"st-olaf\" role: HOSPITAL destinations: \"ehr\" token_sha256: \"" +
         // Upper-case hex is accepted as well.
         absl::AsciiStrToUpper(Sha256Hex(kHospitalToken)) + "\" }\n" +
         "  credentials { name: \"admin\" role: ADMIN token_sha256: \"" + Sha256Hex(kAdminToken) +
         "\" }\n" + "}\n";
}

std::unique_ptr<Authenticator> CreateOrDie(const v1::GatewayConfig& config,
                                           SecurityFlags flags = {}) {
  absl::StatusOr<std::unique_ptr<Authenticator>> auth = Authenticator::Create(config, flags);
  EXPECT_TRUE(auth.ok()) << auth.status();
  return auth.ok() ? *std::move(auth) : nullptr;
}

// ---- token and certificate matching ------------------------------------------------------------

TEST(AuthenticateTest, MatchesTokensToTheirCredential) {
  std::unique_ptr<Authenticator> auth = CreateOrDie(Parse(Credentials()));
  ASSERT_NE(auth, nullptr);
  EXPECT_FALSE(auth->development_mode());

  absl::StatusOr<Principal> clinic = auth->Authenticate(std::string("Bearer ") + kClinicToken, "");
  ASSERT_TRUE(clinic.ok()) << clinic.status();
  EXPECT_EQ(clinic->name, "clinic-a");
  EXPECT_EQ(clinic->role, v1::Credential::CLINIC);
  EXPECT_EQ(clinic->clinic_ids, std::vector<std::string>{"clinic-a"});
  EXPECT_FALSE(clinic->development);

  absl::StatusOr<Principal> hospital =
      auth->Authenticate(std::string("bearer  ") + kHospitalToken + " ", "");
  ASSERT_TRUE(hospital.ok()) << hospital.status();
  EXPECT_EQ(hospital->name, "st-olaf");
  EXPECT_EQ(hospital->destinations, std::vector<std::string>{"ehr"});

  absl::StatusOr<Principal> admin = auth->Authenticate(std::string("Bearer ") + kAdminToken, "");
  ASSERT_TRUE(admin.ok()) << admin.status();
  EXPECT_EQ(admin->role, v1::Credential::ADMIN);
}

TEST(AuthenticateTest, RefusesMissingWrongAndMalformedCredentials) {
  std::unique_ptr<Authenticator> auth = CreateOrDie(Parse(Credentials()));
  ASSERT_NE(auth, nullptr);
  EXPECT_THAT(auth->Authenticate("", "").status(),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("credentials required")));
  EXPECT_THAT(auth->Authenticate("Bearer not-a-token", "").status(),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("not valid")));
  // The digest itself is not a token.
  EXPECT_THAT(auth->Authenticate("Bearer " + Sha256Hex(kClinicToken), "").status(),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("not valid")));
  // A prefix of a token is not the token.
  EXPECT_THAT(auth->Authenticate("Bearer clinic-a-token", "").status(),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("not valid")));
  EXPECT_THAT(auth->Authenticate(std::string("Basic ") + kClinicToken, "").status(),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("Bearer <token>")));
  EXPECT_THAT(auth->Authenticate("Bearer ", "").status(),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("Bearer <token>")));
  // Unknown certificates are refused, and say which CN was presented.
  EXPECT_THAT(auth->Authenticate("", "some-device").status(),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("CN 'some-device'")));
}

// Writes a CA, a server certificate and key to `dir` and returns the TLS config text for them.
std::string WriteTls(const std::string& dir, bool client_ca) {
  std::string error;
  std::unique_ptr<TestCa> ca = TestCa::Create("auth_test CA", &error);
  EXPECT_NE(ca, nullptr) << error;
  if (ca == nullptr) return "";
  const KeyPair server = ca->Issue("localhost", CertUse::kServer, {"localhost"}, {"127.0.0.1"});
  EXPECT_FALSE(server.cert_pem.empty()) << ca->error();
  EXPECT_TRUE(WriteFile(dir + "/ca.pem", ca->cert_pem()));
  EXPECT_TRUE(WriteFile(dir + "/server.pem", server.cert_pem));
  EXPECT_TRUE(WriteFile(dir + "/server.key", server.key_pem));
  std::string text =
      "  tls { cert_file: \"" + dir + "/server.pem\" key_file: \"" + dir + "/server.key\"";
  if (client_ca) text += " client_ca_file: \"" + dir + "/ca.pem\"";
  return text + " }\n";
}

TEST(AuthenticateTest, MapsClientCertificatesAndPrefersTheToken) {
  const TempDir temp_dir("auth_test_mtls");
  const std::string& dir = temp_dir.path();
  const std::string tls = WriteTls(dir, /*client_ca=*/true);
  ASSERT_FALSE(tls.empty());
  std::unique_ptr<Authenticator> auth = CreateOrDie(
      Parse("security {\n" + tls +
            "  credentials { name: \"lakeside-emr\" role: CLINIC clinic_ids: \"clinic-a\" "
            "client_cert_cn: \"lakeside.example.org\" }\n"
            "  credentials { name: \"admin\" role: ADMIN token_sha256: \"" +
            Sha256Hex(kAdminToken) + "\" }\n}\n"));
  ASSERT_NE(auth, nullptr);

  absl::StatusOr<Principal> by_cert = auth->Authenticate("", "lakeside.example.org");
  ASSERT_TRUE(by_cert.ok()) << by_cert.status();
  EXPECT_EQ(by_cert->name, "lakeside-emr");

  absl::StatusOr<Principal> both =
      auth->Authenticate(std::string("Bearer ") + kAdminToken, "lakeside.example.org");
  ASSERT_TRUE(both.ok()) << both.status();
  EXPECT_EQ(both->name, "admin") << "a bearer token takes precedence over the certificate";

  // A bad token is not rescued by a good certificate.
  EXPECT_THAT(auth->Authenticate("Bearer wrong", "lakeside.example.org").status(),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("not valid")));
  // CNs match exactly.
  EXPECT_THAT(auth->Authenticate("", "LAKESIDE.example.org").status(),
              StatusIs(absl::StatusCode::kUnauthenticated, HasSubstr("not mapped")));
}

TEST(AuthenticateTest, DeprecatedInboundTokensAreHospitalCredentials) {
  std::unique_ptr<Authenticator> auth = CreateOrDie(Parse(
      Credentials() + "inbound { bearer_token_sha256: \"" + Sha256Hex(kLegacyToken) + "\" }\n"));
  ASSERT_NE(auth, nullptr);
  absl::StatusOr<Principal> legacy = auth->Authenticate(std::string("Bearer ") + kLegacyToken, "");
  ASSERT_TRUE(legacy.ok()) << legacy.status();
  EXPECT_EQ(legacy->name, "inbound.bearer_token_sha256[0]");
  EXPECT_EQ(legacy->role, v1::Credential::HOSPITAL);
  EXPECT_TRUE(legacy->destinations.empty()) << "all destinations";
  EXPECT_TRUE(Authorize(*legacy, Action::kInboundFhir, {}).ok());
}

TEST(AuthenticateTest, DevelopmentModeMakesEveryCallerTheDevelopmentPrincipal) {
  ::testing::internal::CaptureStderr();
  std::unique_ptr<Authenticator> auth =
      CreateOrDie(Parse("inbound { bearer_token_sha256: \"" + Sha256Hex(kLegacyToken) + "\" }\n"));
  const std::string warning = ::testing::internal::GetCapturedStderr();
  ASSERT_NE(auth, nullptr);
  EXPECT_TRUE(auth->development_mode());
  EXPECT_THAT(warning, AllOf(HasSubstr("WARN"), HasSubstr("development mode"),
                             HasSubstr("127.0.0.1:50051"), HasSubstr("ADMIN")));
  for (const std::string& authorization : {std::string(), std::string("Bearer whatever")}) {
    absl::StatusOr<Principal> who = auth->Authenticate(authorization, "");
    ASSERT_TRUE(who.ok()) << who.status();
    EXPECT_TRUE(who->development);
    EXPECT_EQ(who->name, "dev");
    EXPECT_EQ(who->role, v1::Credential::ADMIN);
  }
  // A configured inbound token is still recognised (inbound.h requires it on /fhir).
  absl::StatusOr<Principal> legacy = auth->Authenticate(std::string("Bearer ") + kLegacyToken, "");
  ASSERT_TRUE(legacy.ok()) << legacy.status();
  EXPECT_FALSE(legacy->development);
}

TEST(AuthenticateTest, NoWarningWithCredentials) {
  ::testing::internal::CaptureStderr();
  std::unique_ptr<Authenticator> auth = CreateOrDie(Parse(Credentials()));
  EXPECT_THAT(::testing::internal::GetCapturedStderr(), Not(HasSubstr("development mode")));
}

// ---- startup policy ----------------------------------------------------------------------------

TEST(StartupPolicyTest, RefusesNonLoopbackWithoutTlsAndCredentials) {
  v1::GatewayConfig config = Parse("");
  config.set_listen("0.0.0.0:50051");
  EXPECT_THAT(Authenticator::Create(config, {}).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr("refusing to serve on 0.0.0.0:50051 without TLS and credentials; "
                                 "configure security.tls and security.credentials, or pass "
                                 "--insecure")));

  // The HTTP listener counts as well.
  config = Parse("");
  config.set_http_listen("[::]:8080");
  EXPECT_THAT(
      Authenticator::Create(config, {}).status(),
      StatusIs(absl::StatusCode::kFailedPrecondition, HasSubstr("refusing to serve on [::]:8080")));

  // Credentials without TLS are not enough (tokens would cross the network in plain text).
  config = Parse(Credentials());
  config.set_listen("10.1.2.3:50051");
  EXPECT_THAT(Authenticator::Create(config, {}).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("refusing to serve on 10.1.2.3:50051"),
                             HasSubstr("security.tls is not set"))));
}

TEST(StartupPolicyTest, RefusesTlsWithoutCredentials) {
  const TempDir temp_dir("auth_test_tls_only");
  const std::string& dir = temp_dir.path();
  v1::GatewayConfig config = Parse("security {\n" + WriteTls(dir, false) + "}\n");
  config.set_listen("0.0.0.0:50051");
  EXPECT_THAT(Authenticator::Create(config, {}).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       AllOf(HasSubstr("refusing to serve on 0.0.0.0:50051"),
                             HasSubstr("security.credentials is empty"))));
}

TEST(StartupPolicyTest, ServesNonLoopbackWithTlsAndCredentials) {
  const TempDir temp_dir("auth_test_tls_creds");
  const std::string& dir = temp_dir.path();
  std::string text = Credentials();
  text.insert(text.find('\n') + 1, WriteTls(dir, false));
  v1::GatewayConfig config = Parse(text);
  config.set_listen("0.0.0.0:50051");
  config.set_http_listen("0.0.0.0:8080");
  std::unique_ptr<Authenticator> auth = CreateOrDie(config);
  ASSERT_NE(auth, nullptr);
  EXPECT_FALSE(auth->development_mode());
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      GrpcServerCredentials(config);
  ASSERT_TRUE(credentials.ok()) << credentials.status();
  EXPECT_NE(*credentials, nullptr);
}

TEST(StartupPolicyTest, InsecureFlagAllowsItWithAWarning) {
  v1::GatewayConfig config = Parse("");
  config.set_listen("0.0.0.0:50051");
  SecurityFlags flags;
  flags.insecure = true;
  ::testing::internal::CaptureStderr();
  std::unique_ptr<Authenticator> auth = CreateOrDie(config, flags);
  const std::string warning = ::testing::internal::GetCapturedStderr();
  ASSERT_NE(auth, nullptr);
  EXPECT_TRUE(auth->development_mode());
  EXPECT_THAT(warning, AllOf(HasSubstr("development mode"), HasSubstr("--insecure")));
}

TEST(StartupPolicyTest, HttpOffIsNotChecked) {
  v1::GatewayConfig config = Parse("");
  config.set_http_listen("off");
  ::testing::internal::CaptureStderr();
  std::unique_ptr<Authenticator> auth = CreateOrDie(config);
  const std::string warning = ::testing::internal::GetCapturedStderr();
  EXPECT_NE(auth, nullptr);
  EXPECT_THAT(warning, Not(HasSubstr("off (HTTP)")));
}

TEST(StartupPolicyTest, ChecksTheTlsFiles) {
  const TempDir temp_dir("auth_test_tls_files");
  const std::string& dir = temp_dir.path();
  v1::GatewayConfig config = Parse("security { tls { cert_file: \"" + dir +
                                   "/missing.pem\" key_file: \"" + dir + "/missing.key\" } }\n");
  EXPECT_THAT(Authenticator::Create(config, {}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("security.tls.cert_file: cannot read '" + dir + "/missing.pem'")));

  // A key that is not the certificate's.
  std::string error;
  std::unique_ptr<TestCa> ca = TestCa::Create("other", &error);
  ASSERT_NE(ca, nullptr) << error;
  WriteTls(dir, false);
  ASSERT_TRUE(WriteFile(dir + "/other.key", ca->key_pem()));
  config = Parse("security { tls { cert_file: \"" + dir + "/server.pem\" key_file: \"" + dir +
                 "/other.key\" } }\n");
  EXPECT_THAT(Authenticator::Create(config, {}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("security.tls.key_file: '" + dir +
                                 "/other.key' is not the key of security.tls.cert_file")));
  EXPECT_THAT(GrpcServerCredentials(config).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("is not the key of")));

  ASSERT_TRUE(WriteFile(dir + "/garbage.pem", "not a certificate\n"));
  config = Parse("security { tls { cert_file: \"" + dir + "/garbage.pem\" key_file: \"" + dir +
                 "/server.key\" } }\n");
  EXPECT_THAT(Authenticator::Create(config, {}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("security.tls.cert_file: '" + dir +
                                 "/garbage.pem' holds no PEM certificate")));
}

TEST(GrpcServerCredentialsTest, InsecureWithoutTls) {
  absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> credentials =
      GrpcServerCredentials(Parse(""));
  ASSERT_TRUE(credentials.ok()) << credentials.status();
  EXPECT_NE(*credentials, nullptr);
}

// ---- credential validation ---------------------------------------------------------------------

struct ValidationCase {
  const char* label;
  std::string config;
  std::string message;
};

const std::string kDigest = Sha256Hex("a token");
const std::string kOtherDigest = Sha256Hex("another token");

std::vector<ValidationCase> ValidationCases() {
  auto cred = [](const std::string& fields) { return "credentials { " + fields + " }\n"; };
  const std::string ok_admin =
      cred("name: \"admin\" role: ADMIN token_sha256: \"" + kDigest + "\"");
  return {
      {"short_digest",
       "security { " + ok_admin + cred("name: \"b\" role: ADMIN token_sha256: \"abc123\"") + " }",
       "security.credentials[1].token_sha256: must be 64 hex digits, the SHA-256 of the token"},
      {"non_hex_digest",
       "security { " + ok_admin +
           cred("name: \"b\" role: ADMIN token_sha256: \"" + std::string(64, 'g') + "\"") +
           cred("name: \"c\" role: ADMIN token_sha256: \"" + kOtherDigest + "\"") + " }",
       "security.credentials[1].token_sha256: must be 64 hex digits"},
      {"token_in_place_of_digest",
       "security { " + cred("name: \"a\" role: ADMIN token_sha256: \"s3cr3t-token\"") + " }",
       "got 12 characters (not shown: it may be the token itself)"},
      {"missing_role", "security { " + cred("name: \"a\" token_sha256: \"" + kDigest + "\"") + " }",
       "security.credentials[0].role: is required (CLINIC, HOSPITAL, AUDITOR or ADMIN)"},
      {"missing_name", "security { " + cred("role: ADMIN token_sha256: \"" + kDigest + "\"") + " }",
       "security.credentials[0].name: is required"},
      {"duplicate_name",
       "security { " + ok_admin +
           cred("name: \"admin\" role: ADMIN token_sha256: \"" + kOtherDigest + "\"") + " }",
       "security.credentials[1].name: 'admin' is already the name of security.credentials[0]"},
      {"duplicate_token",
       "security { " + ok_admin +
           cred("name: \"b\" role: ADMIN token_sha256: \"" + kDigest + "\"") + " }",
       "security.credentials[1].token_sha256: is the same token as security.credentials[0]"},
      {"no_token_or_certificate", "security { " + cred("name: \"a\" role: ADMIN") + " }",
       "security.credentials[0]: needs token_sha256 or client_cert_cn"},
      {"clinic_without_clinics",
       "security { " + ok_admin +
           cred("name: \"c\" role: CLINIC token_sha256: \"" + kOtherDigest + "\"") + " }",
       "security.credentials[1].clinic_ids: a CLINIC credential needs at least one clinic id"},
      {"empty_clinic_id",
       "security { " +
           cred("name: \"c\" role: CLINIC clinic_ids: \"\" token_sha256: \"" + kDigest + "\"") +
           " }",
       "security.credentials[0].clinic_ids[0]: is empty"},
      {"hospital_with_clinics",
       "security { " +
           cred("name: \"h\" role: HOSPITAL clinic_ids: \"x\" token_sha256: \"" + kDigest + "\"") +
           " }",
       "security.credentials[0].clinic_ids: only CLINIC and AUDITOR credentials have clinic ids"},
      {"clinic_with_destinations",
       "security { " +
           cred(
               "name: \"c\" role: CLINIC clinic_ids: \"x\" destinations: \"ehr\" token_sha256: \"" +
               kDigest + "\"") +
           " }",
       "security.credentials[0].destinations: only HOSPITAL credentials have destinations"},
      {"certificate_without_client_ca",
       "security { " + cred("name: \"c\" role: ADMIN client_cert_cn: \"device-1\"") + " }",
       "security.credentials[0].client_cert_cn: needs security.tls.client_ca_file"},
      {"duplicate_certificate",
       "security { tls { cert_file: \"c\" key_file: \"k\" client_ca_file: \"ca\" } " +
           cred("name: \"a\" role: ADMIN client_cert_cn: \"device-1\"") +
           cred("name: \"b\" role: ADMIN client_cert_cn: \"device-1\"") + " }",
       "security.credentials[1].client_cert_cn: 'device-1' is already the certificate of "
       "security.credentials[0]"},
      {"key_without_cert", "security { tls { key_file: \"k\" } }",
       "security.tls.cert_file: is required with key_file"},
      {"cert_without_key", "security { tls { cert_file: \"c\" } }",
       "security.tls.key_file: is required with cert_file"},
      {"client_ca_without_tls", "security { tls { client_ca_file: \"ca\" } }",
       "security.tls.client_ca_file: needs cert_file and key_file"},
      {"bad_inbound_digest", "inbound { bearer_token_sha256: \"xyz\" }",
       "inbound.bearer_token_sha256[0]: must be 64 hex digits"},
      {"inbound_digest_of_a_credential",
       "security { " + ok_admin + " } inbound { bearer_token_sha256: \"" + kDigest + "\" }",
       "inbound.bearer_token_sha256[0]: is the same token as security.credentials[0]"},
  };
}

void PrintTo(const ValidationCase& c, std::ostream* os) { *os << c.label; }

class ValidationTest : public ::testing::TestWithParam<ValidationCase> {};

TEST_P(ValidationTest, NamesTheField) {
  const v1::GatewayConfig config = Parse(GetParam().config);
  EXPECT_THAT(ValidateSecurityConfig(config),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(GetParam().message)));
  // Create refuses the same configuration with the same message.
  EXPECT_THAT(Authenticator::Create(config, {}).status(),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr(GetParam().message)));
}

INSTANTIATE_TEST_SUITE_P(Credentials, ValidationTest, ::testing::ValuesIn(ValidationCases()),
                         [](const ::testing::TestParamInfo<ValidationCase>& info) {
                           return std::string(info.param.label);
                         });

TEST(ValidationTest, AcceptsAGoodConfigurationAndReportsEveryProblem) {
  EXPECT_TRUE(ValidateSecurityConfig(Parse(Credentials())).ok());
  EXPECT_TRUE(ValidateSecurityConfig(Parse("")).ok());
  const absl::Status both =
      ValidateSecurityConfig(Parse("security { credentials { name: \"a\" token_sha256: \"x\" } }"));
  EXPECT_THAT(both, StatusIs(absl::StatusCode::kInvalidArgument,
                             AllOf(HasSubstr("security.credentials[0].role"),
                                   HasSubstr("security.credentials[0].token_sha256"))));
}

// The token itself never appears in a validation message.
TEST(ValidationTest, DoesNotEchoAMisplacedToken) {
  const absl::Status status = ValidateSecurityConfig(Parse(
      "security { credentials { name: \"a\" role: ADMIN token_sha256: \"hunter2-token\" } }"));
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument,
                               AllOf(HasSubstr("token_sha256"), Not(HasSubstr("hunter2")))));
}

}  // namespace
}  // namespace fhirgw::gateway
