// Pull: searches each destination EHR that has `poll.interval_ms` for the data of the patients the
// clinics have enrolled there (the Patients the EHR accepted from us), and passes what changed to
// the clinics through InboundService::Ingest.
//
// Per patient and resource type it remembers the newest meta.lastUpdated seen (in the store, so a
// restart continues where it stopped) and asks for `_lastUpdated=ge<that>`; the log's resend
// detection drops the versions already passed on, so the same version is never passed on twice.
#ifndef FHIRGW_GATEWAY_INBOUND_POLLER_H_
#define FHIRGW_GATEWAY_INBOUND_POLLER_H_

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/status/status.h"
#include "fhirgw/v1/config.pb.h"
#include "gateway/delivery/fhir_client.h"
#include "gateway/inbound/inbound.h"
#include "gateway/store/store.h"

namespace fhirgw::gateway {

class Poller {
 public:
  Poller(Store& store, const v1::GatewayConfig& config, InboundService& inbound);
  ~Poller();

  // Starts one thread per destination with polling enabled.
  absl::Status Start();
  void Stop();

  // Runs one poll of `destination` with `client`. Returns the records logged.
  absl::StatusOr<int> PollOnce(const v1::Destination& destination, FhirClient& client);

 private:
  void Loop(const v1::Destination& destination);

  Store& store_;
  const v1::GatewayConfig& config_;
  InboundService& inbound_;
  std::vector<std::thread> threads_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::atomic<bool> stopping_{false};
};

}  // namespace fhirgw::gateway

#endif  // FHIRGW_GATEWAY_INBOUND_POLLER_H_
