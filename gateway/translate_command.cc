#include "gateway/translate_command.h"

#include <cerrno>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gateway/record_input.h"
#include "mappers/record_json.h"
#include "mappers/registry.h"
#include "mappers/reverse.h"

namespace fhirgw::gateway {
namespace {

class Translator {
 public:
  Translator(const TranslateOptions& options, std::FILE* out, std::FILE* err)
      : options_(options), out_(out), err_(err) {}

  // Translates one record; `prefix` ("line 3: " or "") goes before every message.
  bool Translate(absl::string_view json, absl::string_view prefix, fhir::JsonStyle style) {
    absl::StatusOr<v1::ClinicRecord> record = mappers::ParseRecordJson(json);
    if (!record.ok()) {
      Report(prefix, absl::StrCat(record.status().message(), "\n"));
      return false;
    }
    mappers::MapContext context = mappers::MapContext::ForTenant(record->clinic_id());
    context.item_observations = options_.item_observations;
    fhir::IssueList issues;
    absl::StatusOr<mappers::MapOutput> mapped = mappers::MapToFhir(*record, context, issues);
    if (!mapped.ok()) {
      std::string text;
      for (const fhir::Issue& issue : issues) {
        absl::StrAppend(&text, prefix, fhir::FormatIssues({issue}));
      }
      if (issues.empty()) absl::StrAppend(&text, prefix, mapped.status().message(), "\n");
      std::fputs(text.c_str(), err_);
      return false;
    }
    for (const v1::Alert& alert : mapped->alerts) {
      Report(prefix, absl::StrCat("alert: ", v1::Alert::Kind_Name(alert.kind()), ": ",
                                  alert.message(), "\n"));
    }
    buffer_.clear();
    fhir::AppendJson(mapped->bundle.document(), style, buffer_);
    buffer_.push_back('\n');
    std::fwrite(buffer_.data(), 1, buffer_.size(), out_);
    return true;
  }

 private:
  void Report(absl::string_view prefix, absl::string_view text) {
    std::string line = absl::StrCat(prefix, text);
    std::fputs(line.c_str(), err_);
  }

  const TranslateOptions& options_;
  std::FILE* out_;
  std::FILE* err_;
  std::string buffer_;
};

// FHIR R4 -> clinic records (translate --reverse).
int RunReverseTranslate(const std::string& path, std::FILE* in, std::FILE* out, std::FILE* err) {
  // Offline the tenant is unknown: fhirgw's default identifier systems of any tenant are
  // recognised (see ReverseContext), and the records carry no clinic_id.
  mappers::ReverseContext context;
  context.match_any_tenant = true;
  int mapped = 0;
  std::string text;
  absl::Status read = ForEachRecordText(path, in, [&](absl::string_view json, int line) {
    const std::string prefix = line == 0 ? "" : absl::StrCat("line ", line, ": ");
    fhir::IssueList issues;
    absl::StatusOr<std::vector<mappers::ReverseRecord>> records =
        mappers::MapFromFhir(json, context, issues);
    text.clear();
    for (const fhir::Issue& issue : issues) {
      absl::StrAppend(&text, prefix, fhir::FormatIssues({issue}));
    }
    if (!records.ok() && issues.empty()) {
      absl::StrAppend(&text, prefix, records.status().message(), "\n");
    }
    std::fputs(text.c_str(), err);
    if (!records.ok()) return;
    text.clear();
    for (const mappers::ReverseRecord& record : *records) {
      absl::StrAppend(&text, mappers::RecordToJson(record.record), "\n");
    }
    std::fwrite(text.data(), 1, text.size(), out);
    mapped += static_cast<int>(records->size());
  });
  if (std::fflush(out) != 0 || std::ferror(out)) {
    std::fprintf(err, "fhirgw translate: cannot write the output: %s\n", std::strerror(errno));
    return kExitFailure;
  }
  if (!read.ok()) {
    std::fprintf(err, "fhirgw translate: %s\n", std::string(read.message()).c_str());
    if (!absl::IsInvalidArgument(read)) return kExitFailure;
  }
  if (mapped == 0) {
    std::fprintf(err, "fhirgw translate: nothing could be mapped to a clinic record\n");
    return kExitInvalid;
  }
  return kExitOk;
}

}  // namespace

int RunTranslate(const std::string& path, const TranslateOptions& options, std::FILE* in,
                 std::FILE* out, std::FILE* err) {
  if (options.reverse) return RunReverseTranslate(path, in, out, err);
  Translator translator(options, out, err);
  int failed = 0;
  int translated = 0;
  absl::Status read = ForEachRecordText(path, in, [&](absl::string_view json, int line) {
    const bool ok = line == 0 ? translator.Translate(json, "",
                                                     options.compact ? fhir::JsonStyle::kCompact
                                                                     : fhir::JsonStyle::kPretty)
                              : translator.Translate(json, absl::StrCat("line ", line, ": "),
                                                     fhir::JsonStyle::kCompact);
    ++(ok ? translated : failed);
  });
  if (std::fflush(out) != 0 || std::ferror(out)) {
    std::fprintf(err, "fhirgw translate: cannot write the output: %s\n", std::strerror(errno));
    return kExitFailure;
  }
  if (!read.ok()) {
    std::fprintf(err, "fhirgw translate: %s\n", std::string(read.message()).c_str());
    if (!absl::IsInvalidArgument(read)) return kExitFailure;
    ++failed;
  }
  if (failed > 0 && translated + failed > 1) {
    std::fprintf(err, "fhirgw translate: %d of %d records failed\n", failed, translated + failed);
  }
  return failed > 0 ? kExitInvalid : kExitOk;
}

}  // namespace fhirgw::gateway
