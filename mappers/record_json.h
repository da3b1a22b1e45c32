// Clinic records as protobuf JSON (lowerCamelCase names, enum values by name), the form clinics
// write.
//
//   absl::StatusOr<v1::ClinicRecord> record = ParseRecordJson(line);
//   // error: InvalidArgument "infusion.vitals[0].spoPercent: unknown field ..."
//
// For many records in a row (NDJSON), a RecordJsonReader reuses its scratch memory, and the record
// may live on a protobuf Arena:
//
//   RecordJsonReader reader;
//   v1::ClinicRecord* record = google::protobuf::Arena::CreateMessage<v1::ClinicRecord>(&arena);
//   absl::Status status = reader.Read(line, *record);
//
// Both give exactly what protobuf's JsonStringToMessage gives, including its error messages:
// common, well-formed records are read by a RapidJSON fast path driven by the message descriptors,
// and anything that path does not handle (errors, nulls, numbers as strings, ...) goes to
// protobuf's parser.
#ifndef FHIRGW_MAPPERS_RECORD_JSON_H_
#define FHIRGW_MAPPERS_RECORD_JSON_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "fhirgw/v1/records.pb.h"

namespace fhirgw::mappers {

// Parses one ClinicRecord from protobuf JSON; unknown fields are errors (a misspelt field must not
// silently drop clinical data).
absl::StatusOr<v1::ClinicRecord> ParseRecordJson(absl::string_view json);

// Parses like ParseRecordJson with protobuf's parser alone (the reference the fast path must
// match; for tests and benchmarks).
absl::StatusOr<v1::ClinicRecord> ParseRecordJsonWithProtobuf(absl::string_view json);

// Reads records one after another, keeping its scratch memory between them. Not thread-safe: use
// one reader per thread.
class RecordJsonReader {
 public:
  RecordJsonReader();
  ~RecordJsonReader();
  RecordJsonReader(const RecordJsonReader&) = delete;
  RecordJsonReader& operator=(const RecordJsonReader&) = delete;

  // Parses `json` into `record` (cleared first); on error, `record` holds no meaningful content.
  absl::Status Read(absl::string_view json, v1::ClinicRecord& record);

  // How many records the fast path read, and how many went to protobuf's parser (for tests).
  int fast_reads() const { return fast_reads_; }
  int fallback_reads() const { return fallback_reads_; }

 private:
  struct Scratch;
  std::unique_ptr<Scratch> scratch_;
  int fast_reads_ = 0;
  int fallback_reads_ = 0;
};

// Writes `record` as protobuf JSON (compact, proto field names in lowerCamelCase).
std::string RecordToJson(const v1::ClinicRecord& record);

}  // namespace fhirgw::mappers

#endif  // FHIRGW_MAPPERS_RECORD_JSON_H_
