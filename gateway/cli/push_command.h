// `fhirgw push --target=HOST:PORT FILE...`: sends clinic records (JSON or NDJSON; "-" is stdin) to
// a running gateway and prints one line per result:
//   examples/gad7.json gad7-P-10442-2026-11-20-pre 3f2a...-... ACCEPTED v1
//   batch.ndjson:7 inf-0007 INVALID_ARGUMENT infusion.vitals[1].spo2_percent: 140 is
//   outside 50..100
// Alerts follow their record as "  alert SUICIDAL_IDEATION: ...". Exit status: 0 all accepted,
// 1 the gateway could not be reached (or a file could not be read), 2 some record was refused.
#ifndef FHIRGW_GATEWAY_CLI_PUSH_COMMAND_H_
#define FHIRGW_GATEWAY_CLI_PUSH_COMMAND_H_

#include <cstdio>
#include <string>
#include <vector>

namespace fhirgw::gateway {

struct PushFlags {
  std::string target;
  std::string token;        // else $FHIRGW_TOKEN
  std::string tls_ca_file;  // TLS verified with this CA bundle; empty: plaintext
  bool wait_for_delivery = false;
  int timeout_ms = 10000;
};

int RunPush(const PushFlags& flags, const std::vector<std::string>& files, std::FILE* in,
            std::FILE* out, std::FILE* err);

}  // namespace fhirgw::gateway

#endif  // FHIRGW_GATEWAY_CLI_PUSH_COMMAND_H_
