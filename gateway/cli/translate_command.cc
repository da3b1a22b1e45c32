#include "gateway/cli/translate_command.h"

#include <cerrno>
#include <cstring>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "gateway/cli/command.h"
#include "gateway/cli/record_input.h"
#include "google/protobuf/arena.h"
#include "mappers/record_json.h"
#include "mappers/registry.h"
#include "mappers/reverse.h"
#include "mappers/safety.h"

ABSL_FLAG(bool, item_observations, false,
          "also write one Observation per questionnaire item (hasMember of the total)");
ABSL_FLAG(bool, compact, false, "print a single Bundle on one line");
ABSL_FLAG(bool, reverse, false,
          "map FHIR R4 JSON (a resource, a Bundle, or NDJSON) to clinic records, one "
          "protobuf-JSON record a line");

namespace fhirgw::gateway {
namespace {

// Collects what the command prints and writes it in large blocks: a write per Bundle and an
// unbuffered stderr write per alert were a tenth of the time of a large translate. Messages for
// stderr go out before the output written at the same time.
class BufferedOutput {
 public:
  BufferedOutput(std::FILE* out, std::FILE* err) : out_file_(out), err_file_(err) {}

  std::string& out() { return out_; }
  std::string& err() { return err_; }

  // Writes the buffers once they hold enough to be worth a write.
  void MaybeFlush() {
    if (out_.size() + err_.size() >= kFlushBytes) Flush();
  }
  void Flush() {
    if (!err_.empty()) std::fwrite(err_.data(), 1, err_.size(), err_file_);
    if (!out_.empty()) std::fwrite(out_.data(), 1, out_.size(), out_file_);
    err_.clear();
    out_.clear();
  }

  // Writes what is buffered, then reports on the error stream a failed write or the input error
  // `read`. Returns kExitFailure when the output could not be written or the input not read; an
  // invalid input (InvalidArgument) is reported but left to the caller to count.
  std::optional<int> Finish(const absl::Status& read) {
    Flush();
    if (std::fflush(out_file_) != 0 || std::ferror(out_file_)) {
      std::fprintf(err_file_, "fhirgw translate: cannot write the output: %s\n",
                   std::strerror(errno));
      return kExitFailure;
    }
    if (!read.ok()) {
      std::fprintf(err_file_, "fhirgw translate: %s\n", std::string(read.message()).c_str());
      if (!absl::IsInvalidArgument(read)) return kExitFailure;
    }
    return std::nullopt;
  }

 private:
  static constexpr size_t kFlushBytes = 1 << 20;

  std::FILE* out_file_;
  std::FILE* err_file_;
  std::string out_;
  std::string err_;
};

// "line N: " for NDJSON line `line`, "" for a single-document input (line 0).
std::string LinePrefix(int line) { return line == 0 ? "" : absl::StrCat("line ", line, ": "); }

class Translator {
 public:
  Translator(const TranslateOptions& options, BufferedOutput& output)
      : options_(options), output_(output), arena_(ArenaOptions(arena_block_)) {}

  // Translates one record of NDJSON line `line` (0: a single-document input).
  bool Translate(absl::string_view json, int line, fhir::JsonStyle style) {
    // The record lives on an arena that is reset for the next one, and the reader keeps its
    // buffers: no per-record allocation of the message tree or the JSON DOM.
    auto* record = google::protobuf::Arena::CreateMessage<v1::ClinicRecord>(&arena_);
    const bool ok = TranslateRecord(json, line, style, *record);
    arena_.Reset();
    output_.MaybeFlush();
    return ok;
  }

 private:
  static constexpr size_t kArenaBlockSize = 64 * 1024;

  static google::protobuf::ArenaOptions ArenaOptions(std::unique_ptr<char[]>& block) {
    block = std::make_unique<char[]>(kArenaBlockSize);
    google::protobuf::ArenaOptions options;
    options.initial_block = block.get();
    options.initial_block_size = kArenaBlockSize;
    return options;
  }

  bool TranslateRecord(absl::string_view json, int line, fhir::JsonStyle style,
                       v1::ClinicRecord& record) {
    std::string& err = output_.err();
    if (absl::Status parsed = reader_.Read(json, record); !parsed.ok()) {
      absl::StrAppend(&err, LinePrefix(line), parsed.message(), "\n");
      return false;
    }
    fhir::IssueList issues;
    absl::StatusOr<mappers::MapOutput> mapped =
        mappers::MapToFhir(record, ContextFor(record.clinic_id()), issues);
    if (!mapped.ok()) {
      const std::string prefix = LinePrefix(line);
      // A rejected record's alerts are printed too: a safety signal is never lost to a typo.
      for (const v1::Alert& alert : mappers::AlertsOf(mapped.status())) {
        absl::StrAppend(&err, prefix, "alert: ", v1::Alert::Kind_Name(alert.kind()), ": ",
                        alert.message(), "\n");
      }
      for (const fhir::Issue& issue : issues) {
        absl::StrAppend(&err, prefix, fhir::FormatIssues({issue}));
      }
      if (issues.empty()) absl::StrAppend(&err, prefix, mapped.status().message(), "\n");
      return false;
    }
    for (const v1::Alert& alert : mapped->alerts) {
      absl::StrAppend(&err, LinePrefix(line), "alert: ", v1::Alert::Kind_Name(alert.kind()), ": ",
                      alert.message(), "\n");
    }
    std::string& out = output_.out();
    fhir::AppendJson(mapped->bundle.document(), style, out);
    out.push_back('\n');
    return true;
  }

  // The mapping context of `tenant`, kept while consecutive records are the same clinic's.
  const mappers::MapContext& ContextFor(absl::string_view tenant) {
    if (!context_ || context_->tenant != tenant) {
      context_ = mappers::MapContext::ForTenant(tenant);
      context_->item_observations = options_.item_observations;
    }
    return *context_;
  }

  const TranslateOptions& options_;
  BufferedOutput& output_;
  mappers::RecordJsonReader reader_;
  std::optional<mappers::MapContext> context_;
  std::unique_ptr<char[]> arena_block_;
  google::protobuf::Arena arena_;  // after arena_block_, which it uses
};

// FHIR R4 -> clinic records (translate --reverse).
int RunReverseTranslate(const std::string& path, std::FILE* in, std::FILE* out, std::FILE* err) {
  // Offline the tenant is unknown: fhirgw's default identifier systems of any tenant are
  // recognised (see ReverseContext), and the records carry no clinic_id.
  mappers::ReverseContext context;
  context.match_any_tenant = true;
  int mapped = 0;
  BufferedOutput output(out, err);
  absl::Status read = ForEachRecordText(path, in, [&](absl::string_view json, int line) {
    const std::string prefix = LinePrefix(line);
    fhir::IssueList issues;
    absl::StatusOr<std::vector<mappers::ReverseRecord>> records =
        mappers::MapFromFhir(json, context, issues);
    for (const fhir::Issue& issue : issues) {
      absl::StrAppend(&output.err(), prefix, fhir::FormatIssues({issue}));
    }
    if (!records.ok() && issues.empty()) {
      absl::StrAppend(&output.err(), prefix, records.status().message(), "\n");
    }
    if (records.ok()) {
      for (const mappers::ReverseRecord& record : *records) {
        absl::StrAppend(&output.out(), mappers::RecordToJson(record.record), "\n");
      }
      mapped += static_cast<int>(records->size());
    }
    output.MaybeFlush();
  });
  if (std::optional<int> failure = output.Finish(read)) return *failure;
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
  BufferedOutput output(out, err);
  Translator translator(options, output);
  int failed = 0;
  int translated = 0;
  absl::Status read = ForEachRecordText(path, in, [&](absl::string_view json, int line) {
    const fhir::JsonStyle style =
        line == 0 && !options.compact ? fhir::JsonStyle::kPretty : fhir::JsonStyle::kCompact;
    ++(translator.Translate(json, line, style) ? translated : failed);
  });
  if (std::optional<int> failure = output.Finish(read)) return *failure;
  if (!read.ok()) ++failed;
  if (failed > 0 && translated + failed > 1) {
    std::fprintf(err, "fhirgw translate: %d of %d records failed\n", failed, translated + failed);
  }
  return failed > 0 ? kExitInvalid : kExitOk;
}

namespace {

int TranslateMain(const std::vector<std::string>& args) {
  if (args.size() != 1) {
    std::fprintf(stderr, "usage: fhirgw translate FILE|-\n");
    return 1;
  }
  TranslateOptions options;
  options.item_observations = absl::GetFlag(FLAGS_item_observations);
  options.compact = absl::GetFlag(FLAGS_compact);
  options.reverse = absl::GetFlag(FLAGS_reverse);
  return RunTranslate(args[0], options, stdin, stdout, stderr);
}

}  // namespace

const Command kTranslateCommand = {
    "translate",
    "translate FILE|-",
    "map clinic records (protobuf JSON, or NDJSON one a line) to FHIR R4 transaction\n"
    "Bundles on stdout (--reverse: FHIR to clinic records); problems on stderr as\n"
    "'path: message'. Exit status 0 ok, 1 unreadable input, 2 invalid record(s).",
    {"gateway/cli/translate_command.cc"},
    {},
    TranslateMain};

}  // namespace fhirgw::gateway
