// Deterministic name-based UUIDs (RFC 4122 version 5, SHA-1) for Bundle fullUrls.
//
// The same tenant, resource type and identifier always give the same urn:uuid, so translating a
// record twice gives byte-identical Bundles.
//
//   std::string url = ResourceUrn("clinic-a", "Patient", "p-123");  // "urn:uuid:6f1c...-5...-..."
#ifndef FHIRGW_FHIR_UUID_H_
#define FHIRGW_FHIR_UUID_H_

#include <array>
#include <cstdint>
#include <string>

#include "absl/strings/string_view.h"

namespace fhirgw::fhir {

using UuidBytes = std::array<uint8_t, 16>;

// The RFC 4122 DNS namespace, 6ba7b810-9dad-11d1-80b4-00c04fd430c8 (for tests against known
// vectors).
inline constexpr UuidBytes kDnsNamespace = {0x6b, 0xa7, 0xb8, 0x10, 0x9d, 0xad, 0x11, 0xd1,
                                            0x80, 0xb4, 0x00, 0xc0, 0x4f, 0xd4, 0x30, 0xc8};

// Returns the version-5 UUID of `name` in `name_space`.
UuidBytes Uuid5(const UuidBytes& name_space, absl::string_view name);

// Formats `uuid` as 36 lowercase characters, 8-4-4-4-12.
std::string FormatUuid(const UuidBytes& uuid);

// Returns "urn:uuid:<uuid5>" for the resource of `resource_type` that `tenant` identifies by
// `identifier_value`, in fhirgw's own namespace.
std::string ResourceUrn(absl::string_view tenant, absl::string_view resource_type,
                        absl::string_view identifier_value);

}  // namespace fhirgw::fhir

#endif  // FHIRGW_FHIR_UUID_H_
