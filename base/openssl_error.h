// The OpenSSL error queue as text, for error messages.
//
//   if (SSL_CTX_use_PrivateKey_file(ctx, path, SSL_FILETYPE_PEM) != 1) {
//     return absl::InvalidArgumentError(absl::StrCat("cannot load '", path, "': ",
//                                                    base::OpenSslErrors()));
//   }
#ifndef FHIRGW_BASE_OPENSSL_ERROR_H_
#define FHIRGW_BASE_OPENSSL_ERROR_H_

#include <string>

namespace fhirgw::base {

// Returns the errors OpenSSL has queued on this thread, oldest first and joined by "; ", and
// clears the queue; "unknown OpenSSL error" when the queue is empty.
std::string OpenSslErrors();

}  // namespace fhirgw::base

#endif  // FHIRGW_BASE_OPENSSL_ERROR_H_
