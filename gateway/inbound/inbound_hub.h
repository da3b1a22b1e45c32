// Wakes the WatchInbound streams of a clinic when hospital data for it has been logged.
//
//   InboundHub hub;
//   int id = hub.Subscribe("lakeside-ketamine", [] { /* read the log from the cursor */ });
//   hub.Publish("lakeside-ketamine");
//   hub.Unsubscribe(id);  // after it returns, the callback never runs again
#ifndef FHIRGW_GATEWAY_INBOUND_INBOUND_HUB_H_
#define FHIRGW_GATEWAY_INBOUND_INBOUND_HUB_H_

#include <functional>
#include <map>
#include <mutex>
#include <string>

#include "absl/strings/string_view.h"

namespace fhirgw::gateway {

class InboundHub {
 public:
  // `notify` (new data) and `close` (the gateway is draining: end the stream) must be quick and
  // must not call back into the hub.
  int Subscribe(absl::string_view clinic_id, std::function<void()> notify,
                std::function<void()> close);
  void Unsubscribe(int id);
  void Publish(absl::string_view clinic_id);
  // Closes every subscriber (on drain).
  void CloseAll();

 private:
  struct Subscriber {
    std::string clinic_id;
    std::function<void()> notify;
    std::function<void()> close;
  };
  std::mutex mu_;
  int next_id_ = 1;                        // guarded by mu_
  std::map<int, Subscriber> subscribers_;  // guarded by mu_
};

}  // namespace fhirgw::gateway

#endif  // FHIRGW_GATEWAY_INBOUND_INBOUND_HUB_H_
