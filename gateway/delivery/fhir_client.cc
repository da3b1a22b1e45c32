#include "gateway/delivery/fhir_client.h"

#include <curl/curl.h>

#include <cstdlib>
#include <cstring>
#include <memory>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "absl/strings/strip.h"
#include "base/clock.h"
#include "fhir/status_macros.h"
#include "gateway/config/config.h"
#include "gateway/delivery/fhir_response.h"
#include "gateway/delivery/oauth.h"

namespace fhirgw::gateway {
namespace {

constexpr int kDefaultConnectTimeoutMs = 5000;
constexpr int kDefaultRequestTimeoutMs = 30000;
constexpr char kFhirJson[] = "application/fhir+json";

// curl_global_init is not guaranteed thread-safe on every libcurl build, and must run before any
// easy handle exists; std::call_once makes the first HttpConnection::Create do it exactly once.
void InitCurlOnce() {
  static std::once_flag once;
  std::call_once(once, [] { curl_global_init(CURL_GLOBAL_DEFAULT); });
}

struct Response {
  std::string* body;
  std::string retry_after;
};

size_t OnBody(char* data, size_t size, size_t count, void* user) {
  auto* response = static_cast<Response*>(user);
  const size_t n = size * count;
  const size_t room = HttpResult::kMaxResponseBody - response->body->size();
  // Read the rest of an oversized body without keeping it, so that the connection stays usable.
  response->body->append(data, n < room ? n : room);
  return n;
}

size_t OnHeader(char* data, size_t size, size_t count, void* user) {
  auto* response = static_cast<Response*>(user);
  const size_t n = size * count;
  absl::string_view line(data, n);
  // A new status line starts a new response (after a 100 Continue or an auth round trip).
  if (absl::StartsWith(line, "HTTP/")) response->retry_after.clear();
  constexpr absl::string_view kRetryAfter = "retry-after:";
  if (line.size() > kRetryAfter.size() &&
      absl::EqualsIgnoreCase(line.substr(0, kRetryAfter.size()), kRetryAfter)) {
    response->retry_after =
        std::string(absl::StripAsciiWhitespace(line.substr(kRetryAfter.size())));
  }
  return n;
}

struct CurlSlistDeleter {
  void operator()(curl_slist* list) const { curl_slist_free_all(list); }
};

// Returns the contents of the file `path` without surrounding whitespace, or an error naming
// `field`.
absl::StatusOr<std::string> ReadSecretFile(const std::string& path, absl::string_view field) {
  FHIRGW_ASSIGN_OR_RETURN(std::string data, ReadConfiguredFile(path, field));
  return std::string(absl::StripAsciiWhitespace(data));
}

// Returns the value of the environment variable `name`, or an error naming `field`.
absl::StatusOr<std::string> ReadSecretEnv(const std::string& name, absl::string_view field) {
  const char* value = std::getenv(name.c_str());
  if (value == nullptr || *value == '\0') {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": environment variable ", name, " is not set"));
  }
  return std::string(absl::StripAsciiWhitespace(value));
}

// Checks that `url` is an http(s) URL with a host and without credentials, query or fragment.
absl::Status CheckBaseUrl(const std::string& url, absl::string_view field) {
  if (url.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": required (the EHR's FHIR base URL, http:// or https://)"));
  }
  absl::string_view rest;
  if (absl::StartsWith(url, "https://")) {
    rest = absl::string_view(url).substr(8);
  } else if (absl::StartsWith(url, "http://")) {
    rest = absl::string_view(url).substr(7);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": '", url, "' must start with http:// or https://"));
  }
  const absl::string_view authority = rest.substr(0, rest.find('/'));
  // Checked before the URL is ever quoted, so that a password in it is not echoed.
  if (absl::StrContains(authority, '@')) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": must not contain credentials; use auth.basic or auth.bearer instead"));
  }
  if (authority.empty() || authority[0] == ':') {
    return absl::InvalidArgumentError(absl::StrCat(field, ": '", url, "' has no host"));
  }
  for (char c : url) {
    if (absl::ascii_isspace(static_cast<unsigned char>(c)) || absl::ascii_iscntrl(c)) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ": '", url, "' contains whitespace or control characters"));
    }
  }
  if (url.find_first_of("?#") != std::string::npos) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": '", url, "' must not have a query or fragment"));
  }
  return absl::OkStatus();
}

absl::Status CheckTimeout(int value, absl::string_view field) {
  if (value < 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", value, " must not be negative (0 means the default)"));
  }
  return absl::OkStatus();
}

// Returns the bearer token of `bearer` from exactly one of its three sources.
absl::StatusOr<std::string> BearerToken(const v1::Auth::Bearer& bearer, absl::string_view prefix) {
  const int sources =
      !bearer.token().empty() + !bearer.token_env().empty() + !bearer.token_file().empty();
  if (sources != 1) {
    return absl::InvalidArgumentError(absl::StrCat(
        prefix, ": set exactly one of token, token_env or token_file (", sources, " set)"));
  }
  std::string token;
  if (!bearer.token().empty()) {
    token = bearer.token();
  } else if (!bearer.token_env().empty()) {
    FHIRGW_ASSIGN_OR_RETURN(token,
                            ReadSecretEnv(bearer.token_env(), absl::StrCat(prefix, ".token_env")));
  } else {
    FHIRGW_ASSIGN_OR_RETURN(
        token, ReadSecretFile(bearer.token_file(), absl::StrCat(prefix, ".token_file")));
    if (token.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat(prefix, ".token_file: '", bearer.token_file(), "' is empty"));
    }
  }
  for (char c : token) {
    if (absl::ascii_iscntrl(c) || c == ' ') {
      return absl::InvalidArgumentError(
          absl::StrCat(prefix, ": the token contains spaces or control characters"));
    }
  }
  return token;
}

// Returns the "user:password" of `basic`.
absl::StatusOr<std::string> BasicCredentials(const v1::Auth::Basic& basic,
                                             absl::string_view prefix) {
  if (basic.username().empty()) {
    return absl::InvalidArgumentError(absl::StrCat(prefix, ".username: required"));
  }
  if (absl::StrContains(basic.username(), ':')) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, ".username: must not contain ':' (RFC 7617)"));
  }
  if (basic.password().empty() == basic.password_env().empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat(prefix, ": set exactly one of password or password_env"));
  }
  std::string password = basic.password();
  if (password.empty()) {
    FHIRGW_ASSIGN_OR_RETURN(
        password, ReadSecretEnv(basic.password_env(), absl::StrCat(prefix, ".password_env")));
  }
  return absl::StrCat(basic.username(), ":", password);
}

int OrDefault(int value, int fallback) { return value > 0 ? value : fallback; }

}  // namespace

// ---------------------------------------------------------------------------------------------
// HttpConnection

absl::StatusOr<std::unique_ptr<HttpConnection>> HttpConnection::Create(const std::string& ca_file) {
  InitCurlOnce();
  CURL* curl = curl_easy_init();
  if (curl == nullptr) return absl::InternalError("curl_easy_init failed");
  std::unique_ptr<HttpConnection> connection(new HttpConnection(curl));
  curl_easy_setopt(curl, CURLOPT_NOSIGNAL, 1L);
  curl_easy_setopt(curl, CURLOPT_TCP_KEEPALIVE, 1L);
  curl_easy_setopt(curl, CURLOPT_FOLLOWLOCATION, 0L);
  curl_easy_setopt(curl, CURLOPT_USERAGENT, "fhirgw/0.1");
  curl_easy_setopt(curl, CURLOPT_ERRORBUFFER, connection->error_);
  if (curl_easy_setopt(curl, CURLOPT_PROTOCOLS_STR, "http,https") != CURLE_OK) {
    return absl::InternalError("libcurl refused CURLOPT_PROTOCOLS_STR");
  }
  if (!ca_file.empty() && curl_easy_setopt(curl, CURLOPT_CAINFO, ca_file.c_str()) != CURLE_OK) {
    return absl::InternalError("libcurl refused CURLOPT_CAINFO (built without TLS?)");
  }
  return connection;
}

HttpConnection::HttpConnection(CURL* curl) : curl_(curl) {}

HttpConnection::~HttpConnection() { curl_easy_cleanup(curl_); }

int HttpConnection::OnProgress(void* self, curl_off_t, curl_off_t, curl_off_t, curl_off_t) {
  const std::atomic<bool>* abort = static_cast<HttpConnection*>(self)->abort_;
  return abort != nullptr && abort->load() ? 1 : 0;
}

int HttpConnection::OnPrereq(void* self, char*, char*, int, int) {
  ++static_cast<HttpConnection*>(self)->requests_sent_;
  return CURL_PREREQFUNC_OK;
}

HttpResult HttpConnection::Perform(absl::string_view method, const std::string& url,
                                   const std::vector<std::string>& headers, absl::string_view body,
                                   int connect_timeout_ms, int timeout_ms) {
  HttpResult result;
  Response response{&result.body, ""};
  curl_slist* list = nullptr;
  for (const std::string& header : headers) {
    curl_slist* appended = curl_slist_append(list, header.c_str());
    if (appended == nullptr) {
      curl_slist_free_all(list);
      result.error = "out of memory building the request headers";
      return result;
    }
    list = appended;
  }
  std::unique_ptr<curl_slist, CurlSlistDeleter> header_list(list);

  curl_easy_setopt(curl_, CURLOPT_URL, url.c_str());
  if (method == "GET") {
    curl_easy_setopt(curl_, CURLOPT_HTTPGET, 1L);
  } else {
    curl_easy_setopt(curl_, CURLOPT_POST, 1L);
    // Never NULL: curl would then read the body from stdin.
    curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, body.empty() ? "" : body.data());
    curl_easy_setopt(curl_, CURLOPT_POSTFIELDSIZE_LARGE, static_cast<curl_off_t>(body.size()));
  }
  curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, header_list.get());
  curl_easy_setopt(curl_, CURLOPT_CONNECTTIMEOUT_MS, static_cast<long>(connect_timeout_ms));
  curl_easy_setopt(curl_, CURLOPT_TIMEOUT_MS, static_cast<long>(timeout_ms));
  curl_easy_setopt(curl_, CURLOPT_WRITEFUNCTION, &OnBody);
  curl_easy_setopt(curl_, CURLOPT_WRITEDATA, &response);
  curl_easy_setopt(curl_, CURLOPT_HEADERFUNCTION, &OnHeader);
  curl_easy_setopt(curl_, CURLOPT_HEADERDATA, &response);
  curl_easy_setopt(curl_, CURLOPT_NOPROGRESS, 0L);
  curl_easy_setopt(curl_, CURLOPT_XFERINFOFUNCTION, &HttpConnection::OnProgress);
  curl_easy_setopt(curl_, CURLOPT_XFERINFODATA, this);
  curl_easy_setopt(curl_, CURLOPT_PREREQFUNCTION, &HttpConnection::OnPrereq);
  curl_easy_setopt(curl_, CURLOPT_PREREQDATA, this);
  requests_sent_ = 0;
  error_[0] = '\0';

  const base::Stopwatch watch;
  const CURLcode code = curl_easy_perform(curl_);
  result.duration_ms = watch.ElapsedMillis();
  result.requests_sent = requests_sent_;
  // The handle outlives this call; leave no pointers to locals in it.
  curl_easy_setopt(curl_, CURLOPT_HTTPHEADER, nullptr);
  curl_easy_setopt(curl_, CURLOPT_WRITEDATA, nullptr);
  curl_easy_setopt(curl_, CURLOPT_HEADERDATA, nullptr);
  curl_easy_setopt(curl_, CURLOPT_POSTFIELDS, nullptr);

  if (code != CURLE_OK) {
    result.error = error_[0] != '\0' ? std::string(error_) : curl_easy_strerror(code);
    // curl 7.88 says "Couldn't connect to server" without the reason; operators want it.
    long os_errno = 0;
    if (curl_easy_getinfo(curl_, CURLINFO_OS_ERRNO, &os_errno) == CURLE_OK && os_errno != 0) {
      const char* reason = std::strerror(static_cast<int>(os_errno));
      if (!absl::StrContains(result.error, reason)) {
        absl::StrAppend(&result.error, " (", reason, ")");
      }
    }
    result.body.clear();
    return result;
  }
  long status = 0;
  curl_easy_getinfo(curl_, CURLINFO_RESPONSE_CODE, &status);
  result.http_status = static_cast<int>(status);
  const char* content_type = nullptr;
  if (curl_easy_getinfo(curl_, CURLINFO_CONTENT_TYPE, &content_type) == CURLE_OK &&
      content_type != nullptr) {
    result.content_type = content_type;
  }
  if (!response.retry_after.empty()) {
    result.retry_after_ms = ParseRetryAfter(response.retry_after, base::UnixMillis());
  }
  return result;
}

// ---------------------------------------------------------------------------------------------
// FhirClient

absl::Status FhirClient::ValidateConfig(const v1::Destination& config,
                                        absl::string_view path_prefix) {
  const std::string prefix(path_prefix);
  FHIRGW_RETURN_IF_ERROR(CheckBaseUrl(config.base_url(), absl::StrCat(prefix, ".base_url")));
  FHIRGW_RETURN_IF_ERROR(
      CheckTimeout(config.connect_timeout_ms(), absl::StrCat(prefix, ".connect_timeout_ms")));
  FHIRGW_RETURN_IF_ERROR(
      CheckTimeout(config.request_timeout_ms(), absl::StrCat(prefix, ".request_timeout_ms")));
  if (!config.ca_file().empty()) {
    FHIRGW_RETURN_IF_ERROR(
        ReadConfiguredFile(config.ca_file(), absl::StrCat(prefix, ".ca_file")).status());
  }
  const v1::Auth& auth = config.auth();
  switch (auth.method_case()) {
    case v1::Auth::kBearer:
      return BearerToken(auth.bearer(), absl::StrCat(prefix, ".auth.bearer")).status();
    case v1::Auth::kBasic:
      return BasicCredentials(auth.basic(), absl::StrCat(prefix, ".auth.basic")).status();
    case v1::Auth::kOauth2:
      return ValidateOAuth2Config(auth.oauth2(), absl::StrCat(prefix, ".auth.oauth2"));
    case v1::Auth::METHOD_NOT_SET:
      break;
  }
  return absl::OkStatus();
}

absl::StatusOr<std::unique_ptr<FhirClient>> FhirClient::Create(
    const v1::Destination& config, std::shared_ptr<TokenSource> tokens) {
  const std::string prefix =
      config.name().empty() ? "destination" : absl::StrCat("destinations[", config.name(), "]");
  FHIRGW_RETURN_IF_ERROR(ValidateConfig(config, prefix));
  FHIRGW_ASSIGN_OR_RETURN(std::unique_ptr<HttpConnection> connection,
                          HttpConnection::Create(config.ca_file()));
  std::unique_ptr<FhirClient> client(new FhirClient(config, std::move(connection)));
  const v1::Auth& auth = config.auth();
  switch (auth.method_case()) {
    case v1::Auth::kBearer: {
      FHIRGW_ASSIGN_OR_RETURN(std::string token,
                              BearerToken(auth.bearer(), absl::StrCat(prefix, ".auth.bearer")));
      client->auth_kind_ = AuthKind::kStatic;
      client->static_authorization_ = absl::StrCat("Authorization: Bearer ", token);
      break;
    }
    case v1::Auth::kBasic: {
      FHIRGW_ASSIGN_OR_RETURN(std::string credentials,
                              BasicCredentials(auth.basic(), absl::StrCat(prefix, ".auth.basic")));
      client->auth_kind_ = AuthKind::kStatic;
      client->static_authorization_ =
          absl::StrCat("Authorization: Basic ", absl::Base64Escape(credentials));
      break;
    }
    case v1::Auth::kOauth2: {
      if (tokens == nullptr) {
        TokenSourceOptions options;
        options.ca_file = config.ca_file();
        options.connect_timeout_ms = client->connect_timeout_ms_;
        options.request_timeout_ms = client->request_timeout_ms_;
        FHIRGW_ASSIGN_OR_RETURN(tokens, TokenSource::Create(auth.oauth2(), std::move(options)));
      }
      client->auth_kind_ = AuthKind::kOAuth2;
      client->tokens_ = std::move(tokens);
      break;
    }
    case v1::Auth::METHOD_NOT_SET:
      break;
  }
  return client;
}

FhirClient::FhirClient(const v1::Destination& config, std::unique_ptr<HttpConnection> connection)
    : base_url_(absl::StripSuffix(config.base_url(), "/")),
      connect_timeout_ms_(OrDefault(config.connect_timeout_ms(), kDefaultConnectTimeoutMs)),
      request_timeout_ms_(OrDefault(config.request_timeout_ms(), kDefaultRequestTimeoutMs)),
      connection_(std::move(connection)) {}

FhirClient::~FhirClient() = default;

HttpResult FhirClient::PostTransaction(absl::string_view bundle_json) {
  return Send("POST", base_url_, bundle_json, connect_timeout_ms_, request_timeout_ms_);
}

HttpResult FhirClient::Get(absl::string_view path, int timeout_ms) {
  const int total_ms = timeout_ms > 0 ? timeout_ms : request_timeout_ms_;
  const int connect_ms = total_ms < connect_timeout_ms_ ? total_ms : connect_timeout_ms_;
  const std::string url = absl::StrCat(base_url_, "/", absl::StripPrefix(path, "/"));
  return Send("GET", url, "", connect_ms, total_ms);
}

HttpResult FhirClient::Send(absl::string_view method, const std::string& url,
                            absl::string_view body, int connect_timeout_ms, int timeout_ms) {
  std::vector<std::string> headers = {absl::StrCat("Accept: ", kFhirJson),
                                      // No "Expect: 100-continue" round trip for large Bundles.
                                      "Expect:"};
  if (method != "GET") headers.push_back(absl::StrCat("Content-Type: ", kFhirJson));
  if (auth_kind_ == AuthKind::kStatic) headers.push_back(static_authorization_);
  if (auth_kind_ != AuthKind::kOAuth2) {
    return connection_->Perform(method, url, headers, body, connect_timeout_ms, timeout_ms);
  }

  const base::Stopwatch watch;
  headers.emplace_back();
  HttpResult result;
  for (int attempt = 0; attempt < 2; ++attempt) {
    absl::StatusOr<std::string> token = tokens_->AccessToken();
    if (!token.ok()) {
      if (attempt == 0) {
        result = HttpResult();
        result.error = std::string(token.status().message());
      } else {
        // Keep the EHR's 401, and say why there was no second try.
        absl::StrAppend(&result.error, result.error.empty() ? "" : "; ",
                        "no fresh access token: ", token.status().message());
      }
      break;
    }
    headers.back() = absl::StrCat("Authorization: Bearer ", *token);
    result = connection_->Perform(method, url, headers, body, connect_timeout_ms, timeout_ms);
    if (result.http_status != 401) break;
    // The EHR no longer accepts this token (revoked, or its clock differs from ours): ask for
    // another one, once.
    tokens_->Invalidate(*token);
  }
  result.duration_ms = watch.ElapsedMillis();
  return result;
}

}  // namespace fhirgw::gateway
