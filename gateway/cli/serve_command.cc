#include "gateway/cli/serve_command.h"

#include <csignal>
#include <cstdio>

#include "absl/flags/flag.h"
#include "absl/strings/str_cat.h"
#include "fhir/status_macros.h"
#include "gateway/cli/command.h"
#include "gateway/config/config.h"
#include "gateway/ops/log.h"
#include "gateway/security/auth.h"
#include "gateway/server.h"

ABSL_FLAG(std::string, config, "", "textproto fhirgw.v1.GatewayConfig file");
ABSL_FLAG(std::string, listen, "",
          "gRPC address HOST:PORT (default 127.0.0.1:50051; port 0 picks a free port)");
ABSL_FLAG(std::string, http_listen, "",
          "HTTP address for /healthz, /readyz, /metrics, /fhir (default 127.0.0.1:8080; 'off')");
ABSL_FLAG(std::string, data_dir, "", "directory for the log and the file outbox (default var)");
ABSL_FLAG(std::string, ehr_url, "", "one FHIR R4 base URL that receives every clinic's records");
ABSL_FLAG(bool, insecure, false,
          "allow a non-loopback listen address without TLS and credentials (testing only: tokens "
          "and patient data would cross the network in plain text)");

namespace fhirgw::gateway {

absl::StatusOr<v1::GatewayConfig> EffectiveConfig(const ServeFlags& flags) {
  v1::GatewayConfig config;
  if (!flags.config.empty()) {
    FHIRGW_ASSIGN_OR_RETURN(config, LoadConfigFile(flags.config));
  }
  if (!flags.listen.empty()) config.set_listen(flags.listen);
  if (!flags.http_listen.empty()) config.set_http_listen(flags.http_listen);
  if (!flags.data_dir.empty()) config.set_data_dir(flags.data_dir);
  if (!flags.ehr_url.empty()) {
    config.clear_destinations();
    config.clear_routes();
    v1::Destination& ehr = *config.add_destinations();
    ehr.set_name("ehr");
    ehr.set_base_url(flags.ehr_url);
    config.set_default_destination("ehr");
  }
  ApplyDefaults(config);
  FHIRGW_RETURN_IF_ERROR(ValidateConfig(config));
  FHIRGW_RETURN_IF_ERROR(ValidateSecurityConfig(config));
  return config;
}

int RunServe(const ServeFlags& flags) {
  absl::StatusOr<v1::GatewayConfig> config = EffectiveConfig(flags);
  if (!config.ok()) {
    std::fprintf(stderr, "fhirgw serve: %s\n", std::string(config.status().message()).c_str());
    return 2;
  }
  // Signals are taken synchronously by this thread; every thread started below inherits the mask.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGTERM);
  sigaddset(&signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::signal(SIGPIPE, SIG_IGN);

  SecurityFlags security;
  security.insecure = flags.insecure;
  absl::StatusOr<std::unique_ptr<GatewayServer>> server = GatewayServer::Start(*config, security);
  if (!server.ok()) {
    std::fprintf(stderr, "fhirgw serve: %s\n", std::string(server.status().message()).c_str());
    return 1;
  }
  std::printf("listening on %s\n", (*server)->grpc_address().c_str());
  if (!(*server)->http_address().empty()) {
    std::printf("http listening on %s\n", (*server)->http_address().c_str());
  }
  std::fflush(stdout);
  // The log's location, never the PostgreSQL DSN (it may hold a password).
  const std::string log = config->store().has_postgres()
                              ? "PostgreSQL"
                              : absl::StrCat("SQLite ", config->store().sqlite().path());
  LogInfo(absl::StrCat("fhirgw serving gRPC on ", (*server)->grpc_address(), ", log ", log, ", ",
                       config->destinations_size(), " destination(s)"));

  int signal_number = 0;
  sigwait(&signals, &signal_number);
  LogInfo(absl::StrCat("received ", signal_number == SIGTERM ? "SIGTERM" : "SIGINT", ", draining"));
  (*server)->Drain();
  server->reset();
  LogInfo("stopped");
  return 0;
}

namespace {

int ServeMain(const std::vector<std::string>& args) {
  if (!args.empty()) {
    std::fprintf(stderr, "usage: fhirgw serve [flags] (no arguments)\n");
    return 1;
  }
  ServeFlags flags;
  flags.config = absl::GetFlag(FLAGS_config);
  flags.listen = absl::GetFlag(FLAGS_listen);
  flags.http_listen = absl::GetFlag(FLAGS_http_listen);
  flags.data_dir = absl::GetFlag(FLAGS_data_dir);
  flags.ehr_url = absl::GetFlag(FLAGS_ehr_url);
  flags.insecure = absl::GetFlag(FLAGS_insecure);
  return RunServe(flags);
}

}  // namespace

const Command kServeCommand = {
    "serve",
    "serve",
    "run the gateway (gRPC push, transaction log, delivery to EHRs) until SIGTERM",
    {"gateway/cli/serve_command.cc"},
    {},
    ServeMain};

}  // namespace fhirgw::gateway
