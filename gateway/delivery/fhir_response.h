// Interpreting an EHR's answer to a FHIR transaction: the resources it created or updated, the
// issues of an OperationOutcome, and the Retry-After header.
//
// These are pure functions over text, so the delivery worker and its tests can use them without a
// server.
//
//   absl::StatusOr<std::vector<v1::ResourceRef>> refs =
//       ParseTransactionResponse(result.body, bundle_json);
//   // (*refs)[0]: {resource_type "Patient", id "123", version_id "2", status "201 Created",
//   //              full_url "urn:uuid:..."}
//   std::vector<v1::Issue> issues = ParseOperationOutcome(result.body);
//   int64_t delay_ms = ParseRetryAfter("120", now_ms);  // 120000
#ifndef FHIRGW_GATEWAY_DELIVERY_FHIR_RESPONSE_H_
#define FHIRGW_GATEWAY_DELIVERY_FHIR_RESPONSE_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "fhirgw/v1/gateway.pb.h"

namespace fhirgw::gateway {

// Returns one ResourceRef per entry of the transaction-response Bundle `response_json`, in entry
// order. Each entry's `response.location` ("Patient/123/_history/2", or an absolute URL whose
// last "Type/id[/_history/vid]" segments are used) gives the type, id and version; an entry
// without a location falls back to its `response.etag` (W/"2") and its `resource` (id,
// meta.versionId). `status` is the entry's `response.status`. `full_url` is the `fullUrl` of the
// entry at the same index of `request_bundle_json` (FHIR requires the response to keep the
// request's order); pass "" when the request is not at hand.
//
// Returns InvalidArgument when `response_json` is not a transaction-response (or batch-response)
// Bundle, or when its entry count differs from the request's.
absl::StatusOr<std::vector<v1::ResourceRef>> ParseTransactionResponse(
    absl::string_view response_json, absl::string_view request_bundle_json);

// Returns the issues of the OperationOutcome `body`: severity (fatal and error map to ERROR),
// message from `diagnostics`, else `details.text`, else `details.coding[0].display`, else the
// issue `code`; path from `expression[0]`, else `location[0]`. Returns an empty vector when `body`
// is not a JSON OperationOutcome.
std::vector<v1::Issue> ParseOperationOutcome(absl::string_view body);

// Returns the delay in milliseconds asked for by the Retry-After header `value`: delta-seconds
// ("120") or an HTTP-date relative to `now_ms` (Unix milliseconds); the IMF-fixdate form
// ("Sun, 06 Nov 1994 08:49:37 GMT") and RFC 9110's two obsolete forms are accepted. A date in the
// past gives 0. Returns -1 when `value` is neither.
int64_t ParseRetryAfter(absl::string_view value, int64_t now_ms);

}  // namespace fhirgw::gateway

#endif  // FHIRGW_GATEWAY_DELIVERY_FHIR_RESPONSE_H_
