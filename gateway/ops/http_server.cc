#include "gateway/ops/http_server.h"

#include <netdb.h>
#include <openssl/err.h>
#include <openssl/ssl.h>
#include <sys/socket.h>
#include <sys/types.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <exception>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "base/openssl_error.h"

namespace fhirgw::gateway {
namespace {

constexpr char kTextPlain[] = "text/plain; charset=utf-8";
constexpr char kPrometheusText[] = "text/plain; version=0.0.4; charset=utf-8";

// Formats `host`:`port` as a client would type it, bracketing IPv6 literals.
std::string HostPort(const std::string& host, int port) {
  if (absl::StrContains(host, ':')) return absl::StrCat("[", host, "]:", port);
  return absl::StrCat(host, ":", port);
}

// Splits a duration into the seconds and microseconds httplib's setters take.
std::pair<time_t, time_t> SecondsAndMicros(absl::Duration d) {
  const int64_t micros = absl::ToInt64Microseconds(d);
  return {static_cast<time_t>(micros / 1000000), static_cast<time_t>(micros % 1000000)};
}

// Only SO_REUSEADDR, so that a restart can bind despite connections in TIME_WAIT. httplib's
// default also sets SO_REUSEPORT, which would let a second server share a port that is in use
// instead of failing.
void SetSocketOptions(socket_t sock) {
  int yes = 1;
  setsockopt(sock, SOL_SOCKET, SO_REUSEADDR, &yes, sizeof(yes));
}

// Explains why binding `host`:`port` failed; `bind_errno` is errno right after the attempt.
absl::Status BindError(const std::string& host, int port, int bind_errno) {
  const std::string prefix = absl::StrCat("cannot listen on ", HostPort(host, port), ": ");
  // httplib does not say which step failed. errno is only meaningful if the host resolved.
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_PASSIVE;
  addrinfo* result = nullptr;
  const int gai = getaddrinfo(host.c_str(), nullptr, &hints, &result);
  if (gai != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, "cannot resolve host \"", host, "\": ", gai_strerror(gai)));
  }
  freeaddrinfo(result);
  switch (bind_errno) {
    case EADDRINUSE:
      return absl::UnavailableError(absl::StrCat(prefix, "address in use"));
    case EACCES:
      return absl::PermissionDeniedError(
          absl::StrCat(prefix, "permission denied (ports below 1024 need privileges)"));
    case EADDRNOTAVAIL:
      return absl::InvalidArgumentError(absl::StrCat(prefix, "address not available on this host"));
    case 0:
      return absl::UnknownError(absl::StrCat(prefix, "bind failed"));
    default:
      return absl::UnknownError(absl::StrCat(prefix, std::strerror(bind_errno)));
  }
}

// A short body for error responses that have none, e.g. "404 Not Found\n".
std::string ErrorBody(int status) {
  const char* reason = "Error";
  switch (status) {
    case 400:
      reason = "Bad Request";
      break;
    case 404:
      reason = "Not Found";
      break;
    case 405:
      reason = "Method Not Allowed";
      break;
    case 413:
      reason = "Payload Too Large";
      break;
    case 414:
      reason = "URI Too Long";
      break;
    case 500:
      reason = "Internal Server Error";
      break;
    case 503:
      reason = "Service Unavailable";
      break;
  }
  return absl::StrCat(status, " ", reason, "\n");
}

// Loads the certificate, key and client CA of `tls` into `ctx`; false with `*error` set on failure.
bool SetUpTls(SSL_CTX& ctx, const HttpTlsOptions& tls, std::string* error) {
  ERR_clear_error();
  SSL_CTX_set_min_proto_version(&ctx, TLS1_2_VERSION);
  SSL_CTX_set_options(&ctx, SSL_OP_NO_COMPRESSION | SSL_OP_NO_SESSION_RESUMPTION_ON_RENEGOTIATION);
  if (SSL_CTX_use_certificate_chain_file(&ctx, tls.cert_file.c_str()) != 1) {
    *error = absl::StrCat("cannot load the certificate chain '", tls.cert_file,
                          "': ", base::OpenSslErrors());
    return false;
  }
  if (SSL_CTX_use_PrivateKey_file(&ctx, tls.key_file.c_str(), SSL_FILETYPE_PEM) != 1) {
    *error =
        absl::StrCat("cannot load the private key '", tls.key_file, "': ", base::OpenSslErrors());
    return false;
  }
  if (SSL_CTX_check_private_key(&ctx) != 1) {
    *error = absl::StrCat("the private key '", tls.key_file, "' does not match the certificate '",
                          tls.cert_file, "': ", base::OpenSslErrors());
    return false;
  }
  if (!tls.client_ca_file.empty()) {
    if (SSL_CTX_load_verify_locations(&ctx, tls.client_ca_file.c_str(), nullptr) != 1) {
      *error = absl::StrCat("cannot load the client CA '", tls.client_ca_file,
                            "': ", base::OpenSslErrors());
      return false;
    }
    // Tell clients which CAs we accept.
    if (STACK_OF(X509_NAME)* names = SSL_load_client_CA_file(tls.client_ca_file.c_str())) {
      SSL_CTX_set_client_CA_list(&ctx, names);
    }
    // Ask for a certificate and verify one that is presented, but serve clients without one:
    // probes must reach /healthz, and the handlers decide who may do what.
    SSL_CTX_set_verify(&ctx, SSL_VERIFY_PEER, nullptr);
    // Session resumption with client verification needs a session id context.
    static constexpr unsigned char kContext[] = "fhirgw";
    SSL_CTX_set_session_id_context(&ctx, kContext, sizeof(kContext) - 1);
  }
  return true;
}

}  // namespace

HttpServer::HttpServer() : HttpServer(HttpServerOptions()) {}

HttpServer::HttpServer(const HttpServerOptions& options) {
  if (options.tls.cert_file.empty()) {
    server_ = std::make_unique<httplib::Server>();
  } else {
    tls_ = true;
    const HttpTlsOptions tls = options.tls;
    server_ = std::make_unique<httplib::SSLServer>(
        [this, tls](SSL_CTX& ctx) { return SetUpTls(ctx, tls, &tls_error_); });
  }
  const int threads = options.threads > 0 ? options.threads : 1;
  server_->new_task_queue = [threads] { return new httplib::ThreadPool(threads); };
  const auto [read_s, read_us] = SecondsAndMicros(options.read_timeout);
  server_->set_read_timeout(read_s, read_us);
  const auto [write_s, write_us] = SecondsAndMicros(options.write_timeout);
  server_->set_write_timeout(write_s, write_us);
  server_->set_keep_alive_timeout(
      std::max<time_t>(1, absl::ToInt64Seconds(options.keep_alive_timeout)));
  server_->set_payload_max_length(options.max_body_bytes);
  server_->set_socket_options(SetSocketOptions);
  server_->set_error_handler(
      httplib::Server::HandlerWithResponse([](const httplib::Request&, httplib::Response& res) {
        // Responses with a body of their own (e.g. a failing /readyz) are left alone.
        if (!res.body.empty()) return httplib::Server::HandlerResponse::Unhandled;
        res.set_content(ErrorBody(res.status), kTextPlain);
        return httplib::Server::HandlerResponse::Handled;
      }));
  // Without this, httplib reports a handler's exception text to the client in a header.
  server_->set_exception_handler(
      [](const httplib::Request& req, httplib::Response& res, std::exception_ptr ep) {
        std::string what = "unknown exception";
        try {
          std::rethrow_exception(ep);
        } catch (const std::exception& e) {
          what = e.what();
        } catch (...) {
        }
        std::fprintf(stderr, "fhirgw: http: %s %s: handler threw: %s\n", req.method.c_str(),
                     req.path.c_str(), what.c_str());
        res.status = 500;
        res.set_content(ErrorBody(500), kTextPlain);
      });
}

HttpServer::~HttpServer() { Stop(); }

void HttpServer::Get(const std::string& pattern, Handler h) { server_->Get(pattern, std::move(h)); }

void HttpServer::Post(const std::string& pattern, Handler h) {
  server_->Post(pattern, std::move(h));
}

absl::StatusOr<int> HttpServer::Start(const std::string& host, int port) {
  absl::MutexLock lock(&mu_);
  if (thread_.joinable()) {
    return absl::FailedPreconditionError(absl::StrCat("cannot listen on ", HostPort(host, port),
                                                      ": already serving on port ", port_));
  }
  if (!server_->is_valid()) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot serve HTTPS on ", HostPort(host, port), ": ",
                     tls_error_.empty() ? "no TLS context" : tls_error_));
  }
  if (port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat("cannot listen on ", HostPort(host, port), ": port must be in 0..65535"));
  }
  errno = 0;
  const int bound =
      port == 0 ? server_->bind_to_any_port(host) : (server_->bind_to_port(host, port) ? port : -1);
  const int bind_errno = errno;
  if (bound < 0) return BindError(host, port, bind_errno);

  listen_returned_ = false;
  thread_ = std::thread([this] {
    server_->listen_after_bind();
    listen_returned_ = true;
  });
  // httplib's stop() does nothing until the serving loop has started, so a Stop right after Start
  // would leave the thread serving forever. Wait for the loop.
  while (!server_->is_running() && !listen_returned_) {
    absl::SleepFor(absl::Milliseconds(1));
  }
  if (!server_->is_running()) {
    thread_.join();
    return absl::InternalError(
        absl::StrCat("cannot listen on ", HostPort(host, bound), ": the server loop exited"));
  }
  port_ = bound;
  return bound;
}

void HttpServer::Stop() {
  absl::MutexLock lock(&mu_);
  if (!thread_.joinable()) return;
  server_->stop();
  thread_.join();
  port_ = 0;
}

void AddOperationalEndpoints(HttpServer& server, const MetricsRegistry& registry,
                             std::vector<ReadinessCheck> checks, HttpGuard metrics_guard) {
  server.Get("/healthz", [](const httplib::Request&, httplib::Response& res) {
    res.set_content("ok\n", kTextPlain);
  });
  server.Get(
      "/readyz", [checks = std::move(checks)](const httplib::Request&, httplib::Response& res) {
        std::string failures;
        for (const ReadinessCheck& check : checks) {
          const absl::Status status =
              check.check ? check.check() : absl::InternalError("no check function");
          if (status.ok()) continue;
          std::string message = status.message().empty() ? absl::StatusCodeToString(status.code())
                                                         : std::string(status.message());
          std::replace(message.begin(), message.end(), '\n', ' ');  // keep one line per check
          absl::StrAppend(&failures, check.name, ": ", message, "\n");
        }
        if (failures.empty()) {
          res.set_content("ready\n", kTextPlain);
        } else {
          res.status = 503;
          res.set_content(failures, kTextPlain);
        }
      });
  server.Get("/metrics", [&registry, guard = std::move(metrics_guard)](const httplib::Request& req,
                                                                       httplib::Response& res) {
    if (guard && !guard(req, res)) return;
    res.set_content(registry.Render(), kPrometheusText);
  });
}

}  // namespace fhirgw::gateway
