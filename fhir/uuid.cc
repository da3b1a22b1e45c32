#include "fhir/uuid.h"

#include <array>
#include <bit>
#include <cstddef>
#include <cstdint>
#include <cstring>
#include <initializer_list>
#include <string>

#include "absl/strings/string_view.h"

#if defined(__x86_64__)
#include <cpuid.h>
#include <immintrin.h>
#define FHIRGW_HAVE_SHA_NI 1
#endif

namespace fhirgw::fhir {
namespace {

using Sha1Digest = std::array<uint8_t, 20>;

#if FHIRGW_HAVE_SHA_NI
// True when the CPU has the SHA extensions (and the SSSE3/SSE4.1 they are used with).
bool CpuHasShaNi() {
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (!__get_cpuid(1, &eax, &ebx, &ecx, &edx)) return false;
  const bool ssse3_sse41 = (ecx & bit_SSSE3) != 0 && (ecx & bit_SSE4_1) != 0;
  if (!__get_cpuid_count(7, 0, &eax, &ebx, &ecx, &edx)) return false;
  return ssse3_sse41 && (ebx & bit_SHA) != 0;
}

// One SHA-1 compression with the x86 SHA extensions: a fifth of the portable version's time, and
// fhirgw hashes a name for every resource it writes. Follows Intel's published sequence (four
// rounds per sha1rnds4; sha1msg1/sha1msg2 and XOR extend the message schedule).
__attribute__((target("sha,sse4.1,ssse3"))) void Sha1BlockShaNi(uint32_t state[5],
                                                                const uint8_t* block) {
  const __m128i kByteSwap = _mm_set_epi64x(0x0001020304050607ULL, 0x08090a0b0c0d0e0fULL);
  __m128i abcd = _mm_shuffle_epi32(_mm_loadu_si128(reinterpret_cast<const __m128i*>(state)), 0x1B);
  __m128i e0 = _mm_set_epi32(static_cast<int>(state[4]), 0, 0, 0);
  const __m128i abcd_save = abcd;
  const __m128i e0_save = e0;
  __m128i e1;
  __m128i msg0 =
      _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(block)), kByteSwap);
  __m128i msg1 =
      _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(block + 16)), kByteSwap);
  __m128i msg2 =
      _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(block + 32)), kByteSwap);
  __m128i msg3 =
      _mm_shuffle_epi8(_mm_loadu_si128(reinterpret_cast<const __m128i*>(block + 48)), kByteSwap);

  // Rounds 0-3
  e0 = _mm_add_epi32(e0, msg0);
  e1 = abcd;
  abcd = _mm_sha1rnds4_epu32(abcd, e0, 0);
  // Rounds 4-7
  e1 = _mm_sha1nexte_epu32(e1, msg1);
  e0 = abcd;
  abcd = _mm_sha1rnds4_epu32(abcd, e1, 0);
  msg0 = _mm_sha1msg1_epu32(msg0, msg1);
  // Rounds 8-11
  e0 = _mm_sha1nexte_epu32(e0, msg2);
  e1 = abcd;
  abcd = _mm_sha1rnds4_epu32(abcd, e0, 0);
  msg1 = _mm_sha1msg1_epu32(msg1, msg2);
  msg0 = _mm_xor_si128(msg0, msg2);
  // Rounds 12-15
  e1 = _mm_sha1nexte_epu32(e1, msg3);
  e0 = abcd;
  msg0 = _mm_sha1msg2_epu32(msg0, msg3);
  abcd = _mm_sha1rnds4_epu32(abcd, e1, 0);
  msg2 = _mm_sha1msg1_epu32(msg2, msg3);
  msg1 = _mm_xor_si128(msg1, msg3);
  // Rounds 16-19
  e0 = _mm_sha1nexte_epu32(e0, msg0);
  e1 = abcd;
  msg1 = _mm_sha1msg2_epu32(msg1, msg0);
  abcd = _mm_sha1rnds4_epu32(abcd, e0, 0);
  msg3 = _mm_sha1msg1_epu32(msg3, msg0);
  msg2 = _mm_xor_si128(msg2, msg0);
  // Rounds 20-23
  e1 = _mm_sha1nexte_epu32(e1, msg1);
  e0 = abcd;
  msg2 = _mm_sha1msg2_epu32(msg2, msg1);
  abcd = _mm_sha1rnds4_epu32(abcd, e1, 1);
  msg0 = _mm_sha1msg1_epu32(msg0, msg1);
  msg3 = _mm_xor_si128(msg3, msg1);
  // Rounds 24-27
  e0 = _mm_sha1nexte_epu32(e0, msg2);
  e1 = abcd;
  msg3 = _mm_sha1msg2_epu32(msg3, msg2);
  abcd = _mm_sha1rnds4_epu32(abcd, e0, 1);
  msg1 = _mm_sha1msg1_epu32(msg1, msg2);
  msg0 = _mm_xor_si128(msg0, msg2);
  // Rounds 28-31
  e1 = _mm_sha1nexte_epu32(e1, msg3);
  e0 = abcd;
  msg0 = _mm_sha1msg2_epu32(msg0, msg3);
  abcd = _mm_sha1rnds4_epu32(abcd, e1, 1);
  msg2 = _mm_sha1msg1_epu32(msg2, msg3);
  msg1 = _mm_xor_si128(msg1, msg3);
  // Rounds 32-35
  e0 = _mm_sha1nexte_epu32(e0, msg0);
  e1 = abcd;
  msg1 = _mm_sha1msg2_epu32(msg1, msg0);
  abcd = _mm_sha1rnds4_epu32(abcd, e0, 1);
  msg3 = _mm_sha1msg1_epu32(msg3, msg0);
  msg2 = _mm_xor_si128(msg2, msg0);
  // Rounds 36-39
  e1 = _mm_sha1nexte_epu32(e1, msg1);
  e0 = abcd;
  msg2 = _mm_sha1msg2_epu32(msg2, msg1);
  abcd = _mm_sha1rnds4_epu32(abcd, e1, 1);
  msg0 = _mm_sha1msg1_epu32(msg0, msg1);
  msg3 = _mm_xor_si128(msg3, msg1);
  // Rounds 40-43
  e0 = _mm_sha1nexte_epu32(e0, msg2);
  e1 = abcd;
  msg3 = _mm_sha1msg2_epu32(msg3, msg2);
  abcd = _mm_sha1rnds4_epu32(abcd, e0, 2);
  msg1 = _mm_sha1msg1_epu32(msg1, msg2);
  msg0 = _mm_xor_si128(msg0, msg2);
  // Rounds 44-47
  e1 = _mm_sha1nexte_epu32(e1, msg3);
  e0 = abcd;
  msg0 = _mm_sha1msg2_epu32(msg0, msg3);
  abcd = _mm_sha1rnds4_epu32(abcd, e1, 2);
  msg2 = _mm_sha1msg1_epu32(msg2, msg3);
  msg1 = _mm_xor_si128(msg1, msg3);
  // Rounds 48-51
  e0 = _mm_sha1nexte_epu32(e0, msg0);
  e1 = abcd;
  msg1 = _mm_sha1msg2_epu32(msg1, msg0);
  abcd = _mm_sha1rnds4_epu32(abcd, e0, 2);
  msg3 = _mm_sha1msg1_epu32(msg3, msg0);
  msg2 = _mm_xor_si128(msg2, msg0);
  // Rounds 52-55
  e1 = _mm_sha1nexte_epu32(e1, msg1);
  e0 = abcd;
  msg2 = _mm_sha1msg2_epu32(msg2, msg1);
  abcd = _mm_sha1rnds4_epu32(abcd, e1, 2);
  msg0 = _mm_sha1msg1_epu32(msg0, msg1);
  msg3 = _mm_xor_si128(msg3, msg1);
  // Rounds 56-59
  e0 = _mm_sha1nexte_epu32(e0, msg2);
  e1 = abcd;
  msg3 = _mm_sha1msg2_epu32(msg3, msg2);
  abcd = _mm_sha1rnds4_epu32(abcd, e0, 2);
  msg1 = _mm_sha1msg1_epu32(msg1, msg2);
  msg0 = _mm_xor_si128(msg0, msg2);
  // Rounds 60-63
  e1 = _mm_sha1nexte_epu32(e1, msg3);
  e0 = abcd;
  msg0 = _mm_sha1msg2_epu32(msg0, msg3);
  abcd = _mm_sha1rnds4_epu32(abcd, e1, 3);
  msg2 = _mm_sha1msg1_epu32(msg2, msg3);
  msg1 = _mm_xor_si128(msg1, msg3);
  // Rounds 64-67
  e0 = _mm_sha1nexte_epu32(e0, msg0);
  e1 = abcd;
  msg1 = _mm_sha1msg2_epu32(msg1, msg0);
  abcd = _mm_sha1rnds4_epu32(abcd, e0, 3);
  msg3 = _mm_sha1msg1_epu32(msg3, msg0);
  msg2 = _mm_xor_si128(msg2, msg0);
  // Rounds 68-71
  e1 = _mm_sha1nexte_epu32(e1, msg1);
  e0 = abcd;
  msg2 = _mm_sha1msg2_epu32(msg2, msg1);
  abcd = _mm_sha1rnds4_epu32(abcd, e1, 3);
  msg3 = _mm_xor_si128(msg3, msg1);
  // Rounds 72-75
  e0 = _mm_sha1nexte_epu32(e0, msg2);
  e1 = abcd;
  msg3 = _mm_sha1msg2_epu32(msg3, msg2);
  abcd = _mm_sha1rnds4_epu32(abcd, e0, 3);
  // Rounds 76-79
  e1 = _mm_sha1nexte_epu32(e1, msg3);
  e0 = abcd;
  abcd = _mm_sha1rnds4_epu32(abcd, e1, 3);

  e0 = _mm_sha1nexte_epu32(e0, e0_save);
  abcd = _mm_add_epi32(abcd, abcd_save);
  _mm_storeu_si128(reinterpret_cast<__m128i*>(state), _mm_shuffle_epi32(abcd, 0x1B));
  state[4] = static_cast<uint32_t>(_mm_extract_epi32(e0, 3));
}
#endif  // FHIRGW_HAVE_SHA_NI

// Whether to use the SHA extensions: decided once, from the CPU.
bool UseShaNi() {
#if FHIRGW_HAVE_SHA_NI
  static const bool kUse = CpuHasShaNi();
  return kUse;
#else
  return false;
#endif
}

// Streaming SHA-1 (FIPS 180-4, section 6.1), so a UUID's namespace and name parts are hashed
// without first being copied into one string.
class Sha1Hasher {
 public:
  explicit Sha1Hasher(bool accelerated = UseShaNi()) : accelerated_(accelerated) {}

  void Update(absl::string_view data) {
    const auto* bytes = reinterpret_cast<const uint8_t*>(data.data());
    size_t size = data.size();
    total_bytes_ += size;
    if (buffered_ > 0) {
      const size_t take = size < kBlockSize - buffered_ ? size : kBlockSize - buffered_;
      std::memcpy(buffer_ + buffered_, bytes, take);
      buffered_ += take;
      bytes += take;
      size -= take;
      if (buffered_ < kBlockSize) return;
      ProcessBlock(buffer_);
      buffered_ = 0;
    }
    for (; size >= kBlockSize; bytes += kBlockSize, size -= kBlockSize) ProcessBlock(bytes);
    if (size > 0) std::memcpy(buffer_, bytes, size);
    buffered_ = size;
  }

  Sha1Digest Finish() {
    // Padding: 0x80, zeros up to 56 bytes into a block, then the message length in bits,
    // big-endian.
    const uint64_t bit_length = total_bytes_ * 8;
    uint8_t padding[kBlockSize + 8] = {0x80};
    const size_t zeros_end = buffered_ < 56 ? 56 - buffered_ : 120 - buffered_;
    for (int i = 0; i < 8; ++i)
      padding[zeros_end + i] = static_cast<uint8_t>(bit_length >> (56 - 8 * i));
    Update(absl::string_view(reinterpret_cast<const char*>(padding), zeros_end + 8));
    Sha1Digest digest;
    for (int i = 0; i < 20; ++i)
      digest[i] = static_cast<uint8_t>(state_[i / 4] >> (24 - 8 * (i % 4)));
    return digest;
  }

 private:
  static constexpr size_t kBlockSize = 64;

  void ProcessBlock(const uint8_t* block) {
#if FHIRGW_HAVE_SHA_NI
    if (accelerated_) {
      Sha1BlockShaNi(state_, block);
      return;
    }
#endif
    uint32_t w[80];
    for (int i = 0; i < 16; ++i) {
      w[i] = uint32_t{block[4 * i]} << 24 | uint32_t{block[4 * i + 1]} << 16 |
             uint32_t{block[4 * i + 2]} << 8 | uint32_t{block[4 * i + 3]};
    }
    for (int i = 16; i < 80; ++i) w[i] = std::rotl(w[i - 3] ^ w[i - 8] ^ w[i - 14] ^ w[i - 16], 1);
    uint32_t a = state_[0], b = state_[1], c = state_[2], d = state_[3], e = state_[4];
    for (int i = 0; i < 80; ++i) {
      uint32_t f = 0;
      uint32_t k = 0;
      if (i < 20) {
        f = (b & c) | (~b & d);
        k = 0x5a827999;
      } else if (i < 40) {
        f = b ^ c ^ d;
        k = 0x6ed9eba1;
      } else if (i < 60) {
        f = (b & c) | (b & d) | (c & d);
        k = 0x8f1bbcdc;
      } else {
        f = b ^ c ^ d;
        k = 0xca62c1d6;
      }
      const uint32_t temp = std::rotl(a, 5) + f + e + k + w[i];
      e = d;
      d = c;
      c = std::rotl(b, 30);
      b = a;
      a = temp;
    }
    state_[0] += a;
    state_[1] += b;
    state_[2] += c;
    state_[3] += d;
    state_[4] += e;
  }

  uint32_t state_[5] = {0x67452301, 0xefcdab89, 0x98badcfe, 0x10325476, 0xc3d2e1f0};
  uint8_t buffer_[kBlockSize] = {};
  size_t buffered_ = 0;
  uint64_t total_bytes_ = 0;
  bool accelerated_;
};

// RFC 4122 section 4.3: SHA-1 of the namespace bytes followed by the name (given here in `parts`),
// truncated to 16 bytes, with version 5 and the RFC 4122 variant (binary 10).
UuidBytes Uuid5OfParts(const UuidBytes& name_space,
                       std::initializer_list<absl::string_view> parts) {
  Sha1Hasher hasher;
  hasher.Update(
      absl::string_view(reinterpret_cast<const char*>(name_space.data()), name_space.size()));
  for (absl::string_view part : parts) hasher.Update(part);
  const Sha1Digest digest = hasher.Finish();
  UuidBytes uuid;
  for (size_t i = 0; i < uuid.size(); ++i) uuid[i] = digest[i];
  uuid[6] = static_cast<uint8_t>((uuid[6] & 0x0f) | 0x50);
  uuid[8] = static_cast<uint8_t>((uuid[8] & 0x3f) | 0x80);
  return uuid;
}

// Writes the 36 characters of `uuid` at `out`.
void WriteUuid(const UuidBytes& uuid, char* out) {
  static constexpr char kHex[] = "0123456789abcdef";
  for (size_t i = 0; i < uuid.size(); ++i) {
    if (i == 4 || i == 6 || i == 8 || i == 10) *out++ = '-';
    *out++ = kHex[uuid[i] >> 4];
    *out++ = kHex[uuid[i] & 0x0f];
  }
}

constexpr size_t kUuidTextLength = 36;
constexpr absl::string_view kUrnPrefix = "urn:uuid:";
// Joins the parts of a ResourceUrn name: the ASCII unit separator, so that ("a|b", "c") and
// ("a", "b|c") name different resources. FHIR strings should not contain control characters, so no
// part is expected to contain it.
constexpr absl::string_view kNameSeparator = "\x1f";

// fhirgw's own UUID namespace, Uuid5(kDnsNamespace, "fhirgw.v1") =
// 4b1f7f3d-890f-5856-8053-7eb0b7bb2a1c. Changing it changes every fullUrl the gateway writes.
const UuidBytes& FhirgwNamespace() {
  static const UuidBytes kNamespace = Uuid5(kDnsNamespace, "fhirgw.v1");
  return kNamespace;
}

}  // namespace

std::array<uint8_t, 20> Sha1(absl::string_view data) {
  Sha1Hasher hasher;
  hasher.Update(data);
  return hasher.Finish();
}

std::array<uint8_t, 20> Sha1Portable(absl::string_view data) {
  Sha1Hasher hasher(/*accelerated=*/false);
  hasher.Update(data);
  return hasher.Finish();
}

bool Sha1UsesCpuExtensions() { return UseShaNi(); }

UuidBytes Uuid5(const UuidBytes& name_space, absl::string_view name) {
  return Uuid5OfParts(name_space, {name});
}

std::string FormatUuid(const UuidBytes& uuid) {
  std::string text(kUuidTextLength, '\0');
  WriteUuid(uuid, text.data());
  return text;
}

std::string ResourceUrn(absl::string_view tenant, absl::string_view resource_type,
                        absl::string_view identifier_value) {
  const UuidBytes uuid = Uuid5OfParts(
      FhirgwNamespace(), {tenant, kNameSeparator, resource_type, kNameSeparator, identifier_value});
  std::string urn(kUrnPrefix.size() + kUuidTextLength, '\0');
  std::memcpy(urn.data(), kUrnPrefix.data(), kUrnPrefix.size());
  WriteUuid(uuid, urn.data() + kUrnPrefix.size());
  return urn;
}

}  // namespace fhirgw::fhir
