// SHA-1 and SHA-256 digests, computed by OpenSSL (which uses the CPU's SHA instructions where it
// has them).
//
//   base::Sha1Digest d = base::Sha1({name_space, name});   // SHA-1 of the concatenation
//   std::string hash = base::Sha256(record_bytes);         // 32 raw bytes
//   std::string hex = absl::BytesToHexString(hash);        // 64 lowercase hex digits
//
// SHA-1 is here for name-based UUIDs (RFC 4122 version 5) only, never for security.
#ifndef FHIRGW_BASE_DIGEST_H_
#define FHIRGW_BASE_DIGEST_H_

#include <array>
#include <cstdint>
#include <initializer_list>
#include <string>

#include "absl/strings/string_view.h"

namespace fhirgw::base {

inline constexpr size_t kSha1Bytes = 20;
inline constexpr size_t kSha256Bytes = 32;

// A SHA-1 digest as a value: UUIDs are made from one per resource written, without allocating.
using Sha1Digest = std::array<uint8_t, kSha1Bytes>;

// Returns the SHA-1 digest (FIPS 180-4) of the concatenation of `parts`, which are hashed in
// turn rather than first copied into one string.
Sha1Digest Sha1(std::initializer_list<absl::string_view> parts);

// Returns the SHA-1 digest of `data`.
inline Sha1Digest Sha1(absl::string_view data) { return Sha1({data}); }

// Returns the SHA-256 digest (FIPS 180-4) of `data` as 32 raw bytes.
std::string Sha256(absl::string_view data);

}  // namespace fhirgw::base

#endif  // FHIRGW_BASE_DIGEST_H_
