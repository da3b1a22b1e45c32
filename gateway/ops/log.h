// Process log lines on stderr: "2026-11-27T10:00:00.123Z INFO message".
//
// Never log PHI: names, birth dates, answers or free text. Log ids (transaction, record, clinic),
// statuses, counts and error codes.
//
//   LogInfo(absl::StrCat("delivered ", transaction_id, " to ", destination));
#ifndef FHIRGW_GATEWAY_OPS_LOG_H_
#define FHIRGW_GATEWAY_OPS_LOG_H_

#include "absl/strings/string_view.h"

namespace fhirgw::gateway {

void LogInfo(absl::string_view message);
void LogWarning(absl::string_view message);
void LogError(absl::string_view message);

}  // namespace fhirgw::gateway

#endif  // FHIRGW_GATEWAY_OPS_LOG_H_
