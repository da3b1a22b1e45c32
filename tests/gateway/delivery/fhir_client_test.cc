#include "gateway/delivery/fhir_client.h"

#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <cstdlib>
#include <memory>
#include <mutex>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "fhirgw/v1/config.pb.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "tests/testing/files.h"
#include "tests/testing/http_test_server.h"
#include "tests/testing/status_matchers.h"

namespace fhirgw::gateway {
namespace {

using ::fhirgw::testing::HttpTestServer;
using ::fhirgw::testing::StatusIs;
using ::fhirgw::testing::WriteFile;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

// What the server saw of one request.
struct Seen {
  std::string method;
  std::string path;
  std::string body;
  std::string content_type;
  std::string accept;
  std::string authorization;
  int remote_port = 0;
};

class Recorder {
 public:
  void Add(const httplib::Request& req) {
    Seen seen{req.method,
              req.path,
              req.body,
              req.get_header_value("Content-Type"),
              req.get_header_value("Accept"),
              req.get_header_value("Authorization"),
              req.remote_port};
    std::lock_guard<std::mutex> lock(mu_);
    seen_.push_back(std::move(seen));
  }
  std::vector<Seen> seen() {
    std::lock_guard<std::mutex> lock(mu_);
    return seen_;
  }

 private:
  std::mutex mu_;
  std::vector<Seen> seen_;
};

constexpr char kBundle[] =
    R"({"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":"urn:uuid:1",)"
    R"("resource":{"resourceType":"Patient"},"request":{"method":"POST","url":"Patient"}}]})";
constexpr char kResponse[] =
    R"({"resourceType":"Bundle","type":"transaction-response","entry":[)"
    R"({"response":{"status":"201 Created","location":"Patient/1/_history/1"}}]})";

v1::Destination Destination(const HttpTestServer& server, absl::string_view path = "/fhir") {
  v1::Destination config;
  config.set_name("test-ehr");
  config.set_base_url(server.Url(path));
  config.set_connect_timeout_ms(2000);
  config.set_request_timeout_ms(10000);
  return config;
}

std::unique_ptr<FhirClient> MakeClient(const v1::Destination& config) {
  absl::StatusOr<std::unique_ptr<FhirClient>> client = FhirClient::Create(config);
  EXPECT_TRUE(client.ok()) << client.status();
  return client.ok() ? *std::move(client) : nullptr;
}

// Returns a loopback port that nothing listens on.
int UnusedPort() {
  int fd = socket(AF_INET, SOCK_STREAM, 0);
  sockaddr_in addr = {};
  addr.sin_family = AF_INET;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  addr.sin_port = 0;
  socklen_t length = sizeof addr;
  if (bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
    close(fd);
    return 9;  // discard; not served on test machines
  }
  close(fd);
  return ntohs(addr.sin_port);
}

std::string WriteTempFile(absl::string_view name, absl::string_view contents) {
  std::string path = absl::StrCat(::testing::TempDir(), "/fhir_client_test_", name);
  EXPECT_TRUE(WriteFile(path, std::string(contents))) << path;
  return path;
}

TEST(FhirClientTest, PostsTheBundleAsFhirJson) {
  HttpTestServer server;
  Recorder recorder;
  server.server().Post("/fhir", [&](const httplib::Request& req, httplib::Response& res) {
    recorder.Add(req);
    res.set_content(kResponse, "application/fhir+json;charset=utf-8");
  });
  server.Start();
  std::unique_ptr<FhirClient> client = MakeClient(Destination(server));
  ASSERT_NE(client, nullptr);

  HttpResult result = client->PostTransaction(kBundle);

  EXPECT_EQ(result.http_status, 200) << result.error;
  EXPECT_EQ(result.body, kResponse);
  EXPECT_EQ(result.content_type, "application/fhir+json;charset=utf-8");
  EXPECT_EQ(result.retry_after_ms, -1);
  EXPECT_TRUE(result.error.empty());
  std::vector<Seen> seen = recorder.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "POST");
  EXPECT_EQ(seen[0].path, "/fhir");
  EXPECT_EQ(seen[0].body, kBundle);
  EXPECT_EQ(seen[0].content_type, "application/fhir+json");
  EXPECT_EQ(seen[0].accept, "application/fhir+json");
  EXPECT_EQ(seen[0].authorization, "");
}

TEST(FhirClientTest, PostsAnEmptyBody) {
  HttpTestServer server;
  Recorder recorder;
  server.server().Post("/fhir", [&](const httplib::Request& req, httplib::Response& res) {
    recorder.Add(req);
    res.status = 400;
  });
  server.Start();
  std::unique_ptr<FhirClient> client = MakeClient(Destination(server));
  ASSERT_NE(client, nullptr);

  EXPECT_EQ(client->PostTransaction("").http_status, 400);
  std::vector<Seen> seen = recorder.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].body, "");
}

TEST(FhirClientTest, SendsABearerTokenFromEachSource) {
  HttpTestServer server;
  Recorder recorder;
  server.server().Post("/fhir", [&](const httplib::Request& req, httplib::Response& res) {
    recorder.Add(req);
    res.set_content(kResponse, "application/fhir+json");
  });
  server.Start();

  v1::Destination inline_token = Destination(server);
  inline_token.mutable_auth()->mutable_bearer()->set_token("tok-inline");
  v1::Destination env_token = Destination(server);
  setenv("FHIR_CLIENT_TEST_TOKEN", "tok-env", 1);
  env_token.mutable_auth()->mutable_bearer()->set_token_env("FHIR_CLIENT_TEST_TOKEN");
  v1::Destination file_token = Destination(server);
  file_token.mutable_auth()->mutable_bearer()->set_token_file(WriteTempFile("token", "tok-file\n"));

  for (const v1::Destination* config : {&inline_token, &env_token, &file_token}) {
    std::unique_ptr<FhirClient> client = MakeClient(*config);
    ASSERT_NE(client, nullptr);
    EXPECT_EQ(client->PostTransaction(kBundle).http_status, 200);
  }
  std::vector<Seen> seen = recorder.seen();
  ASSERT_EQ(seen.size(), 3u);
  EXPECT_EQ(seen[0].authorization, "Bearer tok-inline");
  EXPECT_EQ(seen[1].authorization, "Bearer tok-env");
  EXPECT_EQ(seen[2].authorization, "Bearer tok-file");
}

TEST(FhirClientTest, SendsBasicCredentials) {
  HttpTestServer server;
  Recorder recorder;
  server.server().Post("/fhir", [&](const httplib::Request& req, httplib::Response& res) {
    recorder.Add(req);
    res.set_content(kResponse, "application/fhir+json");
  });
  server.Start();

  v1::Destination inline_password = Destination(server);
  inline_password.mutable_auth()->mutable_basic()->set_username("user");
  inline_password.mutable_auth()->mutable_basic()->set_password("pass");
  v1::Destination env_password = Destination(server);
  setenv("FHIR_CLIENT_TEST_PASSWORD", "pa ss", 1);
  env_password.mutable_auth()->mutable_basic()->set_username("user");
  env_password.mutable_auth()->mutable_basic()->set_password_env("FHIR_CLIENT_TEST_PASSWORD");

  for (const v1::Destination* config : {&inline_password, &env_password}) {
    std::unique_ptr<FhirClient> client = MakeClient(*config);
    ASSERT_NE(client, nullptr);
    EXPECT_EQ(client->PostTransaction(kBundle).http_status, 200);
  }
  std::vector<Seen> seen = recorder.seen();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].authorization, "Basic dXNlcjpwYXNz");      // user:pass
  EXPECT_EQ(seen[1].authorization, "Basic dXNlcjpwYSBzcw==");  // user:pa ss
}

TEST(FhirClientTest, ReusesItsConnection) {
  HttpTestServer server;
  Recorder recorder;
  server.server().Post("/fhir", [&](const httplib::Request& req, httplib::Response& res) {
    recorder.Add(req);
    res.set_content(kResponse, "application/fhir+json");
  });
  server.server().Get("/fhir/metadata", [&](const httplib::Request& req, httplib::Response& res) {
    recorder.Add(req);
    res.set_content(R"({"resourceType":"CapabilityStatement"})", "application/fhir+json");
  });
  server.Start();
  std::unique_ptr<FhirClient> client = MakeClient(Destination(server));
  ASSERT_NE(client, nullptr);

  EXPECT_EQ(client->PostTransaction(kBundle).http_status, 200);
  EXPECT_EQ(client->PostTransaction(kBundle).http_status, 200);
  EXPECT_EQ(client->Get("metadata", 1000).http_status, 200);
  EXPECT_EQ(client->PostTransaction(kBundle).http_status, 200);

  std::vector<Seen> seen = recorder.seen();
  ASSERT_EQ(seen.size(), 4u);
  std::set<int> ports;
  for (const Seen& s : seen) ports.insert(s.remote_port);
  EXPECT_EQ(ports.size(), 1u) << "each request came on a new connection";
  EXPECT_GT(*ports.begin(), 0);
}

TEST(FhirClientTest, ReportsRetryAfterOfA503) {
  HttpTestServer server;
  server.server().Post("/fhir", [](const httplib::Request&, httplib::Response& res) {
    res.status = 503;
    res.set_header("Retry-After", "2");
    res.set_content("busy", "text/plain");
  });
  server.Start();
  std::unique_ptr<FhirClient> client = MakeClient(Destination(server));
  ASSERT_NE(client, nullptr);

  HttpResult result = client->PostTransaction(kBundle);

  EXPECT_EQ(result.http_status, 503);
  EXPECT_EQ(result.retry_after_ms, 2000);
  EXPECT_EQ(result.body, "busy");
}

TEST(FhirClientTest, ReportsRetryAfterGivenAsADate) {
  HttpTestServer server;
  server.server().Post("/fhir", [](const httplib::Request&, httplib::Response& res) {
    res.status = 429;
    res.set_header("Retry-After",
                   absl::FormatTime("%a, %d %b %Y %H:%M:%S GMT", absl::Now() + absl::Hours(1),
                                    absl::UTCTimeZone()));
  });
  server.Start();
  std::unique_ptr<FhirClient> client = MakeClient(Destination(server));
  ASSERT_NE(client, nullptr);

  HttpResult result = client->PostTransaction(kBundle);

  EXPECT_EQ(result.http_status, 429);
  // An hour, less the second the date format drops and any time the exchange took.
  EXPECT_GT(result.retry_after_ms, 3500 * 1000);
  EXPECT_LE(result.retry_after_ms, 3600 * 1000);
}

TEST(FhirClientTest, ReportsConnectionRefused) {
  v1::Destination config;
  config.set_base_url(absl::StrCat("http://127.0.0.1:", UnusedPort(), "/fhir"));
  std::unique_ptr<FhirClient> client = MakeClient(config);
  ASSERT_NE(client, nullptr);

  HttpResult result = client->PostTransaction(kBundle);

  EXPECT_EQ(result.http_status, 0);
  EXPECT_THAT(result.error, HasSubstr("refused"));
  EXPECT_TRUE(result.body.empty());
}

TEST(FhirClientTest, TimesOutAndRecovers) {
  HttpTestServer server;
  absl::Notification release;
  std::atomic<int> calls{0};
  server.server().Post("/fhir", [&](const httplib::Request&, httplib::Response& res) {
    if (calls.fetch_add(1) == 0) release.WaitForNotificationWithTimeout(absl::Seconds(10));
    res.set_content(kResponse, "application/fhir+json");
  });
  server.Start();
  v1::Destination config = Destination(server);
  config.set_request_timeout_ms(200);
  std::unique_ptr<FhirClient> client = MakeClient(config);
  ASSERT_NE(client, nullptr);

  HttpResult timed_out = client->PostTransaction(kBundle);
  release.Notify();
  HttpResult next = client->PostTransaction(kBundle);

  EXPECT_EQ(timed_out.http_status, 0);
  EXPECT_THAT(timed_out.error, HasSubstr("timed out"));
  EXPECT_EQ(next.http_status, 200) << next.error;
}

TEST(FhirClientTest, DoesNotFollowRedirects) {
  HttpTestServer server;
  std::atomic<int> elsewhere{0};
  server.server().Post("/fhir", [&](const httplib::Request&, httplib::Response& res) {
    res.set_redirect(server.Url("/elsewhere"), 307);
  });
  server.server().Post("/elsewhere", [&](const httplib::Request&, httplib::Response& res) {
    ++elsewhere;
    res.set_content(kResponse, "application/fhir+json");
  });
  server.Start();
  std::unique_ptr<FhirClient> client = MakeClient(Destination(server));
  ASSERT_NE(client, nullptr);

  EXPECT_EQ(client->PostTransaction(kBundle).http_status, 307);
  EXPECT_EQ(elsewhere.load(), 0);
}

TEST(FhirClientTest, TruncatesLargeBodiesAndKeepsTheConnection) {
  HttpTestServer server;
  Recorder recorder;
  server.server().Post("/fhir", [&](const httplib::Request& req, httplib::Response& res) {
    recorder.Add(req);
    res.status = 500;
    res.set_content(std::string(HttpResult::kMaxResponseBody + 500'000, 'x'), "text/plain");
  });
  server.Start();
  std::unique_ptr<FhirClient> client = MakeClient(Destination(server));
  ASSERT_NE(client, nullptr);

  HttpResult first = client->PostTransaction(kBundle);
  HttpResult second = client->PostTransaction(kBundle);

  EXPECT_EQ(first.http_status, 500);
  EXPECT_EQ(first.body.size(), HttpResult::kMaxResponseBody);
  EXPECT_EQ(second.http_status, 500);
  std::vector<Seen> seen = recorder.seen();
  ASSERT_EQ(seen.size(), 2u);
  EXPECT_EQ(seen[0].remote_port, seen[1].remote_port);
}

TEST(FhirClientTest, GetsAPathBelowTheBaseUrl) {
  HttpTestServer server;
  Recorder recorder;
  server.server().Get(
      "/fhir/R4/metadata", [&](const httplib::Request& req, httplib::Response& res) {
        recorder.Add(req);
        res.set_content(R"({"resourceType":"CapabilityStatement"})", "application/fhir+json");
      });
  server.Start();
  v1::Destination config = Destination(server, "/fhir/R4/");
  config.mutable_auth()->mutable_bearer()->set_token("tok");
  std::unique_ptr<FhirClient> client = MakeClient(config);
  ASSERT_NE(client, nullptr);

  HttpResult result = client->Get("metadata", 1000);

  EXPECT_EQ(result.http_status, 200) << result.error;
  EXPECT_THAT(result.body, HasSubstr("CapabilityStatement"));
  std::vector<Seen> seen = recorder.seen();
  ASSERT_EQ(seen.size(), 1u);
  EXPECT_EQ(seen[0].method, "GET");
  EXPECT_EQ(seen[0].accept, "application/fhir+json");
  EXPECT_EQ(seen[0].authorization, "Bearer tok");
}

TEST(FhirClientTest, GetTimesOutWithItsOwnTimeout) {
  HttpTestServer server;
  absl::Notification release;
  server.server().Get("/fhir/metadata", [&](const httplib::Request&, httplib::Response& res) {
    release.WaitForNotificationWithTimeout(absl::Seconds(10));
    res.set_content("{}", "application/fhir+json");
  });
  server.Start();
  std::unique_ptr<FhirClient> client = MakeClient(Destination(server));  // 10 s for POSTs
  ASSERT_NE(client, nullptr);

  HttpResult result = client->Get("metadata", 100);
  release.Notify();

  EXPECT_EQ(result.http_status, 0);
  EXPECT_THAT(result.error, HasSubstr("timed out"));
}

v1::Destination ValidDestination() {
  v1::Destination config;
  config.set_name("st-olaf");
  config.set_base_url("https://ehr.example.org/fhir/R4");
  return config;
}

TEST(FhirClientValidateConfigTest, AcceptsAPlainDestination) {
  EXPECT_TRUE(FhirClient::ValidateConfig(ValidDestination(), "destinations[st-olaf]").ok());
}

TEST(FhirClientValidateConfigTest, NamesABadBaseUrl) {
  v1::Destination config = ValidDestination();
  config.set_base_url("ftp://x");
  EXPECT_THAT(FhirClient::ValidateConfig(config, "destinations[st-olaf]"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "destinations[st-olaf].base_url: 'ftp://x' must start with http:// or "
                       "https://"));
  config.set_base_url("file:var/outbox");
  EXPECT_THAT(FhirClient::ValidateConfig(config, "d"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("d.base_url: 'file:")));
  config.set_base_url("");
  EXPECT_THAT(FhirClient::ValidateConfig(config, "d"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("d.base_url: required")));
  config.set_base_url("https:///fhir");
  EXPECT_THAT(FhirClient::ValidateConfig(config, "d"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("has no host")));
  config.set_base_url("https://ehr.example.org/fhir?_format=json");
  EXPECT_THAT(FhirClient::ValidateConfig(config, "d"),
              StatusIs(absl::StatusCode::kInvalidArgument, HasSubstr("query or fragment")));
}

TEST(FhirClientValidateConfigTest, RefusesCredentialsInTheUrlWithoutEchoingThem) {
  v1::Destination config = ValidDestination();
  config.set_base_url("https://admin:hunter2@ehr.example.org/fhir");
  absl::Status status = FhirClient::ValidateConfig(config, "d");
  EXPECT_THAT(status, StatusIs(absl::StatusCode::kInvalidArgument,
                               AllOf(HasSubstr("d.base_url: must not contain credentials"),
                                     Not(HasSubstr("hunter2")))));
}

TEST(FhirClientValidateConfigTest, NamesBadTimeoutsAndFiles) {
  v1::Destination config = ValidDestination();
  config.set_request_timeout_ms(-1);
  EXPECT_THAT(FhirClient::ValidateConfig(config, "d"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("d.request_timeout_ms: -1 must not be negative")));
  config = ValidDestination();
  config.set_ca_file("/nonexistent/ca.pem");
  EXPECT_THAT(FhirClient::ValidateConfig(config, "d"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("d.ca_file: cannot read '/nonexistent/ca.pem'")));
}

TEST(FhirClientValidateConfigTest, NamesMissingSecrets) {
  v1::Destination config = ValidDestination();
  config.mutable_auth()->mutable_bearer();
  EXPECT_THAT(FhirClient::ValidateConfig(config, "d"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("d.auth.bearer: set exactly one of token, token_env or "
                                 "token_file (0 set)")));

  unsetenv("FHIR_CLIENT_TEST_UNSET");
  config.mutable_auth()->mutable_bearer()->set_token_env("FHIR_CLIENT_TEST_UNSET");
  EXPECT_THAT(FhirClient::ValidateConfig(config, "d"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       "d.auth.bearer.token_env: environment variable FHIR_CLIENT_TEST_UNSET "
                       "is not set"));

  config.mutable_auth()->mutable_bearer()->Clear();
  config.mutable_auth()->mutable_bearer()->set_token_file("/nonexistent/token");
  EXPECT_THAT(FhirClient::ValidateConfig(config, "d"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       HasSubstr("d.auth.bearer.token_file: cannot read '/nonexistent/token'")));

  config.mutable_auth()->mutable_basic()->set_password("secret-password");
  EXPECT_THAT(FhirClient::ValidateConfig(config, "d"),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       AllOf(HasSubstr("d.auth.basic.username: required"),
                             Not(HasSubstr("secret-password")))));
}

TEST(FhirClientValidateConfigTest, CreateNamesTheDestination) {
  v1::Destination config = ValidDestination();
  config.set_base_url("gopher://x");
  absl::StatusOr<std::unique_ptr<FhirClient>> client = FhirClient::Create(config);
  EXPECT_THAT(client.status(), StatusIs(absl::StatusCode::kInvalidArgument,
                                        HasSubstr("destinations[st-olaf].base_url: 'gopher://x'")));
}

}  // namespace
}  // namespace fhirgw::gateway
