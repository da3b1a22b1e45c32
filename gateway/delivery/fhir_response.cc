#include "gateway/delivery/fhir_response.h"

#include <cstdint>
#include <limits>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "fhir/json_parse.h"
#include "rapidjson/document.h"

namespace fhirgw::gateway {
namespace {

// Returns member `key` of `value` when it is a string, else "".
absl::string_view StringMember(const rapidjson::Value& value, const char* key) {
  if (!value.IsObject()) return {};
  auto it = value.FindMember(key);
  if (it == value.MemberEnd() || !it->value.IsString()) return {};
  return absl::string_view(it->value.GetString(), it->value.GetStringLength());
}

// Returns member `key` of `value` when it is an object or array, else nullptr.
const rapidjson::Value* Member(const rapidjson::Value& value, const char* key) {
  if (!value.IsObject()) return nullptr;
  auto it = value.FindMember(key);
  if (it == value.MemberEnd()) return nullptr;
  return &it->value;
}

// Returns the first element of array member `key` when it is a string, else "".
absl::string_view FirstString(const rapidjson::Value& value, const char* key) {
  const rapidjson::Value* array = Member(value, key);
  if (array == nullptr || !array->IsArray() || array->Empty() || !(*array)[0].IsString()) {
    return {};
  }
  return absl::string_view((*array)[0].GetString(), (*array)[0].GetStringLength());
}

// A FHIR resource type is a capitalised alphanumeric name ("Patient", "MedicationStatement").
bool IsResourceType(absl::string_view s) {
  if (s.empty() || !absl::ascii_isupper(static_cast<unsigned char>(s[0]))) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

// Fills type, id and version of `ref` from a location such as "Patient/123/_history/2" or
// "https://ehr.example.org/fhir/R4/Patient/123/_history/2". The base URL is not known here, so
// the resource is taken from the last segments of the path.
void ParseLocation(absl::string_view location, v1::ResourceRef& ref) {
  location = location.substr(0, location.find_first_of("?#"));
  if (size_t scheme = location.find("://"); scheme != absl::string_view::npos) {
    size_t path = location.find('/', scheme + 3);
    location = path == absl::string_view::npos ? absl::string_view() : location.substr(path);
  }
  std::vector<absl::string_view> segments = absl::StrSplit(location, '/', absl::SkipEmpty());
  const size_t n = segments.size();
  size_t type_index = n;  // n: not found
  for (size_t k = n; k-- > 0;) {
    if (segments[k] == "_history") {
      if (k >= 2 && k + 1 < n) {
        type_index = k - 2;
        ref.set_version_id(std::string(segments[k + 1]));
      }
      break;
    }
  }
  if (type_index == n && n >= 2) type_index = n - 2;
  if (type_index == n || !IsResourceType(segments[type_index])) {
    ref.clear_version_id();
    return;
  }
  ref.set_resource_type(std::string(segments[type_index]));
  ref.set_id(std::string(segments[type_index + 1]));
}

// Returns the version of a weak or strong ETag: W/"2" and "2" give 2.
absl::string_view VersionFromEtag(absl::string_view etag) {
  etag = absl::StripAsciiWhitespace(etag);
  if (absl::StartsWith(etag, "W/")) etag.remove_prefix(2);
  if (etag.size() >= 2 && etag.front() == '"' && etag.back() == '"') {
    etag = etag.substr(1, etag.size() - 2);
  }
  return etag;
}

absl::Status ParseJson(absl::string_view text, absl::string_view what, rapidjson::Document& doc) {
  const absl::Status parsed = fhir::ParseJson(text, doc);
  if (!parsed.ok() || !doc.IsObject()) {
    return absl::InvalidArgumentError(absl::StrCat(
        what, " is not a JSON object (",
        text.empty() ? "empty body" : (parsed.ok() ? "bad JSON" : parsed.message()), ")"));
  }
  return absl::OkStatus();
}

v1::Issue::Severity SeverityOf(absl::string_view severity) {
  if (severity == "fatal" || severity == "error") return v1::Issue::ERROR;
  if (severity == "warning") return v1::Issue::WARNING;
  if (severity == "information") return v1::Issue::INFORMATION;
  return v1::Issue::SEVERITY_UNSPECIFIED;
}

}  // namespace

absl::StatusOr<std::vector<v1::ResourceRef>> ParseTransactionResponse(
    absl::string_view response_json, absl::string_view request_bundle_json) {
  rapidjson::Document response;
  if (absl::Status status = ParseJson(response_json, "the EHR's answer", response); !status.ok()) {
    return status;
  }
  const absl::string_view resource_type = StringMember(response, "resourceType");
  const absl::string_view type = StringMember(response, "type");
  if (resource_type != "Bundle" || (type != "transaction-response" && type != "batch-response")) {
    return absl::InvalidArgumentError(
        absl::StrCat("the EHR's answer is not a transaction-response Bundle (resourceType '",
                     resource_type, "', type '", type, "')"));
  }
  const rapidjson::Value* entries = Member(response, "entry");
  const rapidjson::SizeType entry_count =
      entries != nullptr && entries->IsArray() ? entries->Size() : 0;

  rapidjson::Document request;
  const rapidjson::Value* request_entries = nullptr;
  if (!request_bundle_json.empty()) {
    if (absl::Status status = ParseJson(request_bundle_json, "the request Bundle", request);
        !status.ok()) {
      return status;
    }
    request_entries = Member(request, "entry");
    const rapidjson::SizeType request_count =
        request_entries != nullptr && request_entries->IsArray() ? request_entries->Size() : 0;
    if (request_count != entry_count) {
      return absl::InvalidArgumentError(absl::StrCat("the transaction-response Bundle has ",
                                                     entry_count, " entries but the request had ",
                                                     request_count));
    }
  }

  std::vector<v1::ResourceRef> refs;
  refs.reserve(entry_count);
  for (rapidjson::SizeType i = 0; i < entry_count; ++i) {
    const rapidjson::Value& entry = (*entries)[i];
    v1::ResourceRef& ref = refs.emplace_back();
    if (request_entries != nullptr) {
      ref.set_full_url(std::string(StringMember((*request_entries)[i], "fullUrl")));
    }
    const rapidjson::Value* entry_response = Member(entry, "response");
    if (entry_response != nullptr) {
      ref.set_status(std::string(StringMember(*entry_response, "status")));
      ParseLocation(StringMember(*entry_response, "location"), ref);
      if (ref.version_id().empty()) {
        ref.set_version_id(std::string(VersionFromEtag(StringMember(*entry_response, "etag"))));
      }
    }
    // Servers answering with Prefer: return=representation also give the resource itself.
    if (const rapidjson::Value* resource = Member(entry, "resource");
        resource != nullptr && ref.id().empty()) {
      ref.set_resource_type(std::string(StringMember(*resource, "resourceType")));
      ref.set_id(std::string(StringMember(*resource, "id")));
      if (const rapidjson::Value* meta = Member(*resource, "meta");
          meta != nullptr && ref.version_id().empty()) {
        ref.set_version_id(std::string(StringMember(*meta, "versionId")));
      }
    }
  }
  return refs;
}

std::vector<v1::Issue> ParseOperationOutcome(absl::string_view body) {
  std::vector<v1::Issue> issues;
  rapidjson::Document doc;
  if (!fhir::ParseJson(body, doc).ok() || !doc.IsObject() ||
      StringMember(doc, "resourceType") != "OperationOutcome") {
    return issues;
  }
  const rapidjson::Value* list = Member(doc, "issue");
  if (list == nullptr || !list->IsArray()) return issues;
  for (const rapidjson::Value& item : list->GetArray()) {
    if (!item.IsObject()) continue;
    v1::Issue& issue = issues.emplace_back();
    issue.set_severity(SeverityOf(StringMember(item, "severity")));
    absl::string_view message = StringMember(item, "diagnostics");
    if (const rapidjson::Value* details = Member(item, "details");
        message.empty() && details != nullptr) {
      message = StringMember(*details, "text");
      const rapidjson::Value* codings = Member(*details, "coding");
      if (message.empty() && codings != nullptr && codings->IsArray() && !codings->Empty()) {
        message = StringMember((*codings)[0], "display");
      }
    }
    if (message.empty()) message = StringMember(item, "code");
    issue.set_message(std::string(message));
    absl::string_view path = FirstString(item, "expression");
    if (path.empty()) path = FirstString(item, "location");
    issue.set_path(std::string(path));
  }
  return issues;
}

int64_t ParseRetryAfter(absl::string_view value, int64_t now_ms) {
  value = absl::StripAsciiWhitespace(value);
  if (value.empty()) return -1;
  if (absl::ascii_isdigit(static_cast<unsigned char>(value[0]))) {
    int64_t seconds = 0;
    if (!absl::SimpleAtoi(value, &seconds) || seconds < 0 ||
        seconds > std::numeric_limits<int64_t>::max() / 1000) {
      return -1;
    }
    return seconds * 1000;
  }
  // IMF-fixdate first; RFC 9110 asks recipients to accept the obsolete RFC 850 and asctime forms.
  static constexpr const char* kFormats[] = {
      "%a, %d %b %Y %H:%M:%S GMT",
      "%A, %d-%b-%y %H:%M:%S GMT",
      "%a %b %e %H:%M:%S %Y",
  };
  const std::string text(value);
  for (const char* format : kFormats) {
    absl::Time when;
    std::string error;
    if (absl::ParseTime(format, text, absl::UTCTimeZone(), &when, &error)) {
      // ParseTime also takes "infinite-past" and "infinite-future", which are no HTTP-date; and
      // Duration arithmetic saturates where int64 milliseconds would overflow (found by fuzzing).
      if (when == absl::InfinitePast() || when == absl::InfiniteFuture()) return -1;
      const absl::Duration delay = when - absl::FromUnixMillis(now_ms);
      return delay > absl::ZeroDuration() ? absl::ToInt64Milliseconds(delay) : 0;
    }
  }
  return -1;
}

}  // namespace fhirgw::gateway
