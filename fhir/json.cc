#include "fhir/json.h"

#include <algorithm>
#include <cmath>
#include <cstdint>
#include <cstring>

#if defined(__SSE2__)
#include <emmintrin.h>
#endif

#include "rapidjson/internal/dtoa.h"
#include "rapidjson/internal/itoa.h"
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
  explicit StringOutput(std::string& out) : out_(out), start_(out.size()) { SetCursor(start_); }
  ~StringOutput() { out_.resize(Size()); }

  void Reserve(size_t count) {
    if (static_cast<size_t>(end_ - cursor_) >= count) return;
    // Grows by what this call wrote so far, not by the size of `out_`: a caller appending many
    // documents to one large buffer must not pay to zero-fill it again for each (resize writes
    // zeros over the room it adds).
    const size_t size = Size();
    out_.resize(size + std::max(count, size - start_ + 4096));
    SetCursor(size);
  }
  void PutUnsafe(char c) { *cursor_++ = c; }
  // Where the next character goes, and moving past characters stored there directly (within a
  // Reserve).
  char* cursor() { return cursor_; }
  void Advance(size_t count) { cursor_ += count; }
  void Put(char c) {
    Reserve(1);
    PutUnsafe(c);
  }
  void Flush() {}

 private:
  size_t Size() const { return static_cast<size_t>(cursor_ - out_.data()); }
  void SetCursor(size_t size) {
    cursor_ = out_.data() + size;
    end_ = out_.data() + out_.size();
  }

  std::string& out_;  // longer than what was written while writing
  size_t start_;      // its size before this call
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

namespace {

// Writes compact JSON byte for byte as rapidjson::Writer<UTF8> does -- the same escapes (\b \t \n
// \f \r, other control characters as \u00XX, '"' and '\\'; all other bytes as they are), the
// same number forms (its itoa and Grisu dtoa), and, like it, stopping at a NaN or infinity -- but
// about twice as fast: strings are scanned sixteen bytes at a time and copied in runs, and there
// is no nesting state to keep. Serialization was a third of `fhirgw translate`.
class CompactWriter {
 public:
  explicit CompactWriter(StringOutput& out) : out_(out) {}

  // Returns false, like rapidjson's Accept, at a NaN or infinity (what came before is written).
  bool Write(const JsonValue& value) {
    switch (value.GetType()) {
      case rapidjson::kNullType:
        return Literal("null", 4);
      case rapidjson::kFalseType:
        return Literal("false", 5);
      case rapidjson::kTrueType:
        return Literal("true", 4);
      case rapidjson::kObjectType: {
        out_.Put('{');
        bool first = true;
        for (const auto& member : value.GetObject()) {
          if (!first) out_.Put(',');
          first = false;
          WriteString(member.name.GetString(), member.name.GetStringLength());
          out_.Put(':');
          if (!Write(member.value)) return false;
        }
        out_.Put('}');
        return true;
      }
      case rapidjson::kArrayType: {
        out_.Put('[');
        bool first = true;
        for (const JsonValue& element : value.GetArray()) {
          if (!first) out_.Put(',');
          first = false;
          if (!Write(element)) return false;
        }
        out_.Put(']');
        return true;
      }
      case rapidjson::kStringType:
        WriteString(value.GetString(), value.GetStringLength());
        return true;
      case rapidjson::kNumberType:
        return WriteNumber(value);
    }
    return true;
  }

 private:
  bool Literal(const char* text, size_t length) {
    out_.Reserve(length);
    for (size_t i = 0; i < length; ++i) out_.PutUnsafe(text[i]);
    return true;
  }

  // The number as GenericValue::Accept hands it to the writer: double, else int, unsigned, int64,
  // uint64.
  bool WriteNumber(const JsonValue& value) {
    char buffer[32];
    char* end;
    if (value.IsDouble()) {
      const double d = value.GetDouble();
      if (!std::isfinite(d)) return false;
      end = rapidjson::internal::dtoa(d, buffer);
    } else if (value.IsInt()) {
      end = rapidjson::internal::i32toa(value.GetInt(), buffer);
    } else if (value.IsUint()) {
      end = rapidjson::internal::u32toa(value.GetUint(), buffer);
    } else if (value.IsInt64()) {
      end = rapidjson::internal::i64toa(value.GetInt64(), buffer);
    } else {
      end = rapidjson::internal::u64toa(value.GetUint64(), buffer);
    }
    return Literal(buffer, static_cast<size_t>(end - buffer));
  }

  // Writes the escape of the byte `c`, which needs one, at `o`; returns the end.
  static char* Escape(unsigned char c, char* o) {
    static constexpr char kHex[] = "0123456789ABCDEF";
    *o++ = '\\';
    switch (c) {
      case '"':
        *o++ = '"';
        return o;
      case '\\':
        *o++ = '\\';
        return o;
      case '\b':
        *o++ = 'b';
        return o;
      case '\t':
        *o++ = 't';
        return o;
      case '\n':
        *o++ = 'n';
        return o;
      case '\f':
        *o++ = 'f';
        return o;
      case '\r':
        *o++ = 'r';
        return o;
      default:
        *o++ = 'u';
        *o++ = '0';
        *o++ = '0';
        *o++ = kHex[c >> 4];
        *o++ = kHex[c & 0xF];
        return o;
    }
  }

  static bool NeedsEscape(unsigned char c) { return c < 0x20 || c == '"' || c == '\\'; }

  // Writes `text` byte by byte at `o`; returns the end.
  static char* CopyEscaped(const char* text, const char* end, char* o) {
    for (; text != end; ++text) {
      const auto c = static_cast<unsigned char>(*text);
      if (NeedsEscape(c)) {
        o = Escape(c, o);
      } else {
        *o++ = static_cast<char>(c);
      }
    }
    return o;
  }

#if defined(__SSE2__)
  // A mask of the bytes of `chunk` that need an escape.
  static unsigned SpecialBytes(__m128i chunk) {
    const __m128i max_control = _mm_set1_epi8(0x1F);
    const __m128i control = _mm_cmpeq_epi8(_mm_max_epu8(chunk, max_control), max_control);
    const __m128i quote = _mm_cmpeq_epi8(chunk, _mm_set1_epi8('"'));
    const __m128i backslash = _mm_cmpeq_epi8(chunk, _mm_set1_epi8('\\'));
    return static_cast<unsigned>(
        _mm_movemask_epi8(_mm_or_si128(control, _mm_or_si128(quote, backslash))));
  }

  // Copies the `length` (< 16) bytes at `from` to `to` when none needs an escape, and returns
  // whether it did. The bytes are read with two overlapping fixed-size loads (never past the end
  // of the input) and checked in registers.
  static bool CopyShortPlain(const char* from, size_t length, char* to) {
    if (length >= 8) {
      uint64_t head, tail;
      std::memcpy(&head, from, 8);
      std::memcpy(&tail, from + length - 8, 8);
      const __m128i chunk =
          _mm_set_epi64x(static_cast<long long>(tail), static_cast<long long>(head));
      if (SpecialBytes(chunk) != 0) return false;
      std::memcpy(to, &head, 8);
      std::memcpy(to + length - 8, &tail, 8);
      return true;
    }
    uint32_t head = 0, tail = 0;
    if (length >= 4) {
      std::memcpy(&head, from, 4);
      std::memcpy(&tail, from + length - 4, 4);
    } else {
      for (size_t i = 0; i < length; ++i)
        head |= uint32_t{static_cast<uint8_t>(from[i])} << (8 * i);
    }
    const __m128i chunk =
        _mm_cvtsi64_si128(static_cast<long long>(uint64_t{head} | uint64_t{tail} << 32));
    const unsigned valid = length >= 4 ? 0xFFu : (1u << length) - 1;
    if ((SpecialBytes(chunk) & valid) != 0) return false;
    std::memcpy(to, &head, 4);  // the room reserved covers the bytes past `length`
    if (length >= 4) std::memcpy(to + length - 4, &tail, 4);
    return true;
  }
#endif

  void WriteString(const char* text, size_t length) {
    // Room for every byte escaped as \u00XX, and for sixteen-byte stores past the end.
    out_.Reserve(2 + length * 6 + 16);
    // The output position lives in a local: through the object, every character stored would
    // make the compiler reload it (a char store may alias anything).
    char* o = out_.cursor();
    *o++ = '"';
    const char* p = text;
    const char* const end = text + length;
#if defined(__SSE2__)
    // Sixteen bytes at a time: store them all, then keep those before the first that needs an
    // escape.
    while (end - p >= 16) {
      const __m128i chunk = _mm_loadu_si128(reinterpret_cast<const __m128i*>(p));
      const unsigned mask = SpecialBytes(chunk);
      _mm_storeu_si128(reinterpret_cast<__m128i*>(o), chunk);
      if (mask == 0) {
        o += 16;
        p += 16;
        continue;
      }
      const int plain = __builtin_ctz(mask);
      o += plain;
      p += plain;
      o = Escape(static_cast<unsigned char>(*p++), o);
    }
    // The rest; most strings (keys, codes) are only this.
    const size_t rest = static_cast<size_t>(end - p);
    o = CopyShortPlain(p, rest, o) ? o + rest : CopyEscaped(p, end, o);
#else
    o = CopyEscaped(p, end, o);
#endif
    *o++ = '"';
    out_.Advance(static_cast<size_t>(o - out_.cursor()));
  }

  StringOutput& out_;
};

}  // namespace

void AppendJson(const JsonValue& value, JsonStyle style, std::string& out) {
  StringOutput stream(out);
  if (style == JsonStyle::kPretty) {
    rapidjson::PrettyWriter<StringOutput> writer(stream);
    writer.SetIndent(' ', 2);
    value.Accept(writer);
  } else {
    CompactWriter(stream).Write(value);
  }
}

std::string WriteJson(const JsonValue& value, JsonStyle style) {
  std::string out;
  out.reserve(4096);
  AppendJson(value, style, out);
  return out;
}

}  // namespace fhirgw::fhir
