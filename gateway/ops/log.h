// Process log lines on stderr: "2026-11-27T10:00:00.123Z INFO message".
//
// Messages carry caller input (ids, paths, error texts), so control characters are escaped: a
// caller cannot end a line and forge another.
//
// Never log PHI: names, birth dates, answers or free text. Log ids (transaction, record, clinic),
// statuses, counts and error codes.
//
//   LogInfo(absl::StrCat("delivered ", transaction_id, " to ", destination));
#ifndef FHIRGW_GATEWAY_OPS_LOG_H_
#define FHIRGW_GATEWAY_OPS_LOG_H_

#include <string>

#include "absl/strings/string_view.h"

namespace fhirgw::gateway {

void LogInfo(absl::string_view message);
void LogWarning(absl::string_view message);
void LogError(absl::string_view message);

// Returns `text` with \n, \r and \t written as those two characters and every other byte below
// 0x20, and 0x7f, as \xNN.
std::string EscapeControlCharacters(absl::string_view text);

}  // namespace fhirgw::gateway

#endif  // FHIRGW_GATEWAY_OPS_LOG_H_
