#include "fhir/bundle.h"

#include "absl/strings/str_cat.h"

namespace fhirgw::fhir {
namespace {

// Characters that may stand unescaped in a query value: RFC 3986 unreserved, plus ':', '/' and '|',
// which FHIR servers read literally and which keep conditional URLs readable.
bool IsQuerySafe(char c) {
  return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') || c == '-' ||
         c == '.' || c == '_' || c == '~' || c == ':' || c == '/' || c == '|';
}

void AppendPercentEncoded(absl::string_view text, std::string& out) {
  static constexpr char kHex[] = "0123456789ABCDEF";
  // Runs of safe characters (all of a typical identifier) are appended at once.
  size_t run = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (IsQuerySafe(c)) continue;
    out.append(text.data() + run, i - run);
    const auto byte = static_cast<unsigned char>(c);
    const char escaped[3] = {'%', kHex[byte >> 4], kHex[byte & 0xF]};
    out.append(escaped, 3);
    run = i + 1;
  }
  out.append(text.data() + run, text.size() - run);
}

}  // namespace

std::string IdentifierSearch(absl::string_view system, absl::string_view value) {
  std::string out = "identifier=";
  out.reserve(out.size() + system.size() + value.size() + 16);
  AppendPercentEncoded(system, out);
  out.push_back('|');
  AppendPercentEncoded(value, out);
  return out;
}

TransactionBundle::TransactionBundle() : entries_(rapidjson::kArrayType) {
  document_.SetObject();
  document_.AddMember("resourceType", "Bundle", document_.GetAllocator());
  document_.AddMember("type", "transaction", document_.GetAllocator());
}

void TransactionBundle::AddEntry(absl::string_view full_url, Json resource, const char* method,
                                 std::string url, std::string if_none_exist) {
  JsonAlloc& a = alloc();
  Json request = Json::Object(a);
  request.Str("method", method).Str("url", url).Str("ifNoneExist", if_none_exist);
  Json entry = Json::Object(a);
  entry.Str("fullUrl", full_url);
  entry.Put("resource", std::move(resource));
  entry.Put("request", std::move(request));
  ++entry_count_;
  if (finished_) {
    // The document was already handed out: keep it complete by appending to its entry list.
    if (!document_.HasMember("entry")) {
      document_.AddMember("entry", JsonValue(rapidjson::kArrayType), a);
    }
    document_["entry"].PushBack(entry.Release(), a);
    return;
  }
  entries_.PushBack(entry.Release(), a);
}

void TransactionBundle::AddConditionalCreate(absl::string_view full_url, Json resource,
                                             absl::string_view resource_type,
                                             absl::string_view system, absl::string_view value) {
  AddEntry(full_url, std::move(resource), "POST", std::string(resource_type),
           IdentifierSearch(system, value));
}

void TransactionBundle::AddConditionalUpdate(absl::string_view full_url, Json resource,
                                             absl::string_view resource_type,
                                             absl::string_view system, absl::string_view value) {
  AddEntry(full_url, std::move(resource), "PUT",
           absl::StrCat(resource_type, "?", IdentifierSearch(system, value)), "");
}

void TransactionBundle::AddConditionalDelete(absl::string_view resource_type,
                                             absl::string_view system, absl::string_view value) {
  AddEntry("", Json::Object(alloc()), "DELETE",
           absl::StrCat(resource_type, "?", IdentifierSearch(system, value)), "");
}

void TransactionBundle::AddUpdateById(absl::string_view full_url, Json resource,
                                      absl::string_view resource_type, absl::string_view id) {
  AddEntry(full_url, std::move(resource), "PUT", absl::StrCat(resource_type, "/", id), "");
}

void TransactionBundle::AddDeleteById(absl::string_view resource_type, absl::string_view id) {
  AddEntry("", Json::Object(alloc()), "DELETE", absl::StrCat(resource_type, "/", id), "");
}

const JsonDocument& TransactionBundle::document() {
  if (!finished_) {
    finished_ = true;
    // FHIR JSON never holds an empty array: an empty Bundle has no "entry".
    if (!entries_.Empty()) document_.AddMember("entry", entries_, document_.GetAllocator());
  }
  return document_;
}

std::string TransactionBundle::Write(JsonStyle style) { return WriteJson(document(), style); }

}  // namespace fhirgw::fhir
