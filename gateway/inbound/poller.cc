#include "gateway/inbound/poller.h"

#include <chrono>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "fhir/json_parse.h"
#include "fhir/status_macros.h"
#include "gateway/delivery/fhir_client.h"
#include "gateway/delivery/oauth.h"
#include "gateway/ops/log.h"
#include "rapidjson/document.h"

namespace fhirgw::gateway {
namespace {

constexpr const char* kDefaultTypes[] = {"MedicationStatement", "MedicationRequest", "Observation"};
// Observations worth passing on: the PHQ-9, GAD-7 and PHQ-2 totals and panels.
constexpr char kScoreCodes[] =
    "http://loinc.org|44261-6,http://loinc.org|70274-6,http://loinc.org|55758-7,"
    "http://loinc.org|44249-1,http://loinc.org|69737-5,http://loinc.org|55757-9";

// Escapes a query value (the characters FHIR search values use are kept readable).
std::string QueryEscape(absl::string_view value) {
  std::string out;
  for (char c : value) {
    if (absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '-' || c == '.' || c == '_' ||
        c == '~' || c == ':' || c == '|' || c == ',' || c == '/') {
      out.push_back(c);
    } else {
      absl::StrAppend(&out, "%", absl::Hex(static_cast<unsigned char>(c), absl::kZeroPad2));
    }
  }
  return out;
}

// The newest meta.lastUpdated of the searchset's resources, and its next-page link.
void ScanSearchset(absl::string_view body, std::string& newest, std::string& next) {
  rapidjson::Document doc;
  if (!fhir::ParseJson(body, doc).ok() || !doc.IsObject()) return;
  if (auto links = doc.FindMember("link"); links != doc.MemberEnd() && links->value.IsArray()) {
    for (const auto& link : links->value.GetArray()) {
      auto relation = link.FindMember("relation");
      auto url = link.FindMember("url");
      if (relation != link.MemberEnd() && url != link.MemberEnd() && relation->value.IsString() &&
          url->value.IsString() && std::string(relation->value.GetString()) == "next") {
        next = url->value.GetString();
      }
    }
  }
  auto entries = doc.FindMember("entry");
  if (entries == doc.MemberEnd() || !entries->value.IsArray()) return;
  for (const auto& entry : entries->value.GetArray()) {
    auto resource = entry.FindMember("resource");
    if (resource == entry.MemberEnd() || !resource->value.IsObject()) continue;
    auto meta = resource->value.FindMember("meta");
    if (meta == resource->value.MemberEnd() || !meta->value.IsObject()) continue;
    auto updated = meta->value.FindMember("lastUpdated");
    if (updated != meta->value.MemberEnd() && updated->value.IsString()) {
      // Instants in one format compare as text; EHRs answer in one format.
      const std::string value = updated->value.GetString();
      if (value > newest) newest = value;
    }
  }
}

}  // namespace

Poller::Poller(Store& store, const v1::GatewayConfig& config, InboundService& inbound)
    : store_(store), config_(config), inbound_(inbound) {}

Poller::~Poller() { Stop(); }

absl::Status Poller::Start() {
  for (const v1::Destination& d : config_.destinations()) {
    if (d.poll().interval_ms() <= 0 || absl::StartsWith(d.base_url(), "file:")) continue;
    threads_.emplace_back([this, &d] { Loop(d); });
  }
  return absl::OkStatus();
}

void Poller::Stop() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stopping_ = true;
    cv_.notify_all();
  }
  for (std::thread& t : threads_) {
    if (t.joinable()) t.join();
  }
  threads_.clear();
}

void Poller::Loop(const v1::Destination& destination) {
  const auto interval = std::chrono::milliseconds(destination.poll().interval_ms());
  // One client (connection and OAuth2 token) for the poller's life.
  absl::StatusOr<std::unique_ptr<FhirClient>> client = absl::InternalError("not created");
  while (!stopping_) {
    if (!client.ok()) {
      absl::StatusOr<std::shared_ptr<TokenSource>> tokens = TokenSourceForDestination(destination);
      client = tokens.ok() ? FhirClient::Create(destination, *tokens)
                           : absl::StatusOr<std::unique_ptr<FhirClient>>(tokens.status());
    }
    absl::StatusOr<int> logged = client.ok() ? PollOnce(destination, **client) : client.status();
    if (!logged.ok()) {
      LogWarning(
          absl::StrCat("poll of ", destination.name(), " failed: ", logged.status().message()));
    } else if (*logged > 0) {
      LogInfo(absl::StrCat("poll of ", destination.name(), ": ", *logged, " new records"));
    }
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, interval, [this] { return stopping_.load(); });
  }
}

absl::StatusOr<int> Poller::PollOnce(const v1::Destination& destination, FhirClient& client) {
  std::vector<std::string> types(destination.poll().resource_types().begin(),
                                 destination.poll().resource_types().end());
  if (types.empty()) types.assign(std::begin(kDefaultTypes), std::end(kDefaultTypes));
  FHIRGW_ASSIGN_OR_RETURN(std::vector<EhrPatient> patients, store_.EhrPatients(destination.name()));
  int logged = 0;
  for (const EhrPatient& patient : patients) {
    const KnownPatient target{patient.clinic_id, patient.clinic_patient_id};
    for (const std::string& type : types) {
      if (stopping_) return logged;
      const std::string key =
          absl::StrCat("poll|", destination.name(), "|", type, "|", patient.ehr_patient_id);
      FHIRGW_ASSIGN_OR_RETURN(std::string since, store_.GetState(key));
      // "Patient/<id>" rather than a bare id: both are valid FHIR, and every server matches this
      // form.
      std::string query = absl::StrCat(type, "?patient=Patient/",
                                       QueryEscape(patient.ehr_patient_id), "&_count=100");
      if (type == "Observation") absl::StrAppend(&query, "&code=", QueryEscape(kScoreCodes));
      if (!since.empty()) absl::StrAppend(&query, "&_lastUpdated=ge", QueryEscape(since));
      std::string newest = since;
      for (int page = 0; page < 100 && !query.empty(); ++page) {
        HttpResult answer = client.Get(query, destination.request_timeout_ms());
        if (answer.http_status != 200) {
          return absl::UnavailableError(
              absl::StrCat("GET ", type, " answered ",
                           answer.http_status ? absl::StrCat(answer.http_status) : answer.error));
        }
        std::string next;
        ScanSearchset(answer.body, newest, next);
        absl::StatusOr<InboundService::Outcome> outcome =
            inbound_.Ingest(answer.body, destination.name(), &target, false);
        if (!outcome.ok()) return outcome.status();
        for (const AppendResult& a : outcome->appended) logged += a.duplicate ? 0 : 1;
        // Follow the next page, given as an absolute URL under the base.
        query.clear();
        if (absl::StartsWith(next, destination.base_url())) {
          query = next.substr(destination.base_url().size());
          if (absl::StartsWith(query, "/")) query.erase(0, 1);
        }
      }
      if (newest != since) FHIRGW_RETURN_IF_ERROR(store_.SetState(key, newest));
    }
  }
  return logged;
}

}  // namespace fhirgw::gateway
