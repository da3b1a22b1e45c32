#include "gateway/server.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "base/clock.h"
#include "fhir/status_macros.h"
#include "gateway/config/config.h"
#include "gateway/delivery/delivery.h"
#include "gateway/inbound/inbound.h"
#include "gateway/inbound/inbound_hub.h"
#include "gateway/inbound/poller.h"
#include "gateway/ops/http_server.h"
#include "gateway/ops/log.h"
#include "gateway/ops/metrics.h"
#include "gateway/security/auth.h"
#include "gateway/security/crypto.h"
#include "gateway/service/audit_service.h"
#include "gateway/service/push_service.h"
#include "gateway/store/postgres/postgres_store.h"
#include "gateway/store/sqlite/sqlite_store.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/server_builder.h"

namespace fhirgw::gateway {
namespace {

// The HTTP listener's options: HTTPS with security.tls (the gRPC listener's certificate).
HttpServerOptions HttpOptionsFor(const v1::GatewayConfig& config) {
  HttpServerOptions options;
  options.tls.cert_file = config.security().tls().cert_file();
  options.tls.key_file = config.security().tls().key_file();
  options.tls.client_ca_file = config.security().tls().client_ca_file();
  return options;
}

class GatewayServerImpl final : public GatewayServer {
 public:
  GatewayServerImpl(const v1::GatewayConfig& config, const SecurityFlags& security)
      : config_(config), security_(security), routing_(config_), http_(HttpOptionsFor(config)) {}

  ~GatewayServerImpl() override { Drain(); }

  absl::Status Init() {
    // Security first: a gateway that may not serve as configured opens nothing.
    FHIRGW_ASSIGN_OR_RETURN(auth_, Authenticator::Create(config_, security_));
    FHIRGW_ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> grpc_credentials,
                            GrpcServerCredentials(config_));
    SqliteOptions options;
    options.path = config_.store().sqlite().path();
    options.max_batch = config_.store().max_batch();
    options.max_batch_delay_us = config_.store().max_batch_delay_us();
    FHIRGW_ASSIGN_OR_RETURN(options.cipher,
                            PayloadCipher::FromConfig(config_.security().encryption()));
    if (!config_.audit().signing_key_file().empty()) {
      absl::StatusOr<std::shared_ptr<const HeadSigner>> signer =
          HeadSigner::FromPrivateKeyFile(config_.audit().signing_key_file());
      if (!signer.ok()) {
        return absl::Status(signer.status().code(),
                            absl::StrCat("audit.signing_key_file: ", signer.status().message()));
      }
      options.signer = *signer;
    }
    if (config_.store().has_postgres()) {
      // Several replicas share the database; LISTEN/NOTIFY brings the others' news to this one.
      PostgresOptions pg;
      FHIRGW_ASSIGN_OR_RETURN(pg.dsn, ResolvePostgresDsn(config_.store().postgres()));
      pg.lease_ms = config_.store().postgres().lease_ms();
      pg.heads_file = config_.store().postgres().heads_file();
      pg.max_batch = options.max_batch;
      pg.max_batch_delay_us = options.max_batch_delay_us;
      pg.cipher = options.cipher;
      pg.signer = options.signer;
      pg.max_connections = 8;
      for (const v1::Destination& d : config_.destinations()) pg.max_connections += d.concurrency();
      pg.on_inbound = [this](const std::string& clinic_id) { hub_.Publish(clinic_id); };
      pg.on_status = [this](const std::string& id, v1::TransactionStatus status) {
        waiters_.Notify(id, status);
      };
      FHIRGW_ASSIGN_OR_RETURN(store_, OpenPostgresStore(pg));
    } else {
      FHIRGW_ASSIGN_OR_RETURN(store_, OpenSqliteStore(options));
    }
    FHIRGW_ASSIGN_OR_RETURN(int recovered, store_->RecoverInFlight(base::UnixMillis()));
    if (recovered > 0) {
      LogInfo(absl::StrCat("recovered ", recovered,
                           " transactions that were in flight when the gateway stopped"));
    }

    delivery_ = std::make_unique<DeliveryService>(*store_, config_, metrics_);
    delivery_->SetListener([this](const std::string& id, v1::TransactionStatus status) {
      waiters_.Notify(id, status);
    });
    FHIRGW_RETURN_IF_ERROR(delivery_->Start());

    metrics_.AddCallbackGauge("fhirgw_queue_depth", "Transactions logged but not yet delivered",
                              [this] {
                                absl::StatusOr<QueueStats> s = store_->Stats();
                                return s.ok() ? static_cast<double>(s->undelivered) : -1.0;
                              });
    metrics_.AddCallbackGauge("fhirgw_oldest_undelivered_age_seconds",
                              "Age of the oldest transaction not yet delivered (0 when none)",
                              [this] {
                                absl::StatusOr<QueueStats> s = store_->Stats();
                                if (!s.ok() || s->oldest_undelivered_ms == 0) return 0.0;
                                return (base::UnixMillis() - s->oldest_undelivered_ms) / 1000.0;
                              });
    metrics_.AddCallbackGauge("fhirgw_dead_letters", "Transactions in the dead letter queue",
                              [this] {
                                absl::StatusOr<QueueStats> s = store_->Stats();
                                return s.ok() ? static_cast<double>(s->dead_letters) : -1.0;
                              });

    processor_ = std::make_unique<PushProcessor>(*store_, routing_, *delivery_, metrics_);
    inbound_ = std::make_unique<InboundService>(*store_, config_, hub_, metrics_, *auth_);
    poller_ = std::make_unique<Poller>(*store_, config_, *inbound_);
    FHIRGW_RETURN_IF_ERROR(poller_->Start());
    service_ = std::make_unique<ClinicGatewayService>(*processor_, *store_, routing_, *delivery_,
                                                      waiters_, hub_, *auth_);

    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort(config_.listen(), grpc_credentials, &port);
    builder.RegisterService(service_.get());
    audit_ = std::make_unique<AuditServiceImpl>(*store_, *auth_);
    builder.RegisterService(audit_.get());
    builder.SetMaxReceiveMessageSize(16 * 1024 * 1024);
    grpc_server_ = builder.BuildAndStart();
    if (grpc_server_ == nullptr || port == 0) {
      return absl::UnavailableError(absl::StrCat("cannot listen on ", config_.listen()));
    }
    std::string host;
    int unused = 0;
    FHIRGW_RETURN_IF_ERROR(SplitHostPort(config_.listen(), "listen", host, unused));
    grpc_address_ = absl::StrCat(host, ":", port);

    if (config_.http_listen() != "off") {
      FHIRGW_RETURN_IF_ERROR(SplitHostPort(config_.http_listen(), "http_listen", host, unused));
      std::vector<ReadinessCheck> checks;
      checks.push_back({"store", [this] { return store_->Ping(); }});
      checks.push_back({"destinations", [this] { return delivery_->CheckDestinations(); }});
      // /metrics needs ADMIN or AUDITOR; /healthz and /readyz stay open for probes.
      AddOperationalEndpoints(http_, metrics_, std::move(checks),
                              [this](const httplib::Request& req, httplib::Response& res) {
                                absl::StatusOr<Principal> who =
                                    AuthorizeHttp(*auth_, req, Action::kMetrics);
                                if (!who.ok()) SetHttpAuthError(who.status(), res);
                                return who.ok();
                              });
      inbound_->Register(http_);
      FHIRGW_ASSIGN_OR_RETURN(int http_port, http_.Start(host, unused));
      http_address_ = absl::StrCat(host, ":", http_port);
    }
    maintenance_ = std::thread([this] { Maintain(); });
    return absl::OkStatus();
  }

  // Signs the chain head every audit.sign_interval_ms, and purges expired payloads hourly.
  void Maintain() {
    const auto sign_every = std::chrono::milliseconds(
        config_.audit().sign_interval_ms() > 0 ? config_.audit().sign_interval_ms() : 60000);
    auto next_purge = std::chrono::steady_clock::now();
    std::unique_lock<std::mutex> lock(maintenance_mu_);
    while (!stopping_) {
      lock.unlock();
      if (absl::Status s = store_->SignHead(); !s.ok()) {
        LogError(absl::StrCat("cannot sign the log head: ", s.message()));
      }
      if (config_.audit().retention_days() > 0 && std::chrono::steady_clock::now() >= next_purge) {
        const int64_t cutoff =
            base::UnixMillis() - int64_t{config_.audit().retention_days()} * 24 * 3600 * 1000;
        absl::StatusOr<int> purged = store_->PurgePayloads(cutoff);
        if (!purged.ok()) {
          LogError(absl::StrCat("retention: ", purged.status().message()));
        } else if (*purged > 0) {
          LogInfo(absl::StrCat("retention: purged the payloads of ", *purged, " transactions"));
        }
        next_purge = std::chrono::steady_clock::now() + std::chrono::hours(1);
      }
      lock.lock();
      maintenance_cv_.wait_for(lock, sign_every, [this] { return stopping_; });
    }
  }

  std::string grpc_address() const override { return grpc_address_; }
  std::string http_address() const override { return http_address_; }

  void Drain() override {
    if (drained_) return;
    drained_ = true;
    const auto deadline =
        base::DeadlineFromNow(std::chrono::milliseconds(config_.drain_timeout_ms()));
    // 1. Pushes waiting for delivery answer now with their current status (they are durable), then
    //    stop accepting; in-flight pushes finish (their appends are already queued).
    {
      std::lock_guard<std::mutex> lock(maintenance_mu_);
      stopping_ = true;
      maintenance_cv_.notify_all();
    }
    if (maintenance_.joinable()) maintenance_.join();
    waiters_.Shutdown();
    hub_.CloseAll();
    if (grpc_server_) grpc_server_->Shutdown(deadline);
    // 2. The same for HTTP (inbound FHIR requests finish) and the pollers.
    http_.Stop();
    if (poller_) poller_->Stop();
    // 3. Commit what is queued and stop the commit thread.
    if (store_) store_->Close();
    // 4. Let delivery attempts in flight finish and record their outcome, within what is left of
    //    the drain timeout.
    if (delivery_) {
      const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(
          deadline - std::chrono::system_clock::now());
      delivery_->Stop(std::max(left, std::chrono::milliseconds(0)));
    }
    // 5. Sign the final head, so that everything logged until now is covered.
    if (store_) {
      if (absl::Status s = store_->SignHead(); !s.ok()) {
        LogError(absl::StrCat("cannot sign the log head: ", s.message()));
      }
    }
    if (grpc_server_) grpc_server_->Wait();
  }

 private:
  const v1::GatewayConfig config_;
  const SecurityFlags security_;
  std::unique_ptr<Authenticator> auth_;
  Routing routing_;
  MetricsRegistry metrics_;
  DeliveryWaiters waiters_;
  InboundHub hub_;
  std::unique_ptr<Store> store_;
  std::unique_ptr<DeliveryService> delivery_;
  std::unique_ptr<PushProcessor> processor_;
  std::unique_ptr<InboundService> inbound_;
  std::unique_ptr<Poller> poller_;
  std::unique_ptr<ClinicGatewayService> service_;
  std::unique_ptr<AuditServiceImpl> audit_;
  // Signs the chain head and applies the retention policy in the background.
  std::thread maintenance_;
  std::mutex maintenance_mu_;
  std::condition_variable maintenance_cv_;
  bool stopping_ = false;  // guarded by maintenance_mu_
  std::unique_ptr<grpc::Server> grpc_server_;
  HttpServer http_;
  std::string grpc_address_;
  std::string http_address_;
  bool drained_ = false;
};

}  // namespace

absl::StatusOr<std::unique_ptr<GatewayServer>> GatewayServer::Start(const v1::GatewayConfig& config,
                                                                    const SecurityFlags& security) {
  auto server = std::make_unique<GatewayServerImpl>(config, security);
  FHIRGW_RETURN_IF_ERROR(server->Init());
  return server;
}

}  // namespace fhirgw::gateway
