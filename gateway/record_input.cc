#include "gateway/record_input.h"

#include <cerrno>
#include <cstring>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
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
bool IsCompleteJsonObject(const std::string& line) {
  rapidjson::Document doc;
  doc.Parse(line.data(), line.size());
  return !doc.HasParseError() && doc.IsObject();
}

}  // namespace

absl::Status ForEachRecordText(const std::string& path, std::FILE* stdin_file,
                               const std::function<void(absl::string_view json, int line)>& fn) {
  std::FILE* input = stdin_file;
  std::error_code ec;
  if (path != "-" && std::filesystem::is_directory(path, ec)) {
    return absl::FailedPreconditionError(absl::StrCat("cannot read ", path, ": it is a directory"));
  }
  if (path != "-") {
    input = std::fopen(path.c_str(), "rb");
    if (input == nullptr) {
      return absl::NotFoundError(absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
    }
  }
  std::string line;
  int line_number = 0;
  bool have_line = false;
  while ((have_line = ReadLine(input, line))) {
    ++line_number;
    if (!IsBlank(line)) break;
  }
  absl::Status status;
  if (std::ferror(input)) {
    status = absl::DataLossError(absl::StrCat("cannot read ", path, ": ", std::strerror(errno)));
  } else if (!have_line) {
    status = absl::InvalidArgumentError(absl::StrCat(path, " holds no record"));
  } else if (IsCompleteJsonObject(line)) {
    do {
      if (!IsBlank(line)) fn(line, line_number);
      ++line_number;
    } while (ReadLine(input, line));
  } else {
    fn(line + "\n" + ReadRest(input), 0);
  }
  if (status.ok() && std::ferror(input)) {
    status = absl::DataLossError(absl::StrCat("reading ", path, " failed: ", std::strerror(errno)));
  }
  if (input != stdin_file) std::fclose(input);
  return status;
}

}  // namespace fhirgw::gateway
