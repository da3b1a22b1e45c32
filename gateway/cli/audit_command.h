// `fhirgw audit query|show|export|verify --target=HOST:PORT`: the auditors' command line over
// AuditService (proto/fhirgw/v1/audit.proto).
//
//   fhirgw audit query --target=gw:50051 --clinic=lakeside --status=rejected --from=2026-11-01
//   2026-11-20T14:03:11.482Z 3f2a...  lakeside INFUSION CLINIC_TO_EHR REJECTED st-olaf inf-7 v1
//   fhirgw audit show --target=gw:50051 3f2a...            # the full Transaction as JSON
//   fhirgw audit export --target=gw:50051 --from=2026-11-01T00:00:00Z > events.ndjson
//   fhirgw audit verify --target=gw:50051                  # exit 3 when the log was altered
//
// The bearer token comes from --token, else from $FHIRGW_TOKEN; --tls_ca_file makes the channel
// TLS, verified with that CA bundle. Exit status: 0 done (verify: the log is intact), 1 usage
// error or the gateway could not be reached, 2 the gateway refused the call (credentials,
// arguments, unknown id), 3 verify found the log altered.
#ifndef FHIRGW_GATEWAY_CLI_AUDIT_COMMAND_H_
#define FHIRGW_GATEWAY_CLI_AUDIT_COMMAND_H_

#include <cstdio>
#include <string>
#include <vector>

namespace fhirgw::gateway {

struct AuditFlags {
  std::string target;
  std::string token;        // empty: $FHIRGW_TOKEN, if set
  std::string tls_ca_file;  // PEM CA bundle; empty: plaintext
  // Deadline of each unary call (query pages, show). export and verify read the whole log and
  // have no deadline.
  int timeout_ms = 10000;

  // query filters (empty: no filter). Times are RFC 3339 ("2026-11-01T08:00:00Z") or a date
  // ("2026-11-01", midnight UTC); `to` is exclusive. Enums take their proto names in any case
  // ("infusion", "CLINIC_TO_EHR", "dead_letter"); direction also "outbound" and "inbound".
  std::string clinic;
  std::string patient;  // the clinic's patient id, or "system|value"
  std::string kind;
  std::string direction;
  std::string status;
  std::string destination;
  std::string record_id;
  std::string from;
  std::string to;
  int page_size = 50;
  std::string page_token;
  // Follow page tokens to the end instead of printing one page.
  bool all = false;
};

// Exit statuses of the audit command.
inline constexpr int kAuditExitOk = 0;
inline constexpr int kAuditExitFailure = 1;   // usage, or the gateway could not be reached
inline constexpr int kAuditExitRefused = 2;   // the gateway answered with an error
inline constexpr int kAuditExitTampered = 3;  // verify: the log failed verification

// Runs `fhirgw audit SUBCOMMAND ARGS...`: `args` starts with the subcommand. Results go to `out`,
// problems and hints (e.g. the next page token) to `err`.
int RunAudit(const AuditFlags& flags, const std::vector<std::string>& args, std::FILE* out,
             std::FILE* err);

}  // namespace fhirgw::gateway

#endif  // FHIRGW_GATEWAY_CLI_AUDIT_COMMAND_H_
