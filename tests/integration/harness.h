// Real parts for the gateway's integration tests: the loopback FHIR R4 test server
// (tests/node/fhir_server.mjs) and the `fhirgw serve` binary, each a child process on port 0, plus
// clinic records built from examples/ with ids varied by the test.
//
//   std::string error;
//   std::unique_ptr<FhirServer> ehr = FhirServer::Start(&error);
//   ehr->Reset();
//   GatewaySettings settings;
//   settings.ehr_url = ehr->base_url();
//   settings.data_dir = root + "/data";
//   std::unique_ptr<Gateway> gateway = Gateway::Start(settings, root + "/gw1", &error);
//   v1::PushResponse response;
//   grpc::Status status = gateway->Push(records.Make(RecordKind::kInfusion, "inf-1", "P-1"),
//                                       /*wait_for_delivery=*/true, &response);
//   ehr->Count("MedicationAdministration", MainResourceOf(record).identifier);  // 1
//
// Both children write their stderr to a file (not a pipe that a busy test might not drain), which
// Log() returns for failure messages. Helpers that talk to a child report problems with
// ADD_FAILURE and return a value that fails the caller's assertion (-1, an empty string, ...).
#ifndef FHIRGW_TESTS_INTEGRATION_HARNESS_H_
#define FHIRGW_TESTS_INTEGRATION_HARNESS_H_

#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "fhirgw/v1/gateway.grpc.pb.h"
#include "fhirgw/v1/records.pb.h"
#include "grpcpp/grpcpp.h"
#include "rapidjson/document.h"
#include "tests/testing/subprocess.h"

namespace fhirgw::testing {

// Makes a fresh directory under $TMPDIR (or /tmp) whose name starts with `prefix`; empty on error.
std::string MakeTempDir(const std::string& prefix);
// Returns the content of `path`, or "" when it cannot be read.
std::string ReadFileOrEmpty(const std::string& path);

// An HTTP answer; status 0 when the request failed (the reason in `body`).
struct HttpAnswer {
  int status = 0;
  std::string body;
  // The response headers as received (empty when the request failed).
  std::vector<std::pair<std::string, std::string>> headers;

  // The first value of the header `name` (case-insensitive); "" when absent.
  std::string Header(const std::string& name) const;
};
// GET or POST `path` at http://`host_port` (HOST:PORT), with short timeouts.
HttpAnswer HttpGet(const std::string& host_port, const std::string& path);
HttpAnswer HttpPost(const std::string& host_port, const std::string& path,
                    const std::string& json_body);

// Sends `method` ("POST" or "PUT") `path` to http://`host_port` with `body` as `content_type`
// plus `headers`, with the same short timeouts.
HttpAnswer HttpSend(const std::string& host_port, const std::string& method,
                    const std::string& path, const std::string& body,
                    const std::string& content_type,
                    const std::vector<std::pair<std::string, std::string>>& headers = {});

// Parses `json`; a parse error leaves a Document whose HasParseError() is true.
rapidjson::Document ParseJson(const std::string& json);

// The loopback FHIR R4 server ("test EHR") with its admin API.
class FhirServer {
 public:
  // Starts `node tests/node/fhir_server.mjs --port=0` and waits until it listens; nullptr (with
  // `*error` set) when it does not.
  static std::unique_ptr<FhirServer> Start(std::string* error);
  ~FhirServer();

  // http://127.0.0.1:PORT/fhir
  std::string base_url() const;
  const std::string& host_port() const { return host_port_; }

  // POST /$admin/reset: empty repository, stats, request log and faults. False on failure.
  bool Reset();
  // POST /$admin/fault with `json` (one fault or an array run one after the other). False on
  // failure.
  bool SetFault(const std::string& json);
  bool ClearFaults() { return SetFault(R"({"mode":"none"})"); }
  // Stored (current) resources of `type` with `identifier` ("system|value"); -1 on failure.
  int Count(const std::string& type, const std::string& identifier);
  // Count with details: the versionIds of those resources (nullopt on failure).
  std::optional<std::vector<std::string>> VersionIds(const std::string& type,
                                                     const std::string& identifier);
  // All stored resources of `type`; -1 on failure.
  int CountAll(const std::string& type);
  // GET /$admin/stats, parsed (an object; null Value on failure).
  rapidjson::Document Stats();
  // stats.requests: FHIR requests received since the last reset; -1 on failure.
  int64_t Requests();

  // The last `limit` FHIR requests as "METHOD url -> status" lines (GET /$admin/requests).
  std::string RequestLog(int limit);

  // Stops the server (SIGTERM) and waits for it.
  SubprocessResult Stop();
  // The server's stderr so far.
  std::string Log() const { return ReadFileOrEmpty(log_path_); }

 private:
  FhirServer() = default;
  std::unique_ptr<Subprocess> process_;
  std::string dir_;
  std::string log_path_;
  std::string host_port_;
};

// What a gateway is started with; everything else keeps the gateway's defaults.
struct GatewaySettings {
  std::string ehr_url;   // FHIR base URL of the one destination, named "ehr"
  std::string data_dir;  // the SQLite log and outbox; reused across restarts by the caller
  int max_attempts = 8;
  int initial_backoff_ms = 50;
  int max_backoff_ms = 500;
  int concurrency = 4;
  int request_timeout_ms = 15000;
  int drain_timeout_ms = 10000;
  int poll_interval_ms = 50;
  // > 0: the destination's `poll { interval_ms }` (pull from the EHR); 0 leaves polling off.
  int destination_poll_interval_ms = 0;
  // Textproto appended to the config as is, e.g. `inbound { bearer_token_sha256: "..." }`.
  std::string extra_config;
};

// Writes the textproto GatewayConfig for `settings` (listen and http_listen on port 0).
std::string GatewayConfigText(const GatewaySettings& settings);

// One `fhirgw serve --config=FILE` process and a gRPC stub connected to it.
class Gateway {
 public:
  // Writes `run_prefix`.textproto, starts the gateway with its stderr in `run_prefix`.log and waits
  // for both listening lines; nullptr (with `*error` set, including the gateway's output) when it
  // does not come up.
  static std::unique_ptr<Gateway> Start(const GatewaySettings& settings,
                                        const std::string& run_prefix, std::string* error);
  ~Gateway();

  const std::string& grpc_address() const { return grpc_address_; }
  const std::string& http_address() const { return http_address_; }
  v1::ClinicGateway::Stub& stub() { return *stub_; }
  std::shared_ptr<grpc::Channel> channel() { return channel_; }

  // ClinicGateway.Push with a deadline `timeout` from now. Thread-safe.
  grpc::Status Push(const v1::ClinicRecord& record, bool wait_for_delivery,
                    v1::PushResponse* response,
                    std::chrono::milliseconds timeout = std::chrono::seconds(30));
  // ClinicGateway.GetTransaction. Thread-safe.
  grpc::Status GetTransaction(const std::string& transaction_id, v1::Transaction* transaction);
  // Polls GetTransaction (every 25 ms) until `done` holds for the transaction or `timeout` passes;
  // returns whether it held, with the last transaction seen in `*last`.
  bool WaitForTransaction(const std::string& transaction_id,
                          const std::function<bool(const v1::Transaction&)>& done,
                          std::chrono::milliseconds timeout, v1::Transaction* last);
  // WaitForTransaction until the status is `status`.
  bool WaitForStatus(const std::string& transaction_id, v1::TransactionStatus status,
                     std::chrono::milliseconds timeout, v1::Transaction* last);

  // GET `path` on the gateway's HTTP endpoint.
  HttpAnswer Http(const std::string& path) const { return HttpGet(http_address_, path); }
  // The value of the Prometheus sample `series` (e.g. `fhirgw_queue_depth` or
  // `fhirgw_pushes_total{kind="infusion",outcome="accepted"}`) in /metrics; nullopt when absent.
  std::optional<double> Metric(const std::string& series) const;

  // Sends `signal` to the gateway without waiting.
  void Signal(int signal) { process_->Signal(signal); }
  // Waits up to `timeout` for the gateway to exit (fails the test after that, see Subprocess).
  SubprocessResult Wait(std::chrono::milliseconds timeout) { return process_->Wait(timeout); }
  bool running() const { return process_->running(); }

  // The gateway's stderr so far, and a description for failure messages.
  std::string Log() const { return ReadFileOrEmpty(log_path_); }
  std::string Describe() const;

 private:
  Gateway() = default;
  std::unique_ptr<Subprocess> process_;
  std::string log_path_;
  std::string grpc_address_;
  std::string http_address_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::ClinicGateway::Stub> stub_;
};

enum class RecordKind { kInfusion, kMedicationStatement, kQuestionnaire, kEncounter };
inline constexpr RecordKind kAllKinds[] = {RecordKind::kInfusion, RecordKind::kMedicationStatement,
                                           RecordKind::kQuestionnaire, RecordKind::kEncounter};

// Clinic records of every kind, copied from examples/ with the ids a test chooses.
class RecordFactory {
 public:
  // Loads the examples; empty `*error` on success.
  explicit RecordFactory(std::string* error);

  // Returns the example of `kind` with `record_id`, the patient `patient_id` (and an MRN derived
  // from it), and encounter ids derived from `record_id` so that no two records share an
  // Encounter.
  v1::ClinicRecord Make(RecordKind kind, const std::string& record_id,
                        const std::string& patient_id) const;

 private:
  std::map<RecordKind, v1::ClinicRecord> examples_;
};

// Where a record's main resource is at the EHR: its type and "system|value" identifier.
struct ResourceKey {
  std::string type;
  std::string identifier;
};
ResourceKey MainResourceOf(const v1::ClinicRecord& record);
// The identifier of the record's Patient, "urn:fhirgw:<clinic>:patient|<clinic_patient_id>".
std::string PatientIdentifierOf(const v1::ClinicRecord& record);

// "DELIVERED", "RETRYING", ...
std::string StatusName(v1::TransactionStatus status);
// The attempts of `transaction` as "1:503:RETRYABLE_ERROR 2:200:SUCCESS", for messages.
std::string DescribeAttempts(const v1::Transaction& transaction);
// Milliseconds since the epoch of `timestamp`.
int64_t ToMs(const google::protobuf::Timestamp& timestamp);

}  // namespace fhirgw::testing

#endif  // FHIRGW_TESTS_INTEGRATION_HARNESS_H_
