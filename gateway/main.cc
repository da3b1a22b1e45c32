// fhirgw: the HL7 FHIR integration gateway for ketamine and esketamine infusion clinics.
//
//   fhirgw translate FILE|-   clinic records (JSON or NDJSON) -> FHIR R4 transaction Bundles
//   fhirgw version
#include <cstdio>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/flags/usage.h"
#include "gateway/translate_command.h"

ABSL_FLAG(bool, item_observations, false,
          "translate: also write one Observation per questionnaire item (hasMember of the total)");
ABSL_FLAG(bool, compact, false, "translate: print a single Bundle on one line");

namespace {

constexpr char kUsage[] =
    "usage: fhirgw COMMAND [flags] [args]\n"
    "\n"
    "commands:\n"
    "  translate FILE|-   map clinic records (protobuf JSON, or NDJSON one a line) to FHIR R4\n"
    "                     transaction Bundles on stdout; problems on stderr as 'path: message'.\n"
    "                     Exit status 0 ok, 1 unreadable input, 2 invalid record(s).\n"
    "  version            print the version\n"
    "\n"
    "Run 'fhirgw --help' for every flag.";

}  // namespace

int main(int argc, char** argv) {
  absl::SetProgramUsageMessage(kUsage);
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  std::vector<std::string> args(positional.begin() + 1, positional.end());
  if (args.empty()) {
    std::fprintf(stderr, "%s\n", kUsage);
    return 1;
  }
  const std::string& command = args[0];
  if (command == "translate") {
    if (args.size() != 2) {
      std::fprintf(stderr, "usage: fhirgw translate FILE|-\n");
      return 1;
    }
    fhirgw::gateway::TranslateOptions options;
    options.item_observations = absl::GetFlag(FLAGS_item_observations);
    options.compact = absl::GetFlag(FLAGS_compact);
    return fhirgw::gateway::RunTranslate(args[1], options, stdin, stdout, stderr);
  }
  if (command == "version") {
    std::printf("fhirgw 0.1.0 (FHIR R4 4.0.1)\n");
    return 0;
  }
  std::fprintf(stderr, "fhirgw: unknown command '%s'\n\n%s\n", command.c_str(), kUsage);
  return 1;
}
