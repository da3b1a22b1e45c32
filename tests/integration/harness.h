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
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "fhirgw/v1/gateway.grpc.pb.h"
#include "fhirgw/v1/records.pb.h"
#include "grpcpp/grpcpp.h"
#include "gtest/gtest.h"
#include "rapidjson/document.h"
#include "tests/testing/files.h"  // ReadFileOrEmpty, MakeTempDir
#include "tests/testing/subprocess.h"

namespace fhirgw::testing {

// An HTTP answer; status 0 when the request failed (the reason in `body`).
struct HttpAnswer {
  int status = 0;
  std::string body;
  // The response headers as received (empty when the request failed).
  std::vector<std::pair<std::string, std::string>> headers;

  // The first value of the header `name` (case-insensitive); "" when absent.
  std::string Header(const std::string& name) const;
};
// GET (with `headers`) or POST `path` at http://`host_port` (HOST:PORT), with short timeouts.
HttpAnswer HttpGet(const std::string& host_port, const std::string& path,
                   const std::vector<std::pair<std::string, std::string>>& headers = {});
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

// ClinicGateway.WatchInbound read on a thread of its own; the test takes the events with bounded
// waits. Destroying it cancels the call (which also ends after two minutes).
class InboundStream {
 public:
  // Opens WatchInbound on `gateway` for `clinic_id`, after `cursor` when it is set.
  InboundStream(Gateway& gateway, const std::string& clinic_id, const std::string& cursor = "");
  ~InboundStream();
  InboundStream(const InboundStream&) = delete;
  InboundStream& operator=(const InboundStream&) = delete;

  void Cancel() { context_.TryCancel(); }

  // The next event, waiting up to `timeout`; nullopt when none came (or the stream ended).
  std::optional<v1::InboundEvent> Next(std::chrono::milliseconds timeout);
  // Up to `count` events, waiting up to `timeout` in all (fewer when they do not come).
  std::vector<v1::InboundEvent> Take(size_t count, std::chrono::milliseconds timeout);
  // Waits up to `timeout` for the stream to end; its status, nullopt while it is still open.
  std::optional<grpc::Status> WaitEnd(std::chrono::milliseconds timeout);
  // A description of the stream's state, for failure messages.
  std::string State();

 private:
  grpc::ClientContext context_;
  v1::WatchInboundRequest request_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::deque<v1::InboundEvent> events_;  // guarded by mu_
  std::optional<grpc::Status> end_;      // guarded by mu_
  std::thread thread_;
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

// Ends a test that used the directory `root`: removes it, or keeps it and prints where it is when
// the test failed (its configs, gateway logs and data are what a failure is read from).
void RemoveUnlessFailed(const std::string& root);

// The fixture of the integration test suites: one FHIR test server and the example records for
// the suite; per test, a fresh directory and the gateways started in it.
//
//   class PushTest : public IntegrationTest {
//    protected:
//     PushTest() : IntegrationTest("fhirgw-push-it-") {}
//   };
//   TEST_F(PushTest, Delivers) {
//     Gateway* gateway = StartGateway(Settings());
//     ASSERT_NE(gateway, nullptr);
//     ...
//   }
class IntegrationTest : public ::testing::Test {
 protected:
  // `root_prefix` starts the name of each test's directory.
  explicit IntegrationTest(std::string root_prefix) : root_prefix_(std::move(root_prefix)) {}

  static void SetUpTestSuite();
  static void TearDownTestSuite();
  // Resets the FHIR server and makes the test's directory root_.
  void SetUp() override;
  // Stops the gateways, then removes root_ (kept when the test failed).
  void TearDown() override;

  // Settings for a gateway delivering to the suite's FHIR server, with its data in `data` under
  // the test's directory (the same for every gateway of a test, so that a restart finds the log).
  GatewaySettings Settings(const std::string& data = "data") const;
  // Starts a gateway whose config and log are under the test's directory; nullptr (and a test
  // failure with its output) when it does not come up. It runs until TearDown or StopGateways.
  Gateway* StartGateway(const GatewaySettings& settings);
  // Kills the gateways still running.
  void StopGateways() { gateways_.clear(); }
  // The example record of `kind` with these ids (RecordFactory::Make).
  static v1::ClinicRecord Make(RecordKind kind, const std::string& record_id,
                               const std::string& patient_id) {
    return records_->Make(kind, record_id, patient_id);
  }

  static inline std::unique_ptr<FhirServer> ehr_;
  static inline std::unique_ptr<RecordFactory> records_;
  // Why the suite's FHIR server or records are missing; empty when they are there.
  static inline std::string suite_error_;

  std::string root_;
  std::vector<std::unique_ptr<Gateway>> gateways_;

 private:
  std::string root_prefix_;
  int starts_ = 0;
};

}  // namespace fhirgw::testing

#endif  // FHIRGW_TESTS_INTEGRATION_HARNESS_H_
