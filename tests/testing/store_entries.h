// Store test helpers shared by the store suites (tests/gateway/store): entries to append, attempts
// to record, and waiting for a store's callbacks.
//
//   absl::StatusOr<AppendResult> result = AppendAndWait(*store, MakeEntry("c", "r1", "p1"));
#ifndef FHIRGW_TESTS_TESTING_STORE_ENTRIES_H_
#define FHIRGW_TESTS_TESTING_STORE_ENTRIES_H_

#include <chrono>
#include <cstdint>
#include <future>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "fhirgw/v1/gateway.pb.h"
#include "fhirgw/v1/records.pb.h"
#include "gateway/store/store.h"

namespace fhirgw::testing {

using ::fhirgw::gateway::AppendResult;
using ::fhirgw::gateway::AttemptResult;
using ::fhirgw::gateway::DeliveryTask;
using ::fhirgw::gateway::NewEntry;
using ::fhirgw::gateway::Store;

// How long a test waits for a store callback before failing.
inline constexpr auto kCallbackTimeout = std::chrono::seconds(60);

inline absl::StatusOr<AppendResult> AppendAndWait(Store& store, NewEntry entry) {
  auto promise = std::make_shared<std::promise<absl::StatusOr<AppendResult>>>();
  std::future<absl::StatusOr<AppendResult>> future = promise->get_future();
  store.Append(std::move(entry),
               [promise](absl::StatusOr<AppendResult> r) { promise->set_value(std::move(r)); });
  if (future.wait_for(kCallbackTimeout) != std::future_status::ready) {
    return absl::DeadlineExceededError("the append callback never ran");
  }
  return future.get();
}

inline absl::StatusOr<std::vector<AppendResult>> AppendAllAndWait(Store& store,
                                                                  std::vector<NewEntry> entries) {
  auto promise = std::make_shared<std::promise<absl::StatusOr<std::vector<AppendResult>>>>();
  auto future = promise->get_future();
  store.AppendAll(std::move(entries), [promise](absl::StatusOr<std::vector<AppendResult>> r) {
    promise->set_value(std::move(r));
  });
  if (future.wait_for(kCallbackTimeout) != std::future_status::ready) {
    return absl::DeadlineExceededError("the append callback never ran");
  }
  return future.get();
}

inline ::fhirgw::v1::Alert MakeAlert(::fhirgw::v1::Alert::Kind kind, absl::string_view message) {
  ::fhirgw::v1::Alert alert;
  alert.set_kind(kind);
  alert.set_message(std::string(message));
  return alert;
}

// An outbound entry whose hash, record and Bundle derive from `content`.
inline NewEntry MakeEntry(absl::string_view clinic, absl::string_view record_id,
                          absl::string_view patient, absl::string_view content = "content",
                          int64_t received_at_ms = 1000, absl::string_view destination = "ehr") {
  NewEntry e;
  e.clinic_id = std::string(clinic);
  e.record_id = std::string(record_id);
  e.patient_id = std::string(patient);
  e.content_hash = ::fhirgw::gateway::Sha256(content);
  e.kind = ::fhirgw::v1::QUESTIONNAIRE;
  e.direction = ::fhirgw::v1::CLINIC_TO_EHR;
  e.destination = std::string(destination);
  ::fhirgw::v1::ClinicRecord record;
  record.set_record_id(e.record_id);
  record.set_clinic_id(e.clinic_id);
  record.mutable_patient()->set_clinic_patient_id(e.patient_id);
  e.record = record.SerializeAsString();
  e.fhir_json =
      absl::StrCat(R"({"resourceType":"Bundle","type":"transaction","id":")", content, R"("})");
  e.principal = "token:lakeside";
  e.received_at_ms = received_at_ms;
  return e;
}

// Hospital data for `clinic`, as the inbound endpoint logs it.
inline NewEntry MakeInbound(absl::string_view clinic, absl::string_view record_id,
                            absl::string_view content = "inbound", int64_t received_at_ms = 1000) {
  NewEntry e = MakeEntry(clinic, record_id, "p-in", content, received_at_ms, "st-olaf-ehr");
  e.direction = ::fhirgw::v1::EHR_TO_CLINIC;
  e.kind = ::fhirgw::v1::MEDICATION_STATEMENT;
  return e;
}

inline ::fhirgw::v1::ResourceRef MakeRef(absl::string_view type, absl::string_view id,
                                         absl::string_view version) {
  ::fhirgw::v1::ResourceRef ref;
  ref.set_resource_type(std::string(type));
  ref.set_id(std::string(id));
  ref.set_version_id(std::string(version));
  ref.set_status("201 Created");
  ref.set_full_url(absl::StrCat("urn:uuid:", id));
  return ref;
}

inline AttemptResult MakeAttempt(const DeliveryTask& task, ::fhirgw::v1::TransactionStatus status,
                                 int64_t started_at_ms, int64_t next_attempt_at_ms = 0) {
  AttemptResult result;
  result.transaction_id = task.transaction_id;
  result.attempt.set_number(task.attempt_number);
  result.attempt.mutable_started_at()->set_seconds(started_at_ms / 1000);
  result.attempt.mutable_started_at()->set_nanos(static_cast<int32_t>(started_at_ms % 1000) *
                                                 1000000);
  result.attempt.set_duration_ms(12);
  switch (status) {
    case ::fhirgw::v1::DELIVERED:
      result.attempt.set_http_status(200);
      result.attempt.set_outcome(::fhirgw::v1::DeliveryAttempt::SUCCESS);
      result.attempt.set_response(R"({"resourceType":"Bundle","type":"transaction-response"})");
      break;
    case ::fhirgw::v1::REJECTED:
      result.attempt.set_http_status(422);
      result.attempt.set_outcome(::fhirgw::v1::DeliveryAttempt::REJECTED);
      break;
    default:
      result.attempt.set_http_status(503);
      result.attempt.set_outcome(::fhirgw::v1::DeliveryAttempt::RETRYABLE_ERROR);
      break;
  }
  result.new_status = status;
  result.next_attempt_at_ms = next_attempt_at_ms;
  return result;
}

}  // namespace fhirgw::testing

#endif  // FHIRGW_TESTS_TESTING_STORE_ENTRIES_H_
