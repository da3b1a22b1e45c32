// The `fhirgw` commands. Each command's .cc file defines its own flags (absl flags, named in the
// command's help) and one Command; main.cc dispatches on the first argument.
//
//   fhirgw --help            the commands
//   fhirgw help push         one command's usage and flags (also: fhirgw push --help)
#ifndef FHIRGW_GATEWAY_CLI_COMMAND_H_
#define FHIRGW_GATEWAY_CLI_COMMAND_H_

#include <string>
#include <vector>

namespace fhirgw::gateway {

struct Command {
  const char* name;      // "push"
  const char* synopsis;  // "push FILE..." (after "fhirgw ")
  const char* summary;   // what it does, a few lines wrapped at 80 columns, "\n" between lines
  // Files whose flags belong to this command (matched as suffixes of the flag's file name).
  std::vector<const char*> flag_files;
  // The shared client flags (client_channel.h) it reads: "target", "token", ...
  std::vector<const char*> client_flags;
  // Runs the command with the positional arguments after its name; returns the exit status.
  int (*run)(const std::vector<std::string>& args);
};

extern const Command kServeCommand;
extern const Command kPushCommand;
extern const Command kWatchCommand;
extern const Command kTranslateCommand;
extern const Command kAuditCommand;

}  // namespace fhirgw::gateway

#endif  // FHIRGW_GATEWAY_CLI_COMMAND_H_
