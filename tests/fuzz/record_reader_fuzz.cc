// Fuzzes the clinic record reader (mappers/record_json.h): its fast path and protobuf's fallback
// must agree, and neither may crash.
#include <cstddef>
#include <cstdint>
#include <cstdlib>

#include "mappers/record_json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view json(reinterpret_cast<const char*>(data), size);
  const auto fast = fhirgw::mappers::ParseRecordJson(json);
  const auto reference = fhirgw::mappers::ParseRecordJsonWithProtobuf(json);
  if (fast.status() != reference.status()) std::abort();
  if (fast.ok() && fast->SerializeAsString() != reference->SerializeAsString()) std::abort();
  return 0;
}
