#include "gateway/ops/http_server.h"

#include <httplib.h>

#include <stdexcept>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "gateway/ops/metrics.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/status_matchers.h"

namespace fhirgw::gateway {
namespace {

using ::fhirgw::testing::StatusIs;
using ::testing::Eq;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

httplib::Client ClientFor(int port) {
  httplib::Client client("127.0.0.1", port);
  client.set_connection_timeout(5);
  client.set_read_timeout(5);
  return client;
}

// Starts `server` on a free loopback port, failing the test if it cannot.
int StartOnFreePort(HttpServer& server) {
  absl::StatusOr<int> port = server.Start("127.0.0.1", 0);
  EXPECT_TRUE(port.ok()) << port.status();
  return port.ok() ? *port : 0;
}

class OperationalEndpointsTest : public ::testing::Test {
 protected:
  // Registers the endpoints with `checks` and starts the server.
  void StartWith(std::vector<ReadinessCheck> checks) {
    AddOperationalEndpoints(server_, registry_, std::move(checks));
    port_ = StartOnFreePort(server_);
    ASSERT_GT(port_, 0);
  }

  MetricsRegistry registry_;
  HttpServer server_;
  int port_ = 0;
};

TEST_F(OperationalEndpointsTest, HealthzSaysOk) {
  StartWith({});
  httplib::Result res = ClientFor(port_).Get("/healthz");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "ok\n");
}

TEST_F(OperationalEndpointsTest, ReadyzIsReadyWhenEveryCheckPasses) {
  int store_checks = 0;
  StartWith({{"store",
              [&] {
                ++store_checks;
                return absl::OkStatus();
              }},
             {"upstream", [] { return absl::OkStatus(); }}});
  httplib::Result res = ClientFor(port_).Get("/readyz");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "ready\n");
  EXPECT_EQ(store_checks, 1);
}

TEST_F(OperationalEndpointsTest, ReadyzListsEachFailingCheck) {
  StartWith({{"store", [] { return absl::OkStatus(); }},
             {"upstream", [] { return absl::UnavailableError("connection refused"); }},
             {"disk", [] { return absl::InternalError(""); }}});
  httplib::Result res = ClientFor(port_).Get("/readyz");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 503);
  EXPECT_EQ(res->body, "upstream: connection refused\ndisk: INTERNAL\n");
}

TEST_F(OperationalEndpointsTest, MetricsServesTheRegistry) {
  registry_.GetCounter("fhirgw_bundles_total", "Bundles sent.").Inc(3);
  StartWith({});
  httplib::Result res = ClientFor(port_).Get("/metrics");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_THAT(res->get_header_value("Content-Type"), StartsWith("text/plain; version=0.0.4"));
  EXPECT_THAT(res->body, HasSubstr("# TYPE fhirgw_bundles_total counter\n"
                                   "fhirgw_bundles_total 3\n"));

  // Each scrape renders afresh.
  registry_.GetCounter("fhirgw_bundles_total", "Bundles sent.").Inc();
  res = ClientFor(port_).Get("/metrics");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_THAT(res->body, HasSubstr("fhirgw_bundles_total 4\n"));
}

TEST_F(OperationalEndpointsTest, UnknownPathIsNotFound) {
  StartWith({});
  httplib::Result res = ClientFor(port_).Get("/nope");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 404);
  EXPECT_EQ(res->body, "404 Not Found\n");
}

TEST(HttpServerTest, RoutesPostsWithPathParameters) {
  HttpServer server;
  server.Post(R"(/echo/([a-z]+))", [](const httplib::Request& req, httplib::Response& res) {
    res.set_content(absl::StrCat(req.method, " ", req.matches[1].str(), " ",
                                 req.get_header_value("X-Tenant"), " ", req.body),
                    "text/plain");
  });
  const int port = StartOnFreePort(server);
  ASSERT_GT(port, 0);
  httplib::Client client = ClientFor(port);
  httplib::Result res =
      client.Post("/echo/patient", {{"X-Tenant", "clinic-7"}}, "hello", "text/plain");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "POST patient clinic-7 hello");

  res = client.Post("/echo/Patient1", "hello", "text/plain");  // whole path must match
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 404);
}

TEST(HttpServerTest, RefusesBodiesOverTheLimit) {
  HttpServerOptions options;
  options.max_body_bytes = 16;
  HttpServer server(options);
  server.Post("/in", [](const httplib::Request& req, httplib::Response& res) {
    res.set_content(absl::StrCat(req.body.size()), "text/plain");
  });
  const int port = StartOnFreePort(server);
  ASSERT_GT(port, 0);
  httplib::Client client = ClientFor(port);
  httplib::Result res = client.Post("/in", std::string(16, 'x'), "text/plain");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 200);
  EXPECT_EQ(res->body, "16");
  res = client.Post("/in", std::string(17, 'x'), "text/plain");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 413);
}

TEST(HttpServerTest, AnswersAThrowingHandlerWith500WithoutLeakingTheMessage) {
  HttpServer server;
  server.Get("/boom", [](const httplib::Request&, httplib::Response&) {
    throw std::runtime_error("secret detail");
  });
  const int port = StartOnFreePort(server);
  ASSERT_GT(port, 0);
  httplib::Result res = ClientFor(port).Get("/boom");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->status, 500);
  EXPECT_EQ(res->body, "500 Internal Server Error\n");
  for (const auto& [name, value] : res->headers) {
    EXPECT_THAT(value, Not(HasSubstr("secret"))) << name;
  }
}

TEST(HttpServerTest, StartFailsClearlyWhenThePortIsInUse) {
  HttpServer first;
  const int port = StartOnFreePort(first);
  ASSERT_GT(port, 0);
  HttpServer second;
  EXPECT_THAT(second.Start("127.0.0.1", port).status(),
              StatusIs(absl::StatusCode::kUnavailable,
                       Eq(absl::StrCat("cannot listen on 127.0.0.1:", port, ": address in use"))));
}

TEST(HttpServerTest, StartFailsClearlyForAnAddressNotOnThisHost) {
  HttpServer server;
  // 192.0.2.0/24 is TEST-NET-1, reserved for documentation and never assigned to a host.
  EXPECT_THAT(server.Start("192.0.2.1", 0).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       Eq("cannot listen on 192.0.2.1:0: address not available on this host")));
}

TEST(HttpServerTest, StartRejectsAPortOutOfRange) {
  HttpServer server;
  EXPECT_THAT(server.Start("127.0.0.1", 70000).status(),
              StatusIs(absl::StatusCode::kInvalidArgument,
                       Eq("cannot listen on 127.0.0.1:70000: port must be in 0..65535")));
}

TEST(HttpServerTest, StartTwiceFails) {
  HttpServer server;
  const int port = StartOnFreePort(server);
  ASSERT_GT(port, 0);
  EXPECT_THAT(server.Start("127.0.0.1", 0).status(),
              StatusIs(absl::StatusCode::kFailedPrecondition,
                       HasSubstr(absl::StrCat("already serving on port ", port))));
}

TEST(HttpServerTest, StopIsIdempotentAndTheServerCanRestart) {
  HttpServer server;
  server.Stop();  // before Start: nothing to do
  server.Get("/ping", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("pong", "text/plain");
  });
  const int port = StartOnFreePort(server);
  ASSERT_GT(port, 0);
  httplib::Result res = ClientFor(port).Get("/ping");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->body, "pong");

  server.Stop();
  server.Stop();
  res = ClientFor(port).Get("/ping");
  EXPECT_FALSE(res) << "still serving after Stop: " << res->status;

  const int again = StartOnFreePort(server);
  ASSERT_GT(again, 0);
  res = ClientFor(again).Get("/ping");
  ASSERT_TRUE(res) << httplib::to_string(res.error());
  EXPECT_EQ(res->body, "pong");
}

}  // namespace
}  // namespace fhirgw::gateway
