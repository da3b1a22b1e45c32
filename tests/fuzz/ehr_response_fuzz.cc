// Fuzzes the readers of EHR answers (gateway/delivery/fhir_response.h): transaction-response
// Bundles, OperationOutcomes and Retry-After headers.
#include <cstddef>
#include <cstdint>

#include "gateway/delivery/fhir_response.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  const absl::string_view text(reinterpret_cast<const char*>(data), size);
  // The request the response answers: one entry, so that entry counts are compared too.
  static constexpr char kRequest[] =
      R"({"resourceType":"Bundle","type":"transaction","entry":[{"request":{"method":"POST","url":"Patient"}}]})";
  (void)fhirgw::gateway::ParseTransactionResponse(text, "");
  (void)fhirgw::gateway::ParseTransactionResponse(text, kRequest);
  (void)fhirgw::gateway::ParseOperationOutcome(text);
  (void)fhirgw::gateway::ParseRetryAfter(text.substr(0, 64), 1700000000000);
  return 0;
}
