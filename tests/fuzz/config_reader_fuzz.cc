// Fuzzes the configuration reader (gateway/config/config.h): parsing, defaults and validation.
#include <cstddef>
#include <cstdint>

#include "gateway/config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto config = fhirgw::gateway::ParseConfig(
      absl::string_view(reinterpret_cast<const char*>(data), size), "fuzz.textproto");
  if (!config.ok()) return 0;
  fhirgw::gateway::ApplyDefaults(*config);
  (void)fhirgw::gateway::ValidateConfig(*config);
  return 0;
}
