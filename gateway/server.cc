#include "gateway/server.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "fhir/status_macros.h"
#include "gateway/config.h"
#include "gateway/delivery.h"
#include "gateway/http_server.h"
#include "gateway/inbound.h"
#include "gateway/inbound_hub.h"
#include "gateway/log.h"
#include "gateway/metrics.h"
#include "gateway/poller.h"
#include "gateway/push_service.h"
#include "gateway/sqlite_store.h"
#include "grpcpp/ext/proto_server_reflection_plugin.h"
#include "grpcpp/health_check_service_interface.h"
#include "grpcpp/server_builder.h"

namespace fhirgw::gateway {
namespace {

class GatewayServerImpl final : public GatewayServer {
 public:
  explicit GatewayServerImpl(const v1::GatewayConfig& config)
      : config_(config), routing_(config_) {}

  ~GatewayServerImpl() override { Drain(); }

  absl::Status Init() {
    SqliteOptions options;
    options.path = config_.store().sqlite().path();
    options.max_batch = config_.store().max_batch();
    options.max_batch_delay_us = config_.store().max_batch_delay_us();
    FHIRGW_ASSIGN_OR_RETURN(store_, OpenSqliteStore(options));
    FHIRGW_ASSIGN_OR_RETURN(int recovered, store_->RecoverInFlight(WallClockMs()));
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
                                return (WallClockMs() - s->oldest_undelivered_ms) / 1000.0;
                              });
    metrics_.AddCallbackGauge("fhirgw_dead_letters", "Transactions in the dead letter queue",
                              [this] {
                                absl::StatusOr<QueueStats> s = store_->Stats();
                                return s.ok() ? static_cast<double>(s->dead_letters) : -1.0;
                              });

    processor_ = std::make_unique<PushProcessor>(*store_, routing_, *delivery_, metrics_);
    inbound_ = std::make_unique<InboundService>(*store_, config_, hub_, metrics_);
    poller_ = std::make_unique<Poller>(*store_, config_, *inbound_);
    FHIRGW_RETURN_IF_ERROR(poller_->Start());
    service_ = std::make_unique<ClinicGatewayService>(*processor_, *store_, routing_, *delivery_,
                                                      waiters_, hub_);

    grpc::EnableDefaultHealthCheckService(true);
    grpc::reflection::InitProtoReflectionServerBuilderPlugin();
    grpc::ServerBuilder builder;
    int port = 0;
    builder.AddListeningPort(config_.listen(), grpc::InsecureServerCredentials(), &port);
    builder.RegisterService(service_.get());
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
      AddOperationalEndpoints(http_, metrics_, std::move(checks));
      inbound_->Register(http_);
      FHIRGW_ASSIGN_OR_RETURN(int http_port, http_.Start(host, unused));
      http_address_ = absl::StrCat(host, ":", http_port);
    }
    return absl::OkStatus();
  }

  std::string grpc_address() const override { return grpc_address_; }
  std::string http_address() const override { return http_address_; }

  void Drain() override {
    if (drained_) return;
    drained_ = true;
    const auto deadline =
        std::chrono::system_clock::now() + std::chrono::milliseconds(config_.drain_timeout_ms());
    // 1. Pushes waiting for delivery answer now with their current status (they are durable), then
    //    stop accepting; in-flight pushes finish (their appends are already queued).
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
    if (grpc_server_) grpc_server_->Wait();
  }

 private:
  const v1::GatewayConfig config_;
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
  std::unique_ptr<grpc::Server> grpc_server_;
  HttpServer http_;
  std::string grpc_address_;
  std::string http_address_;
  bool drained_ = false;
};

}  // namespace

absl::StatusOr<std::unique_ptr<GatewayServer>> GatewayServer::Start(
    const v1::GatewayConfig& config) {
  auto server = std::make_unique<GatewayServerImpl>(config);
  FHIRGW_RETURN_IF_ERROR(server->Init());
  return server;
}

}  // namespace fhirgw::gateway
