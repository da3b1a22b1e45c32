// The flags of every command that talks to a running gateway (push, watch, audit), kept apart
// from client_channel.cc so that a tool linking the channel code (fhirgw-bench) may define flags
// of the same names.
#include <string>

#include "absl/flags/flag.h"
#include "gateway/cli/client_channel.h"

ABSL_FLAG(std::string, target, "", "the gateway's gRPC address HOST:PORT");
ABSL_FLAG(std::string, token, "", "bearer token (default: $FHIRGW_TOKEN)");
ABSL_FLAG(std::string, tls_ca_file, "",
          "PEM CA bundle that verifies a TLS --target (without it: plaintext)");
ABSL_FLAG(int, timeout_ms, 10000, "deadline of each call, in milliseconds");
ABSL_FLAG(std::string, clinic, "",
          "watch: the clinic whose inbound records to follow; audit query: filter by clinic");

namespace fhirgw::gateway {

std::string TargetFlag() { return absl::GetFlag(FLAGS_target); }
std::string TokenFlag() { return absl::GetFlag(FLAGS_token); }
std::string TlsCaFileFlag() { return absl::GetFlag(FLAGS_tls_ca_file); }
int TimeoutMsFlag() { return absl::GetFlag(FLAGS_timeout_ms); }
std::string ClinicFlag() { return absl::GetFlag(FLAGS_clinic); }

}  // namespace fhirgw::gateway
