#include "mappers/record_json.h"

#include <cmath>
#include <cstdint>
#include <cstring>
#include <unordered_map>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/strip.h"
#include "fhir/json.h"
#include "fhir/json_parse.h"
#include "google/protobuf/descriptor.h"
#include "google/protobuf/timestamp.pb.h"
#include "google/protobuf/util/json_util.h"

namespace fhirgw::mappers {
namespace {

using google::protobuf::Descriptor;
using google::protobuf::EnumDescriptor;
using google::protobuf::FieldDescriptor;
using google::protobuf::Message;
using google::protobuf::Reflection;

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

absl::Status ParseWithProtobuf(absl::string_view json, v1::ClinicRecord& record) {
  // Protobuf's parser must not see unbounded nesting or invalid UTF-8 either.
  if (absl::Status limits = fhir::CheckJsonLimits(json); !limits.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("record: invalid JSON: ", limits.message()));
  }
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  auto status = google::protobuf::util::JsonStringToMessage(
      google::protobuf::StringPiece(json.data(), json.size()), &record, options);
  if (!status.ok()) {
    return absl::InvalidArgumentError(
        NormalizeParseError(absl::string_view(status.message().data(), status.message().size())));
  }
  return absl::OkStatus();
}

// ---- the fast path ----
//
// It accepts only input whose meaning under protobuf's JSON parser is certain, and gives up
// (returns false, and the caller falls back to protobuf's parser) on anything else: unknown or
// repeated keys, two members of a oneof, nulls, numbers written as strings or out of range, enum
// numbers, timestamps other than "YYYY-MM-DDThh:mm:ss[.f{1,9}]Z", embedded NULs, field types the
// record contract does not use. Errors therefore always come from protobuf's parser, word for word.

// The keys protobuf's parser accepts for the fields of one message type: the JSON name
// (lowerCamelCase) and the proto name.
using FieldsByKey = absl::flat_hash_map<std::string, const FieldDescriptor*>;
using EnumValuesByName = absl::flat_hash_map<std::string, int>;

// Key and enum tables for every message type reachable from ClinicRecord, built once.
class SchemaTables {
 public:
  explicit SchemaTables(const Descriptor* root) { AddMessage(root); }

  const FieldsByKey* Fields(const Descriptor* type) const {
    const auto it = fields_.find(type);
    return it == fields_.end() ? nullptr : &it->second;
  }
  const EnumValuesByName* EnumValues(const EnumDescriptor* type) const {
    const auto it = enums_.find(type);
    return it == enums_.end() ? nullptr : &it->second;
  }

 private:
  void AddMessage(const Descriptor* type) {
    if (fields_.count(type) > 0 || type->file()->package() == "google.protobuf") return;
    FieldsByKey& keys = fields_[type];  // std::unordered_map: references stay valid
    for (int i = 0; i < type->field_count(); ++i) {
      const FieldDescriptor* field = type->field(i);
      keys.emplace(field->name(), field);
      keys.emplace(field->json_name(), field);
      if (field->message_type() != nullptr) AddMessage(field->message_type());
      if (field->enum_type() != nullptr) AddEnum(field->enum_type());
    }
  }

  void AddEnum(const EnumDescriptor* type) {
    if (enums_.count(type) > 0) return;
    EnumValuesByName& values = enums_[type];
    for (int i = 0; i < type->value_count(); ++i) {
      values.emplace(type->value(i)->name(), type->value(i)->number());
    }
  }

  std::unordered_map<const Descriptor*, FieldsByKey> fields_;
  std::unordered_map<const EnumDescriptor*, EnumValuesByName> enums_;
};

const SchemaTables& RecordTables() {
  static const SchemaTables* const kTables = new SchemaTables(v1::ClinicRecord::descriptor());
  return *kTables;
}

absl::string_view StringOf(const fhir::JsonValue& value) {
  return absl::string_view(value.GetString(), value.GetStringLength());
}

bool ReadDigits(const char* text, int count, int& out) {
  out = 0;
  for (int i = 0; i < count; ++i) {
    if (text[i] < '0' || text[i] > '9') return false;
    out = out * 10 + (text[i] - '0');
  }
  return true;
}

bool IsLeapYear(int year) { return (year % 4 == 0 && year % 100 != 0) || year % 400 == 0; }

// Days from 1970-01-01 to `year`-`month`-`day` (proleptic Gregorian; H. Hinnant's algorithm).
int64_t DaysFromCivil(int year, int month, int day) {
  year -= month <= 2 ? 1 : 0;
  const int64_t era = (year >= 0 ? year : year - 399) / 400;
  const int64_t year_of_era = year - era * 400;
  const int64_t day_of_year = (153 * (month + (month > 2 ? -3 : 9)) + 2) / 5 + day - 1;
  const int64_t day_of_era = year_of_era * 365 + year_of_era / 4 - year_of_era / 100 + day_of_year;
  return era * 146097 + day_of_era - 719468;
}

// Parses "YYYY-MM-DDThh:mm:ss[.f{1,9}]Z", the common subset of what protobuf's Timestamp parser
// accepts (it also takes offsets and looser digit counts; those fall back to it).
bool ParseUtcTimestamp(absl::string_view text, google::protobuf::Timestamp& out) {
  if (text.size() < 20 || text.size() > 30 || text.back() != 'Z') return false;
  const char* s = text.data();
  if (s[4] != '-' || s[7] != '-' || s[10] != 'T' || s[13] != ':' || s[16] != ':') return false;
  int year, month, day, hour, minute, second;
  if (!ReadDigits(s, 4, year) || !ReadDigits(s + 5, 2, month) || !ReadDigits(s + 8, 2, day) ||
      !ReadDigits(s + 11, 2, hour) || !ReadDigits(s + 14, 2, minute) ||
      !ReadDigits(s + 17, 2, second)) {
    return false;
  }
  static constexpr int kDaysInMonth[] = {31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31};
  if (year < 1 || month < 1 || month > 12 || day < 1 || hour > 23 || minute > 59 || second > 59) {
    return false;
  }
  const int month_days = kDaysInMonth[month - 1] + (month == 2 && IsLeapYear(year) ? 1 : 0);
  if (day > month_days) return false;
  int nanos = 0;
  const size_t fraction_end = text.size() - 1;  // the 'Z'
  if (fraction_end > 19) {
    const size_t digits = fraction_end - 20;
    if (s[19] != '.' || digits < 1 || digits > 9) return false;
    if (!ReadDigits(s + 20, static_cast<int>(digits), nanos)) return false;
    for (size_t i = digits; i < 9; ++i) nanos *= 10;
  }
  out.set_seconds(DaysFromCivil(year, month, day) * 86400 + hour * 3600 + minute * 60 + second);
  out.set_nanos(nanos);
  return true;
}

// A double as protobuf's parser reads it: integers exactly (within +-2^53, beyond which it reports
// precision loss), other numbers as RapidJSON read them with full precision (strtod's result).
bool ReadDouble(const fhir::JsonValue& value, double& out) {
  constexpr int64_t kMaxExact = int64_t{1} << 53;
  if (value.IsInt64()) {
    const int64_t i = value.GetInt64();
    if (i > kMaxExact || i < -kMaxExact) return false;
    out = static_cast<double>(i);
    return true;
  }
  if (!value.IsDouble()) return false;
  out = value.GetDouble();
  // Zero (maybe -0 or an underflow) and huge values are left to protobuf, to be safe.
  return std::isfinite(out) && out != 0 && std::abs(out) < 9.2e18;
}

class FastReader {
 public:
  explicit FastReader(const SchemaTables& tables) : tables_(tables) {}

  bool ReadMessage(const fhir::JsonValue& json, Message& message) const {
    if (!json.IsObject()) return false;
    const Descriptor* type = message.GetDescriptor();
    const FieldsByKey* keys = tables_.Fields(type);
    if (keys == nullptr || type->field_count() > 64 || type->oneof_decl_count() > 64) return false;
    const Reflection* reflection = message.GetReflection();
    uint64_t fields_seen = 0;
    uint64_t oneofs_seen = 0;
    for (const auto& member : json.GetObject()) {
      const auto it = keys->find(StringOf(member.name));
      if (it == keys->end()) return false;
      const FieldDescriptor* field = it->second;
      const uint64_t field_bit = uint64_t{1} << field->index();
      if ((fields_seen & field_bit) != 0) return false;
      fields_seen |= field_bit;
      if (const google::protobuf::OneofDescriptor* oneof = field->real_containing_oneof()) {
        const uint64_t oneof_bit = uint64_t{1} << oneof->index();
        if ((oneofs_seen & oneof_bit) != 0) return false;
        oneofs_seen |= oneof_bit;
      }
      const bool ok = field->is_repeated() ? ReadRepeated(member.value, field, message, reflection)
                                           : ReadSingular(member.value, field, message, reflection);
      if (!ok) return false;
    }
    return true;
  }

 private:
  static bool IsTimestamp(const FieldDescriptor* field) {
    return field->message_type() != nullptr &&
           field->message_type()->well_known_type() == Descriptor::WELLKNOWNTYPE_TIMESTAMP;
  }

  static bool ReadString(const fhir::JsonValue& value, std::string& out) {
    if (!value.IsString()) return false;
    const absl::string_view text = StringOf(value);
    if (std::memchr(text.data(), '\0', text.size()) != nullptr) return false;
    out.assign(text.data(), text.size());
    return true;
  }

  bool ReadEnum(const fhir::JsonValue& value, const FieldDescriptor* field, int& out) const {
    if (!value.IsString()) return false;
    const EnumValuesByName* values = tables_.EnumValues(field->enum_type());
    if (values == nullptr) return false;
    const auto it = values->find(StringOf(value));
    if (it == values->end()) return false;
    out = it->second;
    return true;
  }

  static bool ReadTimestamp(const fhir::JsonValue& value, Message* message) {
    auto* timestamp =
        google::protobuf::DynamicCastToGenerated<google::protobuf::Timestamp>(message);
    return timestamp != nullptr && value.IsString() &&
           ParseUtcTimestamp(StringOf(value), *timestamp);
  }

  bool ReadSingular(const fhir::JsonValue& value, const FieldDescriptor* field, Message& message,
                    const Reflection* reflection) const {
    switch (field->type()) {
      case FieldDescriptor::TYPE_STRING: {
        std::string text;
        if (!ReadString(value, text)) return false;
        reflection->SetString(&message, field, std::move(text));
        return true;
      }
      case FieldDescriptor::TYPE_INT32:
        if (!value.IsInt()) return false;
        reflection->SetInt32(&message, field, value.GetInt());
        return true;
      case FieldDescriptor::TYPE_DOUBLE: {
        double number;
        if (!ReadDouble(value, number)) return false;
        reflection->SetDouble(&message, field, number);
        return true;
      }
      case FieldDescriptor::TYPE_BOOL:
        if (!value.IsBool()) return false;
        reflection->SetBool(&message, field, value.GetBool());
        return true;
      case FieldDescriptor::TYPE_ENUM: {
        int number;
        if (!ReadEnum(value, field, number)) return false;
        reflection->SetEnumValue(&message, field, number);
        return true;
      }
      case FieldDescriptor::TYPE_MESSAGE:
        if (IsTimestamp(field))
          return ReadTimestamp(value, reflection->MutableMessage(&message, field));
        if (!value.IsObject()) return false;
        return ReadMessage(value, *reflection->MutableMessage(&message, field));
      default:
        return false;
    }
  }

  bool ReadRepeated(const fhir::JsonValue& value, const FieldDescriptor* field, Message& message,
                    const Reflection* reflection) const {
    if (!value.IsArray() || field->is_map()) return false;
    for (const fhir::JsonValue& element : value.GetArray()) {
      switch (field->type()) {
        case FieldDescriptor::TYPE_STRING: {
          std::string text;
          if (!ReadString(element, text)) return false;
          reflection->AddString(&message, field, std::move(text));
          break;
        }
        case FieldDescriptor::TYPE_INT32:
          if (!element.IsInt()) return false;
          reflection->AddInt32(&message, field, element.GetInt());
          break;
        case FieldDescriptor::TYPE_DOUBLE: {
          double number;
          if (!ReadDouble(element, number)) return false;
          reflection->AddDouble(&message, field, number);
          break;
        }
        case FieldDescriptor::TYPE_BOOL:
          if (!element.IsBool()) return false;
          reflection->AddBool(&message, field, element.GetBool());
          break;
        case FieldDescriptor::TYPE_ENUM: {
          int number;
          if (!ReadEnum(element, field, number)) return false;
          reflection->AddEnumValue(&message, field, number);
          break;
        }
        case FieldDescriptor::TYPE_MESSAGE:
          if (IsTimestamp(field)) {
            if (!ReadTimestamp(element, reflection->AddMessage(&message, field))) return false;
            break;
          }
          if (!element.IsObject()) return false;
          if (!ReadMessage(element, *reflection->AddMessage(&message, field))) return false;
          break;
        default:
          return false;
      }
    }
    return true;
  }

  const SchemaTables& tables_;
};

// Scratch memory for the DOM: enough for a large record without touching malloc.
constexpr size_t kPoolBufferSize = 32 * 1024;

}  // namespace

struct RecordJsonReader::Scratch {
  Scratch() : pool_buffer(new char[kPoolBufferSize]), pool(pool_buffer.get(), kPoolBufferSize) {}

  std::string text;  // a NUL-terminated copy of the input, parsed in place
  std::unique_ptr<char[]> pool_buffer;
  fhir::JsonAlloc pool;
};

RecordJsonReader::RecordJsonReader() : scratch_(std::make_unique<Scratch>()) {}
RecordJsonReader::~RecordJsonReader() = default;

absl::Status RecordJsonReader::Read(absl::string_view json, v1::ClinicRecord& record) {
  record.Clear();
  // An embedded NUL would end the in-place parse early; protobuf's parser reports it.
  if (std::memchr(json.data(), '\0', json.size()) == nullptr) {
    scratch_->text.assign(json.data(), json.size());
    scratch_->pool.Clear();
    fhir::JsonDocument document(&scratch_->pool);
    const absl::Status parsed =
        fhir::ParseJsonInsitu(scratch_->text.data(), document, fhir::JsonNumbers::kFullPrecision);
    if (parsed.ok() && FastReader(RecordTables()).ReadMessage(document, record)) {
      ++fast_reads_;
      return absl::OkStatus();
    }
    record.Clear();
  }
  ++fallback_reads_;
  return ParseWithProtobuf(json, record);
}

absl::StatusOr<v1::ClinicRecord> ParseRecordJson(absl::string_view json) {
  v1::ClinicRecord record;
  RecordJsonReader reader;
  absl::Status status = reader.Read(json, record);
  if (!status.ok()) return status;
  return record;
}

absl::StatusOr<v1::ClinicRecord> ParseRecordJsonWithProtobuf(absl::string_view json) {
  v1::ClinicRecord record;
  absl::Status status = ParseWithProtobuf(json, record);
  if (!status.ok()) return status;
  return record;
}

std::string RecordToJson(const v1::ClinicRecord& record) {
  std::string out;
  google::protobuf::util::JsonPrintOptions options;
  (void)google::protobuf::util::MessageToJsonString(record, &out, options);
  return out;
}

}  // namespace fhirgw::mappers
