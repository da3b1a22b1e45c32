// A small HTTP(S) server (cpp-httplib) for the gateway's operational endpoints and its inbound
// FHIR endpoint.
//
// Register handlers, then Start; requests are served by a pool of worker threads until Stop (or
// destruction).
//
//   HttpServer server;
//   AddOperationalEndpoints(server, registry, {{"store", [&] { return store.Ping(); }}});
//   server.Post(R"(/fhir/Patient/([^/]+))", [](const httplib::Request& req,
//                                              httplib::Response& res) {
//     const std::string id = req.matches[1];  // path parameters are regex capture groups
//     ...
//   });
//   absl::StatusOr<int> port = server.Start("127.0.0.1", 0);  // 0 picks a free port
//
// With `HttpServerOptions::tls` it serves HTTPS only (httplib::SSLServer); with a client CA it asks
// for a client certificate and verifies any that is presented (see HttpTlsOptions).
//
// Handlers receive httplib's Request (method, path, headers, body, params, and `matches` holding
// the capture groups of the handler's pattern) and fill in its Response. Handlers run on worker
// threads, so whatever they touch must be thread-safe.
#ifndef FHIRGW_GATEWAY_OPS_HTTP_SERVER_H_
#define FHIRGW_GATEWAY_OPS_HTTP_SERVER_H_

#include <httplib.h>

#include <atomic>
#include <cstddef>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "gateway/ops/metrics.h"

namespace fhirgw::gateway {

struct HttpTlsOptions {
  std::string cert_file;  // PEM certificate chain; empty serves plain HTTP
  std::string key_file;   // PEM private key
  // PEM CA bundle for client certificates. A client that presents a certificate must present one
  // signed by this CA (or the handshake fails); one that presents none is still served, so that
  // probes reach /healthz and /readyz, and handlers decide (request.ssl holds the peer).
  std::string client_ca_file;
};

struct HttpServerOptions {
  // Worker threads; a request waits in a queue while all are busy.
  int threads = 4;
  // How long to wait for a slow client to send the request or take the response.
  absl::Duration read_timeout = absl::Seconds(5);
  absl::Duration write_timeout = absl::Seconds(5);
  // How long an idle keep-alive connection may hold a worker (whole seconds, at least 1).
  absl::Duration keep_alive_timeout = absl::Seconds(5);
  // Larger request bodies are refused with 413.
  size_t max_body_bytes = size_t{32} << 20;
  HttpTlsOptions tls;
};

class HttpServer final {
 public:
  using Handler = std::function<void(const httplib::Request&, httplib::Response&)>;

  HttpServer();
  explicit HttpServer(const HttpServerOptions& options);
  // Stops the server.
  ~HttpServer();
  HttpServer(const HttpServer&) = delete;
  HttpServer& operator=(const HttpServer&) = delete;

  // Route GET (and HEAD) or POST requests whose whole path matches the ECMAScript regex `pattern`
  // to `h`. Register every handler before Start. Unmatched paths get 404.
  void Get(const std::string& pattern, Handler h);
  void Post(const std::string& pattern, Handler h);

  // Binds `host`:`port` (port 0 picks a free one), serves on a background thread, and returns the
  // bound port. Fails with kUnavailable when the address is in use, kPermissionDenied when the
  // port is privileged, kInvalidArgument for a bad host or port or unusable TLS files, and
  // kFailedPrecondition when already serving. Start may be called again after Stop.
  absl::StatusOr<int> Start(const std::string& host, int port);

  // Stops accepting connections and waits for the serving threads: requests in progress finish,
  // and an idle keep-alive connection may hold Stop for up to `keep_alive_timeout`. Does nothing
  // when not serving. Must not be called from a handler.
  void Stop();

  // True when serving HTTPS.
  bool tls() const { return tls_; }

 private:
  bool tls_ = false;
  std::string tls_error_;  // why the TLS context could not be set up
  std::unique_ptr<httplib::Server> server_;
  absl::Mutex mu_;  // serialises Start and Stop
  std::thread thread_ ABSL_GUARDED_BY(mu_);
  int port_ ABSL_GUARDED_BY(mu_) = 0;
  // Set by the serving thread once listen_after_bind has returned.
  std::atomic<bool> listen_returned_{false};
};

// A named readiness condition, e.g. {"store", [&] { return store.Ping(); }}.
struct ReadinessCheck {
  std::string name;
  std::function<absl::Status()> check;
};

// Decides whether a request may go on; when not, it fills in the response (e.g. 401 or 403).
using HttpGuard = std::function<bool(const httplib::Request&, httplib::Response&)>;

// Registers the operational endpoints on `server`:
//   GET /healthz  200 "ok\n" while the process is alive.
//   GET /readyz   200 "ready\n" when every check in `checks` passes, else 503 with one line
//                 "name: message" per failing check. Checks run in order on every request.
//   GET /metrics  200 text/plain; version=0.0.4 with `registry`.Render(), when `metrics_guard`
//                 (if any) lets the request through. /healthz and /readyz stay open for probes.
// `registry` must outlive `server`.
void AddOperationalEndpoints(HttpServer& server, const MetricsRegistry& registry,
                             std::vector<ReadinessCheck> checks, HttpGuard metrics_guard = nullptr);

}  // namespace fhirgw::gateway

#endif  // FHIRGW_GATEWAY_OPS_HTTP_SERVER_H_
