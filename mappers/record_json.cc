#include "mappers/record_json.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "google/protobuf/util/json_util.h"

namespace fhirgw::mappers {
namespace {

// Rewrites protobuf's JSON parser messages into the "path: message" form of every other issue:
//   "(infusion.route): invalid value \"X\" for type type.googleapis.com/fhirgw.v1.Route.Value"
//     -> "infusion.route: invalid value \"X\" for type fhirgw.v1.Route.Value"
//   "(patient) bar: Cannot find field." -> "patient.bar: unknown field"
//   "Unexpected end of string. ...\n<excerpt>" -> "record: invalid JSON: Unexpected end of string.
//   ..."
std::string NormalizeParseError(absl::string_view message) {
  message = message.substr(0, message.find('\n'));
  std::string path;
  if (absl::ConsumePrefix(&message, "(")) {
    const size_t close = message.find(')');
    if (close != absl::string_view::npos) {
      path = std::string(message.substr(0, close));
      message.remove_prefix(close + 1);
      absl::ConsumePrefix(&message, ":");
      absl::ConsumePrefix(&message, " ");
    }
  }
  if (absl::ConsumeSuffix(&message, ": Cannot find field.")) {
    return absl::StrCat(path, path.empty() ? "" : ".", message, ": unknown field");
  }
  std::string text = absl::StrReplaceAll(message, {{"type.googleapis.com/", ""}});
  if (path.empty()) return absl::StrCat("record: invalid JSON: ", text);
  return absl::StrCat(path, ": ", text);
}

}  // namespace

absl::StatusOr<v1::ClinicRecord> ParseRecordJson(absl::string_view json) {
  v1::ClinicRecord record;
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &record, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        NormalizeParseError(absl::string_view(status.message().data(), status.message().size())));
  }
  return record;
}

std::string RecordToJson(const v1::ClinicRecord& record) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  (void)google::protobuf::util::MessageToJsonString(record, &out, options);
  return out;
}

}  // namespace fhirgw::mappers
