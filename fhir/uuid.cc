#include "fhir/uuid.h"

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>

#include "absl/strings/string_view.h"
#include "base/digest.h"

namespace fhirgw::fhir {
namespace {

// RFC 4122 section 4.3: `digest` is the SHA-1 of the namespace bytes followed by the name; the
// UUID is its first 16 bytes with version 5 and the RFC 4122 variant (binary 10).
UuidBytes Uuid5OfDigest(const base::Sha1Digest& digest) {
  UuidBytes uuid;
  for (size_t i = 0; i < uuid.size(); ++i) uuid[i] = digest[i];
  uuid[6] = static_cast<uint8_t>((uuid[6] & 0x0f) | 0x50);
  uuid[8] = static_cast<uint8_t>((uuid[8] & 0x3f) | 0x80);
  return uuid;
}

absl::string_view Bytes(const UuidBytes& uuid) {
  return absl::string_view(reinterpret_cast<const char*>(uuid.data()), uuid.size());
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

UuidBytes Uuid5(const UuidBytes& name_space, absl::string_view name) {
  return Uuid5OfDigest(base::Sha1({Bytes(name_space), name}));
}

std::string FormatUuid(const UuidBytes& uuid) {
  std::string text(kUuidTextLength, '\0');
  WriteUuid(uuid, text.data());
  return text;
}

std::string ResourceUrn(absl::string_view tenant, absl::string_view resource_type,
                        absl::string_view identifier_value) {
  // The name's parts are hashed in turn, never joined into one string first.
  const UuidBytes uuid =
      Uuid5OfDigest(base::Sha1({Bytes(FhirgwNamespace()), tenant, kNameSeparator, resource_type,
                                kNameSeparator, identifier_value}));
  std::string urn(kUrnPrefix.size() + kUuidTextLength, '\0');
  std::memcpy(urn.data(), kUrnPrefix.data(), kUrnPrefix.size());
  WriteUuid(uuid, urn.data() + kUrnPrefix.size());
  return urn;
}

}  // namespace fhirgw::fhir
