#include "gateway/inbound/inbound_hub.h"

namespace fhirgw::gateway {

int InboundHub::Subscribe(absl::string_view clinic_id, std::function<void()> notify,
                          std::function<void()> close) {
  std::lock_guard<std::mutex> lock(mu_);
  const int id = next_id_++;
  subscribers_[id] = Subscriber{std::string(clinic_id), std::move(notify), std::move(close)};
  return id;
}

void InboundHub::CloseAll() {
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [id, subscriber] : subscribers_) subscriber.close();
}

void InboundHub::Unsubscribe(int id) {
  std::lock_guard<std::mutex> lock(mu_);
  subscribers_.erase(id);
}

void InboundHub::Publish(absl::string_view clinic_id) {
  // Notifying under the lock is what lets Unsubscribe promise that no callback runs afterwards.
  std::lock_guard<std::mutex> lock(mu_);
  for (auto& [id, subscriber] : subscribers_) {
    if (subscriber.clinic_id == clinic_id) subscriber.notify();
  }
}

}  // namespace fhirgw::gateway
