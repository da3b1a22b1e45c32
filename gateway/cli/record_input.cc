#include "gateway/cli/record_input.h"

#include <sys/types.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "fhir/json_parse.h"
#include "rapidjson/document.h"

namespace fhirgw::gateway {
namespace {

// Reads the lines of `in` with getline(3): no per-line strlen or string copy as with fgets into a
// std::string (a visible share of `fhirgw translate`), and, unlike a block read, no wait for more
// input than the next line when `in` is a pipe.
class LineReader {
 public:
  explicit LineReader(std::FILE* in) : in_(in) {}
  ~LineReader() { std::free(data_); }
  LineReader(const LineReader&) = delete;
  LineReader& operator=(const LineReader&) = delete;

  // Sets `line` to the next line, without its newline (nor a "\r" before it); a last line without
  // a newline counts when it is not empty. The view is valid until the next call. False at the end
  // of the input.
  bool Next(absl::string_view& line) {
    const ssize_t n = getline(&data_, &capacity_, in_);
    if (n <= 0) return false;
    line = absl::string_view(data_, static_cast<size_t>(n));
    if (line.back() == '\n') {
      line.remove_suffix(1);
      if (!line.empty() && line.back() == '\r') line.remove_suffix(1);
    }
    return true;
  }

  // Returns the input not yet read.
  std::string Rest() {
    std::string rest;
    char buffer[65536];
    size_t n;
    while ((n = std::fread(buffer, 1, sizeof buffer, in_)) > 0) rest.append(buffer, n);
    return rest;
  }

 private:
  std::FILE* in_;
  char* data_ = nullptr;
  size_t capacity_ = 0;
};

bool IsBlank(absl::string_view s) { return absl::StripAsciiWhitespace(s).empty(); }

// True when `line` alone is one complete JSON object (then the input is NDJSON).
bool IsCompleteJsonObject(absl::string_view line) {
  rapidjson::Document doc;
  return fhir::ParseJson(line, doc).ok() && doc.IsObject();
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
    // Large reads: a file of records is read through once.
    std::setvbuf(input, nullptr, _IOFBF, 1 << 20);
  }
  LineReader reader(input);
  absl::string_view line;
  int line_number = 0;
  bool have_line = false;
  while ((have_line = reader.Next(line))) {
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
    } while (reader.Next(line));
  } else {
    fn(absl::StrCat(line, "\n", reader.Rest()), 0);
  }
  if (status.ok() && std::ferror(input)) {
    status = absl::DataLossError(absl::StrCat("reading ", path, " failed: ", std::strerror(errno)));
  }
  if (input != stdin_file) std::fclose(input);
  return status;
}

}  // namespace fhirgw::gateway
