// End-to-end tests of the `fhirgw` command line itself (gateway/cli/main.cc): the list of
// commands, each command's flags, and how a wrong command is reported. The commands' own
// behaviour is tested in translate_cli_test.cc and the integration tests.
#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fhirgw_cli.h"
#include "tests/testing/subprocess.h"

namespace fhirgw::gateway {
namespace {

using ::fhirgw::testing::RunFhirgw;
using ::fhirgw::testing::SubprocessResult;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

// The product commands and nothing else: the load generator is tools/bench/fhirgw-bench.
TEST(CliTest, HelpListsTheCommandsAndExitsZero) {
  for (const char* form : {"--help", "-h", "help"}) {
    const SubprocessResult r = RunFhirgw({form});
    EXPECT_TRUE(r.ExitedWith(0)) << form << ": " << r.Describe();
    EXPECT_EQ(r.err, "") << form;
    EXPECT_THAT(r.out, AllOf(StartsWith("usage: fhirgw COMMAND"), HasSubstr("\n  serve"),
                             HasSubstr("\n  push"), HasSubstr("\n  watch"),
                             HasSubstr("\n  translate FILE|-"), HasSubstr("\n  audit"),
                             HasSubstr("\n  version"), HasSubstr("fhirgw help COMMAND")))
        << form;
    EXPECT_THAT(r.out, Not(HasSubstr("bench"))) << form;
    EXPECT_THAT(r.out, Not(HasSubstr("No flags matched"))) << form;
  }
}

TEST(CliTest, HelpServeListsServeFlagsOnly) {
  const SubprocessResult r = RunFhirgw({"help", "serve"});
  EXPECT_TRUE(r.ExitedWith(0)) << r.Describe();
  EXPECT_THAT(r.out, AllOf(StartsWith("usage: fhirgw serve"), HasSubstr("--config"),
                           HasSubstr("--listen"), HasSubstr("--insecure")));
  // The client commands' flags are not serve's.
  EXPECT_THAT(r.out, AllOf(Not(HasSubstr("--target")), Not(HasSubstr("--compact"))));
}

TEST(CliTest, CommandHelpFlagEqualsHelpCommand) {
  const SubprocessResult help_command = RunFhirgw({"help", "push"});
  const SubprocessResult help_flag = RunFhirgw({"push", "--help"});
  EXPECT_TRUE(help_command.ExitedWith(0)) << help_command.Describe();
  EXPECT_TRUE(help_flag.ExitedWith(0)) << help_flag.Describe();
  EXPECT_THAT(help_flag.out, AllOf(StartsWith("usage: fhirgw push"), HasSubstr("--target"),
                                   HasSubstr("--wait"), Not(HasSubstr("--config"))));
  EXPECT_EQ(help_flag.out, help_command.out);
}

TEST(CliTest, TranslateHelpListsItsFlags) {
  const SubprocessResult r = RunFhirgw({"translate", "--help"});
  EXPECT_TRUE(r.ExitedWith(0)) << r.Describe();
  EXPECT_THAT(r.out, AllOf(StartsWith("usage: fhirgw translate FILE|-"), HasSubstr("--compact"),
                           HasSubstr("--reverse"), HasSubstr("--item_observations"),
                           Not(HasSubstr("--target"))));
}

TEST(CliTest, NoArgumentsPrintsUsage) {
  const SubprocessResult r = RunFhirgw({});
  EXPECT_TRUE(r.ExitedWith(1)) << r.Describe();
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, AllOf(HasSubstr("usage: fhirgw COMMAND"), HasSubstr("translate FILE|-")));
}

TEST(CliTest, UnknownCommandExitsOneNamingIt) {
  const SubprocessResult r = RunFhirgw({"frobnicate", "examples/ketamine-infusion.json"});
  EXPECT_TRUE(r.ExitedWith(1)) << r.Describe();
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, AllOf(StartsWith("fhirgw: unknown command 'frobnicate'"),
                           HasSubstr("usage: fhirgw COMMAND")));
}

// The load generator left the product binary.
TEST(CliTest, BenchIsNotACommand) {
  const SubprocessResult r = RunFhirgw({"bench"});
  EXPECT_TRUE(r.ExitedWith(1)) << r.Describe();
  EXPECT_THAT(r.err, StartsWith("fhirgw: unknown command 'bench'"));
}

TEST(CliTest, HelpForAnUnknownCommandExitsOneNamingIt) {
  const SubprocessResult r = RunFhirgw({"help", "frobnicate"});
  EXPECT_TRUE(r.ExitedWith(1)) << r.Describe();
  EXPECT_EQ(r.out, "");
  EXPECT_THAT(r.err, AllOf(StartsWith("fhirgw: unknown command 'frobnicate'"),
                           HasSubstr("usage: fhirgw COMMAND")));
}

TEST(CliTest, VersionPrintsTheVersion) {
  const SubprocessResult r = RunFhirgw({"version"});
  EXPECT_TRUE(r.ExitedWith(0)) << r.Describe();
  EXPECT_THAT(r.out, AllOf(StartsWith("fhirgw "), HasSubstr("FHIR R4")));
}

}  // namespace
}  // namespace fhirgw::gateway
