#include "gateway/config/config.h"

#include <set>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "base/file.h"
#include "fhir/status_macros.h"
#include "google/protobuf/io/tokenizer.h"
#include "google/protobuf/text_format.h"

namespace fhirgw::gateway {
namespace {

class CollectErrors : public google::protobuf::io::ErrorCollector {
 public:
  explicit CollectErrors(std::string name) : name_(std::move(name)) {}
  void AddError(int line, google::protobuf::io::ColumnNumber column,
                const std::string& message) override {
    errors_.push_back(absl::StrCat(name_, ":", line + 1, ":", column + 1, ": ", message));
  }
  void AddWarning(int line, google::protobuf::io::ColumnNumber column,
                  const std::string& message) override {
    AddError(line, column, message);
  }
  std::string Joined() const { return absl::StrJoin(errors_, "; "); }

 private:
  std::string name_;
  std::vector<std::string> errors_;
};

}  // namespace

absl::StatusOr<v1::GatewayConfig> ParseConfig(absl::string_view text, absl::string_view name) {
  v1::GatewayConfig config;
  google::protobuf::TextFormat::Parser parser;
  CollectErrors errors{std::string(name)};
  parser.RecordErrorsTo(&errors);
  parser.SetRecursionLimit(64);  // hostile input: bounded nesting, as for JSON (fhir/json_parse.h)
  if (!parser.ParseFromString(std::string(text), &config)) {
    return absl::InvalidArgumentError(absl::StrCat("config: ", errors.Joined()));
  }
  return config;
}

absl::StatusOr<v1::GatewayConfig> LoadConfigFile(const std::string& path) {
  FHIRGW_ASSIGN_OR_RETURN(std::string text, base::ReadFile(path));
  return ParseConfig(text, path);
}

absl::StatusOr<std::string> ReadConfiguredFile(const std::string& path, absl::string_view field) {
  absl::StatusOr<std::string> data = base::ReadFile(path);
  if (!data.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(field, ": ", data.status().message()));
  }
  return data;
}

void ApplyDefaults(v1::GatewayConfig& config) {
  if (config.listen().empty()) config.set_listen(kDefaultListen);
  if (config.http_listen().empty()) config.set_http_listen(kDefaultHttpListen);
  if (config.data_dir().empty()) config.set_data_dir(kDefaultDataDir);
  if (config.drain_timeout_ms() == 0) config.set_drain_timeout_ms(10000);
  v1::StoreConfig& store = *config.mutable_store();
  if (store.backend_case() == v1::StoreConfig::BACKEND_NOT_SET) store.mutable_sqlite();
  if (store.has_sqlite() && store.sqlite().path().empty()) {
    store.mutable_sqlite()->set_path(absl::StrCat(config.data_dir(), "/fhirgw.db"));
  }
  if (store.has_postgres() && store.postgres().lease_ms() == 0) {
    store.mutable_postgres()->set_lease_ms(30000);
  }
  if (store.max_batch() == 0) store.set_max_batch(256);
  if (config.destinations().empty()) {
    v1::Destination& outbox = *config.add_destinations();
    outbox.set_name(kOutboxDestination);
    outbox.set_base_url(absl::StrCat("file:", config.data_dir(), "/outbox"));
  }
  for (v1::Destination& d : *config.mutable_destinations()) {
    if (d.connect_timeout_ms() == 0) d.set_connect_timeout_ms(5000);
    if (d.request_timeout_ms() == 0) d.set_request_timeout_ms(30000);
    if (d.concurrency() == 0) d.set_concurrency(4);
    v1::RetryPolicy& r = *d.mutable_retry();
    if (r.max_attempts() == 0) r.set_max_attempts(12);
    if (r.initial_backoff_ms() == 0) r.set_initial_backoff_ms(500);
    if (r.multiplier() == 0) r.set_multiplier(2.0);
    if (r.max_backoff_ms() == 0) r.set_max_backoff_ms(300000);
    if (r.jitter() == 0) r.set_jitter(0.2);
  }
  if (config.default_destination().empty()) {
    config.set_default_destination(config.destinations(0).name());
  }
  if (config.delivery().poll_interval_ms() == 0) {
    config.mutable_delivery()->set_poll_interval_ms(200);
  }
}

absl::Status SplitHostPort(absl::string_view address, absl::string_view field, std::string& host,
                           int& port) {
  const size_t colon = address.rfind(':');
  const bool blank = address.find_first_of(" \t\r\n") != absl::string_view::npos;
  if (colon == absl::string_view::npos || colon == 0 || blank ||
      !absl::SimpleAtoi(address.substr(colon + 1), &port) || port < 0 || port > 65535) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": '", address, "' is not HOST:PORT (port 0..65535)"));
  }
  host = std::string(address.substr(0, colon));
  if (host.size() > 2 && host.front() == '[' && host.back() == ']') {
    host = host.substr(1, host.size() - 2);
  }
  return absl::OkStatus();
}

absl::Status ValidateConfig(const v1::GatewayConfig& config) {
  std::vector<std::string> errors;
  std::string host;
  int port = 0;
  if (absl::Status s = SplitHostPort(config.listen(), "listen", host, port); !s.ok()) {
    errors.push_back(std::string(s.message()));
  }
  if (config.http_listen() != "off") {
    if (absl::Status s = SplitHostPort(config.http_listen(), "http_listen", host, port); !s.ok()) {
      errors.push_back(std::string(s.message()));
    }
  }
  std::set<std::string> names;
  for (int i = 0; i < config.destinations_size(); ++i) {
    const v1::Destination& d = config.destinations(i);
    const std::string path = absl::StrCat("destinations[", i, "]");
    if (d.name().empty()) errors.push_back(absl::StrCat(path, ".name: is required"));
    if (!names.insert(d.name()).second) {
      errors.push_back(absl::StrCat(path, ".name: '", d.name(), "' is used twice"));
    }
    const std::string& url = d.base_url();
    if (!absl::StartsWith(url, "http://") && !absl::StartsWith(url, "https://") &&
        !absl::StartsWith(url, "file:")) {
      errors.push_back(
          absl::StrCat(path, ".base_url: '", url, "' must start with http://, https:// or file:"));
    }
    if (absl::StartsWith(url, "file:") && url.size() == 5) {
      errors.push_back(absl::StrCat(path, ".base_url: 'file:' needs a directory"));
    }
    const v1::Auth& auth = d.auth();
    if (auth.has_bearer() && auth.bearer().token().empty() && auth.bearer().token_env().empty() &&
        auth.bearer().token_file().empty()) {
      errors.push_back(absl::StrCat(path, ".auth.bearer: needs token, token_env or token_file"));
    }
    if (auth.has_basic() && auth.basic().username().empty()) {
      errors.push_back(absl::StrCat(path, ".auth.basic.username: is required"));
    }
    if (auth.has_oauth2()) {
      const v1::Auth::OAuth2& o = auth.oauth2();
      if (o.token_url().empty())
        errors.push_back(absl::StrCat(path, ".auth.oauth2.token_url: is required"));
      if (o.client_id().empty())
        errors.push_back(absl::StrCat(path, ".auth.oauth2.client_id: is required"));
      if (o.private_key_file().empty()) {
        errors.push_back(absl::StrCat(path, ".auth.oauth2.private_key_file: is required"));
      }
      if (!o.algorithm().empty() && o.algorithm() != "RS384" && o.algorithm() != "ES384") {
        errors.push_back(absl::StrCat(path, ".auth.oauth2.algorithm: '", o.algorithm(),
                                      "' must be RS384 or ES384"));
      }
    }
    const v1::RetryPolicy& r = d.retry();
    if (r.max_attempts() < 0)
      errors.push_back(absl::StrCat(path, ".retry.max_attempts: must be positive"));
    if (r.multiplier() < 1)
      errors.push_back(absl::StrCat(path, ".retry.multiplier: must be at least 1"));
    if (r.jitter() < 0 || r.jitter() >= 1) {
      errors.push_back(absl::StrCat(path, ".retry.jitter: must be in 0..1"));
    }
    if (d.connect_timeout_ms() < 0 || d.request_timeout_ms() < 0) {
      errors.push_back(
          absl::StrCat(path, ".connect_timeout_ms/request_timeout_ms: must not be negative"));
    }
    if (r.initial_backoff_ms() < 0 || r.max_backoff_ms() < 0 || r.max_age_ms() < 0) {
      errors.push_back(absl::StrCat(path, ".retry: backoffs and max_age_ms must not be negative"));
    }
    if (d.concurrency() < 0 || d.concurrency() > 64) {
      errors.push_back(absl::StrCat(path, ".concurrency: must be 1..64"));
    }
  }
  if (config.store().max_batch() < 1 || config.store().max_batch() > 100000) {
    errors.push_back("store.max_batch: must be 1..100000");
  }
  if (config.store().max_batch_delay_us() < 0 || config.store().max_batch_delay_us() > 1000000) {
    errors.push_back("store.max_batch_delay_us: must be 0..1000000");
  }
  if (config.store().has_postgres()) {
    const v1::StoreConfig::Postgres& pg = config.store().postgres();
    if (pg.dsn().empty() == pg.dsn_env().empty()) {
      errors.push_back("store.postgres: needs exactly one of dsn and dsn_env");
    }
    if (pg.lease_ms() < 100 || pg.lease_ms() > 3600000) {
      errors.push_back(
          absl::StrCat("store.postgres.lease_ms: ", pg.lease_ms(), " must be 100..3600000"));
    }
  }
  if (config.drain_timeout_ms() < 0) errors.push_back("drain_timeout_ms: must not be negative");
  for (int i = 0; i < config.routes_size(); ++i) {
    const v1::RoutingRule& r = config.routes(i);
    if (r.clinic_id().empty()) {
      errors.push_back(absl::StrCat("routes[", i, "].clinic_id: is required (or \"*\")"));
    }
    if (!names.count(r.destination())) {
      errors.push_back(absl::StrCat("routes[", i, "].destination: '", r.destination(),
                                    "' is not a configured destination"));
    }
  }
  if (!names.count(config.default_destination())) {
    errors.push_back(absl::StrCat("default_destination: '", config.default_destination(),
                                  "' is not a configured destination"));
  }
  std::set<std::string> tenants;
  for (int i = 0; i < config.tenants_size(); ++i) {
    if (!tenants.insert(config.tenants(i).clinic_id()).second ||
        config.tenants(i).clinic_id().empty()) {
      errors.push_back(absl::StrCat("tenants[", i, "].clinic_id: '", config.tenants(i).clinic_id(),
                                    "' is empty or used twice"));
    }
  }
  if (errors.empty()) return absl::OkStatus();
  return absl::InvalidArgumentError(absl::StrCat("config: ", absl::StrJoin(errors, "; ")));
}

Routing::Routing(const v1::GatewayConfig& config) : config_(config) {
  for (const v1::Tenant& t : config.tenants()) tenants_[t.clinic_id()] = &t;
}

const std::string& Routing::DestinationFor(absl::string_view clinic_id) const {
  for (const v1::RoutingRule& r : config_.routes()) {
    if (r.clinic_id() == "*" || r.clinic_id() == clinic_id) return r.destination();
  }
  return config_.default_destination();
}

mappers::MapContext Routing::ContextFor(absl::string_view clinic_id) const {
  mappers::MapContext context = mappers::MapContext::ForTenant(clinic_id);
  auto it = tenants_.find(std::string(clinic_id));
  if (it == tenants_.end()) return context;
  const v1::Tenant& t = *it->second;
  if (!t.identifier_system_base().empty()) {
    context.systems = mappers::IdentifierSystems::ForTenant(clinic_id, t.identifier_system_base());
  }
  if (!t.patient_identifier_system().empty()) {
    context.systems.patient = t.patient_identifier_system();
  }
  context.item_observations = t.item_observations();
  return context;
}

}  // namespace fhirgw::gateway
