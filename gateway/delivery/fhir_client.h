// The outbound FHIR REST client: delivers transaction Bundles to one EHR destination over HTTP(S)
// with libcurl, keeping its connection open between requests.
//
// Each delivery thread owns one FhirClient (a client is not thread-safe); the clients of one
// OAuth2 destination share one TokenSource. The client only reports what happened: deciding
// whether to retry (network error, 5xx, 429) or to record a rejection is the caller's job.
//
//   FHIRGW_RETURN_IF_ERROR(FhirClient::ValidateConfig(destination, "destinations[st-olaf]"));
//   FHIRGW_ASSIGN_OR_RETURN(std::unique_ptr<FhirClient> client,
//                           FhirClient::Create(destination, tokens));
//   HttpResult result = client->PostTransaction(bundle_json);
//   if (result.http_status == 0) { /* network error or timeout: result.error */ }
//
// libcurl's global state is initialised once per process, on the first client or TokenSource
// created (curl_global_init under std::call_once), and never cleaned up: other threads may still
// hold clients at exit.
#ifndef FHIRGW_GATEWAY_DELIVERY_FHIR_CLIENT_H_
#define FHIRGW_GATEWAY_DELIVERY_FHIR_CLIENT_H_

#include <curl/curl.h>

#include <atomic>
#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "fhirgw/v1/config.pb.h"

namespace fhirgw::gateway {

class TokenSource;

// One HTTP exchange as seen by the client.
struct HttpResult {
  // 0 when no HTTP answer was received (network error, timeout, no access token).
  int http_status = 0;
  // The response body, truncated to kMaxResponseBody bytes.
  std::string body;
  // Why there is no answer when http_status is 0 (curl's text, e.g. "Failed to connect to
  // 127.0.0.1 port 9 after 0 ms: Connection refused"). Never holds a secret.
  std::string error;
  // From a Retry-After header (delta-seconds or HTTP-date); -1 if there is none.
  int64_t retry_after_ms = -1;
  // Wall time of the call, including a retry after a 401 with OAuth2.
  int64_t duration_ms = 0;
  std::string content_type;
  // How many times the request went on the wire. libcurl resends a request once, at once, when the
  // kept-alive connection it used turns out to have been closed by the server before any answer;
  // then this is 2 and the first exchange got no answer.
  int requests_sent = 0;

  static constexpr size_t kMaxResponseBody = 1 << 20;
};

// One libcurl easy handle, so one kept-alive connection (per host), with the options every
// request of fhirgw uses: no signals (safe with threads), TCP keep-alive, no redirects, http and
// https only, optional CA bundle. Not thread-safe.
class HttpConnection {
 public:
  // Returns a connection that verifies servers with the PEM CA bundle `ca_file` (empty: the
  // system store).
  static absl::StatusOr<std::unique_ptr<HttpConnection>> Create(const std::string& ca_file);
  ~HttpConnection();
  HttpConnection(const HttpConnection&) = delete;
  HttpConnection& operator=(const HttpConnection&) = delete;

  // Sends a POST of `body` (or a GET when `method` is "GET") to `url` with `headers` ("Name:
  // value" lines), waiting at most `connect_timeout_ms` to connect and `timeout_ms` in all.
  HttpResult Perform(absl::string_view method, const std::string& url,
                     const std::vector<std::string>& headers, absl::string_view body,
                     int connect_timeout_ms, int timeout_ms);

  // While `*abort` is true, transfers stop at once with an error (for shutdown). `abort` must
  // outlive the connection; null clears it.
  void SetAbortFlag(const std::atomic<bool>* abort) { abort_ = abort; }

 private:
  explicit HttpConnection(CURL* curl);
  static int OnProgress(void* self, curl_off_t, curl_off_t, curl_off_t, curl_off_t);
  static int OnPrereq(void* self, char*, char*, int, int);

  const std::atomic<bool>* abort_ = nullptr;
  int requests_sent_ = 0;

  CURL* const curl_;
  char error_[CURL_ERROR_SIZE] = {};
};

class FhirClient {
 public:
  // Checks `config` for use by a FhirClient and names the offending field after `path_prefix`,
  // e.g. "destinations[st-olaf].base_url: 'ftp://x' must start with http:// or https://": base_url
  // is http(s) with a host and no credentials, query or fragment (file: destinations are not REST
  // destinations and are rejected too); timeouts are not negative; ca_file is readable; the auth
  // method has its fields, with its secret available (environment variable set, file readable)
  // and, for OAuth2, a usable private key (see ValidateOAuth2Config).
  static absl::Status ValidateConfig(const v1::Destination& config, absl::string_view path_prefix);

  // Validates `config` and returns a client for it. Secrets (bearer token, basic password) are
  // read now, from the config, the environment or the token file. `tokens` is the destination's
  // shared TokenSource for OAuth2; when it is null for an OAuth2 destination, the client makes
  // its own. It is ignored for other auth methods.
  static absl::StatusOr<std::unique_ptr<FhirClient>> Create(
      const v1::Destination& config, std::shared_ptr<TokenSource> tokens = nullptr);
  ~FhirClient();

  // POSTs the transaction Bundle `bundle_json` to the base URL, as application/fhir+json, on the
  // kept-alive connection. With OAuth2, a 401 invalidates the access token and the request is sent
  // once more with a fresh one. When no access token can be had, http_status is 0 and `error`
  // says why.
  HttpResult PostTransaction(absl::string_view bundle_json);

  // GETs base_url/`path` (e.g. "metadata") with a timeout of `timeout_ms` in all, for readiness
  // checks.
  HttpResult Get(absl::string_view path, int timeout_ms);

  const std::string& base_url() const { return base_url_; }

  // See HttpConnection::SetAbortFlag.
  void SetAbortFlag(const std::atomic<bool>* abort) { connection_->SetAbortFlag(abort); }

 private:
  enum class AuthKind { kNone, kStatic, kOAuth2 };

  FhirClient(const v1::Destination& config, std::unique_ptr<HttpConnection> connection);

  HttpResult Send(absl::string_view method, const std::string& url, absl::string_view body,
                  int connect_timeout_ms, int timeout_ms);

  std::string base_url_;  // without a trailing '/'
  int connect_timeout_ms_;
  int request_timeout_ms_;
  std::unique_ptr<HttpConnection> connection_;
  AuthKind auth_kind_ = AuthKind::kNone;
  // "Authorization: ..." for bearer and basic auth. Secret: never log it.
  std::string static_authorization_;
  std::shared_ptr<TokenSource> tokens_;
};

}  // namespace fhirgw::gateway

#endif  // FHIRGW_GATEWAY_DELIVERY_FHIR_CLIENT_H_
