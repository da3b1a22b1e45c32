#ifndef FHIRGW_GATEWAY_CLI_WATCH_COMMAND_H_
#define FHIRGW_GATEWAY_CLI_WATCH_COMMAND_H_

#include <cstdio>
#include <string>
#include <vector>

namespace fhirgw::gateway {

// `fhirgw watch --target=HOST:PORT --clinic=ID [--cursor=C] [--max_events=N]`: follows
// ClinicGateway.WatchInbound and prints each event as one JSON line
// {"cursor": "...", "transactionId": "...", "record": {...}}. Stops after N events (0: never) or
// when the stream ends; exit status 0, or 1 when the gateway cannot be reached.
struct WatchFlags {
  std::string target;
  std::string token;        // else $FHIRGW_TOKEN
  std::string tls_ca_file;  // TLS verified with this CA bundle; empty: plaintext
  std::string clinic_id;
  std::string cursor;
  int max_events = 0;
};
int RunWatch(const WatchFlags& flags, std::FILE* out, std::FILE* err);

}  // namespace fhirgw::gateway

#endif  // FHIRGW_GATEWAY_CLI_WATCH_COMMAND_H_
