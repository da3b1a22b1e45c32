#include "gateway/inbound/inbound.h"

#include <future>
#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "base/clock.h"
#include "base/digest.h"
#include "fhir/json.h"
#include "fhir/json_parse.h"
#include "fhir/status_macros.h"
#include "gateway/ops/log.h"
#include "gateway/service/push_service.h"
#include "mappers/registry.h"
#include "mappers/safety.h"
#include "rapidjson/document.h"

namespace fhirgw::gateway {
namespace {

constexpr char kFhirJson[] = "application/fhir+json";
// Caps per request, so that one hostile Bundle cannot take the gateway's memory: entries mapped,
// and issues answered (the rest summed up in one issue).
constexpr size_t kMaxBundleEntries = 1000;
constexpr size_t kMaxIssues = 100;

void Reply(httplib::Response& res, int status, const fhir::JsonValue& body) {
  res.status = status;
  res.set_content(fhir::WriteJson(body, fhir::JsonStyle::kCompact), kFhirJson);
}

void ReplyOutcome(httplib::Response& res, int status, const fhir::IssueList& issues,
                  absl::string_view code) {
  fhir::JsonDocument doc;
  if (issues.size() > kMaxIssues) {
    fhir::IssueList capped(issues.begin(), issues.begin() + kMaxIssues);
    capped.push_back(
        {"", absl::StrCat("too many issues: ", issues.size() - kMaxIssues, " more are not shown")});
    fhir::Json outcome = fhir::OperationOutcome(capped, code, doc.GetAllocator());
    Reply(res, status, outcome.value());
    return;
  }
  fhir::Json outcome = fhir::OperationOutcome(issues, code, doc.GetAllocator());
  Reply(res, status, outcome.value());
}

void ReplyError(httplib::Response& res, int status, absl::string_view path,
                absl::string_view message, absl::string_view code) {
  ReplyOutcome(res, status, {fhir::Issue{std::string(path), std::string(message)}}, code);
}

// Parses the request `body` into `doc`; otherwise answers 400 with what was wrong (hostile input
// included: fhir/json_parse.h bounds nesting and refuses invalid UTF-8) and returns false.
bool BodyIsJsonObject(absl::string_view body, rapidjson::Document& doc, httplib::Response& res,
                      absl::string_view path) {
  const absl::Status parsed = fhir::ParseJson(body, doc);
  if (parsed.ok() && doc.IsObject()) return true;
  ReplyError(res, 400, path,
             parsed.ok() ? "the body is not a JSON object"
                         : absl::StrCat("the body is not valid JSON: ", parsed.message()),
             "structure");
  return false;
}

// The index N of "Bundle.entry[N]..." issue paths, or -1.
int EntryIndexOf(absl::string_view path) {
  if (!absl::ConsumePrefix(&path, "Bundle.entry[")) return -1;
  const size_t close = path.find(']');
  int index = -1;
  if (close == absl::string_view::npos || !absl::SimpleAtoi(path.substr(0, close), &index)) {
    return -1;
  }
  return index;
}

std::string LocationOf(const RoutedRecord& routed, const AppendResult& appended) {
  return absl::StrCat(routed.source.source_type, "/", appended.transaction_id, "/_history/",
                      appended.version);
}

}  // namespace

InboundService::InboundService(Store& store, const v1::GatewayConfig& config, InboundHub& hub,
                               MetricsRegistry& metrics, const Authenticator& auth)
    : store_(store), config_(config), hub_(hub), metrics_(metrics), auth_(auth) {}

std::optional<Principal> InboundService::Admit(const httplib::Request& req,
                                               httplib::Response& res) const {
  absl::StatusOr<Principal> who = auth_.FromHttp(req);
  absl::Status status = who.status();
  // Compatibility: before security.credentials, configured inbound tokens were required even
  // though everything else was open. The development principal does not replace them.
  if (who.ok() && who->development && !config_.inbound().bearer_token_sha256().empty()) {
    status = absl::UnauthenticatedError(
        "a valid bearer token is required (inbound.bearer_token_sha256)");
  }
  if (status.ok()) status = Authorize(*who, Action::kInboundFhir, {});
  if (status.ok()) return *std::move(who);
  LogWarning(absl::StrCat("inbound FHIR from ", req.remote_addr, ": ",
                          absl::StatusCodeToString(status.code()), ": ", status.message()));
  if (absl::IsUnauthenticated(status)) {
    res.set_header("WWW-Authenticate", "Bearer realm=\"fhirgw\"");
    ReplyError(res, 401, "", status.message(), "login");
  } else {
    ReplyError(res, 403, "", status.message(), "forbidden");
  }
  return std::nullopt;
}

absl::Status InboundService::Route(std::vector<mappers::ReverseRecord>& records,
                                   const KnownPatient* patient, std::vector<RoutedRecord>& routed,
                                   fhir::IssueList& issues) {
  for (mappers::ReverseRecord& source : records) {
    std::vector<PatientMatch> matches;
    if (patient != nullptr) {
      matches.push_back({patient->clinic_id, patient->clinic_patient_id});
    } else {
      // Known identifiers, and literal Patient/<id> references as the EHRs behind our destinations
      // named them when they accepted our Patients.
      std::vector<std::string> keys;
      for (const std::string& id : source.patient_identifiers) {
        if (absl::StartsWith(id, "Patient/")) {
          for (const v1::Destination& d : config_.destinations()) {
            keys.push_back(absl::StrCat(d.name(), "|", id));
          }
        } else {
          keys.push_back(id);
        }
      }
      FHIRGW_ASSIGN_OR_RETURN(matches, store_.FindPatient(keys));
      if (matches.empty()) {
        for (const v1::InboundRoute& rule : config_.inbound().routes()) {
          for (const std::string& id : source.patient_identifiers) {
            if (absl::StartsWith(id, absl::StrCat(rule.patient_identifier_system(), "|"))) {
              matches.push_back({rule.clinic_id(), ""});
            }
          }
        }
      }
    }
    if (matches.empty()) {
      issues.push_back(
          {absl::StrCat(source.source_type, ".subject"),
           absl::StrCat(
               "no clinic is known for this patient",
               source.patient_identifiers.empty()
                   ? " (the resource names no patient identifier)"
                   : absl::StrCat(" (", absl::StrJoin(source.patient_identifiers, ", "), ")"))});
      continue;
    }
    std::set<std::string> clinics;
    for (const PatientMatch& match : matches) {
      if (!clinics.insert(match.clinic_id).second) continue;
      // A search at the EHR also returns what the clinic itself sent there: not news to the clinic.
      FHIRGW_ASSIGN_OR_RETURN(bool own, store_.HasRecord(match.clinic_id, source.record.record_id(),
                                                         v1::CLINIC_TO_EHR));
      if (own) continue;
      RoutedRecord r{source, source.record};
      r.record.set_clinic_id(match.clinic_id);
      if (!match.clinic_patient_id.empty()) {
        r.record.mutable_patient()->set_clinic_patient_id(match.clinic_patient_id);
      }
      routed.push_back(std::move(r));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::vector<AppendResult>> InboundService::Log(
    const std::vector<RoutedRecord>& routed, absl::string_view json, absl::string_view source,
    absl::string_view principal) {
  std::vector<NewEntry> entries;
  const int64_t now = base::UnixMillis();
  for (const RoutedRecord& r : routed) {
    NewEntry e;
    e.clinic_id = r.record.clinic_id();
    e.record_id = r.record.record_id();
    e.patient_id = r.record.patient().clinic_patient_id();
    e.record = DeterministicBytes(r.record);
    e.content_hash = base::Sha256(e.record);
    e.kind = mappers::RecordKindOf(r.record);
    e.direction = v1::EHR_TO_CLINIC;
    e.destination = std::string(source);
    e.fhir_json = std::string(json);
    e.principal = std::string(principal.empty() ? source : principal);
    e.received_at_ms = now;
    // Hospital data raises the same alerts as clinic data (a hospital PHQ-9 with item 9 > 0).
    e.alerts = mappers::SafetyAlerts(r.record);
    for (const v1::Alert& alert : e.alerts) {
      LogWarning(absl::StrCat("inbound record ", e.record_id, " for ", e.clinic_id,
                              " raised alert ", v1::Alert::Kind_Name(alert.kind())));
    }
    entries.push_back(std::move(e));
  }
  std::promise<absl::StatusOr<std::vector<AppendResult>>> promise;
  std::future<absl::StatusOr<std::vector<AppendResult>>> future = promise.get_future();
  store_.AppendAll(std::move(entries), [&promise](absl::StatusOr<std::vector<AppendResult>> r) {
    promise.set_value(std::move(r));
  });
  absl::StatusOr<std::vector<AppendResult>> results = future.get();
  if (!results.ok()) return results.status();
  std::set<std::string> clinics;
  for (size_t i = 0; i < results->size(); ++i) {
    if (!(*results)[i].duplicate) clinics.insert(routed[i].record.clinic_id());
  }
  for (const std::string& clinic : clinics) hub_.Publish(clinic);
  return results;
}

absl::StatusOr<InboundService::Outcome> InboundService::Ingest(absl::string_view json,
                                                               absl::string_view source,
                                                               const KnownPatient* patient,
                                                               bool all_or_nothing,
                                                               absl::string_view principal) {
  Outcome outcome;
  mappers::ReverseContext context;
  if (patient != nullptr) context = mappers::ReverseContext::ForTenant(patient->clinic_id);
  absl::StatusOr<std::vector<mappers::ReverseRecord>> records =
      mappers::MapFromFhir(json, context, outcome.issues);
  if (!records.ok()) {
    // Nothing could be mapped; `issues` says why, element by element.
    if (outcome.issues.empty())
      outcome.issues.push_back({"", std::string(records.status().message())});
    return outcome;
  }
  FHIRGW_RETURN_IF_ERROR(Route(*records, patient, outcome.routed, outcome.issues));
  if (all_or_nothing && fhir::HasErrors(outcome.issues)) {
    outcome.routed.clear();
    return outcome;
  }
  FHIRGW_ASSIGN_OR_RETURN(outcome.appended, Log(outcome.routed, json, source, principal));
  int added = 0;
  for (const AppendResult& a : outcome.appended) added += a.duplicate ? 0 : 1;
  metrics_
      .GetCounter("fhirgw_inbound_records_total", "Hospital records logged for clinics",
                  {{"source", std::string(source)}, {"outcome", "logged"}})
      .Inc(added);
  metrics_
      .GetCounter("fhirgw_inbound_records_total", "Hospital records logged for clinics",
                  {{"source", std::string(source)}, {"outcome", "duplicate"}})
      .Inc(static_cast<double>(outcome.appended.size() - added));
  return outcome;
}

void InboundService::Register(HttpServer& server) {
  // The caller, when it may post and the body is FHIR JSON; otherwise the answer is set.
  auto guard = [this](const httplib::Request& req,
                      httplib::Response& res) -> std::optional<Principal> {
    std::optional<Principal> who = Admit(req, res);
    if (!who) return std::nullopt;
    const std::string type = req.get_header_value("Content-Type");
    if (!absl::StartsWith(type, kFhirJson) && !absl::StartsWith(type, "application/json")) {
      ReplyError(res, 415, "", absl::StrCat("Content-Type must be ", kFhirJson), "not-supported");
      return std::nullopt;
    }
    return who;
  };

  // One resource of the type in the URL.
  server.Post(
      R"(/fhir/([A-Za-z]+))", [this, guard](const httplib::Request& req, httplib::Response& res) {
        const std::optional<Principal> who = guard(req, res);
        if (!who) return;
        const std::string type = req.matches[1];
        rapidjson::Document doc;
        if (!BodyIsJsonObject(req.body, doc, res, type)) return;
        auto rt = doc.FindMember("resourceType");
        if (rt == doc.MemberEnd() || !rt->value.IsString() || type != rt->value.GetString()) {
          ReplyError(res, 400, absl::StrCat(type, ".resourceType"),
                     absl::StrCat("must be '", type, "', the type in the URL"), "invalid");
          return;
        }
        absl::StatusOr<Outcome> outcome = Ingest(req.body, "http", nullptr, true, who->name);
        if (!outcome.ok()) {
          ReplyError(res, 503, "", outcome.status().message(), "transient");
          return;
        }
        if (outcome->appended.empty()) {
          ReplyOutcome(res, 422, outcome->issues, "processing");
          return;
        }
        bool created = false;
        for (const AppendResult& a : outcome->appended) created = created || !a.duplicate;
        res.set_header("Location", absl::StrCat("fhir/", LocationOf(outcome->routed.front(),
                                                                    outcome->appended.front())));
        fhir::IssueList info;
        for (size_t i = 0; i < outcome->appended.size(); ++i) {
          info.push_back({"",
                          absl::StrCat(outcome->appended[i].duplicate ? "already logged" : "logged",
                                       " for clinic ", outcome->routed[i].record.clinic_id(),
                                       " as transaction ", outcome->appended[i].transaction_id),
                          fhir::Issue::Severity::kInformation});
        }
        ReplyOutcome(res, created ? 201 : 200, info, "informational");
      });

  // A transaction (all or nothing) or batch (entry by entry) Bundle.
  server.Post("/fhir", [this, guard](const httplib::Request& req, httplib::Response& res) {
    const std::optional<Principal> who = guard(req, res);
    if (!who) return;
    rapidjson::Document doc;
    if (!BodyIsJsonObject(req.body, doc, res, "Bundle")) return;
    auto rt = doc.FindMember("resourceType");
    auto bt = doc.FindMember("type");
    if (rt == doc.MemberEnd() || !rt->value.IsString() ||
        std::string(rt->value.GetString()) != "Bundle") {
      ReplyError(res, 400, "resourceType",
                 "POST /fhir takes a Bundle; post other resources to "
                 "/fhir/{Type}",
                 "invalid");
      return;
    }
    const std::string bundle_type =
        bt != doc.MemberEnd() && bt->value.IsString() ? bt->value.GetString() : "";
    if (bundle_type != "transaction" && bundle_type != "batch") {
      ReplyError(res, 400, "Bundle.type", "must be transaction or batch", "invalid");
      return;
    }
    if (auto e = doc.FindMember("entry");
        e != doc.MemberEnd() && e->value.IsArray() && e->value.Size() > kMaxBundleEntries) {
      ReplyError(res, 413, "Bundle.entry",
                 absl::StrCat("has ", e->value.Size(), " entries; one Bundle may have at most ",
                              kMaxBundleEntries),
                 "too-costly");
      return;
    }
    const bool transaction = bundle_type == "transaction";
    absl::StatusOr<Outcome> outcome = Ingest(req.body, "http", nullptr, transaction, who->name);
    if (!outcome.ok()) {
      ReplyError(res, 503, "", outcome.status().message(), "transient");
      return;
    }
    if (outcome->appended.empty() && fhir::HasErrors(outcome->issues)) {
      // A transaction is all or nothing; a batch where nothing could be used is refused as well.
      ReplyOutcome(res, transaction ? 400 : 422, outcome->issues, "processing");
      return;
    }
    // Pair each request entry with the record made from it (by resource id or fullUrl) and with
    // the issues found in it.
    const rapidjson::Value* entries = nullptr;
    if (auto e = doc.FindMember("entry"); e != doc.MemberEnd() && e->value.IsArray()) {
      entries = &e->value;
    }
    const int count = entries == nullptr ? 0 : static_cast<int>(entries->Size());
    fhir::JsonDocument out;
    fhir::JsonAlloc& a = out.GetAllocator();
    fhir::Json response = fhir::Json::Object(a);
    response.Str("resourceType", "Bundle")
        .Str("type", transaction ? "transaction-response" : "batch-response");
    fhir::Json list = fhir::Json::Array(a);
    for (int i = 0; i < count; ++i) {
      const rapidjson::Value& entry = (*entries)[i];
      std::string full_url, id;
      if (auto f = entry.FindMember("fullUrl"); f != entry.MemberEnd() && f->value.IsString()) {
        full_url = f->value.GetString();
      }
      if (auto r = entry.FindMember("resource"); r != entry.MemberEnd() && r->value.IsObject()) {
        if (auto idm = r->value.FindMember("id");
            idm != r->value.MemberEnd() && idm->value.IsString()) {
          id = idm->value.GetString();
        }
      }
      fhir::IssueList entry_issues;
      for (const fhir::Issue& issue : outcome->issues) {
        if (EntryIndexOf(issue.path) == i) entry_issues.push_back(issue);
      }
      fhir::Json entry_response = fhir::Json::Object(a);
      if (fhir::HasErrors(entry_issues)) {
        entry_response.Str("status", "422 Unprocessable Entity");
        entry_response.Put("outcome", fhir::OperationOutcome(entry_issues, "processing", a));
      } else {
        std::string status = "200 OK";
        for (size_t k = 0; k < outcome->routed.size(); ++k) {
          const mappers::ReverseRecord& src = outcome->routed[k].source;
          if ((!id.empty() && src.source_id == id) ||
              (!full_url.empty() && src.source_id == full_url)) {
            status = outcome->appended[k].duplicate ? "200 OK" : "201 Created";
            entry_response.Str("location", LocationOf(outcome->routed[k], outcome->appended[k]));
            break;
          }
        }
        entry_response.Str("status", status);
      }
      fhir::Json wrapped = fhir::Json::Object(a);
      wrapped.Put("response", std::move(entry_response));
      list.Push(std::move(wrapped));
    }
    response.Put("entry", std::move(list));
    Reply(res, 200, response.value());
  });
}

}  // namespace fhirgw::gateway
