#include "gateway/store/store.h"

#include <openssl/rand.h>
#include <openssl/sha.h>

#include <chrono>
#include <random>

#include "absl/strings/str_format.h"

namespace fhirgw::gateway {

std::string NewTransactionId() {
  uint8_t b[16];
  if (RAND_bytes(b, sizeof b) != 1) {
    // OpenSSL's generator failing is exceptional; fall back to the OS generator.
    std::random_device device;
    for (uint8_t& byte : b) byte = static_cast<uint8_t>(device());
  }
  b[6] = (b[6] & 0x0F) | 0x40;  // version 4
  b[8] = (b[8] & 0x3F) | 0x80;  // RFC 4122 variant
  return absl::StrFormat("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                         b[0], b[1], b[2], b[3], b[4], b[5], b[6], b[7], b[8], b[9], b[10], b[11],
                         b[12], b[13], b[14], b[15]);
}

}  // namespace fhirgw::gateway
