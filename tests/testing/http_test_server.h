// An HTTP server (cpp-httplib) on a free loopback port, serving from its own thread, for tests of
// HTTP clients. Register handlers on server() before Start(); the destructor stops it.
//
//   HttpTestServer server;
//   server.server().Post("/fhir", [&](const httplib::Request& req, httplib::Response& res) {
//     res.set_content(R"({"resourceType":"Bundle"})", "application/fhir+json");
//   });
//   server.Start();
//   client.Post(server.Url("/fhir"), ...);
#ifndef FHIRGW_TESTS_TESTING_HTTP_TEST_SERVER_H_
#define FHIRGW_TESTS_TESTING_HTTP_TEST_SERVER_H_

#include <chrono>
#include <string>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "gtest/gtest.h"
#include "httplib.h"

namespace fhirgw::testing {

class HttpTestServer {
 public:
  HttpTestServer() { port_ = server_.bind_to_any_port("127.0.0.1"); }
  ~HttpTestServer() {
    if (!thread_.joinable()) return;
    // stop() is a no-op until the accept loop runs.
    for (int i = 0; i < 5000 && !server_.is_running(); ++i) {
      std::this_thread::sleep_for(std::chrono::milliseconds(1));
    }
    server_.stop();
    thread_.join();
  }
  HttpTestServer(const HttpTestServer&) = delete;
  HttpTestServer& operator=(const HttpTestServer&) = delete;

  httplib::Server& server() { return server_; }
  // Starts serving; fails the test when no port could be bound.
  void Start() {
    ASSERT_GT(port_, 0) << "cannot bind a loopback port";
    thread_ = std::thread([this] { server_.listen_after_bind(); });
  }
  int port() const { return port_; }
  // http://127.0.0.1:PORT followed by `path`.
  std::string Url(absl::string_view path = "") const {
    return absl::StrCat("http://127.0.0.1:", port_, path);
  }

 private:
  httplib::Server server_;
  int port_ = -1;
  std::thread thread_;
};

}  // namespace fhirgw::testing

#endif  // FHIRGW_TESTS_TESTING_HTTP_TEST_SERVER_H_
