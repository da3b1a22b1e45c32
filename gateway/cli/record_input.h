// Reading clinic records from a file or stdin, for the translate and push commands.
//
// Input whose first non-blank line is a complete JSON object is NDJSON: one record a line, blank
// lines skipped (a one-line file is NDJSON too). Otherwise the whole input is one JSON record, e.g.
// pretty.
//
//   ForEachRecordText(path, stdin, [](absl::string_view json, int line) { ... });  // line 0:
//   single
#ifndef FHIRGW_GATEWAY_CLI_RECORD_INPUT_H_
#define FHIRGW_GATEWAY_CLI_RECORD_INPUT_H_

#include <cstdio>
#include <functional>
#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace fhirgw::gateway {

// Calls `fn` with each record's JSON text and its 1-based line number (0 for a single-document
// file). Fails with InvalidArgument when the input holds no record, and with another code
// (NotFound, FailedPrecondition for a directory, DataLoss for a read error) when it cannot be read.
absl::Status ForEachRecordText(const std::string& path, std::FILE* stdin_file,
                               const std::function<void(absl::string_view json, int line)>& fn);

}  // namespace fhirgw::gateway

#endif  // FHIRGW_GATEWAY_CLI_RECORD_INPUT_H_
