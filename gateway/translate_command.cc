#include "gateway/translate_command.h"

#include <cerrno>
#include <cstring>
#include <string>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "mappers/record_json.h"
#include "mappers/registry.h"
#include "rapidjson/document.h"

namespace fhirgw::gateway {
namespace {

// Reads one line (without the newline) from `in`; false at end of input.
bool ReadLine(std::FILE* in, std::string& line) {
  line.clear();
  char buffer[65536];
  while (std::fgets(buffer, sizeof buffer, in) != nullptr) {
    const size_t n = std::strlen(buffer);
    if (n > 0 && buffer[n - 1] == '\n') {
      line.append(buffer, n - 1);
      if (!line.empty() && line.back() == '\r') line.pop_back();
      return true;
    }
    line.append(buffer, n);
  }
  return !line.empty();
}

std::string ReadRest(std::FILE* in) {
  std::string data;
  char buffer[65536];
  size_t n;
  while ((n = std::fread(buffer, 1, sizeof buffer, in)) > 0) data.append(buffer, n);
  return data;
}

bool IsBlank(absl::string_view s) { return absl::StripAsciiWhitespace(s).empty(); }

// True when `line` alone is one complete JSON object (then the input is NDJSON).
bool IsCompleteJson(const std::string& line) {
  rapidjson::Document doc;
  doc.Parse(line.data(), line.size());
  return !doc.HasParseError() && doc.IsObject();
}

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

}  // namespace

int RunTranslate(const std::string& path, const TranslateOptions& options, std::FILE* in,
                 std::FILE* out, std::FILE* err) {
  std::FILE* input = in;
  if (path != "-") {
    input = std::fopen(path.c_str(), "rb");
    if (input == nullptr) {
      std::fprintf(err, "fhirgw translate: cannot read %s: %s\n", path.c_str(),
                   std::strerror(errno));
      return kExitFailure;
    }
  }
  Translator translator(options, out, err);
  std::string line;
  // Skip leading blank lines, then decide between one JSON document and NDJSON.
  int line_number = 0;
  bool have_line = false;
  while ((have_line = ReadLine(input, line))) {
    ++line_number;
    if (!IsBlank(line)) break;
  }
  int failed = 0;
  int translated = 0;
  if (!have_line) {
    std::fprintf(err, "fhirgw translate: %s holds no record\n", path.c_str());
    failed = 1;
  } else if (IsCompleteJson(line)) {
    do {
      if (IsBlank(line)) continue;
      if (translator.Translate(line, absl::StrCat("line ", line_number, ": "),
                               fhir::JsonStyle::kCompact)) {
        ++translated;
      } else {
        ++failed;
      }
    } while (ReadLine(input, line) && ++line_number);
  } else {
    std::string document = line + "\n" + ReadRest(input);
    if (translator.Translate(
            document, "", options.compact ? fhir::JsonStyle::kCompact : fhir::JsonStyle::kPretty)) {
      ++translated;
    } else {
      ++failed;
    }
  }
  if (input != in) std::fclose(input);
  std::fflush(out);
  if (failed > 0 && translated + failed > 1) {
    std::fprintf(err, "fhirgw translate: %d of %d records failed\n", failed, translated + failed);
  }
  return failed > 0 ? kExitInvalid : kExitOk;
}

}  // namespace fhirgw::gateway
