#include "gateway/cli/audit_command.h"

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <memory>
#include <sstream>

#include "absl/flags/flag.h"
#include "absl/status/statusor.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/time.h"
#include "fhir/primitives.h"
#include "fhirgw/v1/audit.grpc.pb.h"
#include "gateway/cli/client_channel.h"
#include "gateway/cli/command.h"
#include "google/protobuf/util/json_util.h"
#include "grpcpp/create_channel.h"
#include "grpcpp/security/credentials.h"

ABSL_FLAG(std::string, patient, "",
          "query: the clinic's patient id, or an identifier as system|value");
ABSL_FLAG(std::string, kind, "",
          "query: infusion, medication_statement, questionnaire, encounter or patient");
ABSL_FLAG(std::string, direction, "", "query: outbound (clinic_to_ehr) or inbound (ehr_to_clinic)");
ABSL_FLAG(std::string, status, "",
          "query: accepted, delivering, delivered, retrying, rejected, dead_letter, recorded");
ABSL_FLAG(std::string, destination, "", "query: the destination's name");
ABSL_FLAG(std::string, record_id, "", "query: the clinic's record id");
ABSL_FLAG(std::string, from, "",
          "query, export: from this time on (RFC 3339, or a date meaning midnight UTC)");
ABSL_FLAG(std::string, to, "", "query, export: before this time (exclusive)");
ABSL_FLAG(int, page_size, 50, "query: transactions per page (1..1000)");
ABSL_FLAG(std::string, page_token, "", "query: continue after a previous page");
ABSL_FLAG(bool, all, false, "query: follow page tokens to the last page");

namespace fhirgw::gateway {
namespace {

constexpr char kUsage[] =
    "usage: fhirgw audit query|show ID|export|verify --target=HOST:PORT [--token=T] "
    "[--tls_ca_file=PEM]\n"
    "  query   [--clinic --patient --kind --direction --status --destination --record_id\n"
    "           --from --to --page_size --page_token --all]\n"
    "  show ID\n"
    "  export  [--clinic --from --to]\n"
    "  verify\n";

const char* CodeName(grpc::StatusCode code) {
  static constexpr const char* kNames[] = {"OK",
                                           "CANCELLED",
                                           "UNKNOWN",
                                           "INVALID_ARGUMENT",
                                           "DEADLINE_EXCEEDED",
                                           "NOT_FOUND",
                                           "ALREADY_EXISTS",
                                           "PERMISSION_DENIED",
                                           "RESOURCE_EXHAUSTED",
                                           "FAILED_PRECONDITION",
                                           "ABORTED",
                                           "OUT_OF_RANGE",
                                           "UNIMPLEMENTED",
                                           "INTERNAL",
                                           "UNAVAILABLE",
                                           "DATA_LOSS",
                                           "UNAUTHENTICATED"};
  const int index = static_cast<int>(code);
  return index >= 0 && index < 17 ? kNames[index] : "UNKNOWN";
}

// Parses `text` (RFC 3339, or a date meaning midnight UTC) into `*out`; `flag` names it in errors.
absl::Status ParseTimeFlag(absl::string_view flag, const std::string& text,
                           google::protobuf::Timestamp* out) {
  absl::Time when;
  std::string rfc3339_error;
  std::string date_error;
  if (!absl::ParseTime(absl::RFC3339_full, text, &when, &rfc3339_error) &&
      !absl::ParseTime("%Y-%m-%d", text, absl::UTCTimeZone(), &when, &date_error)) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, ": '", text,
                     "' is not an RFC 3339 time (2026-11-01T08:00:00Z) or a date (2026-11-01)"));
  }
  const int64_t ms = absl::ToUnixMillis(when);
  out->set_seconds(ms >= 0 ? ms / 1000 : (ms - 999) / 1000);
  out->set_nanos(static_cast<int32_t>((ms - out->seconds() * 1000) * 1000000));
  return absl::OkStatus();
}

// Parses an enum flag by its proto value name, in any case; `parse` is the generated _Parse.
template <typename Enum, typename Parse>
absl::Status ParseEnumFlag(absl::string_view flag, const std::string& text, Parse parse, Enum* out,
                           absl::string_view names) {
  const std::string upper = absl::AsciiStrToUpper(text);
  if (parse(upper, out) && static_cast<int>(*out) != 0) {
    return absl::OkStatus();
  }
  return absl::InvalidArgumentError(
      absl::StrCat("--", flag, ": '", text, "' is not one of ", names));
}

// The query request the flags describe.
absl::StatusOr<v1::QueryTransactionsRequest> QueryRequest(const AuditFlags& flags) {
  v1::QueryTransactionsRequest request;
  if (!flags.from.empty()) {
    if (absl::Status s = ParseTimeFlag("from", flags.from, request.mutable_from()); !s.ok()) {
      return s;
    }
  }
  if (!flags.to.empty()) {
    if (absl::Status s = ParseTimeFlag("to", flags.to, request.mutable_to()); !s.ok()) return s;
  }
  request.set_clinic_id(flags.clinic);
  request.set_patient_identifier(flags.patient);
  if (!flags.kind.empty()) {
    v1::RecordKind kind;
    absl::Status s = ParseEnumFlag("kind", flags.kind, &v1::RecordKind_Parse, &kind,
                                   "infusion, medication_statement, questionnaire, encounter, "
                                   "patient");
    if (!s.ok()) return s;
    request.set_kind(kind);
  }
  if (!flags.direction.empty()) {
    const std::string lower = absl::AsciiStrToLower(flags.direction);
    v1::Direction direction;
    if (lower == "outbound") {
      direction = v1::CLINIC_TO_EHR;
    } else if (lower == "inbound") {
      direction = v1::EHR_TO_CLINIC;
    } else {
      absl::Status s = ParseEnumFlag("direction", flags.direction, &v1::Direction_Parse, &direction,
                                     "clinic_to_ehr (outbound), ehr_to_clinic (inbound)");
      if (!s.ok()) return s;
    }
    request.set_direction(direction);
  }
  if (!flags.status.empty()) {
    v1::TransactionStatus status;
    absl::Status s =
        ParseEnumFlag("status", flags.status, &v1::TransactionStatus_Parse, &status,
                      "accepted, delivering, delivered, retrying, rejected, dead_letter, recorded");
    if (!s.ok()) return s;
    request.set_status(status);
  }
  request.set_destination(flags.destination);
  request.set_record_id(flags.record_id);
  if (flags.page_size <= 0 || flags.page_size > 1000) {
    return absl::InvalidArgumentError(
        absl::StrCat("--page_size: ", flags.page_size, " is outside 1..1000"));
  }
  request.set_page_size(flags.page_size);
  request.set_page_token(flags.page_token);
  return request;
}

std::string Dash(const std::string& text) { return text.empty() ? "-" : text; }

// One line per transaction: time, id, clinic, kind, direction, status, destination, record,
// version.
std::string QueryLine(const v1::Transaction& tx) {
  return absl::StrCat(fhir::FormatInstant(tx.received_at().seconds(), tx.received_at().nanos()),
                      " ", Dash(tx.transaction_id()), " ", Dash(tx.clinic_id()), " ",
                      v1::RecordKind_Name(tx.kind()), " ", v1::Direction_Name(tx.direction()), " ",
                      v1::TransactionStatus_Name(tx.status()), " ", Dash(tx.destination()), " ",
                      Dash(tx.record_id()), " v", tx.version(), "\n");
}

class AuditClient {
 public:
  AuditClient(const AuditFlags& flags, std::string token, std::FILE* out, std::FILE* err)
      : flags_(flags), token_(std::move(token)), out_(out), err_(err) {}

  // Connects to the target; kAuditExitOk or the exit status after reporting why not.
  int Connect(const std::string& subcommand) {
    subcommand_ = subcommand;
    std::shared_ptr<grpc::ChannelCredentials> credentials = grpc::InsecureChannelCredentials();
    if (!flags_.tls_ca_file.empty()) {
      std::ifstream in(flags_.tls_ca_file);
      std::stringstream pem;
      pem << in.rdbuf();
      if (!in || pem.str().empty()) {
        return Fail(kAuditExitFailure,
                    absl::StrCat("--tls_ca_file: cannot read ", flags_.tls_ca_file));
      }
      grpc::SslCredentialsOptions options;
      options.pem_root_certs = pem.str();
      credentials = grpc::SslCredentials(options);
    }
    auto channel = grpc::CreateChannel(flags_.target, credentials);
    if (!channel->WaitForConnected(std::chrono::system_clock::now() + std::chrono::seconds(5))) {
      return Fail(kAuditExitFailure, absl::StrCat("cannot connect to ", flags_.target));
    }
    stub_ = v1::AuditService::NewStub(channel);
    return kAuditExitOk;
  }

  int Query(const v1::QueryTransactionsRequest& first) {
    v1::QueryTransactionsRequest request = first;
    while (true) {
      v1::QueryTransactionsResponse response;
      grpc::ClientContext context;
      Prepare(context, /*with_deadline=*/true);
      grpc::Status status = stub_->QueryTransactions(&context, request, &response);
      if (!status.ok()) return Fail(status);
      for (const v1::Transaction& tx : response.transactions()) {
        std::fputs(QueryLine(tx).c_str(), out_);
      }
      if (response.next_page_token().empty()) break;
      if (!flags_.all) {
        std::fprintf(err_, "more results: --page_token=%s (or --all)\n",
                     response.next_page_token().c_str());
        break;
      }
      request.set_page_token(response.next_page_token());
    }
    std::fflush(out_);
    return kAuditExitOk;
  }

  int Show(const std::string& transaction_id) {
    v1::GetTransactionRequest request;
    request.set_transaction_id(transaction_id);
    v1::Transaction tx;
    grpc::ClientContext context;
    Prepare(context, /*with_deadline=*/true);
    grpc::Status status = stub_->GetTransaction(&context, request, &tx);
    if (!status.ok()) return Fail(status);
    return PrintJson(tx);
  }

  int Export(const v1::ExportAuditEventsRequest& request) {
    grpc::ClientContext context;
    Prepare(context, /*with_deadline=*/false);
    std::unique_ptr<grpc::ClientReader<v1::AuditEventChunk>> reader =
        stub_->ExportAuditEvents(&context, request);
    v1::AuditEventChunk chunk;
    int64_t count = 0;
    while (reader->Read(&chunk)) {
      std::fputs(chunk.audit_event_json().c_str(), out_);
      std::fputc('\n', out_);
      ++count;
    }
    grpc::Status status = reader->Finish();
    std::fflush(out_);
    if (!status.ok()) return Fail(status);
    std::fprintf(err_, "exported %lld AuditEvents\n", static_cast<long long>(count));
    return kAuditExitOk;
  }

  int Verify() {
    v1::VerifyLogResponse response;
    grpc::ClientContext context;
    Prepare(context, /*with_deadline=*/false);
    grpc::Status status = stub_->VerifyLog(&context, v1::VerifyLogRequest(), &response);
    if (!status.ok()) return Fail(status);
    const int printed = PrintJson(response);
    if (printed != kAuditExitOk) return printed;
    if (!response.ok()) {
      std::fprintf(err_, "fhirgw audit verify: the log FAILED verification at entry %lld: %s\n",
                   static_cast<long long>(response.first_bad_sequence()),
                   response.message().c_str());
      return kAuditExitTampered;
    }
    return kAuditExitOk;
  }

 private:
  void Prepare(grpc::ClientContext& context, bool with_deadline) {
    if (!token_.empty()) context.AddMetadata("authorization", absl::StrCat("Bearer ", token_));
    if (with_deadline) {
      context.set_deadline(std::chrono::system_clock::now() +
                           std::chrono::milliseconds(flags_.timeout_ms));
    }
  }

  int PrintJson(const google::protobuf::Message& message) {
    google::protobuf::util::JsonPrintOptions options;
    options.add_whitespace = true;
    options.always_print_primitive_fields = true;
    std::string json;
    if (!google::protobuf::util::MessageToJsonString(message, &json, options).ok()) {
      return Fail(kAuditExitFailure, "cannot print the answer as JSON");
    }
    std::fputs(json.c_str(), out_);
    if (json.empty() || json.back() != '\n') std::fputc('\n', out_);
    std::fflush(out_);
    return kAuditExitOk;
  }

  int Fail(int exit_status, const std::string& message) {
    std::fprintf(err_, "fhirgw audit %s: %s\n", subcommand_.c_str(), message.c_str());
    return exit_status;
  }

  int Fail(const grpc::Status& status) {
    const bool unreachable = status.error_code() == grpc::StatusCode::UNAVAILABLE ||
                             status.error_code() == grpc::StatusCode::DEADLINE_EXCEEDED;
    return Fail(unreachable ? kAuditExitFailure : kAuditExitRefused,
                absl::StrCat(CodeName(status.error_code()), " ", status.error_message()));
  }

  const AuditFlags& flags_;
  const std::string token_;
  std::FILE* out_;
  std::FILE* err_;
  std::string subcommand_;
  std::unique_ptr<v1::AuditService::Stub> stub_;
};

}  // namespace

int RunAudit(const AuditFlags& flags, const std::vector<std::string>& args, std::FILE* out,
             std::FILE* err) {
  if (args.empty() || flags.target.empty()) {
    std::fputs(kUsage, err);
    return kAuditExitFailure;
  }
  const std::string& subcommand = args[0];
  const bool show = subcommand == "show";
  if (subcommand != "query" && !show && subcommand != "export" && subcommand != "verify") {
    std::fprintf(err, "fhirgw audit: unknown subcommand '%s'\n%s", subcommand.c_str(), kUsage);
    return kAuditExitFailure;
  }
  if (args.size() != (show ? 2u : 1u)) {
    std::fprintf(err, "fhirgw audit %s: %s\n%s", subcommand.c_str(),
                 show ? "needs exactly one transaction id" : "takes no arguments", kUsage);
    return kAuditExitFailure;
  }

  // Check the flags before connecting, so that a typo is reported as such.
  v1::QueryTransactionsRequest query;
  v1::ExportAuditEventsRequest export_request;
  if (subcommand == "query") {
    absl::StatusOr<v1::QueryTransactionsRequest> request = QueryRequest(flags);
    if (!request.ok()) {
      std::fprintf(err, "fhirgw audit query: %s\n",
                   std::string(request.status().message()).c_str());
      return kAuditExitFailure;
    }
    query = *std::move(request);
  } else if (subcommand == "export") {
    absl::Status parsed = absl::OkStatus();
    if (!flags.from.empty()) {
      parsed = ParseTimeFlag("from", flags.from, export_request.mutable_from());
    }
    if (parsed.ok() && !flags.to.empty()) {
      parsed = ParseTimeFlag("to", flags.to, export_request.mutable_to());
    }
    if (!parsed.ok()) {
      std::fprintf(err, "fhirgw audit export: %s\n", std::string(parsed.message()).c_str());
      return kAuditExitFailure;
    }
    export_request.set_clinic_id(flags.clinic);
  }

  std::string token = flags.token;
  if (token.empty()) {
    const char* env = std::getenv("FHIRGW_TOKEN");
    if (env != nullptr) token = env;
  }
  AuditClient client(flags, std::move(token), out, err);
  if (int connected = client.Connect(subcommand); connected != kAuditExitOk) return connected;
  if (subcommand == "query") return client.Query(query);
  if (show) return client.Show(args[1]);
  if (subcommand == "export") return client.Export(export_request);
  return client.Verify();
}

namespace {

int AuditMain(const std::vector<std::string>& args) {
  AuditFlags flags;
  flags.target = TargetFlag();
  flags.token = TokenFlag();
  flags.tls_ca_file = TlsCaFileFlag();
  flags.timeout_ms = TimeoutMsFlag();
  flags.clinic = ClinicFlag();
  flags.patient = absl::GetFlag(FLAGS_patient);
  flags.kind = absl::GetFlag(FLAGS_kind);
  flags.direction = absl::GetFlag(FLAGS_direction);
  flags.status = absl::GetFlag(FLAGS_status);
  flags.destination = absl::GetFlag(FLAGS_destination);
  flags.record_id = absl::GetFlag(FLAGS_record_id);
  flags.from = absl::GetFlag(FLAGS_from);
  flags.to = absl::GetFlag(FLAGS_to);
  flags.page_size = absl::GetFlag(FLAGS_page_size);
  flags.page_token = absl::GetFlag(FLAGS_page_token);
  flags.all = absl::GetFlag(FLAGS_all);
  return RunAudit(flags, args, stdout, stderr);
}

}  // namespace

const Command kAuditCommand = {
    "audit",
    "audit query|show ID|export|verify",
    "the auditors' view of --target=HOST:PORT (--token or $FHIRGW_TOKEN): query one line\n"
    "per transaction, show a transaction as JSON, export AuditEvents as NDJSON, verify\n"
    "the hash chain (exit 3 when the log was altered)",
    {"gateway/cli/audit_command.cc"},
    {"target", "token", "tls_ca_file", "timeout_ms", "clinic"},
    AuditMain};

}  // namespace fhirgw::gateway
