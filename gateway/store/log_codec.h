// What every Store backend shares about how payloads and log entries are stored, so that SQLite and
// PostgreSQL logs hash and encrypt identically (a chain written by one verifies with the other's
// code).
#ifndef FHIRGW_GATEWAY_STORE_LOG_CODEC_H_
#define FHIRGW_GATEWAY_STORE_LOG_CODEC_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "gateway/security/crypto.h"
#include "google/protobuf/message.h"

namespace fhirgw::gateway {

// Decrypts `stored` when a cipher is configured (payloads from before encryption are plaintext).
absl::StatusOr<std::string> OpenPayload(const PayloadCipher* cipher, std::string stored);

// Encrypts `plaintext` when a cipher is configured; empty payloads stay empty.
std::string SealPayload(const PayloadCipher* cipher, absl::string_view plaintext);

// Deterministic serialization: the canonical form a log entry is hashed in.
std::string Canonical(const google::protobuf::Message& message);

// The chain link: SHA-256(previous hash || canonical entry).
std::string ChainHash(absl::string_view previous, absl::string_view canonical);

}  // namespace fhirgw::gateway

#endif  // FHIRGW_GATEWAY_STORE_LOG_CODEC_H_
