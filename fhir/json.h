// Building and writing FHIR JSON on RapidJSON.
//
// `Json` is an object or array under construction that owns its value until it is moved into a
// parent, so that no pointer into a growing parent is ever held. Setters skip absent values: FHIR
// JSON never holds an empty string, object or array, or a null, and `Put`/`Push` of an empty child
// is a no-op.
//
//   JsonAlloc& a = doc.GetAllocator();
//   Json coding = Json::Object(a);
//   coding.Str("system", kLoinc).Str("code", "8867-4");
//   Json code = Json::Object(a);
//   code.Put("coding", Json::Array(a).Push(coding));  // takes coding's value
//   observation.Put("code", std::move(code));
//   std::string text = WriteJson(doc, JsonStyle::kPretty);
#ifndef FHIRGW_FHIR_JSON_H_
#define FHIRGW_FHIR_JSON_H_

#include <cstdint>
#include <string>
#include <utility>

#include "absl/strings/string_view.h"
#include "rapidjson/document.h"

namespace fhirgw::fhir {

using JsonAlloc = rapidjson::MemoryPoolAllocator<>;
using JsonValue = rapidjson::GenericValue<rapidjson::UTF8<>, JsonAlloc>;
using JsonDocument = rapidjson::GenericDocument<rapidjson::UTF8<>, JsonAlloc>;

class Json {
 public:
  static Json Object(JsonAlloc& alloc) { return Json(rapidjson::kObjectType, alloc); }
  static Json Array(JsonAlloc& alloc) { return Json(rapidjson::kArrayType, alloc); }

  Json(Json&&) = default;
  Json& operator=(Json&&) = default;

  // Object members. `key` must outlive the document (a string literal); values are copied.
  Json& Str(const char* key, absl::string_view value);
  // Writes a FHIR decimal; whole numbers without a fraction ("70"), others in the shortest form
  // that reads back as the same double ("72.4").
  Json& Dec(const char* key, double value);
  Json& Int(const char* key, int64_t value);
  Json& Bool(const char* key, bool value);
  Json& Put(const char* key, Json&& child);
  // Takes the value of `child` (so that chains like Put("coding", Json::Array(a).Push(c)) work).
  Json& Put(const char* key, Json& child) { return Put(key, std::move(child)); }
  Json& Put(const char* key, JsonValue&& child);

  // Array elements.
  Json& Push(Json&& child);
  Json& Push(Json& child) { return Push(std::move(child)); }
  Json& PushStr(absl::string_view value);

  bool empty() const;
  JsonAlloc& alloc() const { return *alloc_; }
  JsonValue& value() { return value_; }

  // Moves the built value out; this Json is left null.
  JsonValue Release() { return std::move(value_); }

 private:
  Json(rapidjson::Type type, JsonAlloc& alloc) : value_(type), alloc_(&alloc) {}

  JsonValue value_;
  JsonAlloc* alloc_;
};

enum class JsonStyle { kCompact, kPretty };

// Serializes `value` (compact for NDJSON and the wire; pretty with two-space indents for people and
// golden files).
std::string WriteJson(const JsonValue& value, JsonStyle style);
// Appends the serialization of `value` to `out`.
void AppendJson(const JsonValue& value, JsonStyle style, std::string& out);

}  // namespace fhirgw::fhir

#endif  // FHIRGW_FHIR_JSON_H_
