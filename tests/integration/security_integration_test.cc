// Integration tests of authentication, authorization and TLS (issue "Auditors and security",
// section 4), with the real `fhirgw serve` binary and the loopback FHIR R4 server.
//
// 1. The role matrix: every gRPC method (ClinicGateway and AuditService) and every HTTP route,
// called
//    as every role -- a clinic on its own clinic and on another, two hospitals, an unscoped and a
//    scoped auditor, an admin, no credentials and a wrong token -- must answer exactly as the table
//    says: UNAUTHENTICATED / PERMISSION_DENIED (401 / 403 over HTTP), or work (an allowed Push
//    returns a transaction id, an allowed WatchInbound delivers an event, ...).
// 2. TLS and mTLS with a throwaway CA made in the test: a client certificate mapped to a CLINIC
//    credential can push; no client certificate, an unmapped one or one from another CA cannot;
//    plain text to a TLS port fails; HTTPS /healthz works.
// 3. The startup policy: a non-loopback address without TLS and credentials exits non-zero with
//    the reason, --insecure starts anyway, loopback without credentials warns "development mode".
#include <httplib.h>
#include <signal.h>

#include <cctype>
#include <chrono>
#include <csignal>
#include <functional>
#include <memory>
#include <ostream>
#include <string>
#include <tuple>
#include <vector>

#include "fhirgw/v1/audit.grpc.pb.h"
#include "gmock/gmock.h"
#include "google/protobuf/descriptor.h"
#include "gtest/gtest.h"
#include "tests/integration/harness.h"
#include "tests/testing/subprocess.h"
#include "tests/testing/test_certs.h"

namespace fhirgw::testing {
namespace {

using namespace std::chrono_literals;
using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

constexpr char kFhirJson[] = "application/fhir+json";
// The hospital MRN system of the examples (RecordFactory gives patient P the MRN "MRN-P").
constexpr char kMrnSystem[] = "urn:oid:2.16.840.1.113883.3.4711.1";
constexpr char kOrderSystem[] = "urn:oid:2.16.840.1.113883.3.4711.7";

// The bearer tokens of the matrix gateway; the config holds only their SHA-256.
constexpr char kClinicAToken[] = "clinic-a-token-8d0c1f";
constexpr char kHospitalToken[] = "st-olaf-token-51aa90";
constexpr char kOtherHospitalToken[] = "other-hospital-token-77e3";
constexpr char kAuditorToken[] = "auditor-token-0b9d";
constexpr char kAuditorBToken[] = "auditor-b-token-c4f2";
constexpr char kAdminToken[] = "admin-token-2e6a";
constexpr char kWrongToken[] = "not-a-configured-token";

std::string CredentialsConfig() {
  auto cred = [](const std::string& fields, const char* token) {
    return "  credentials { " + fields + " token_sha256: \"" + Sha256Hex(token) + "\" }\n";
  };
  return "security {\n" +
         cred(R"(name: "clinic-a-emr" role: CLINIC clinic_ids: "clinic-a")", kClinicAToken) +
         cred(R"(name: "st-olaf" role: HOSPITAL destinations: "ehr")", kHospitalToken) +
         cred(R"(name: "other-hospital" role: HOSPITAL destinations: "other-ehr")",
              kOtherHospitalToken) +
         cred(R"(name: "auditor-kim" role: AUDITOR)", kAuditorToken) +
         cred(R"(name: "auditor-b" role: AUDITOR clinic_ids: "clinic-b")", kAuditorBToken) +
         cred(R"(name: "admin" role: ADMIN)", kAdminToken) + "}\n";
}

std::string MedicationRequestJson(const std::string& order, const std::string& mrn) {
  return std::string(R"({"resourceType":"MedicationRequest","id":")") + order +
         R"(","identifier":[{"system":")" + kOrderSystem + R"(","value":")" + order +
         R"("}],"status":"active","intent":"order","medicationCodeableConcept":{"coding":[{)" +
         R"("system":"http://www.nlm.nih.gov/research/umls/rxnorm","code":"197591",)" +
         R"("display":"diazepam 5 MG Oral Tablet"}]},"subject":{"identifier":{"system":")" +
         kMrnSystem + R"(","value":")" + mrn + R"("}},"authoredOn":"2026-01-10"})";
}

std::string TransactionBundleJson(const std::string& resource) {
  return R"({"resourceType":"Bundle","type":"transaction","entry":[{"fullUrl":)"
         R"("urn:uuid:6f1c2a4e-0000-4000-8000-000000000001","resource":)" +
         resource + R"(,"request":{"method":"POST","url":"MedicationRequest"}}]})";
}

// ---- the matrix gateway ------------------------------------------------------------------------

// One FHIR server and one gateway with every kind of credential, shared by the matrix tests of
// this process; seeded with a clinic-a and a clinic-b transaction and an inbound event for
// clinic-a.
struct MatrixEnv {
  std::string root;
  std::unique_ptr<FhirServer> ehr;
  std::unique_ptr<Gateway> gateway;
  std::unique_ptr<v1::ClinicGateway::Stub> clinic_stub;
  std::unique_ptr<v1::AuditService::Stub> audit_stub;
  std::unique_ptr<RecordFactory> records;
  std::string tx_a;  // a clinic-a transaction (destination "ehr")
  std::string tx_b;  // a clinic-b transaction

  const std::string& TransactionOf(const std::string& clinic) const {
    return clinic == "clinic-b" ? tx_b : tx_a;
  }
};

void AddToken(grpc::ClientContext& context, const char* token) {
  if (token != nullptr) context.AddMetadata("authorization", std::string("Bearer ") + token);
}

void SetDeadline(grpc::ClientContext& context, std::chrono::milliseconds timeout = 15s) {
  context.set_deadline(std::chrono::system_clock::now() + timeout);
}

// Starts the shared environment on first use; nullptr (with `*error`) when it cannot.
MatrixEnv* SharedEnv(std::string* error) {
  static MatrixEnv* env = nullptr;
  static std::string setup_error;
  static bool tried = false;
  if (tried) {
    *error = setup_error;
    return env;
  }
  tried = true;
  auto fresh = std::make_unique<MatrixEnv>();
  fresh->root = MakeTempDir("fhirgw-security-");
  fresh->ehr = FhirServer::Start(&setup_error);
  if (fresh->ehr == nullptr || !fresh->ehr->Reset()) {
    setup_error = "the FHIR server did not start: " + setup_error;
    *error = setup_error;
    return nullptr;
  }
  fresh->records = std::make_unique<RecordFactory>(&setup_error);
  if (!setup_error.empty()) {
    *error = setup_error;
    return nullptr;
  }
  GatewaySettings settings;
  settings.ehr_url = fresh->ehr->base_url();
  settings.data_dir = fresh->root + "/data";
  settings.extra_config = CredentialsConfig();
  fresh->gateway = Gateway::Start(settings, fresh->root + "/gw", &setup_error);
  if (fresh->gateway == nullptr) {
    *error = setup_error;
    return nullptr;
  }
  fresh->clinic_stub = v1::ClinicGateway::NewStub(fresh->gateway->channel());
  fresh->audit_stub = v1::AuditService::NewStub(fresh->gateway->channel());

  // Seed, as the admin: one transaction per clinic, and hospital data for the clinic-a patient.
  for (const auto& [clinic, patient, out] :
       {std::tuple<std::string, std::string, std::string*>{"clinic-a", "PA-1", &fresh->tx_a},
        {"clinic-b", "PB-1", &fresh->tx_b}}) {
    v1::PushRequest request;
    *request.mutable_record() =
        fresh->records->Make(RecordKind::kMedicationStatement, "seed-" + clinic, patient);
    request.mutable_record()->set_clinic_id(clinic);
    request.set_wait_for_delivery(true);
    grpc::ClientContext context;
    SetDeadline(context, 30s);
    AddToken(context, kAdminToken);
    v1::PushResponse response;
    const grpc::Status status = fresh->clinic_stub->Push(&context, request, &response);
    if (!status.ok() || response.transaction_id().empty()) {
      setup_error = "seeding push for " + clinic + " failed: " + status.error_message() + "\n" +
                    fresh->gateway->Describe();
      *error = setup_error;
      return nullptr;
    }
    *out = response.transaction_id();
  }
  const HttpAnswer inbound =
      HttpSend(fresh->gateway->http_address(), "POST", "/fhir/MedicationRequest",
               MedicationRequestJson("ORD-SEED", "MRN-PA-1"), kFhirJson,
               {{"Authorization", std::string("Bearer ") + kHospitalToken}});
  if (inbound.status != 201) {
    setup_error = "seeding inbound FHIR failed: " + std::to_string(inbound.status) + " " +
                  inbound.body + "\n" + fresh->gateway->Describe();
    *error = setup_error;
    return nullptr;
  }
  env = fresh.release();  // lives until the process exits; the children die with it
  return env;
}

// ---- roles and expectations --------------------------------------------------------------------

struct Role {
  const char* label;
  const char* token;   // nullptr: no authorization metadata or header
  const char* clinic;  // the clinic the caller acts on (record, filter, transaction, stream)
};

// The columns of the matrix, in this order.
const Role kRoles[] = {
    {"clinic_a", kClinicAToken, "clinic-a"},
    {"clinic_a_on_clinic_b", kClinicAToken, "clinic-b"},
    {"hospital", kHospitalToken, "clinic-a"},
    {"other_hospital", kOtherHospitalToken, "clinic-a"},
    {"auditor", kAuditorToken, "clinic-a"},
    {"auditor_b_on_clinic_a", kAuditorBToken, "clinic-a"},
    {"auditor_b", kAuditorBToken, "clinic-b"},
    {"admin", kAdminToken, "clinic-a"},
    {"no_credentials", nullptr, "clinic-a"},
    {"wrong_token", kWrongToken, "clinic-a"},
};
constexpr size_t kRoleCount = sizeof(kRoles) / sizeof(kRoles[0]);

// One cell: Y works, D is denied (PERMISSION_DENIED / 403), U is unauthenticated
// (UNAUTHENTICATED / 401), N is denied by hiding the object (NOT_FOUND: AuditService.GetTransaction
// does not tell a scoped auditor that another clinic's transaction exists).
enum class Expect { kWorks, kDenied, kUnauthenticated, kHidden };

// Parses a row such as "Y D D D D D D Y U U" (one letter per role, spaces ignored).
std::vector<Expect> ParseRow(const std::string& row) {
  std::vector<Expect> cells;
  for (char c : row) {
    if (c == 'Y') cells.push_back(Expect::kWorks);
    if (c == 'D') cells.push_back(Expect::kDenied);
    if (c == 'U') cells.push_back(Expect::kUnauthenticated);
    if (c == 'N') cells.push_back(Expect::kHidden);
  }
  return cells;
}

const char* Name(Expect e) {
  switch (e) {
    case Expect::kWorks:
      return "works";
    case Expect::kDenied:
      return "denied";
    case Expect::kUnauthenticated:
      return "unauthenticated";
    case Expect::kHidden:
      return "hidden (NOT_FOUND)";
  }
  return "?";
}

// ---- the gRPC rows -----------------------------------------------------------------------------

// Calls the method as `role`; an OK status means the call worked and its answer was checked (a
// call answered OK with a useless result returns INTERNAL with the reason).
using GrpcCall = std::function<grpc::Status(MatrixEnv&, const Role&, const std::string& tag)>;

grpc::Status Bad(const std::string& why) { return grpc::Status(grpc::StatusCode::INTERNAL, why); }

v1::ClinicRecord RecordFor(MatrixEnv& env, const Role& role, const std::string& tag) {
  v1::ClinicRecord record =
      env.records->Make(RecordKind::kInfusion, std::string("m-") + tag + "-" + role.label, "PM-1");
  record.set_clinic_id(role.clinic);
  return record;
}

grpc::Status CallPush(MatrixEnv& env, const Role& role, const std::string& tag) {
  grpc::ClientContext context;
  SetDeadline(context);
  AddToken(context, role.token);
  v1::PushRequest request;
  *request.mutable_record() = RecordFor(env, role, tag);
  v1::PushResponse response;
  grpc::Status status = env.clinic_stub->Push(&context, request, &response);
  if (status.ok() && response.transaction_id().empty()) return Bad("no transaction id");
  return status;
}

grpc::Status CallPushStream(MatrixEnv& env, const Role& role, const std::string& tag) {
  grpc::ClientContext context;
  SetDeadline(context);
  AddToken(context, role.token);
  auto stream = env.clinic_stub->PushStream(&context);
  v1::PushRequest request;
  *request.mutable_record() = RecordFor(env, role, tag);
  stream->Write(request);
  stream->WritesDone();
  v1::PushResponse response;
  const bool answered = stream->Read(&response);
  grpc::Status status = stream->Finish();
  if (status.ok() && (!answered || response.transaction_id().empty())) {
    return Bad("the stream ended OK without a transaction id (" + response.ShortDebugString() +
               ")");
  }
  return status;
}

grpc::Status CallTranslate(MatrixEnv& env, const Role& role, const std::string& tag) {
  grpc::ClientContext context;
  SetDeadline(context);
  AddToken(context, role.token);
  v1::TranslateRequest request;
  *request.mutable_record() = RecordFor(env, role, tag);
  v1::TranslateResponse response;
  grpc::Status status = env.clinic_stub->Translate(&context, request, &response);
  if (status.ok() && response.bundle_json().find("\"Bundle\"") == std::string::npos) {
    return Bad("no Bundle: " + response.bundle_json());
  }
  return status;
}

grpc::Status CallGetTransaction(MatrixEnv& env, const Role& role, const std::string&) {
  grpc::ClientContext context;
  SetDeadline(context);
  AddToken(context, role.token);
  v1::GetTransactionRequest request;
  request.set_transaction_id(env.TransactionOf(role.clinic));
  v1::Transaction response;
  grpc::Status status = env.clinic_stub->GetTransaction(&context, request, &response);
  if (status.ok() && (response.transaction_id() != request.transaction_id() ||
                      response.clinic_id() != role.clinic || response.principal() != "admin")) {
    return Bad("unexpected transaction " + response.transaction_id() + " of " +
               response.clinic_id() + " by " + response.principal());
  }
  return status;
}

grpc::Status CallWatchInbound(MatrixEnv& env, const Role& role, const std::string&) {
  grpc::ClientContext context;
  SetDeadline(context);
  AddToken(context, role.token);
  v1::WatchInboundRequest request;
  request.set_clinic_id(role.clinic);
  auto reader = env.clinic_stub->WatchInbound(&context, request);
  v1::InboundEvent event;
  if (reader->Read(&event)) {
    // The seeded hospital record: the stream works. End it.
    context.TryCancel();
    reader->Finish();
    if (event.record().clinic_id() != role.clinic) {
      return Bad("an event of another clinic: " + event.record().clinic_id());
    }
    return grpc::Status::OK;
  }
  grpc::Status status = reader->Finish();
  if (status.ok()) return Bad("the stream ended OK without the seeded event");
  return status;
}

grpc::Status CallReplay(MatrixEnv& env, const Role& role, const std::string&) {
  grpc::ClientContext context;
  SetDeadline(context);
  AddToken(context, role.token);
  v1::ReplayRequest request;
  request.set_clinic_id(role.clinic);  // no dead letters: replays nothing, but answers
  v1::ReplayResponse response;
  return env.clinic_stub->Replay(&context, request, &response);
}

grpc::Status CallQueryTransactions(MatrixEnv& env, const Role& role, const std::string&) {
  grpc::ClientContext context;
  SetDeadline(context);
  AddToken(context, role.token);
  v1::QueryTransactionsRequest request;
  request.set_clinic_id(role.clinic);
  v1::QueryTransactionsResponse response;
  grpc::Status status = env.audit_stub->QueryTransactions(&context, request, &response);
  if (!status.ok()) return status;
  if (response.transactions().empty()) return Bad("no transactions of " + std::string(role.clinic));
  for (const v1::Transaction& t : response.transactions()) {
    if (t.clinic_id() != role.clinic) return Bad("a transaction of " + t.clinic_id());
  }
  return status;
}

grpc::Status CallAuditGetTransaction(MatrixEnv& env, const Role& role, const std::string&) {
  grpc::ClientContext context;
  SetDeadline(context);
  AddToken(context, role.token);
  v1::GetTransactionRequest request;
  request.set_transaction_id(env.TransactionOf(role.clinic));
  v1::Transaction response;
  grpc::Status status = env.audit_stub->GetTransaction(&context, request, &response);
  if (status.ok() && response.transaction_id() != request.transaction_id()) {
    return Bad("another transaction: " + response.transaction_id());
  }
  return status;
}

grpc::Status CallVerifyLog(MatrixEnv& env, const Role& role, const std::string&) {
  grpc::ClientContext context;
  SetDeadline(context);
  AddToken(context, role.token);
  v1::VerifyLogResponse response;
  grpc::Status status = env.audit_stub->VerifyLog(&context, v1::VerifyLogRequest(), &response);
  // Whether the chain verifies is the audit tests' business; here the call must have checked it.
  if (status.ok() && response.entries_checked() == 0) {
    return Bad("nothing was checked: " + response.ShortDebugString());
  }
  return status;
}

grpc::Status CallExportAuditEvents(MatrixEnv& env, const Role& role, const std::string&) {
  grpc::ClientContext context;
  SetDeadline(context);
  AddToken(context, role.token);
  v1::ExportAuditEventsRequest request;
  request.set_clinic_id(role.clinic);
  auto reader = env.audit_stub->ExportAuditEvents(&context, request);
  v1::AuditEventChunk chunk;
  int count = 0;
  bool audit_events = true;
  while (reader->Read(&chunk)) {
    ++count;
    audit_events =
        audit_events && chunk.audit_event_json().find("\"AuditEvent\"") != std::string::npos;
  }
  grpc::Status status = reader->Finish();
  if (status.ok() && (count == 0 || !audit_events)) {
    return Bad("expected AuditEvents, got " + std::to_string(count) + " chunks");
  }
  return status;
}

struct GrpcRow {
  const char* method;  // "fhirgw.v1.Service/Method"
  GrpcCall call;
  //  columns: clinic_a, clinic_a_on_clinic_b, hospital, other_hospital, auditor,
  //           auditor_b_on_clinic_a, auditor_b, admin, no_credentials, wrong_token
  const char* expected;
};

const std::vector<GrpcRow>& GrpcRows() {
  // Columns, as kRoles: cA clinic_a, cB clinic_a acting on clinic-b, Ho hospital, H2
  // other_hospital, Au auditor, Aa auditor_b acting on clinic-a, Ab auditor_b, Ad admin, no no
  // credentials, wr wrong token. Y works, D PERMISSION_DENIED, U UNAUTHENTICATED, N NOT_FOUND.
  // clang-format off
  static const std::vector<GrpcRow> rows = {
      //                                                                        cA cB Ho H2 Au Aa Ab Ad no wr
      {"fhirgw.v1.ClinicGateway/Push",                CallPush,                "Y  D  D  D  D  D  D  Y  U  U"},
      {"fhirgw.v1.ClinicGateway/PushStream",          CallPushStream,          "Y  D  D  D  D  D  D  Y  U  U"},
      {"fhirgw.v1.ClinicGateway/Translate",           CallTranslate,           "Y  D  D  D  D  D  D  Y  U  U"},
      {"fhirgw.v1.ClinicGateway/GetTransaction",      CallGetTransaction,      "Y  D  Y  D  Y  D  Y  Y  U  U"},
      {"fhirgw.v1.ClinicGateway/WatchInbound",        CallWatchInbound,        "Y  D  D  D  D  D  D  Y  U  U"},
      {"fhirgw.v1.ClinicGateway/Replay",              CallReplay,              "D  D  D  D  D  D  D  Y  U  U"},
      {"fhirgw.v1.AuditService/QueryTransactions",    CallQueryTransactions,   "D  D  D  D  Y  D  Y  Y  U  U"},
      {"fhirgw.v1.AuditService/GetTransaction",       CallAuditGetTransaction, "D  D  D  D  Y  N  Y  Y  U  U"},
      {"fhirgw.v1.AuditService/VerifyLog",            CallVerifyLog,           "D  D  D  D  Y  Y  Y  Y  U  U"},
      {"fhirgw.v1.AuditService/ExportAuditEvents",    CallExportAuditEvents,   "D  D  D  D  Y  D  Y  Y  U  U"},
  };
  // clang-format on
  return rows;
}

// "fhirgw.v1.ClinicGateway/Push" -> "ClinicGateway_Push", for test names.
std::string TestName(const std::string& method) {
  std::string name = method.substr(method.rfind('.') + 1);
  for (char& c : name) {
    if (c == '/') c = '_';
  }
  return name;
}

// Failure messages name the row, not its bytes.
void PrintTo(const GrpcRow& row, std::ostream* os) { *os << row.method; }

class GrpcRoleMatrixTest : public ::testing::TestWithParam<GrpcRow> {};

TEST_P(GrpcRoleMatrixTest, AnswersAsTheTableSays) {
  const GrpcRow& row = GetParam();
  const std::vector<Expect> expected = ParseRow(row.expected);
  ASSERT_EQ(expected.size(), kRoleCount) << row.method << ": one cell per role";
  std::string error;
  MatrixEnv* env = SharedEnv(&error);
  ASSERT_NE(env, nullptr) << error;
  const bool audit = std::string(row.method).find("AuditService") != std::string::npos;
  for (size_t i = 0; i < kRoleCount; ++i) {
    const Role& role = kRoles[i];
    const grpc::Status status = row.call(*env, role, TestName(row.method));
    if (audit && status.error_code() == grpc::StatusCode::UNIMPLEMENTED) {
      GTEST_SKIP() << row.method
                   << " answers UNIMPLEMENTED: the AuditService is not registered in this build "
                      "(another change adds it); this row is not checked";
    }
    const std::string cell = std::string(row.method) + " as " + role.label + " (on " + role.clinic +
                             "), expected " + Name(expected[i]) + ", got " +
                             std::to_string(status.error_code()) + " " + status.error_message();
    switch (expected[i]) {
      case Expect::kWorks:
        EXPECT_TRUE(status.ok()) << cell;
        break;
      case Expect::kDenied:
        EXPECT_EQ(status.error_code(), grpc::StatusCode::PERMISSION_DENIED) << cell;
        break;
      case Expect::kUnauthenticated:
        EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << cell;
        break;
      case Expect::kHidden:
        EXPECT_EQ(status.error_code(), grpc::StatusCode::NOT_FOUND) << cell;
        break;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Security, GrpcRoleMatrixTest, ::testing::ValuesIn(GrpcRows()),
                         [](const ::testing::TestParamInfo<GrpcRow>& info) {
                           return TestName(info.param.method);
                         });

// The table has a row for every method of both services, so a new RPC cannot go unchecked.
TEST(GrpcRoleMatrixCoverageTest, EveryMethodHasARow) {
  std::vector<std::string> methods;
  for (const google::protobuf::ServiceDescriptor* service :
       {v1::PushRequest::descriptor()->file()->FindServiceByName("ClinicGateway"),
        v1::VerifyLogRequest::descriptor()->file()->FindServiceByName("AuditService")}) {
    ASSERT_NE(service, nullptr);
    for (int i = 0; i < service->method_count(); ++i) {
      methods.push_back(service->full_name() + "/" + service->method(i)->name());
    }
  }
  ASSERT_EQ(methods.size(), 10u) << "ClinicGateway has 6 methods and AuditService 4";
  for (const std::string& method : methods) {
    bool found = false;
    for (const GrpcRow& row : GrpcRows()) found = found || method == row.method;
    EXPECT_TRUE(found) << method << " has no row in the role matrix";
  }
  EXPECT_EQ(GrpcRows().size(), methods.size());
}

// ---- the HTTP rows -----------------------------------------------------------------------------

using HttpCall = std::function<HttpAnswer(MatrixEnv&, const Role&)>;

std::vector<std::pair<std::string, std::string>> AuthHeader(const Role& role) {
  if (role.token == nullptr) return {};
  return {{"Authorization", std::string("Bearer ") + role.token}};
}

HttpAnswer HttpGetAs(MatrixEnv& env, const Role& role, const std::string& path) {
  return HttpGet(env.gateway->http_address(), path, AuthHeader(role));
}

struct HttpRow {
  const char* route;
  HttpCall call;
  // Checks the body of an allowed call; "" when it shows the call worked.
  std::function<std::string(const HttpAnswer&)> check;
  const char* expected;  // columns as in GrpcRow
};

std::string ExpectBody(const HttpAnswer& answer, const std::string& text) {
  return answer.body.find(text) != std::string::npos ? "" : "no '" + text + "' in the body";
}

HttpAnswer PostResource(MatrixEnv& env, const Role& role) {
  return HttpSend(env.gateway->http_address(), "POST", "/fhir/MedicationRequest",
                  MedicationRequestJson(std::string("ORD-") + role.label, "MRN-PA-1"), kFhirJson,
                  AuthHeader(role));
}

std::string CheckPostResource(const HttpAnswer& a) {
  return a.status == 201 ? ExpectBody(a, "logged for clinic clinic-a") : "not 201";
}

HttpAnswer PostBundle(MatrixEnv& env, const Role& role) {
  return HttpSend(env.gateway->http_address(), "POST", "/fhir",
                  TransactionBundleJson(
                      MedicationRequestJson(std::string("ORD-BUNDLE-") + role.label, "MRN-PA-1")),
                  kFhirJson, AuthHeader(role));
}

std::string CheckPostBundle(const HttpAnswer& a) {
  return a.status == 200 ? ExpectBody(a, "\"201 Created\"") : "not 200";
}

HttpAnswer GetMetrics(MatrixEnv& env, const Role& role) { return HttpGetAs(env, role, "/metrics"); }

std::string CheckMetrics(const HttpAnswer& a) {
  return a.status == 200 ? ExpectBody(a, "fhirgw_pushes_total") : "not 200";
}

HttpAnswer GetHealthz(MatrixEnv& env, const Role& role) { return HttpGetAs(env, role, "/healthz"); }

std::string CheckHealthz(const HttpAnswer& a) {
  return a.status == 200 ? ExpectBody(a, "ok") : "not 200";
}

HttpAnswer GetReadyz(MatrixEnv& env, const Role& role) { return HttpGetAs(env, role, "/readyz"); }

std::string CheckReadyz(const HttpAnswer& a) {
  return a.status == 200 ? ExpectBody(a, "ready") : "not 200";
}

const std::vector<HttpRow>& HttpRows() {
  // Columns as in GrpcRows; Y works (2xx, checked), D 403, U 401 with WWW-Authenticate.
  // clang-format off
  static const std::vector<HttpRow> rows = {
      //                                                      cA cB Ho H2 Au Aa Ab Ad no wr
      {"POST /fhir/{Type}", PostResource, CheckPostResource, "D  D  Y  Y  D  D  D  Y  U  U"},
      {"POST /fhir",        PostBundle,   CheckPostBundle,   "D  D  Y  Y  D  D  D  Y  U  U"},
      {"GET /metrics",      GetMetrics,   CheckMetrics,      "D  D  D  D  Y  Y  Y  Y  U  U"},
      {"GET /healthz",      GetHealthz,   CheckHealthz,      "Y  Y  Y  Y  Y  Y  Y  Y  Y  Y"},
      {"GET /readyz",       GetReadyz,    CheckReadyz,       "Y  Y  Y  Y  Y  Y  Y  Y  Y  Y"},
  };
  // clang-format on
  return rows;
}

void PrintTo(const HttpRow& row, std::ostream* os) { *os << row.route; }

class HttpRoleMatrixTest : public ::testing::TestWithParam<HttpRow> {};

TEST_P(HttpRoleMatrixTest, AnswersAsTheTableSays) {
  const HttpRow& row = GetParam();
  const std::vector<Expect> expected = ParseRow(row.expected);
  ASSERT_EQ(expected.size(), kRoleCount) << row.route << ": one cell per role";
  std::string error;
  MatrixEnv* env = SharedEnv(&error);
  ASSERT_NE(env, nullptr) << error;
  for (size_t i = 0; i < kRoleCount; ++i) {
    const Role& role = kRoles[i];
    const HttpAnswer answer = row.call(*env, role);
    const std::string cell = std::string(row.route) + " as " + role.label + ", expected " +
                             Name(expected[i]) + ", got " + std::to_string(answer.status) + " " +
                             answer.body;
    switch (expected[i]) {
      case Expect::kWorks:
        EXPECT_EQ(row.check(answer), "") << cell;
        break;
      case Expect::kDenied:
        EXPECT_EQ(answer.status, 403) << cell;
        break;
      case Expect::kUnauthenticated:
        EXPECT_EQ(answer.status, 401) << cell;
        EXPECT_THAT(answer.Header("WWW-Authenticate"), HasSubstr("Bearer")) << cell;
        break;
      case Expect::kHidden:
        EXPECT_EQ(answer.status, 404) << cell;
        break;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Security, HttpRoleMatrixTest, ::testing::ValuesIn(HttpRows()),
                         [](const ::testing::TestParamInfo<HttpRow>& info) {
                           std::string name;
                           for (char c : std::string(info.param.route)) {
                             if (std::isalnum(static_cast<unsigned char>(c))) name += c;
                           }
                           return name;
                         });

// The log names the credential that pushed, and a gateway with credentials is not in development
// mode.
TEST(SecurityIntegrationTest, LogsThePrincipalAndRequiresCredentials) {
  std::string error;
  MatrixEnv* env = SharedEnv(&error);
  ASSERT_NE(env, nullptr) << error;
  EXPECT_EQ(CallPush(*env, kRoles[1], "refused").error_code(), grpc::StatusCode::PERMISSION_DENIED);
  EXPECT_EQ(CallPush(*env, kRoles[9], "refused").error_code(), grpc::StatusCode::UNAUTHENTICATED);
  grpc::ClientContext push_context;
  SetDeadline(push_context);
  AddToken(push_context, kClinicAToken);
  v1::PushRequest request;
  *request.mutable_record() = env->records->Make(RecordKind::kQuestionnaire, "principal-1", "PA-9");
  request.mutable_record()->set_clinic_id("clinic-a");
  v1::PushResponse pushed;
  ASSERT_TRUE(env->clinic_stub->Push(&push_context, request, &pushed).ok());

  grpc::ClientContext get_context;
  SetDeadline(get_context);
  AddToken(get_context, kAdminToken);
  v1::GetTransactionRequest get;
  get.set_transaction_id(pushed.transaction_id());
  v1::Transaction transaction;
  ASSERT_TRUE(env->clinic_stub->GetTransaction(&get_context, get, &transaction).ok());
  EXPECT_EQ(transaction.principal(), "clinic-a-emr");

  EXPECT_THAT(env->gateway->Log(), Not(HasSubstr("development mode")));
  // Refusals are logged with the reason, never with the token.
  EXPECT_THAT(env->gateway->Log(),
              AllOf(HasSubstr("PERMISSION_DENIED"), HasSubstr("UNAUTHENTICATED"),
                    Not(HasSubstr(kWrongToken)), Not(HasSubstr(kClinicAToken))));
}

// ---- TLS and mTLS ------------------------------------------------------------------------------

class TlsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    // A TLS client whose handshake the server refuses may write to a closed socket: that must
    // fail the request, not kill the test.
    std::signal(SIGPIPE, SIG_IGN);
    root_ = MakeTempDir("fhirgw-tls-");
    ASSERT_FALSE(root_.empty());
    std::string error;
    ca_ = TestCa::Create("fhirgw test CA", &error);
    ASSERT_NE(ca_, nullptr) << error;
    other_ca_ = TestCa::Create("someone else's CA", &error);
    ASSERT_NE(other_ca_, nullptr) << error;
    const KeyPair server = ca_->Issue("localhost", CertUse::kServer, {"localhost"}, {"127.0.0.1"});
    ASSERT_FALSE(server.cert_pem.empty()) << ca_->error();
    clinic_cert_ = ca_->Issue("lakeside-emr.example.org", CertUse::kClient);
    unmapped_cert_ = ca_->Issue("unknown-device", CertUse::kClient);
    // The mapped CN, but signed by a CA the gateway does not trust.
    forged_cert_ = other_ca_->Issue("lakeside-emr.example.org", CertUse::kClient);
    ASSERT_FALSE(clinic_cert_.cert_pem.empty() || unmapped_cert_.cert_pem.empty() ||
                 forged_cert_.cert_pem.empty());
    for (const auto& [name, content] :
         std::vector<std::pair<std::string, std::string>>{{"ca.pem", ca_->cert_pem()},
                                                          {"server.pem", server.cert_pem},
                                                          {"server.key", server.key_pem},
                                                          {"clinic.pem", clinic_cert_.cert_pem},
                                                          {"clinic.key", clinic_cert_.key_pem},
                                                          {"forged.pem", forged_cert_.cert_pem},
                                                          {"forged.key", forged_cert_.key_pem}}) {
      ASSERT_TRUE(WriteFile(root_ + "/" + name, content)) << name;
    }
    ASSERT_TRUE(records_error_.empty()) << records_error_;
  }
  void TearDown() override { RemoveUnlessFailed(root_); }

  // security.tls for the files of SetUp, with the client CA when `mtls`.
  std::string TlsConfig(bool mtls) const {
    std::string text =
        "  tls { cert_file: \"" + root_ + "/server.pem\" key_file: \"" + root_ + "/server.key\"";
    if (mtls) text += " client_ca_file: \"" + root_ + "/ca.pem\"";
    return text + " }\n";
  }

  GatewaySettings Settings(const std::string& security) const {
    GatewaySettings settings;
    settings.ehr_url = "file:" + root_ + "/outbox";
    settings.data_dir = root_ + "/data";
    settings.extra_config = "security {\n" + security + "}\n";
    return settings;
  }

  std::shared_ptr<grpc::Channel> TlsChannel(const std::string& address,
                                            const KeyPair* client) const {
    grpc::SslCredentialsOptions options;
    options.pem_root_certs = ca_->cert_pem();
    if (client != nullptr) {
      options.pem_private_key = client->key_pem;
      options.pem_cert_chain = client->cert_pem;
    }
    // A fresh connection per channel, so that one test's handshake does not serve another.
    grpc::ChannelArguments args;
    args.SetInt(GRPC_ARG_USE_LOCAL_SUBCHANNEL_POOL, 1);
    return grpc::CreateCustomChannel(address, grpc::SslCredentials(options), args);
  }

  grpc::Status Push(const std::shared_ptr<grpc::Channel>& channel, const std::string& clinic,
                    const char* token, v1::PushResponse* response) {
    grpc::ClientContext context;
    SetDeadline(context, 10s);
    AddToken(context, token);
    v1::PushRequest request;
    *request.mutable_record() =
        records_.Make(RecordKind::kInfusion, "tls-" + std::to_string(++pushes_), "PT-1");
    request.mutable_record()->set_clinic_id(clinic);
    return v1::ClinicGateway::NewStub(channel)->Push(&context, request, response);
  }

  std::string root_;
  std::unique_ptr<TestCa> ca_;
  std::unique_ptr<TestCa> other_ca_;
  KeyPair clinic_cert_;
  KeyPair unmapped_cert_;
  KeyPair forged_cert_;
  std::string records_error_;
  RecordFactory records_{&records_error_};
  int pushes_ = 0;
};

TEST_F(TlsTest, MutualTlsMapsClientCertificatesToCredentials) {
  std::string error;
  std::unique_ptr<Gateway> gateway = Gateway::Start(
      Settings(TlsConfig(/*mtls=*/true) +
               "  credentials { name: \"lakeside-emr\" role: CLINIC clinic_ids: \"clinic-a\" "
               "client_cert_cn: \"lakeside-emr.example.org\" }\n"
               "  credentials { name: \"admin\" role: ADMIN token_sha256: \"" +
               Sha256Hex(kAdminToken) + "\" }\n"),
      root_ + "/gw", &error);
  ASSERT_NE(gateway, nullptr) << error;
  const std::string address = gateway->grpc_address();

  // The mapped certificate pushes for its clinic, and the log names its credential.
  std::shared_ptr<grpc::Channel> clinic = TlsChannel(address, &clinic_cert_);
  v1::PushResponse pushed;
  grpc::Status status = Push(clinic, "clinic-a", nullptr, &pushed);
  ASSERT_TRUE(status.ok()) << status.error_message() << "\n" << gateway->Describe();
  EXPECT_FALSE(pushed.transaction_id().empty());
  {
    grpc::ClientContext context;
    SetDeadline(context, 10s);
    v1::GetTransactionRequest request;
    request.set_transaction_id(pushed.transaction_id());
    v1::Transaction transaction;
    ASSERT_TRUE(
        v1::ClinicGateway::NewStub(clinic)->GetTransaction(&context, request, &transaction).ok());
    EXPECT_EQ(transaction.principal(), "lakeside-emr");
  }
  // ... but not for another clinic.
  v1::PushResponse ignored;
  EXPECT_EQ(Push(clinic, "clinic-b", nullptr, &ignored).error_code(),
            grpc::StatusCode::PERMISSION_DENIED);
  // A bearer token takes precedence over the certificate: as admin, Replay is allowed.
  {
    grpc::ClientContext context;
    SetDeadline(context, 10s);
    AddToken(context, kAdminToken);
    v1::ReplayResponse replayed;
    EXPECT_TRUE(
        v1::ClinicGateway::NewStub(clinic)->Replay(&context, v1::ReplayRequest(), &replayed).ok());
  }

  // A certificate from the CA that maps to no credential: authenticated TLS, but no caller.
  status = Push(TlsChannel(address, &unmapped_cert_), "clinic-a", nullptr, &ignored);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAUTHENTICATED) << status.error_message();
  EXPECT_THAT(status.error_message(), HasSubstr("unknown-device"));

  // No client certificate, or one from another CA: the handshake fails.
  status = Push(TlsChannel(address, nullptr), "clinic-a", kAdminToken, &ignored);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  status = Push(TlsChannel(address, &forged_cert_), "clinic-a", nullptr, &ignored);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();
  // Plain text to the TLS port fails.
  status = Push(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()), "clinic-a",
                kAdminToken, &ignored);
  EXPECT_EQ(status.error_code(), grpc::StatusCode::UNAVAILABLE) << status.error_message();

  // HTTPS on the HTTP listener: /healthz is open, /metrics needs ADMIN or AUDITOR.
  const std::string http = gateway->http_address();
  const int port = std::stoi(http.substr(http.rfind(':') + 1));
  auto https = [&](const std::string& cert, const std::string& key) {
    auto client = cert.empty() ? std::make_unique<httplib::SSLClient>("127.0.0.1", port)
                               : std::make_unique<httplib::SSLClient>(
                                     "127.0.0.1", port, root_ + "/" + cert, root_ + "/" + key);
    client->set_ca_cert_path((root_ + "/ca.pem").c_str());
    client->enable_server_certificate_verification(true);
    client->set_connection_timeout(5, 0);
    client->set_read_timeout(10, 0);
    return client;
  };
  httplib::Result healthz = https("", "")->Get("/healthz");
  ASSERT_TRUE(healthz) << httplib::to_string(healthz.error()) << "\n" << gateway->Describe();
  EXPECT_EQ(healthz->status, 200);
  EXPECT_EQ(healthz->body, "ok\n");
  httplib::Result anonymous = https("", "")->Get("/metrics");
  ASSERT_TRUE(anonymous) << httplib::to_string(anonymous.error());
  EXPECT_EQ(anonymous->status, 401);
  httplib::Result as_admin =
      https("", "")->Get("/metrics", {{"Authorization", std::string("Bearer ") + kAdminToken}});
  ASSERT_TRUE(as_admin) << httplib::to_string(as_admin.error());
  EXPECT_EQ(as_admin->status, 200);
  httplib::Result as_clinic = https("clinic.pem", "clinic.key")->Get("/metrics");
  ASSERT_TRUE(as_clinic) << httplib::to_string(as_clinic.error());
  EXPECT_EQ(as_clinic->status, 403) << "the clinic's certificate is recognised, and is no ADMIN";
  EXPECT_THAT(as_clinic->body, HasSubstr("lakeside-emr"));
  // A certificate from another CA is refused in the handshake.
  EXPECT_FALSE(https("forged.pem", "forged.key")->Get("/healthz"));
  // Plain HTTP to the HTTPS port gets no answer.
  EXPECT_EQ(HttpGet(http, "/healthz").status, 0);
}

// TLS without client certificates, bearer tokens, on a non-loopback address: allowed without
// --insecure.
TEST_F(TlsTest, TokensOverTlsOnAnyAddress) {
  const std::string config = root_ + "/tls-only.textproto";
  GatewaySettings settings = Settings(TlsConfig(/*mtls=*/false) +
                                      "  credentials { name: \"clinic-a-emr\" role: CLINIC "
                                      "clinic_ids: \"clinic-a\" token_sha256: \"" +
                                      Sha256Hex(kClinicAToken) + "\" }\n");
  ASSERT_TRUE(WriteFile(config, GatewayConfigText(settings)));
  SubprocessOptions options;
  options.argv = {FHIRGW_BINARY, "serve", "--config=" + config, "--listen=0.0.0.0:0",
                  "--http_listen=0.0.0.0:0"};
  std::string error;
  std::unique_ptr<Subprocess> gateway = Subprocess::Start(options, &error);
  ASSERT_NE(gateway, nullptr) << error;
  ASSERT_TRUE(gateway->WaitForText(Subprocess::Stream::kStdout, "http listening on", 20s))
      << gateway->Describe();
  const std::string out = gateway->out();
  const size_t at = out.find("listening on 0.0.0.0:");
  ASSERT_NE(at, std::string::npos) << out;
  const std::string port = out.substr(at + 21, out.find('\n', at) - at - 21);
  const std::string address = "127.0.0.1:" + port;

  std::shared_ptr<grpc::Channel> channel = TlsChannel(address, nullptr);
  v1::PushResponse pushed;
  grpc::Status status = Push(channel, "clinic-a", kClinicAToken, &pushed);
  EXPECT_TRUE(status.ok()) << status.error_message() << "\n" << gateway->Describe();
  EXPECT_FALSE(pushed.transaction_id().empty());
  EXPECT_EQ(Push(channel, "clinic-a", nullptr, &pushed).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_EQ(Push(channel, "clinic-a", kWrongToken, &pushed).error_code(),
            grpc::StatusCode::UNAUTHENTICATED);
  EXPECT_THAT(gateway->err(), Not(HasSubstr("development mode")));
  const SubprocessResult result = gateway->Terminate(20s);
  EXPECT_TRUE(result.ExitedWith(0)) << result.Describe();
}

// ---- the startup policy ------------------------------------------------------------------------

class StartupPolicyTest : public ::testing::Test {
 protected:
  void SetUp() override {
    root_ = MakeTempDir("fhirgw-startup-");
    ASSERT_FALSE(root_.empty());
  }
  void TearDown() override { RemoveUnlessFailed(root_); }

  // Writes a config with a file destination plus `extra` and returns its path.
  std::string Config(const std::string& extra = "") const {
    GatewaySettings settings;
    settings.ehr_url = "file:" + root_ + "/outbox";
    settings.data_dir = root_ + "/data";
    settings.extra_config = extra;
    const std::string path = root_ + "/gateway.textproto";
    EXPECT_TRUE(WriteFile(path, GatewayConfigText(settings)));
    return path;
  }

  std::string root_;
};

TEST_F(StartupPolicyTest, RefusesANonLoopbackAddressWithoutTlsAndCredentials) {
  const SubprocessResult result = RunCommand(
      {FHIRGW_BINARY, "serve", "--config=" + Config(), "--listen=0.0.0.0:0"}, std::nullopt, 20s);
  EXPECT_TRUE(result.ExitedWith(1)) << result.Describe();
  EXPECT_THAT(result.err, HasSubstr("refusing to serve on 0.0.0.0:0 without TLS and credentials; "
                                    "configure security.tls and security.credentials, or pass "
                                    "--insecure"));
  EXPECT_THAT(result.out, Not(HasSubstr("listening on")));

  // Credentials alone are not enough.
  const SubprocessResult tokens_only = RunCommand(
      {FHIRGW_BINARY, "serve",
       "--config=" +
           Config("security { credentials { name: \"admin\" role: ADMIN token_sha256: \"" +
                  Sha256Hex(kAdminToken) + "\" } }"),
       "--http_listen=0.0.0.0:0"},
      std::nullopt, 20s);
  EXPECT_TRUE(tokens_only.ExitedWith(1)) << tokens_only.Describe();
  EXPECT_THAT(tokens_only.err, AllOf(HasSubstr("refusing to serve on 0.0.0.0:0"),
                                     HasSubstr("security.tls is not set")));
}

TEST_F(StartupPolicyTest, InsecureFlagStartsAnyway) {
  SubprocessOptions options;
  options.argv = {FHIRGW_BINARY, "serve", "--config=" + Config(), "--listen=0.0.0.0:0",
                  "--insecure"};
  std::string error;
  std::unique_ptr<Subprocess> gateway = Subprocess::Start(options, &error);
  ASSERT_NE(gateway, nullptr) << error;
  ASSERT_TRUE(gateway->WaitForText(Subprocess::Stream::kStdout, "http listening on", 20s))
      << gateway->Describe();
  const std::string out = gateway->out();
  const size_t at = out.find("listening on 0.0.0.0:");
  ASSERT_NE(at, std::string::npos) << out;
  const std::string address = "127.0.0.1:" + out.substr(at + 21, out.find('\n', at) - at - 21);

  // It serves, in development mode (every caller is ADMIN), and says so loudly.
  std::string records_error;
  RecordFactory records(&records_error);
  ASSERT_TRUE(records_error.empty()) << records_error;
  grpc::ClientContext context;
  SetDeadline(context, 10s);
  v1::PushRequest request;
  *request.mutable_record() = records.Make(RecordKind::kEncounter, "insecure-1", "PI-1");
  v1::PushResponse response;
  const grpc::Status status =
      v1::ClinicGateway::NewStub(grpc::CreateChannel(address, grpc::InsecureChannelCredentials()))
          ->Push(&context, request, &response);
  EXPECT_TRUE(status.ok()) << status.error_message() << "\n" << gateway->Describe();
  EXPECT_TRUE(gateway->WaitForText(Subprocess::Stream::kStderr, "--insecure makes that", 5s))
      << gateway->Describe();
  EXPECT_THAT(gateway->err(), AllOf(HasSubstr("WARN"), HasSubstr("development mode")));
  const SubprocessResult result = gateway->Terminate(20s);
  EXPECT_TRUE(result.ExitedWith(0)) << result.Describe();
}

TEST_F(StartupPolicyTest, LoopbackWithoutCredentialsWarnsDevelopmentMode) {
  GatewaySettings settings;
  settings.ehr_url = "file:" + root_ + "/outbox";
  settings.data_dir = root_ + "/data";
  std::string error;
  std::unique_ptr<Gateway> gateway = Gateway::Start(settings, root_ + "/gw", &error);
  ASSERT_NE(gateway, nullptr) << error;
  EXPECT_THAT(gateway->Log(), AllOf(HasSubstr("WARN"), HasSubstr("development mode"),
                                    HasSubstr(gateway->grpc_address().substr(0, 10))));
  // Development mode: /metrics and Replay are open to anyone on loopback.
  EXPECT_EQ(gateway->Http("/metrics").status, 200);
}

TEST_F(StartupPolicyTest, BadCredentialsExitWithTheField) {
  const SubprocessResult result = RunCommand(
      {FHIRGW_BINARY, "serve",
       "--config=" +
           Config("security { credentials { name: \"a\" role: ADMIN token_sha256: \"1234\" }\n"
                  "           credentials { name: \"c\" role: CLINIC token_sha256: \"" +
                  Sha256Hex("x") + "\" } }")},
      std::nullopt, 20s);
  EXPECT_TRUE(result.ExitedWith(2)) << result.Describe();
  EXPECT_THAT(result.err, AllOf(HasSubstr("security.credentials[0].token_sha256: must be 64 hex"),
                                HasSubstr("security.credentials[1].clinic_ids: a CLINIC "
                                          "credential needs at least one clinic id")));
}

}  // namespace
}  // namespace fhirgw::testing
