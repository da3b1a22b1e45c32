#include "fhir/json_parse.h"

#include <cstdint>

#include "absl/strings/str_cat.h"
#include "rapidjson/error/en.h"
#include "rapidjson/memorystream.h"
#include "rapidjson/reader.h"

namespace fhirgw::fhir {
namespace {

// Forwards RapidJSON's SAX events to `Target` (a document under construction), refusing to open
// more than kMaxJsonDepth arrays and objects.
template <typename Target>
class DepthLimit {
 public:
  using Ch = char;
  explicit DepthLimit(Target& target) : target_(target) {}

  bool Null() { return target_.Null(); }
  bool Bool(bool b) { return target_.Bool(b); }
  bool Int(int i) { return target_.Int(i); }
  bool Uint(unsigned u) { return target_.Uint(u); }
  bool Int64(int64_t i) { return target_.Int64(i); }
  bool Uint64(uint64_t u) { return target_.Uint64(u); }
  bool Double(double d) { return target_.Double(d); }
  bool RawNumber(const Ch* s, rapidjson::SizeType length, bool copy) {
    return target_.RawNumber(s, length, copy);
  }
  bool String(const Ch* s, rapidjson::SizeType length, bool copy) {
    return target_.String(s, length, copy);
  }
  bool Key(const Ch* s, rapidjson::SizeType length, bool copy) {
    return target_.Key(s, length, copy);
  }
  bool StartObject() { return Open() && target_.StartObject(); }
  bool EndObject(rapidjson::SizeType members) {
    --depth_;
    return target_.EndObject(members);
  }
  bool StartArray() { return Open() && target_.StartArray(); }
  bool EndArray(rapidjson::SizeType elements) {
    --depth_;
    return target_.EndArray(elements);
  }

  bool too_deep() const { return too_deep_; }

 private:
  bool Open() {
    if (++depth_ <= kMaxJsonDepth) return true;
    too_deep_ = true;
    return false;
  }

  Target& target_;
  int depth_ = 0;
  bool too_deep_ = false;
};

absl::Status TooDeep(size_t offset) {
  return absl::InvalidArgumentError(
      absl::StrCat("nesting deeper than ", kMaxJsonDepth, " at offset ", offset));
}

absl::Status InvalidUtf8(size_t offset) {
  return absl::InvalidArgumentError(absl::StrCat("invalid UTF-8 at offset ", offset));
}

template <unsigned kFlags, typename Stream>
absl::Status Parse(Stream& stream, JsonDocument& doc) {
  constexpr unsigned kSafe = rapidjson::kParseIterativeFlag | rapidjson::kParseValidateEncodingFlag;
  rapidjson::GenericReader<rapidjson::UTF8<>, rapidjson::UTF8<>> reader;
  DepthLimit<JsonDocument> handler(doc);
  rapidjson::ParseResult result;
  auto generate = [&](JsonDocument&) {
    result = reader.Parse<kFlags | kSafe>(stream, handler);
    return !result.IsError();
  };
  doc.SetNull();
  doc.Populate(generate);
  if (!result.IsError()) return absl::OkStatus();
  doc.SetNull();
  if (handler.too_deep()) return TooDeep(result.Offset());
  if (result.Code() == rapidjson::kParseErrorStringInvalidEncoding) {
    return InvalidUtf8(result.Offset());
  }
  return absl::InvalidArgumentError(
      absl::StrCat(rapidjson::GetParseError_En(result.Code()), " at offset ", result.Offset()));
}

}  // namespace

absl::Status ParseJson(absl::string_view text, JsonDocument& doc, JsonNumbers numbers) {
  rapidjson::MemoryStream memory(text.data(), text.size());
  rapidjson::EncodedInputStream<rapidjson::UTF8<>, rapidjson::MemoryStream> stream(memory);
  if (numbers == JsonNumbers::kFullPrecision) {
    return Parse<rapidjson::kParseFullPrecisionFlag>(stream, doc);
  }
  return Parse<rapidjson::kParseNoFlags>(stream, doc);
}

absl::Status ParseJsonInsitu(char* buffer, JsonDocument& doc, JsonNumbers numbers) {
  rapidjson::InsituStringStream stream(buffer);
  if (numbers == JsonNumbers::kFullPrecision) {
    return Parse<rapidjson::kParseInsituFlag | rapidjson::kParseFullPrecisionFlag>(stream, doc);
  }
  return Parse<rapidjson::kParseInsituFlag>(stream, doc);
}

absl::Status CheckJsonLimits(absl::string_view text) {
  if (const size_t bad = FindInvalidUtf8(text); bad != absl::string_view::npos) {
    return InvalidUtf8(bad);
  }
  // Both quote characters open a string: protobuf's parser also accepts 'single-quoted' ones.
  char quote = 0;
  int depth = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (quote != 0) {
      if (c == '\\') {
        ++i;
      } else if (c == quote) {
        quote = 0;
      }
      continue;
    }
    switch (c) {
      case '"':
      case '\'':
        quote = c;
        break;
      case '[':
      case '{':
        if (++depth > kMaxJsonDepth) return TooDeep(i);
        break;
      case ']':
      case '}':
        if (depth > 0) --depth;
        break;
      default:
        break;
    }
  }
  return absl::OkStatus();
}

size_t FindInvalidUtf8(absl::string_view text) {
  const auto* s = reinterpret_cast<const unsigned char*>(text.data());
  const size_t n = text.size();
  size_t i = 0;
  while (i < n) {
    const unsigned char c = s[i];
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t length = 0;
    unsigned char low = 0x80, high = 0xBF;  // the range of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      length = 2;
    } else if (c >= 0xE0 && c <= 0xEF) {
      length = 3;
      if (c == 0xE0) low = 0xA0;   // overlong
      if (c == 0xED) high = 0x9F;  // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      length = 4;
      if (c == 0xF0) low = 0x90;   // overlong
      if (c == 0xF4) high = 0x8F;  // above U+10FFFF
    } else {
      return i;
    }
    if (i + length > n || s[i + 1] < low || s[i + 1] > high) return i;
    for (size_t k = 2; k < length; ++k) {
      if (s[i + k] < 0x80 || s[i + k] > 0xBF) return i;
    }
    i += length;
  }
  return absl::string_view::npos;
}

}  // namespace fhirgw::fhir
