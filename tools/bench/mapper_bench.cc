// Micro-benchmarks of the mappers in both directions, each beside its floor in the same run.
//
// For every record kind (the realistic records in examples/) and every hospital input
// (tests/golden/reverse/*.fhir.json):
//   ToFhir/<kind>          validate + map + serialize compact JSON, from a parsed record
//   SerializeFloor/<kind>  RapidJSON writing the same Bundle text from a prepared Document
//   Serialize/<kind>       fhir::AppendJson (fhirgw's compact writer) on that Document
//   ParseRecord/<kind>     mappers::ParseRecordJson of the record's compact JSON (what translate
//                          does for each line)
//   ProtobufParse/<kind>   protobuf's JsonStringToMessage of the same JSON
//   ParseFloor/<kind>      RapidJSON parsing the same JSON into a Document (in place, in a copy)
//   Translate/<kind>       ParseRecordJson + ToFhir: one NDJSON line of `fhirgw translate`
//   FromFhir/<input>       MapFromFhir of a Bundle (ours, or a hospital's)
//   FromFhirParseFloor/<input>  RapidJSON parsing the same Bundle (in place, in a copy)
//   FromFhirCopyParse/<input>   RapidJSON's Document::Parse of it (strings copied; for reference)
// Items are records (forward) or input documents (reverse); bytes are those read or written.
// After the run, a table gives each mapper's time over its floor (the targets are <= 3x).
//
//   build/tests/mapper_bench                              # full run (a few minutes)
//   build/tests/mapper_bench --benchmark_min_time=0.01    # smoke run, as ctest does
#include <benchmark/benchmark.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <filesystem>
#include <fstream>
#include <map>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_format.h"
#include "fhir/json.h"
#include "google/protobuf/util/json_util.h"
#include "mappers/record_json.h"
#include "mappers/registry.h"
#include "mappers/reverse.h"
#include "rapidjson/document.h"
#include "rapidjson/stringbuffer.h"
#include "rapidjson/writer.h"

namespace fhirgw::mappers {
namespace {

namespace fs = std::filesystem;

std::string ReadFile(const fs::path& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream buffer;
  buffer << in.rdbuf();
  return buffer.str();
}

// Re-serializes JSON text compactly (the form of an NDJSON line).
std::string Compact(const std::string& json) {
  rapidjson::Document doc;
  doc.Parse(json.data(), json.size());
  if (doc.HasParseError()) return json;
  rapidjson::StringBuffer buffer;
  rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
  doc.Accept(writer);
  return std::string(buffer.GetString(), buffer.GetSize());
}

// One record kind: its record JSON, the parsed record and the compact Bundle it maps to.
struct ForwardCase {
  std::string kind;
  std::string record_json;
  v1::ClinicRecord record;
  std::string bundle_json;
};

// One reverse input: FHIR JSON and the tenant whose identifiers it carries.
struct ReverseCase {
  std::string name;
  std::string fhir_json;
  std::string tenant;
};

std::string MapToBundleJson(const v1::ClinicRecord& record) {
  fhir::IssueList issues;
  absl::StatusOr<MapOutput> out =
      MapToFhir(record, MapContext::ForTenant(record.clinic_id()), issues);
  if (!out.ok()) return "";
  return out->bundle.Write(fhir::JsonStyle::kCompact);
}

std::vector<ForwardCase>& ForwardCases() {
  static std::vector<ForwardCase> cases;
  return cases;
}

std::vector<ReverseCase>& ReverseCases() {
  static std::vector<ReverseCase> cases;
  return cases;
}

// Loads the inputs; false (with a message) when one is missing or does not map.
bool LoadCases() {
  const fs::path root(FHIRGW_SOURCE_DIR);
  const std::pair<const char*, const char*> kForward[] = {
      {"infusion", "ketamine-infusion.json"},
      {"medication_statement", "sertraline-statement.json"},
      {"questionnaire", "phq9-item9-positive.json"},
      {"encounter", "infusion-encounter.json"},
  };
  for (const auto& [kind, file] : kForward) {
    ForwardCase c;
    c.kind = kind;
    c.record_json = Compact(ReadFile(root / "examples" / file));
    absl::StatusOr<v1::ClinicRecord> record = ParseRecordJson(c.record_json);
    if (!record.ok()) {
      std::fprintf(stderr, "mapper_bench: examples/%s: %s\n", file,
                   std::string(record.status().message()).c_str());
      return false;
    }
    c.record = *record;
    c.bundle_json = MapToBundleJson(c.record);
    if (c.bundle_json.empty()) {
      std::fprintf(stderr, "mapper_bench: examples/%s does not map\n", file);
      return false;
    }
    ForwardCases().push_back(std::move(c));
  }
  for (const ForwardCase& c : ForwardCases()) {
    ReverseCases().push_back({"bundle_" + c.kind, c.bundle_json, c.record.clinic_id()});
  }
  std::vector<fs::path> hospital;
  for (const auto& entry : fs::directory_iterator(root / "tests" / "golden" / "reverse")) {
    if (entry.path().string().ends_with(".fhir.json")) hospital.push_back(entry.path());
  }
  std::sort(hospital.begin(), hospital.end());
  for (const fs::path& path : hospital) {
    std::string name = path.filename().string();
    name = name.substr(0, name.size() - std::string(".fhir.json").size());
    ReverseCases().push_back({name, Compact(ReadFile(path)), "lakeside-ketamine"});
  }
  if (hospital.empty()) {
    std::fprintf(stderr, "mapper_bench: no tests/golden/reverse/*.fhir.json\n");
    return false;
  }
  return true;
}

// ---- forward: record -> FHIR ----

void BM_ToFhir(benchmark::State& state, const ForwardCase* c) {
  const MapContext context = MapContext::ForTenant(c->record.clinic_id());
  std::string out;
  for (auto _ : state) {
    fhir::IssueList issues;
    absl::StatusOr<MapOutput> mapped = MapToFhir(c->record, context, issues);
    if (!mapped.ok()) {
      state.SkipWithError("the record does not map");
      return;
    }
    out.clear();
    fhir::AppendJson(mapped->bundle.document(), fhir::JsonStyle::kCompact, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(out.size()));
}

void BM_SerializeFloor(benchmark::State& state, const ForwardCase* c) {
  rapidjson::Document doc;
  doc.Parse(c->bundle_json.data(), c->bundle_json.size());
  rapidjson::StringBuffer buffer;
  for (auto _ : state) {
    buffer.Clear();
    rapidjson::Writer<rapidjson::StringBuffer> writer(buffer);
    doc.Accept(writer);
    benchmark::DoNotOptimize(buffer.GetString());
  }
  if (buffer.GetSize() != c->bundle_json.size()) state.SkipWithError("the floor wrote other text");
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(buffer.GetSize()));
}

// fhirgw's own compact writer (fhir::AppendJson) on the same prepared Document.
void BM_Serialize(benchmark::State& state, const ForwardCase* c) {
  fhir::JsonDocument doc;
  doc.Parse(c->bundle_json.data(), c->bundle_json.size());
  std::string out;
  for (auto _ : state) {
    out.clear();
    fhir::AppendJson(doc, fhir::JsonStyle::kCompact, out);
    benchmark::DoNotOptimize(out.data());
  }
  if (out != c->bundle_json) state.SkipWithError("AppendJson wrote other text");
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(out.size()));
}

void BM_ParseRecord(benchmark::State& state, const ForwardCase* c) {
  for (auto _ : state) {
    absl::StatusOr<v1::ClinicRecord> record = ParseRecordJson(c->record_json);
    benchmark::DoNotOptimize(record.ok());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(c->record_json.size()));
}

void BM_ProtobufParse(benchmark::State& state, const ForwardCase* c) {
  google::protobuf::util::JsonParseOptions options;
  options.ignore_unknown_fields = false;
  for (auto _ : state) {
    v1::ClinicRecord record;
    auto status = google::protobuf::util::JsonStringToMessage(
        google::protobuf::StringPiece(c->record_json.data(), c->record_json.size()), &record,
        options);
    benchmark::DoNotOptimize(status.ok());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(c->record_json.size()));
}

// RapidJSON's fastest DOM parse: in place, in a copy of the input (the input is const), with the
// default allocators.
void ParseFloor(benchmark::State& state, const std::string& json) {
  for (auto _ : state) {
    std::string buffer(json);
    rapidjson::Document doc;
    doc.ParseInsitu(buffer.data());
    benchmark::DoNotOptimize(doc.HasParseError());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(json.size()));
}

void BM_ParseFloor(benchmark::State& state, const ForwardCase* c) {
  ParseFloor(state, c->record_json);
}

void BM_Translate(benchmark::State& state, const ForwardCase* c) {
  std::string out;
  for (auto _ : state) {
    absl::StatusOr<v1::ClinicRecord> record = ParseRecordJson(c->record_json);
    if (!record.ok()) {
      state.SkipWithError("the record does not parse");
      return;
    }
    const MapContext context = MapContext::ForTenant(record->clinic_id());
    fhir::IssueList issues;
    absl::StatusOr<MapOutput> mapped = MapToFhir(*record, context, issues);
    if (!mapped.ok()) {
      state.SkipWithError("the record does not map");
      return;
    }
    out.clear();
    fhir::AppendJson(mapped->bundle.document(), fhir::JsonStyle::kCompact, out);
    benchmark::DoNotOptimize(out.data());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(c->record_json.size()));
}

// ---- reverse: FHIR -> records ----

void BM_FromFhir(benchmark::State& state, const ReverseCase* c) {
  const ReverseContext context = ReverseContext::ForTenant(c->tenant);
  for (auto _ : state) {
    fhir::IssueList issues;
    absl::StatusOr<std::vector<ReverseRecord>> records = MapFromFhir(c->fhir_json, context, issues);
    if (!records.ok()) {
      state.SkipWithError("the input does not map");
      return;
    }
    benchmark::DoNotOptimize(records->data());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(c->fhir_json.size()));
}

void BM_FromFhirParseFloor(benchmark::State& state, const ReverseCase* c) {
  ParseFloor(state, c->fhir_json);
}

// RapidJSON's plain Document::Parse (strings copied into the DOM): a softer floor, for reference.
void BM_FromFhirCopyParse(benchmark::State& state, const ReverseCase* c) {
  for (auto _ : state) {
    rapidjson::Document doc;
    doc.Parse(c->fhir_json.data(), c->fhir_json.size());
    benchmark::DoNotOptimize(doc.HasParseError());
  }
  state.SetItemsProcessed(state.iterations());
  state.SetBytesProcessed(state.iterations() * static_cast<int64_t>(c->fhir_json.size()));
}

void RegisterAll() {
  for (const ForwardCase& c : ForwardCases()) {
    benchmark::RegisterBenchmark(("ToFhir/" + c.kind).c_str(), BM_ToFhir, &c);
    benchmark::RegisterBenchmark(("SerializeFloor/" + c.kind).c_str(), BM_SerializeFloor, &c);
    benchmark::RegisterBenchmark(("Serialize/" + c.kind).c_str(), BM_Serialize, &c);
    benchmark::RegisterBenchmark(("ParseRecord/" + c.kind).c_str(), BM_ParseRecord, &c);
    benchmark::RegisterBenchmark(("ProtobufParse/" + c.kind).c_str(), BM_ProtobufParse, &c);
    benchmark::RegisterBenchmark(("ParseFloor/" + c.kind).c_str(), BM_ParseFloor, &c);
    benchmark::RegisterBenchmark(("Translate/" + c.kind).c_str(), BM_Translate, &c);
  }
  for (const ReverseCase& c : ReverseCases()) {
    benchmark::RegisterBenchmark(("FromFhir/" + c.name).c_str(), BM_FromFhir, &c);
    benchmark::RegisterBenchmark(("FromFhirParseFloor/" + c.name).c_str(), BM_FromFhirParseFloor,
                                 &c);
    benchmark::RegisterBenchmark(("FromFhirCopyParse/" + c.name).c_str(), BM_FromFhirCopyParse, &c);
  }
}

// Prints the console report, remembers each benchmark's CPU time per iteration, and prints the
// mapper/floor table at the end.
class RatioReporter : public benchmark::ConsoleReporter {
 public:
  // Colours only on a terminal, so that logs stay readable.
  RatioReporter() : ConsoleReporter(isatty(fileno(stdout)) ? OO_Color : OO_None) {}

  void ReportRuns(const std::vector<Run>& runs) override {
    ConsoleReporter::ReportRuns(runs);
    for (const Run& run : runs) {
      if (run.error_occurred || run.iterations == 0) continue;
      const double nanos = run.cpu_accumulated_time * 1e9 / static_cast<double>(run.iterations);
      // With --benchmark_repetitions, the median of the repetitions stands for the benchmark.
      if (run.run_type == Run::RT_Aggregate) {
        if (run.aggregate_name == "median") median_nanos_[run.run_name.str()] = nanos;
      } else {
        nanos_[run.run_name.str()] = nanos;
      }
    }
  }

  void Finalize() override {
    ConsoleReporter::Finalize();
    std::string table =
        "\nmapper / floor (CPU time per item, same run; targets: ToFhir <= 3x SerializeFloor, "
        "FromFhir <= 3x ParseFloor)\n";
    absl::StrAppendFormat(&table, "%-58s %10s %10s %7s %s\n", "case", "mapper ns", "floor ns",
                          "ratio", "target");
    for (const ForwardCase& c : ForwardCases()) {
      Row(table, "ToFhir/" + c.kind, "SerializeFloor/" + c.kind, true);
      Row(table, "Serialize/" + c.kind, "SerializeFloor/" + c.kind, false);
      Row(table, "ParseRecord/" + c.kind, "ParseFloor/" + c.kind, false);
      Row(table, "ProtobufParse/" + c.kind, "ParseFloor/" + c.kind, false);
    }
    for (const ReverseCase& c : ReverseCases()) {
      Row(table, "FromFhir/" + c.name, "FromFhirParseFloor/" + c.name, true);
      Row(table, "FromFhir/" + c.name, "FromFhirCopyParse/" + c.name, false);
    }
    std::fputs(table.c_str(), stdout);
    std::fflush(stdout);
  }

 private:
  // The CPU time per item of `name`: the median of its repetitions, else its one run; 0 if none.
  double Nanos(const std::string& name) const {
    for (const auto* source : {&median_nanos_, &nanos_}) {
      const auto it = source->find(name);
      if (it != source->end()) return it->second;
    }
    return 0;
  }

  void Row(std::string& table, const std::string& mapper, const std::string& floor,
           bool has_target) const {
    const double mapper_nanos = Nanos(mapper);
    const double floor_nanos = Nanos(floor);
    if (mapper_nanos <= 0 || floor_nanos <= 0) return;
    const double ratio = mapper_nanos / floor_nanos;
    absl::StrAppendFormat(&table, "%-58s %10.0f %10.0f %6.2fx %s\n",
                          absl::StrFormat("%s / %s", mapper, floor.substr(0, floor.find('/'))),
                          mapper_nanos, floor_nanos, ratio,
                          has_target ? (ratio <= 3.0 ? "met" : "missed") : "-");
  }

  std::map<std::string, double> nanos_;
  std::map<std::string, double> median_nanos_;
};

}  // namespace
}  // namespace fhirgw::mappers

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  if (!fhirgw::mappers::LoadCases()) return 1;
  fhirgw::mappers::RegisterAll();
  fhirgw::mappers::RatioReporter reporter;
  benchmark::RunSpecifiedBenchmarks(&reporter);
  benchmark::Shutdown();
  return 0;
}
