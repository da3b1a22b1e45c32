#include "tests/integration/harness.h"

#include <httplib.h>
#include <signal.h>
#include <stdlib.h>

#include <algorithm>
#include <cctype>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <thread>

#include "gtest/gtest.h"
#include "mappers/record_json.h"

namespace fhirgw::testing {
namespace {

using std::chrono::milliseconds;

constexpr milliseconds kStartTimeout{20000};

// The line of `out` that starts with `prefix`, without it; empty when there is no complete line.
std::string LineAfter(const std::string& out, const std::string& prefix) {
  size_t at = 0;
  while (at < out.size()) {
    const size_t end = out.find('\n', at);
    if (end == std::string::npos) return "";
    if (out.compare(at, prefix.size(), prefix) == 0) {
      return out.substr(at + prefix.size(), end - at - prefix.size());
    }
    at = end + 1;
  }
  return "";
}

// argv that runs `command` with its stderr appended to `log_path`; exec keeps the pid, so signals
// reach the command itself.
std::vector<std::string> WithStderrTo(const std::string& log_path,
                                      const std::vector<std::string>& command) {
  std::vector<std::string> argv = {"/bin/sh", "-c", "exec 2>>\"$0\"; exec \"$@\"", log_path};
  argv.insert(argv.end(), command.begin(), command.end());
  return argv;
}

std::unique_ptr<httplib::Client> ClientFor(const std::string& host_port) {
  auto client = std::make_unique<httplib::Client>("http://" + host_port);
  client->set_connection_timeout(5, 0);
  client->set_read_timeout(20, 0);
  client->set_write_timeout(5, 0);
  return client;
}

HttpAnswer AnswerOf(const httplib::Result& result) {
  HttpAnswer answer;
  if (!result) {
    answer.body = "HTTP request failed: " + httplib::to_string(result.error());
    return answer;
  }
  answer.status = result->status;
  answer.body = result->body;
  for (const auto& [name, value] : result->headers) answer.headers.emplace_back(name, value);
  return answer;
}

std::string ReadExample(const std::string& name, std::string* error) {
  const std::string path = std::string(FHIRGW_SOURCE_DIR) + "/examples/" + name;
  std::string text = ReadFileOrEmpty(path);
  if (text.empty() && error->empty()) *error = "cannot read " + path;
  return text;
}

}  // namespace

HttpAnswer HttpGet(const std::string& host_port, const std::string& path,
                   const std::vector<std::pair<std::string, std::string>>& headers) {
  httplib::Headers extra;
  for (const auto& [name, value] : headers) extra.emplace(name, value);
  return AnswerOf(ClientFor(host_port)->Get(path.c_str(), extra));
}

HttpAnswer HttpPost(const std::string& host_port, const std::string& path,
                    const std::string& json_body) {
  return AnswerOf(ClientFor(host_port)->Post(path.c_str(), json_body, "application/json"));
}

HttpAnswer HttpSend(const std::string& host_port, const std::string& method,
                    const std::string& path, const std::string& body,
                    const std::string& content_type,
                    const std::vector<std::pair<std::string, std::string>>& headers) {
  httplib::Headers extra;
  for (const auto& [name, value] : headers) extra.emplace(name, value);
  std::unique_ptr<httplib::Client> client = ClientFor(host_port);
  if (method == "PUT") {
    return AnswerOf(client->Put(path.c_str(), extra, body, content_type.c_str()));
  }
  if (method != "POST") {
    ADD_FAILURE() << "HttpSend: unsupported method " << method;
    return HttpAnswer{0, "unsupported method " + method, {}};
  }
  return AnswerOf(client->Post(path.c_str(), extra, body, content_type.c_str()));
}

std::string HttpAnswer::Header(const std::string& name) const {
  for (const auto& [key, value] : headers) {
    if (key.size() == name.size() &&
        std::equal(key.begin(), key.end(), name.begin(), [](char a, char b) {
          return std::tolower(static_cast<unsigned char>(a)) ==
                 std::tolower(static_cast<unsigned char>(b));
        })) {
      return value;
    }
  }
  return "";
}

rapidjson::Document ParseJson(const std::string& json) {
  rapidjson::Document doc;
  doc.Parse(json.c_str(), json.size());
  return doc;
}

// --- FhirServer -------------------------------------------------------------------------------

std::unique_ptr<FhirServer> FhirServer::Start(std::string* error) {
  std::unique_ptr<FhirServer> server(new FhirServer());
  server->dir_ = MakeTempDir("fhirgw-ehr-");
  if (server->dir_.empty()) {
    *error = "cannot create a temporary directory";
    return nullptr;
  }
  server->log_path_ = server->dir_ + "/fhir_server.log";
  SubprocessOptions options;
  options.argv =
      WithStderrTo(server->log_path_, {NODE_EXECUTABLE, "tests/node/fhir_server.mjs", "--port=0"});
  options.working_dir = FHIRGW_SOURCE_DIR;
  server->process_ = Subprocess::Start(options, error);
  if (server->process_ == nullptr) return nullptr;
  const bool up = server->process_->WaitUntil(
      [](const std::string& out, const std::string&) {
        return !LineAfter(out, "listening on ").empty();
      },
      kStartTimeout);
  if (!up) {
    *error = "the FHIR test server did not start\n" + server->process_->Describe() + "log:\n" +
             server->Log();
    return nullptr;
  }
  server->host_port_ = LineAfter(server->process_->out(), "listening on ");
  return server;
}

FhirServer::~FhirServer() {
  process_.reset();
  if (!dir_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
}

std::string FhirServer::base_url() const { return "http://" + host_port_ + "/fhir"; }

bool FhirServer::Reset() {
  HttpAnswer answer = HttpPost(host_port_, "/$admin/reset", "{}");
  if (answer.status != 200) {
    ADD_FAILURE() << "POST /$admin/reset: " << answer.status << " " << answer.body;
    return false;
  }
  return true;
}

bool FhirServer::SetFault(const std::string& json) {
  HttpAnswer answer = HttpPost(host_port_, "/$admin/fault", json);
  if (answer.status != 200) {
    ADD_FAILURE() << "POST /$admin/fault " << json << ": " << answer.status << " " << answer.body;
    return false;
  }
  return true;
}

int FhirServer::Count(const std::string& type, const std::string& identifier) {
  httplib::Params params = {{"type", type}, {"identifier", identifier}};
  HttpAnswer answer =
      AnswerOf(ClientFor(host_port_)->Get("/$admin/count", params, httplib::Headers()));
  rapidjson::Document doc = ParseJson(answer.body);
  if (answer.status != 200 || !doc.IsObject() || !doc.HasMember("count") || !doc["count"].IsInt()) {
    ADD_FAILURE() << "GET /$admin/count " << type << " " << identifier << ": " << answer.status
                  << " " << answer.body;
    return -1;
  }
  return doc["count"].GetInt();
}

std::optional<std::vector<std::string>> FhirServer::VersionIds(const std::string& type,
                                                               const std::string& identifier) {
  httplib::Params params = {{"type", type}, {"identifier", identifier}, {"details", "true"}};
  HttpAnswer answer =
      AnswerOf(ClientFor(host_port_)->Get("/$admin/count", params, httplib::Headers()));
  rapidjson::Document doc = ParseJson(answer.body);
  if (answer.status != 200 || !doc.IsObject() || !doc.HasMember("resources") ||
      !doc["resources"].IsArray()) {
    ADD_FAILURE() << "GET /$admin/count (details) " << type << " " << identifier << ": "
                  << answer.status << " " << answer.body;
    return std::nullopt;
  }
  std::vector<std::string> versions;
  for (const rapidjson::Value& resource : doc["resources"].GetArray()) {
    if (resource.IsObject() && resource.HasMember("versionId") &&
        resource["versionId"].IsString()) {
      versions.push_back(resource["versionId"].GetString());
    } else {
      versions.push_back("(none)");
    }
  }
  return versions;
}

int FhirServer::CountAll(const std::string& type) {
  HttpAnswer answer = HttpGet(host_port_, "/$admin/count?type=" + type);
  rapidjson::Document doc = ParseJson(answer.body);
  if (answer.status != 200 || !doc.IsObject() || !doc.HasMember("count") || !doc["count"].IsInt()) {
    ADD_FAILURE() << "GET /$admin/count?type=" << type << ": " << answer.status << " "
                  << answer.body;
    return -1;
  }
  return doc["count"].GetInt();
}

rapidjson::Document FhirServer::Stats() {
  HttpAnswer answer = HttpGet(host_port_, "/$admin/stats");
  rapidjson::Document doc = ParseJson(answer.body);
  if (answer.status != 200 || !doc.IsObject()) {
    ADD_FAILURE() << "GET /$admin/stats: " << answer.status << " " << answer.body;
    doc.SetNull();
  }
  return doc;
}

int64_t FhirServer::Requests() {
  rapidjson::Document stats = Stats();
  if (!stats.IsObject() || !stats.HasMember("requests") || !stats["requests"].IsInt64()) {
    return -1;
  }
  return stats["requests"].GetInt64();
}

std::string FhirServer::RequestLog(int limit) {
  HttpAnswer answer = HttpGet(host_port_, "/$admin/requests?limit=" + std::to_string(limit));
  rapidjson::Document doc = ParseJson(answer.body);
  if (answer.status != 200 || !doc.IsObject() || !doc.HasMember("requests") ||
      !doc["requests"].IsArray()) {
    return "GET /$admin/requests: " + std::to_string(answer.status) + " " + answer.body;
  }
  std::string text;
  for (const rapidjson::Value& request : doc["requests"].GetArray()) {
    if (!request.IsObject()) continue;
    auto field = [&request](const char* name) -> std::string {
      if (!request.HasMember(name)) return "";
      const rapidjson::Value& value = request[name];
      if (value.IsString()) return value.GetString();
      if (value.IsInt64()) return std::to_string(value.GetInt64());
      if (value.IsNumber()) return std::to_string(value.GetDouble());
      return "";
    };
    text += "  " + field("time") + " " + field("method") + " " + field("url") + " -> " +
            field("status");
    if (request.HasMember("fault")) text += " (fault " + field("fault") + ")";
    text += "\n";
  }
  return text;
}

SubprocessResult FhirServer::Stop() { return process_->Terminate(std::chrono::seconds(10)); }

// --- Gateway ----------------------------------------------------------------------------------

std::string GatewayConfigText(const GatewaySettings& s) {
  std::ostringstream text;
  text << "listen: \"127.0.0.1:0\"\n"
       << "http_listen: \"127.0.0.1:0\"\n"
       << "data_dir: \"" << s.data_dir << "\"\n"
       << "drain_timeout_ms: " << s.drain_timeout_ms << "\n"
       << "destinations {\n"
       << "  name: \"ehr\"\n"
       << "  base_url: \"" << s.ehr_url << "\"\n"
       << "  connect_timeout_ms: 2000\n"
       << "  request_timeout_ms: " << s.request_timeout_ms << "\n"
       << "  concurrency: " << s.concurrency << "\n"
       << "  retry { max_attempts: " << s.max_attempts
       << " initial_backoff_ms: " << s.initial_backoff_ms << " max_backoff_ms: " << s.max_backoff_ms
       << " }\n";
  if (s.destination_poll_interval_ms > 0) {
    text << "  poll { interval_ms: " << s.destination_poll_interval_ms << " }\n";
  }
  text << "}\n"
       << "default_destination: \"ehr\"\n"
       << "delivery { poll_interval_ms: " << s.poll_interval_ms << " }\n";
  if (!s.extra_config.empty()) text << s.extra_config << "\n";
  return text.str();
}

std::unique_ptr<Gateway> Gateway::Start(const GatewaySettings& settings,
                                        const std::string& run_prefix, std::string* error) {
  std::unique_ptr<Gateway> gateway(new Gateway());
  const std::string config_path = run_prefix + ".textproto";
  gateway->log_path_ = run_prefix + ".log";
  {
    std::ofstream config(config_path);
    config << GatewayConfigText(settings);
    if (!config) {
      *error = "cannot write " + config_path;
      return nullptr;
    }
  }
  SubprocessOptions options;
  options.argv =
      WithStderrTo(gateway->log_path_, {FHIRGW_BINARY, "serve", "--config=" + config_path});
  options.working_dir = std::filesystem::path(run_prefix).parent_path().string();
  gateway->process_ = Subprocess::Start(options, error);
  if (gateway->process_ == nullptr) return nullptr;
  const bool up = gateway->process_->WaitUntil(
      [](const std::string& out, const std::string&) {
        return !LineAfter(out, "http listening on ").empty();
      },
      kStartTimeout);
  if (!up) {
    *error = "the gateway did not start\n" + gateway->Describe();
    return nullptr;
  }
  gateway->grpc_address_ = LineAfter(gateway->process_->out(), "listening on ");
  gateway->http_address_ = LineAfter(gateway->process_->out(), "http listening on ");
  gateway->channel_ =
      grpc::CreateChannel(gateway->grpc_address_, grpc::InsecureChannelCredentials());
  gateway->stub_ = v1::ClinicGateway::NewStub(gateway->channel_);
  return gateway;
}

Gateway::~Gateway() {
  stub_.reset();
  channel_.reset();
  // A gateway still running at the end of a test is killed by the Subprocess destructor.
}

std::string Gateway::Describe() const {
  return process_->Describe() + "gateway log (stderr):\n" + Log();
}

grpc::Status Gateway::Push(const v1::ClinicRecord& record, bool wait_for_delivery,
                           v1::PushResponse* response, milliseconds timeout) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + timeout);
  v1::PushRequest request;
  *request.mutable_record() = record;
  request.set_wait_for_delivery(wait_for_delivery);
  return stub_->Push(&context, request, response);
}

grpc::Status Gateway::GetTransaction(const std::string& transaction_id,
                                     v1::Transaction* transaction) {
  grpc::ClientContext context;
  context.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(10));
  v1::GetTransactionRequest request;
  request.set_transaction_id(transaction_id);
  return stub_->GetTransaction(&context, request, transaction);
}

bool Gateway::WaitForTransaction(const std::string& transaction_id,
                                 const std::function<bool(const v1::Transaction&)>& done,
                                 milliseconds timeout, v1::Transaction* last) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  while (true) {
    v1::Transaction transaction;
    if (GetTransaction(transaction_id, &transaction).ok()) {
      *last = transaction;
      if (done(transaction)) return true;
    }
    if (std::chrono::steady_clock::now() >= deadline) return false;
    std::this_thread::sleep_for(milliseconds(25));
  }
}

bool Gateway::WaitForStatus(const std::string& transaction_id, v1::TransactionStatus status,
                            milliseconds timeout, v1::Transaction* last) {
  return WaitForTransaction(
      transaction_id, [status](const v1::Transaction& t) { return t.status() == status; }, timeout,
      last);
}

std::optional<double> Gateway::Metric(const std::string& series) const {
  HttpAnswer answer = Http("/metrics");
  if (answer.status != 200) {
    ADD_FAILURE() << "GET /metrics: " << answer.status << " " << answer.body;
    return std::nullopt;
  }
  std::istringstream lines(answer.body);
  std::string line;
  while (std::getline(lines, line)) {
    if (line.size() > series.size() && line.compare(0, series.size(), series) == 0 &&
        line[series.size()] == ' ') {
      return std::strtod(line.c_str() + series.size() + 1, nullptr);
    }
  }
  return std::nullopt;
}

// --- records ----------------------------------------------------------------------------------

RecordFactory::RecordFactory(std::string* error) {
  error->clear();
  const std::pair<RecordKind, const char*> files[] = {
      {RecordKind::kInfusion, "ketamine-infusion.json"},
      {RecordKind::kMedicationStatement, "sertraline-statement.json"},
      {RecordKind::kQuestionnaire, "phq9-item9-positive.json"},
      {RecordKind::kEncounter, "infusion-encounter.json"},
  };
  for (const auto& [kind, file] : files) {
    const std::string json = ReadExample(file, error);
    absl::StatusOr<v1::ClinicRecord> record = mappers::ParseRecordJson(json);
    if (!record.ok()) {
      if (error->empty())
        *error = std::string(file) + ": " + std::string(record.status().message());
      continue;
    }
    examples_[kind] = *std::move(record);
  }
}

v1::ClinicRecord RecordFactory::Make(RecordKind kind, const std::string& record_id,
                                     const std::string& patient_id) const {
  v1::ClinicRecord record = examples_.at(kind);
  record.set_record_id(record_id);
  record.mutable_patient()->set_clinic_patient_id(patient_id);
  for (v1::Identifier& identifier : *record.mutable_patient()->mutable_identifiers()) {
    identifier.set_value("MRN-" + patient_id);
  }
  switch (kind) {
    case RecordKind::kInfusion:
      record.mutable_infusion()->set_encounter_id("enc-" + record_id);
      break;
    case RecordKind::kQuestionnaire:
      record.mutable_questionnaire()->set_encounter_id("enc-" + record_id);
      break;
    case RecordKind::kEncounter:
      record.mutable_encounter()->set_encounter_id(record_id);
      break;
    case RecordKind::kMedicationStatement:
      break;
  }
  return record;
}

ResourceKey MainResourceOf(const v1::ClinicRecord& record) {
  const std::string base = "urn:fhirgw:" + record.clinic_id() + ":";
  switch (record.body_case()) {
    case v1::ClinicRecord::kInfusion:
      return {"MedicationAdministration", base + "medication-administration|" + record.record_id()};
    case v1::ClinicRecord::kMedicationStatement:
      return {"MedicationStatement", base + "medication-statement|" + record.record_id()};
    case v1::ClinicRecord::kQuestionnaire:
      return {"QuestionnaireResponse", base + "questionnaire-response|" + record.record_id()};
    case v1::ClinicRecord::kEncounter:
      return {"Encounter", base + "encounter|" + record.encounter().encounter_id()};
    default:
      return {"(none)", "(none)"};
  }
}

std::string PatientIdentifierOf(const v1::ClinicRecord& record) {
  return "urn:fhirgw:" + record.clinic_id() + ":patient|" + record.patient().clinic_patient_id();
}

std::string StatusName(v1::TransactionStatus status) { return v1::TransactionStatus_Name(status); }

std::string DescribeAttempts(const v1::Transaction& transaction) {
  std::string text;
  for (const v1::DeliveryAttempt& attempt : transaction.attempts()) {
    if (!text.empty()) text += " ";
    text += std::to_string(attempt.number()) + ":" + std::to_string(attempt.http_status()) + ":" +
            v1::DeliveryAttempt::Outcome_Name(attempt.outcome());
    if (!attempt.error().empty()) text += "(" + attempt.error() + ")";
  }
  return "status " + StatusName(transaction.status()) + ", attempts [" + text + "]";
}

int64_t ToMs(const google::protobuf::Timestamp& timestamp) {
  return timestamp.seconds() * 1000 + timestamp.nanos() / 1000000;
}

// --- InboundStream ----------------------------------------------------------------------------

InboundStream::InboundStream(Gateway& gateway, const std::string& clinic_id,
                             const std::string& cursor) {
  context_.set_deadline(std::chrono::system_clock::now() + std::chrono::minutes(2));
  request_.set_clinic_id(clinic_id);
  request_.set_cursor(cursor);
  v1::ClinicGateway::Stub* stub = &gateway.stub();
  thread_ = std::thread([this, stub] {
    std::unique_ptr<grpc::ClientReader<v1::InboundEvent>> reader =
        stub->WatchInbound(&context_, request_);
    v1::InboundEvent event;
    while (reader->Read(&event)) {
      std::lock_guard<std::mutex> lock(mu_);
      events_.push_back(event);
      cv_.notify_all();
    }
    const grpc::Status status = reader->Finish();
    std::lock_guard<std::mutex> lock(mu_);
    end_ = status;
    cv_.notify_all();
  });
}

InboundStream::~InboundStream() {
  Cancel();
  thread_.join();
}

std::optional<v1::InboundEvent> InboundStream::Next(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [this] { return !events_.empty() || end_.has_value(); });
  if (events_.empty()) return std::nullopt;
  v1::InboundEvent event = std::move(events_.front());
  events_.pop_front();
  return event;
}

std::vector<v1::InboundEvent> InboundStream::Take(size_t count, std::chrono::milliseconds timeout) {
  const auto deadline = std::chrono::steady_clock::now() + timeout;
  std::vector<v1::InboundEvent> taken;
  std::unique_lock<std::mutex> lock(mu_);
  while (taken.size() < count) {
    cv_.wait_until(lock, deadline, [this] { return !events_.empty() || end_.has_value(); });
    if (events_.empty()) break;
    taken.push_back(std::move(events_.front()));
    events_.pop_front();
  }
  return taken;
}

std::optional<grpc::Status> InboundStream::WaitEnd(std::chrono::milliseconds timeout) {
  std::unique_lock<std::mutex> lock(mu_);
  cv_.wait_for(lock, timeout, [this] { return end_.has_value(); });
  return end_;
}

std::string InboundStream::State() {
  std::lock_guard<std::mutex> lock(mu_);
  std::string text = std::to_string(events_.size()) + " unread event(s)";
  if (end_.has_value()) {
    text += "; ended with code " + std::to_string(end_->error_code()) + " '" +
            end_->error_message() + "'";
  } else {
    text += "; open";
  }
  return text;
}

// --- IntegrationTest --------------------------------------------------------------------------

void RemoveUnlessFailed(const std::string& root) {
  if (root.empty()) return;
  if (::testing::Test::HasFailure()) {
    std::printf("kept the test's files (configs, gateway logs, data) in %s\n", root.c_str());
    return;
  }
  std::error_code ignored;
  std::filesystem::remove_all(root, ignored);
}

void IntegrationTest::SetUpTestSuite() {
  std::string error;
  ehr_ = FhirServer::Start(&error);
  if (ehr_ == nullptr) suite_error_ = "cannot start the FHIR test server: " + error;
  records_ = std::make_unique<RecordFactory>(&error);
  if (!error.empty()) suite_error_ += "cannot load the examples: " + error;
}

void IntegrationTest::TearDownTestSuite() {
  if (ehr_ != nullptr) ehr_->Stop();
  ehr_.reset();
  records_.reset();
  suite_error_.clear();
}

void IntegrationTest::SetUp() {
  ASSERT_TRUE(suite_error_.empty()) << suite_error_;
  ASSERT_TRUE(ehr_->Reset()) << ehr_->Log();
  root_ = MakeTempDir(root_prefix_);
  ASSERT_FALSE(root_.empty()) << "cannot create a temporary directory";
}

void IntegrationTest::TearDown() {
  StopGateways();
  RemoveUnlessFailed(root_);
}

GatewaySettings IntegrationTest::Settings(const std::string& data) const {
  GatewaySettings settings;
  settings.ehr_url = ehr_->base_url();
  settings.data_dir = root_ + "/" + data;
  return settings;
}

Gateway* IntegrationTest::StartGateway(const GatewaySettings& settings) {
  std::string error;
  std::unique_ptr<Gateway> gateway =
      Gateway::Start(settings, root_ + "/gateway" + std::to_string(++starts_), &error);
  if (gateway == nullptr) {
    ADD_FAILURE() << error;
    return nullptr;
  }
  gateways_.push_back(std::move(gateway));
  return gateways_.back().get();
}

}  // namespace fhirgw::testing
