#include "fhir/json.h"

#include <algorithm>
#include <cmath>

#include "rapidjson/prettywriter.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace fhirgw::fhir {
namespace {

JsonValue CopyString(absl::string_view s, JsonAlloc& alloc) {
  return JsonValue(s.data(), static_cast<rapidjson::SizeType>(s.size()), alloc);
}

// Appends to a std::string, so that serialization needs no intermediate buffer copy. RapidJSON's
// writer reserves room before each token (PutReserve) and then stores characters unchecked
// (PutUnsafe), as it does for its own StringBuffer; a push_back per character cost a fifth of
// `fhirgw translate`.
class StringOutput {
 public:
  using Ch = char;
  explicit StringOutput(std::string& out) : out_(out) { SetCursor(out.size()); }
  ~StringOutput() { out_.resize(static_cast<size_t>(cursor_ - out_.data())); }

  void Reserve(size_t count) {
    if (static_cast<size_t>(end_ - cursor_) >= count) return;
    const size_t size = static_cast<size_t>(cursor_ - out_.data());
    out_.resize(std::max(out_.size() * 2, size + count + 1024));
    SetCursor(size);
  }
  void PutUnsafe(char c) { *cursor_++ = c; }
  void Put(char c) {
    Reserve(1);
    PutUnsafe(c);
  }
  void Flush() {}

 private:
  void SetCursor(size_t size) {
    cursor_ = out_.data() + size;
    end_ = out_.data() + out_.size();
  }

  std::string& out_;  // longer than what was written while writing
  char* cursor_;
  char* end_;
};

// Found by argument-dependent lookup from rapidjson::Writer, in preference to its generic versions.
inline void PutReserve(StringOutput& stream, size_t count) { stream.Reserve(count); }
inline void PutUnsafe(StringOutput& stream, char c) { stream.PutUnsafe(c); }

}  // namespace

Json& Json::Str(const char* key, absl::string_view value) {
  if (!value.empty())
    value_.AddMember(rapidjson::StringRef(key), CopyString(value, *alloc_), *alloc_);
  return *this;
}

Json& Json::Dec(const char* key, double value) {
  // A whole number is written without a fraction ("70", not "70.0"): protobuf doubles carry no
  // precision of their own, and the clinic most likely wrote the integer.
  constexpr double kMaxExactInteger = 9007199254740992.0;  // 2^53
  if (std::trunc(value) == value && std::abs(value) < kMaxExactInteger) {
    value_.AddMember(rapidjson::StringRef(key), JsonValue(static_cast<int64_t>(value)), *alloc_);
    return *this;
  }
  value_.AddMember(rapidjson::StringRef(key), JsonValue(value), *alloc_);
  return *this;
}

Json& Json::Int(const char* key, int64_t value) {
  value_.AddMember(rapidjson::StringRef(key), JsonValue(value), *alloc_);
  return *this;
}

Json& Json::Bool(const char* key, bool value) {
  value_.AddMember(rapidjson::StringRef(key), JsonValue(value), *alloc_);
  return *this;
}

Json& Json::Put(const char* key, Json&& child) { return Put(key, child.Release()); }

Json& Json::Put(const char* key, JsonValue&& child) {
  const bool empty = (child.IsObject() && child.ObjectEmpty()) ||
                     (child.IsArray() && child.Empty()) || child.IsNull() ||
                     (child.IsString() && child.GetStringLength() == 0);
  if (!empty) value_.AddMember(rapidjson::StringRef(key), child, *alloc_);
  return *this;
}

Json& Json::Push(Json&& child) {
  if (!child.empty()) value_.PushBack(child.Release(), *alloc_);
  return *this;
}

Json& Json::PushStr(absl::string_view value) {
  if (!value.empty()) value_.PushBack(CopyString(value, *alloc_), *alloc_);
  return *this;
}

bool Json::empty() const {
  if (value_.IsObject()) return value_.ObjectEmpty();
  if (value_.IsArray()) return value_.Empty();
  return value_.IsNull();
}

void AppendJson(const JsonValue& value, JsonStyle style, std::string& out) {
  StringOutput stream(out);
  if (style == JsonStyle::kPretty) {
    rapidjson::PrettyWriter<StringOutput> writer(stream);
    writer.SetIndent(' ', 2);
    value.Accept(writer);
  } else {
    rapidjson::Writer<StringOutput> writer(stream);
    value.Accept(writer);
  }
}

std::string WriteJson(const JsonValue& value, JsonStyle style) {
  std::string out;
  out.reserve(4096);
  AppendJson(value, style, out);
  return out;
}

}  // namespace fhirgw::fhir
