// OAuth 2.0 access tokens for EHR destinations, following SMART Backend Services: the client
// credentials grant, authenticated by a client assertion JWT signed with the client's private key
// (RS384 or ES384, "private_key_jwt").
//
// One TokenSource serves every delivery thread of a destination. It caches the access token until
// 30 seconds before it expires, and fetches a new one when asked after that or after Invalidate.
//
//   absl::StatusOr<std::shared_ptr<TokenSource>> tokens = TokenSource::Create(auth.oauth2());
//   if (!tokens.ok()) return tokens.status();
//   absl::StatusOr<std::string> token = (*tokens)->AccessToken();  // "Authorization: Bearer ..."
//   // On a 401 from the EHR: (*tokens)->Invalidate(*token), then ask again.
#ifndef FHIRGW_GATEWAY_DELIVERY_OAUTH_H_
#define FHIRGW_GATEWAY_DELIVERY_OAUTH_H_

#include <openssl/evp.h>

#include <cstdint>
#include <functional>
#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/synchronization/mutex.h"
#include "fhirgw/v1/config.pb.h"

namespace fhirgw::gateway {

class HttpConnection;

struct EvpPkeyDeleter {
  void operator()(EVP_PKEY* key) const { EVP_PKEY_free(key); }
};
using PrivateKey = std::unique_ptr<EVP_PKEY, EvpPkeyDeleter>;

// Reads the unencrypted PEM private key (PKCS#8 or traditional RSA/EC) in the file `path`.
absl::StatusOr<PrivateKey> LoadPrivateKey(const std::string& path);

// Checks `config` for use: token_url (http or https), client_id, key_id and scope present,
// algorithm RS384 (the default when empty) or ES384, and private_key_file holding a key of that
// algorithm (RSA of at least 2048 bits, or EC on P-384). Errors start with `path_prefix` and the
// field, e.g. "destinations[st-olaf].auth.oauth2.client_id: required".
absl::Status ValidateOAuth2Config(const v1::Auth::OAuth2& config, absl::string_view path_prefix);

// Returns the signed client assertion JWT for `config`, valid from `now_seconds` (Unix time) for
// 300 seconds: header {"alg", "kid": key_id, "typ": "JWT"}, claims {"iss" and "sub": client_id,
// "aud": token_url, "exp", "jti": 128 random bits in hex}. ES384 signatures are in the JWS form
// R || S (96 bytes), not DER. `key` must match the algorithm (ValidateOAuth2Config checks it).
absl::StatusOr<std::string> BuildClientAssertion(const v1::Auth::OAuth2& config, EVP_PKEY* key,
                                                 int64_t now_seconds);

struct TokenSourceOptions {
  // PEM CA bundle for the token endpoint's certificate (default: the system store).
  std::string ca_file;
  int connect_timeout_ms = 5000;
  int request_timeout_ms = 30000;
  // Unix time in milliseconds; tests pass a fake clock. Default: the system clock.
  std::function<int64_t()> now_ms;
};

// Thread-safe. Concurrent callers of AccessToken wait for a single fetch rather than each asking
// the token endpoint.
class TokenSource {
 public:
  // Validates `config` (see ValidateOAuth2Config) and loads its private key.
  static absl::StatusOr<std::shared_ptr<TokenSource>> Create(const v1::Auth::OAuth2& config,
                                                             TokenSourceOptions options = {});
  ~TokenSource();

  // Returns the cached access token, or fetches one from the token endpoint when there is none or
  // it expires within 30 seconds. Errors name the problem, e.g. "oauth2 token endpoint
  // https://...: answered 401: invalid_client"; they never contain a token or key. Codes:
  // Unavailable for network errors, 5xx and 429 (worth retrying later), PermissionDenied for
  // other refusals, Internal for malformed answers.
  absl::StatusOr<std::string> AccessToken() ABSL_LOCKS_EXCLUDED(mu_);

  // Forgets the cached token, so that the next AccessToken fetches a new one.
  void Invalidate() ABSL_LOCKS_EXCLUDED(mu_);
  // Forgets the cached token only if it is still `rejected_token`: when several threads see the
  // same 401, the first one's fresh token is not thrown away by the others.
  void Invalidate(absl::string_view rejected_token) ABSL_LOCKS_EXCLUDED(mu_);

  // Returns how many times the token endpoint was asked (for metrics).
  int64_t fetch_count() const ABSL_LOCKS_EXCLUDED(mu_);

 private:
  TokenSource(const v1::Auth::OAuth2& config, TokenSourceOptions options, PrivateKey key,
              std::unique_ptr<HttpConnection> connection);

  absl::Status FetchLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  int64_t NowMs() const;

  const v1::Auth::OAuth2 config_;
  const TokenSourceOptions options_;
  const PrivateKey key_;

  mutable absl::Mutex mu_;
  std::unique_ptr<HttpConnection> connection_ ABSL_GUARDED_BY(mu_);
  std::string token_ ABSL_GUARDED_BY(mu_);
  // The token is used until this time (Unix ms): 30 s before it expires.
  int64_t refresh_at_ms_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t fetch_count_ ABSL_GUARDED_BY(mu_) = 0;
};

// Returns the TokenSource of `destination` (its CA file and timeouts), or nullptr when it does not
// use OAuth2.
absl::StatusOr<std::shared_ptr<TokenSource>> TokenSourceForDestination(
    const v1::Destination& destination);

}  // namespace fhirgw::gateway

#endif  // FHIRGW_GATEWAY_DELIVERY_OAUTH_H_
