// Fuzzes the inbound FHIR reader (MapFromFhir), which maps hospital JSON to clinic records.
#include <cstddef>
#include <cstdint>

#include "mappers/reverse.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto* context =
      new fhirgw::mappers::ReverseContext(fhirgw::mappers::ReverseContext::ForTenant("clinic-a"));
  fhirgw::fhir::IssueList issues;
  (void)fhirgw::mappers::MapFromFhir(absl::string_view(reinterpret_cast<const char*>(data), size),
                                     *context, issues);
  return 0;
}
