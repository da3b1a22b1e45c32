// `fhirgw COMMAND [flags] [args]`: dispatches to the commands in command.h.
//
//   fhirgw --help | -h | help     the commands (exit 0)
//   fhirgw help COMMAND           one command's usage and flags (exit 0); also COMMAND --help
#include <algorithm>
#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "absl/flags/parse.h"
#include "absl/flags/reflection.h"
#include "absl/flags/usage.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "gateway/cli/command.h"

namespace fhirgw::gateway {
namespace {

const Command* const kCommands[] = {&kServeCommand, &kPushCommand, &kWatchCommand,
                                    &kTranslateCommand, &kAuditCommand};

constexpr char kVersion[] = "fhirgw 0.1.0 (FHIR R4 4.0.1)";

const Command* FindCommand(const std::string& name) {
  for (const Command* command : kCommands) {
    if (name == command->name) return command;
  }
  return nullptr;
}

std::string Indented(const char* text, int indent) {
  return absl::StrReplaceAll(text, {{"\n", absl::StrCat("\n", std::string(indent, ' '))}});
}

std::string CommandsHelp() {
  std::string help =
      "usage: fhirgw COMMAND [flags] [args]\n"
      "\n"
      "The HL7 FHIR R4 gateway between ketamine and esketamine infusion clinics and hospital "
      "EHRs.\n"
      "\n"
      "commands:\n";
  for (const Command* command : kCommands) {
    absl::StrAppend(&help, "  ", command->synopsis, "\n      ", Indented(command->summary, 6),
                    "\n");
  }
  absl::StrAppend(&help,
                  "  version\n      print the version\n"
                  "\n"
                  "Run 'fhirgw help COMMAND' (or 'fhirgw COMMAND --help') for its flags.\n");
  return help;
}

bool FlagBelongsTo(const absl::CommandLineFlag& flag, const Command& command) {
  for (const char* file : command.flag_files) {
    if (absl::EndsWith(flag.Filename(), file)) return true;
  }
  for (const char* name : command.client_flags) {
    if (flag.Name() == name && absl::EndsWith(flag.Filename(), "gateway/cli/client_channel.cc")) {
      return true;
    }
  }
  return false;
}

std::string CommandHelp(const Command& command) {
  std::string help = absl::StrCat("usage: fhirgw ", command.synopsis, " [flags]\n\n",
                                  command.summary, "\n\nflags:\n");
  std::vector<const absl::CommandLineFlag*> flags;
  for (const auto& [name, flag] : absl::GetAllFlags()) {
    if (FlagBelongsTo(*flag, command)) flags.push_back(flag);
  }
  std::sort(flags.begin(), flags.end(),
            [](const auto* a, const auto* b) { return a->Name() < b->Name(); });
  for (const absl::CommandLineFlag* flag : flags) {
    absl::StrAppend(&help, "  --", flag->Name(),
                    "  (default: ", flag->DefaultValue().empty() ? "\"\"" : flag->DefaultValue(),
                    ")\n      ", flag->Help(), "\n");
  }
  return help;
}

bool IsHelpFlag(const char* arg) {
  return std::strcmp(arg, "--help") == 0 || std::strcmp(arg, "-h") == 0 ||
         std::strcmp(arg, "-help") == 0 || std::strcmp(arg, "--helpfull") == 0;
}

// Handles the help forms before absl parses anything; returns -1 when `argv` asks for no help.
int MaybeHelp(int argc, char** argv) {
  if (argc < 2) return -1;
  if (IsHelpFlag(argv[1]) || std::strcmp(argv[1], "help") == 0) {
    if (argc >= 3 && std::strcmp(argv[1], "help") == 0) {
      const Command* command = FindCommand(argv[2]);
      if (command == nullptr) {
        std::fprintf(stderr, "fhirgw: unknown command '%s'\n\n%s", argv[2], CommandsHelp().c_str());
        return 1;
      }
      std::fputs(CommandHelp(*command).c_str(), stdout);
      return 0;
    }
    std::fputs(CommandsHelp().c_str(), stdout);
    return 0;
  }
  const Command* command = FindCommand(argv[1]);
  if (command == nullptr) return -1;
  for (int i = 2; i < argc; ++i) {
    if (IsHelpFlag(argv[i])) {
      std::fputs(CommandHelp(*command).c_str(), stdout);
      return 0;
    }
  }
  return -1;
}

int Main(int argc, char** argv) {
  if (int help = MaybeHelp(argc, argv); help >= 0) return help;
  absl::SetProgramUsageMessage("fhirgw COMMAND [flags] [args]; 'fhirgw --help' lists the commands");
  std::vector<char*> positional = absl::ParseCommandLine(argc, argv);
  std::vector<std::string> args(positional.begin() + 1, positional.end());
  if (args.empty()) {
    std::fputs(CommandsHelp().c_str(), stderr);
    return 1;
  }
  if (args[0] == "version") {
    std::printf("%s\n", kVersion);
    return 0;
  }
  const Command* command = FindCommand(args[0]);
  if (command == nullptr) {
    std::fprintf(stderr, "fhirgw: unknown command '%s'\n\n%s", args[0].c_str(),
                 CommandsHelp().c_str());
    return 1;
  }
  return command->run({args.begin() + 1, args.end()});
}

}  // namespace
}  // namespace fhirgw::gateway

int main(int argc, char** argv) { return fhirgw::gateway::Main(argc, argv); }
