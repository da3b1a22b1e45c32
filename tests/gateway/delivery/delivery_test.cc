// Tests of delivery (delivery.h): the retry policy arithmetic, the decision taken on each answer,
// and DeliveryService end to end in process, with a real SQLite log and a file or HTTP destination
// (a cpp-httplib server on a free loopback port).
#include "gateway/delivery/delivery.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "fhirgw/v1/config.pb.h"
#include "fhirgw/v1/gateway.pb.h"
#include "gateway/config/config.h"
#include "gateway/delivery/fhir_client.h"
#include "gateway/ops/metrics.h"
#include "gateway/store/sqlite/sqlite_store.h"
#include "gateway/store/store.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "httplib.h"
#include "rapidjson/document.h"
#include "tests/testing/files.h"
#include "tests/testing/http_test_server.h"
#include "tests/testing/temp_dir.h"

namespace fhirgw::gateway {
namespace {

using ::fhirgw::testing::HttpTestServer;
using ::fhirgw::testing::ReadFile;
using ::fhirgw::testing::TempDir;
using ::fhirgw::testing::WriteFile;
using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::UnorderedElementsAreArray;

constexpr int64_t kNow = 1'700'000'000'000;

v1::RetryPolicy Policy() {
  v1::RetryPolicy policy;
  policy.set_max_attempts(5);
  policy.set_initial_backoff_ms(1000);
  policy.set_multiplier(2.0);
  policy.set_max_backoff_ms(10'000);
  policy.set_jitter(0.2);
  return policy;
}

HttpResult Answer(int http_status, int64_t retry_after_ms = -1) {
  HttpResult answer;
  answer.http_status = http_status;
  answer.retry_after_ms = retry_after_ms;
  if (http_status == 0) answer.error = "Connection refused";
  return answer;
}

TEST(BackoffMsTest, GrowsByTheMultiplierUpToTheCap) {
  const v1::RetryPolicy policy = Policy();
  EXPECT_EQ(BackoffMs(policy, 1), 1000);
  EXPECT_EQ(BackoffMs(policy, 2), 2000);
  EXPECT_EQ(BackoffMs(policy, 3), 4000);
  EXPECT_EQ(BackoffMs(policy, 4), 8000);
  EXPECT_EQ(BackoffMs(policy, 5), 10'000);
  EXPECT_EQ(BackoffMs(policy, 40), 10'000);
}

TEST(BackoffMsTest, UsesAFractionalMultiplier) {
  v1::RetryPolicy policy = Policy();
  policy.set_multiplier(1.5);
  EXPECT_EQ(BackoffMs(policy, 1), 1000);
  EXPECT_EQ(BackoffMs(policy, 2), 1500);
  EXPECT_EQ(BackoffMs(policy, 3), 2250);
}

TEST(DecideTest, SuccessIsDelivered) {
  for (int status : {200, 201}) {
    const Decision d = Decide(Answer(status), false, Policy(), 0, kNow, kNow, 0);
    EXPECT_EQ(d.status, v1::DELIVERED) << status;
    EXPECT_EQ(d.outcome, v1::DeliveryAttempt::SUCCESS) << status;
  }
}

TEST(DecideTest, SuccessOnTheLastAttemptOfAnOldTransactionIsStillDelivered) {
  v1::RetryPolicy policy = Policy();
  policy.set_max_age_ms(1000);
  const Decision d = Decide(Answer(200), false, policy, 4, kNow - 60'000, kNow, 0);
  EXPECT_EQ(d.status, v1::DELIVERED);
}

class RetryableStatusTest : public ::testing::TestWithParam<int> {};

TEST_P(RetryableStatusTest, IsRetriedAfterTheBackoff) {
  const Decision d = Decide(Answer(GetParam()), false, Policy(), 0, kNow, kNow, 0);
  EXPECT_EQ(d.status, v1::RETRYING);
  EXPECT_EQ(d.outcome, v1::DeliveryAttempt::RETRYABLE_ERROR);
  EXPECT_EQ(d.next_attempt_at_ms, kNow + 1000);
}

TEST_P(RetryableStatusTest, IsRetriedEvenWithAnOperationOutcome) {
  const Decision d = Decide(Answer(GetParam()), true, Policy(), 0, kNow, kNow, 0);
  EXPECT_EQ(d.status, v1::RETRYING);
}

// 0 is a network error.
INSTANTIATE_TEST_SUITE_P(Statuses, RetryableStatusTest,
                         ::testing::Values(0, 408, 429, 500, 502, 503, 504));

TEST(DecideTest, JitterSpreadsTheBackoff) {
  const v1::RetryPolicy policy = Policy();  // jitter 0.2
  EXPECT_EQ(Decide(Answer(503), false, policy, 0, kNow, kNow, -1).next_attempt_at_ms, kNow + 800);
  EXPECT_EQ(Decide(Answer(503), false, policy, 0, kNow, kNow, 0).next_attempt_at_ms, kNow + 1000);
  EXPECT_EQ(Decide(Answer(503), false, policy, 0, kNow, kNow, 1).next_attempt_at_ms, kNow + 1200);
  // The second retry: backoff 2000.
  EXPECT_EQ(Decide(Answer(503), false, policy, 1, kNow, kNow, -1).next_attempt_at_ms, kNow + 1600);
  EXPECT_EQ(Decide(Answer(503), false, policy, 1, kNow, kNow, 0).next_attempt_at_ms, kNow + 2000);
  EXPECT_EQ(Decide(Answer(503), false, policy, 1, kNow, kNow, 1).next_attempt_at_ms, kNow + 2400);
  // At the cap.
  EXPECT_EQ(Decide(Answer(503), false, policy, 3, kNow, kNow, -1).next_attempt_at_ms,
            kNow + 8000 * 8 / 10);
  EXPECT_EQ(Decide(Answer(503), false, policy, 3, kNow, kNow, 1).next_attempt_at_ms,
            kNow + 8000 * 12 / 10);
}

TEST(DecideTest, ALongerRetryAfterWins) {
  const Decision longer = Decide(Answer(503, 30'000), false, Policy(), 0, kNow, kNow, 1);
  EXPECT_EQ(longer.status, v1::RETRYING);
  EXPECT_EQ(longer.next_attempt_at_ms, kNow + 30'000);
  const Decision longer_429 = Decide(Answer(429, 5000), false, Policy(), 0, kNow, kNow, 0);
  EXPECT_EQ(longer_429.next_attempt_at_ms, kNow + 5000);
  // A shorter Retry-After does not shorten the backoff.
  const Decision shorter = Decide(Answer(503, 100), false, Policy(), 0, kNow, kNow, 0);
  EXPECT_EQ(shorter.next_attempt_at_ms, kNow + 1000);
  const Decision zero = Decide(Answer(503, 0), false, Policy(), 0, kNow, kNow, 0);
  EXPECT_EQ(zero.next_attempt_at_ms, kNow + 1000);
}

TEST(DecideTest, AClientErrorWithAnOperationOutcomeIsRejected) {
  for (int status : {400, 404, 409, 412, 422}) {
    const Decision d = Decide(Answer(status), true, Policy(), 0, kNow, kNow, 0);
    EXPECT_EQ(d.status, v1::REJECTED) << status;
    EXPECT_EQ(d.outcome, v1::DeliveryAttempt::REJECTED) << status;
  }
  // Even on what would be the last attempt: a rejection is not a dead letter.
  const Decision last = Decide(Answer(422), true, Policy(), 4, kNow, kNow, 0);
  EXPECT_EQ(last.status, v1::REJECTED);
}

// Likely a proxy or auth problem the operator can fix.
TEST(DecideTest, AClientErrorWithoutAnOperationOutcomeIsRetried) {
  for (int status : {400, 401, 403, 404, 422}) {
    const Decision d = Decide(Answer(status), false, Policy(), 0, kNow, kNow, 0);
    EXPECT_EQ(d.status, v1::RETRYING) << status;
    EXPECT_EQ(d.outcome, v1::DeliveryAttempt::RETRYABLE_ERROR) << status;
  }
}

TEST(DecideTest, TheLastAllowedAttemptDeadLetters) {
  const v1::RetryPolicy policy = Policy();  // max_attempts 5
  // Attempts 1..4 fail: retried.
  for (int before = 0; before < 4; ++before) {
    EXPECT_EQ(Decide(Answer(503), false, policy, before, kNow, kNow, 0).status, v1::RETRYING)
        << before;
  }
  // The fifth attempt fails: the policy has run out.
  const Decision d = Decide(Answer(503), false, policy, 4, kNow, kNow, 0);
  EXPECT_EQ(d.status, v1::DEAD_LETTER);
  EXPECT_EQ(d.outcome, v1::DeliveryAttempt::RETRYABLE_ERROR);
  EXPECT_EQ(Decide(Answer(0), false, policy, 9, kNow, kNow, 0).status, v1::DEAD_LETTER);

  v1::RetryPolicy once = Policy();
  once.set_max_attempts(1);
  EXPECT_EQ(Decide(Answer(500), false, once, 0, kNow, kNow, 0).status, v1::DEAD_LETTER);
}

TEST(DecideTest, ATransactionOlderThanMaxAgeDeadLetters) {
  v1::RetryPolicy policy = Policy();
  policy.set_max_age_ms(60'000);
  EXPECT_EQ(Decide(Answer(503), false, policy, 0, kNow - 59'000, kNow, 0).status, v1::RETRYING);
  const Decision d = Decide(Answer(503), false, policy, 0, kNow - 61'000, kNow, 0);
  EXPECT_EQ(d.status, v1::DEAD_LETTER);
  EXPECT_EQ(d.outcome, v1::DeliveryAttempt::RETRYABLE_ERROR);
  // No limit when max_age_ms is 0.
  policy.set_max_age_ms(0);
  EXPECT_EQ(Decide(Answer(503), false, policy, 0, 0, kNow, 0).status, v1::RETRYING);
}

// --- DeliveryService end to end ---

constexpr auto kWait = std::chrono::seconds(30);

// A transaction Bundle with `entries` POST entries (fullUrl urn:uuid:<tag>-<i>), on one line.
std::string TransactionBundle(absl::string_view tag, int entries = 1) {
  std::string out = R"({"resourceType":"Bundle","type":"transaction","entry":[)";
  for (int i = 0; i < entries; ++i) {
    const char* type = i == 0 ? "Patient" : "QuestionnaireResponse";
    absl::StrAppend(&out, i ? "," : "", R"({"fullUrl":"urn:uuid:)", tag, "-", i,
                    R"(","resource":{"resourceType":")", type,
                    R"("},"request":{"method":"POST","url":")", type, R"("}})");
  }
  out += "]}";
  return out;
}

NewEntry MakeEntry(absl::string_view record_id, absl::string_view patient,
                   absl::string_view destination, std::string bundle) {
  NewEntry e;
  e.clinic_id = "lakeside";
  e.record_id = std::string(record_id);
  e.patient_id = std::string(patient);
  e.content_hash = Sha256(bundle);
  e.kind = v1::QUESTIONNAIRE;
  e.destination = std::string(destination);
  e.fhir_json = std::move(bundle);
  e.received_at_ms = WallClockMs() - 1000;
  return e;
}

class DeliveryServiceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    ASSERT_FALSE(dir_.path().empty());
    absl::StatusOr<std::unique_ptr<Store>> store =
        OpenSqliteStore({.path = dir_.path() + "/fhirgw.db"});
    ASSERT_TRUE(store.ok()) << store.status();
    store_ = std::move(*store);
    config_.mutable_delivery()->set_poll_interval_ms(20);
  }

  // The service goes first: its clients hold kept-alive connections that the test server would
  // otherwise wait out when stopping.
  void TearDown() override {
    service_.reset();
    server_.reset();
  }

  v1::Destination& AddDestination(absl::string_view name, std::string base_url) {
    v1::Destination& d = *config_.add_destinations();
    d.set_name(std::string(name));
    d.set_base_url(std::move(base_url));
    d.set_concurrency(2);
    d.set_connect_timeout_ms(2000);
    d.set_request_timeout_ms(5000);
    v1::RetryPolicy& retry = *d.mutable_retry();
    retry.set_max_attempts(5);
    retry.set_initial_backoff_ms(20);
    retry.set_multiplier(2.0);
    retry.set_max_backoff_ms(200);
    retry.set_jitter(0.1);
    return d;
  }

  // Starts the service with a listener that records every status reported.
  void StartService() {
    service_ = std::make_unique<DeliveryService>(*store_, config_, metrics_);
    service_->SetListener([this](const std::string& id, v1::TransactionStatus status) {
      std::lock_guard<std::mutex> lock(mu_);
      events_.emplace_back(id, status);
      cv_.notify_all();
    });
    absl::Status started = service_->Start();
    ASSERT_TRUE(started.ok()) << started;
  }

  std::string Append(NewEntry entry) {
    auto promise = std::make_shared<std::promise<absl::StatusOr<AppendResult>>>();
    std::future<absl::StatusOr<AppendResult>> future = promise->get_future();
    store_->Append(std::move(entry),
                   [promise](absl::StatusOr<AppendResult> r) { promise->set_value(std::move(r)); });
    if (future.wait_for(kWait) != std::future_status::ready) {
      ADD_FAILURE() << "the append callback never ran";
      return "";
    }
    absl::StatusOr<AppendResult> result = future.get();
    EXPECT_TRUE(result.ok()) << result.status();
    return result.ok() ? result->transaction_id : "";
  }

  // The statuses reported for `id`, once `final_status` has been reported (or kWait has passed).
  std::vector<v1::TransactionStatus> WaitForStatus(const std::string& id,
                                                   v1::TransactionStatus final_status) {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait_for(lock, kWait, [&] {
      for (const auto& [event_id, status] : events_) {
        if (event_id == id && status == final_status) return true;
      }
      return false;
    });
    std::vector<v1::TransactionStatus> statuses;
    for (const auto& [event_id, status] : events_) {
      if (event_id == id) statuses.push_back(status);
    }
    return statuses;
  }

  v1::Transaction Get(const std::string& id) {
    absl::StatusOr<v1::Transaction> tx = store_->Get(id, false);
    EXPECT_TRUE(tx.ok()) << tx.status();
    return tx.ok() ? *std::move(tx) : v1::Transaction();
  }

  double AttemptsCounted(absl::string_view destination, absl::string_view outcome) {
    return metrics_
        .GetCounter("fhirgw_delivery_attempts_total",
                    "Delivery attempts by destination and outcome",
                    {{"destination", std::string(destination)}, {"outcome", std::string(outcome)}})
        .value();
  }

  TempDir dir_{"fhirgw_delivery"};
  std::unique_ptr<HttpTestServer> server_;
  std::unique_ptr<Store> store_;
  v1::GatewayConfig config_;
  MetricsRegistry metrics_;
  std::unique_ptr<DeliveryService> service_;
  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::pair<std::string, v1::TransactionStatus>> events_;  // guarded by mu_
};

TEST_F(DeliveryServiceTest, AFileDestinationAppendsOneNdjsonLinePerTransaction) {
  const std::string outbox_dir = dir_.path() + "/outbox";
  AddDestination("outbox", "file:" + outbox_dir);
  std::vector<std::string> bundles = {TransactionBundle("a", 2), TransactionBundle("b"),
                                      TransactionBundle("c", 2)};
  std::vector<std::string> ids;
  // One is waiting in the log before the service starts, the others arrive later.
  ids.push_back(Append(MakeEntry("r-a", "p-1", "outbox", bundles[0])));
  StartService();
  ids.push_back(Append(MakeEntry("r-b", "p-2", "outbox", bundles[1])));
  ids.push_back(Append(MakeEntry("r-c", "p-1", "outbox", bundles[2])));
  service_->Wake();

  for (const std::string& id : ids) {
    EXPECT_THAT(WaitForStatus(id, v1::DELIVERED), ElementsAre(v1::DELIVERED)) << id;
  }
  for (const std::string& id : ids) {
    const v1::Transaction tx = Get(id);
    EXPECT_EQ(tx.status(), v1::DELIVERED) << id;
    ASSERT_EQ(tx.attempts_size(), 1) << id;
    EXPECT_EQ(tx.attempts(0).number(), 1);
    EXPECT_EQ(tx.attempts(0).http_status(), 200);
    EXPECT_EQ(tx.attempts(0).outcome(), v1::DeliveryAttempt::SUCCESS);
  }

  const std::string contents = ReadFile(outbox_dir + "/outbox.ndjson");
  ASSERT_FALSE(contents.empty());
  EXPECT_EQ(contents.back(), '\n');
  std::vector<std::string> lines =
      absl::StrSplit(absl::string_view(contents).substr(0, contents.size() - 1), '\n');
  EXPECT_THAT(lines, UnorderedElementsAreArray(bundles));
  for (const std::string& line : lines) {
    rapidjson::Document doc;
    doc.Parse(line.c_str(), line.size());
    EXPECT_FALSE(doc.HasParseError()) << line;
  }
  EXPECT_EQ(AttemptsCounted("outbox", "success"), 3);
}

TEST_F(DeliveryServiceTest, AnHttpDestinationIsRetriedUntilItAccepts) {
  server_ = std::make_unique<HttpTestServer>();
  HttpTestServer& server = *server_;
  std::atomic<int> posts{0};
  std::mutex seen_mu;
  std::vector<std::string> seen_bodies;
  std::string seen_content_type;
  server.server().Post("/fhir", [&](const httplib::Request& req, httplib::Response& res) {
    {
      std::lock_guard<std::mutex> lock(seen_mu);
      seen_bodies.push_back(req.body);
      seen_content_type = req.get_header_value("Content-Type");
    }
    if (++posts <= 2) {
      res.status = 503;
      res.set_content("busy", "text/plain");
      return;
    }
    res.status = 200;
    res.set_content(R"({"resourceType":"Bundle","type":"transaction-response","entry":[)"
                    R"({"response":{"status":"201 Created","location":"Patient/123/_history/1"}},)"
                    R"({"response":{"status":"201 Created",)"
                    R"("location":"QuestionnaireResponse/456/_history/2"}}]})",
                    "application/fhir+json");
  });
  server.Start();
  AddDestination("ehr", server.Url("/fhir"));
  StartService();

  const std::string bundle = TransactionBundle("tx", 2);
  const std::string id = Append(MakeEntry("r-1", "p-1", "ehr", bundle));
  service_->Wake();

  EXPECT_THAT(WaitForStatus(id, v1::DELIVERED),
              ElementsAre(v1::RETRYING, v1::RETRYING, v1::DELIVERED));
  const v1::Transaction tx = Get(id);
  EXPECT_EQ(tx.status(), v1::DELIVERED);
  ASSERT_EQ(tx.attempts_size(), 3);
  for (int i = 0; i < 3; ++i) EXPECT_EQ(tx.attempts(i).number(), i + 1);
  EXPECT_EQ(tx.attempts(0).http_status(), 503);
  EXPECT_EQ(tx.attempts(0).outcome(), v1::DeliveryAttempt::RETRYABLE_ERROR);
  EXPECT_EQ(tx.attempts(0).response(), "busy");
  EXPECT_EQ(tx.attempts(1).http_status(), 503);
  EXPECT_EQ(tx.attempts(2).http_status(), 200);
  EXPECT_EQ(tx.attempts(2).outcome(), v1::DeliveryAttempt::SUCCESS);
  // Each retry waited at least its backoff (20 ms, then 40 ms, less 10% jitter).
  const auto start_ms = [&](int i) {
    return tx.attempts(i).started_at().seconds() * 1000 +
           tx.attempts(i).started_at().nanos() / 1'000'000;
  };
  EXPECT_GE(start_ms(1) - start_ms(0), 18);
  EXPECT_GE(start_ms(2) - start_ms(1), 36);

  ASSERT_EQ(tx.resources_size(), 2);
  EXPECT_EQ(tx.resources(0).resource_type(), "Patient");
  EXPECT_EQ(tx.resources(0).id(), "123");
  EXPECT_EQ(tx.resources(0).version_id(), "1");
  EXPECT_EQ(tx.resources(0).status(), "201 Created");
  EXPECT_EQ(tx.resources(0).full_url(), "urn:uuid:tx-0");
  EXPECT_EQ(tx.resources(1).resource_type(), "QuestionnaireResponse");
  EXPECT_EQ(tx.resources(1).id(), "456");
  EXPECT_EQ(tx.resources(1).version_id(), "2");
  EXPECT_EQ(tx.resources(1).full_url(), "urn:uuid:tx-1");

  EXPECT_EQ(posts.load(), 3);
  std::lock_guard<std::mutex> lock(seen_mu);
  EXPECT_THAT(seen_bodies, ElementsAre(bundle, bundle, bundle));
  EXPECT_THAT(seen_content_type, HasSubstr("application/fhir+json"));
  EXPECT_EQ(AttemptsCounted("ehr", "retryable_error"), 2);
  EXPECT_EQ(AttemptsCounted("ehr", "success"), 1);
}

TEST_F(DeliveryServiceTest, AnOperationOutcomeRejectsTheTransaction) {
  server_ = std::make_unique<HttpTestServer>();
  HttpTestServer& server = *server_;
  std::atomic<int> posts{0};
  server.server().Post("/fhir", [&](const httplib::Request&, httplib::Response& res) {
    ++posts;
    res.status = 422;
    res.set_content(
        R"({"resourceType":"OperationOutcome","issue":[{"severity":"error","code":"invalid",)"
        R"("diagnostics":"birthDate is in the future","expression":["Patient.birthDate"]}]})",
        "application/fhir+json");
  });
  server.Start();
  AddDestination("ehr", server.Url("/fhir"));
  StartService();
  const std::string id = Append(MakeEntry("r-1", "p-1", "ehr", TransactionBundle("x")));
  service_->Wake();

  EXPECT_THAT(WaitForStatus(id, v1::REJECTED), ElementsAre(v1::REJECTED));
  const v1::Transaction tx = Get(id);
  EXPECT_EQ(tx.status(), v1::REJECTED);
  ASSERT_EQ(tx.attempts_size(), 1);
  EXPECT_EQ(tx.attempts(0).http_status(), 422);
  EXPECT_EQ(tx.attempts(0).outcome(), v1::DeliveryAttempt::REJECTED);
  ASSERT_EQ(tx.attempts(0).issues_size(), 1);
  EXPECT_EQ(tx.attempts(0).issues(0).path(), "Patient.birthDate");
  EXPECT_THAT(tx.attempts(0).issues(0).message(), HasSubstr("birthDate is in the future"));
  EXPECT_EQ(posts.load(), 1);
}

TEST_F(DeliveryServiceTest, AnUnreachableDestinationEndsInTheDeadLetters) {
  // Bind a port and give it up, so that nothing listens there.
  int port = 0;
  {
    const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
    ASSERT_GE(fd, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof addr;
    const bool bound = ::bind(fd, reinterpret_cast<sockaddr*>(&addr), sizeof addr) == 0 &&
                       ::getsockname(fd, reinterpret_cast<sockaddr*>(&addr), &len) == 0;
    ::close(fd);
    ASSERT_TRUE(bound);
    port = ntohs(addr.sin_port);
  }
  v1::Destination& d = AddDestination("ehr", absl::StrCat("http://127.0.0.1:", port, "/fhir"));
  d.mutable_retry()->set_max_attempts(2);
  StartService();
  const std::string id = Append(MakeEntry("r-1", "p-1", "ehr", TransactionBundle("x")));
  service_->Wake();

  EXPECT_THAT(WaitForStatus(id, v1::DEAD_LETTER), ElementsAre(v1::RETRYING, v1::DEAD_LETTER));
  const v1::Transaction tx = Get(id);
  EXPECT_EQ(tx.status(), v1::DEAD_LETTER);
  ASSERT_EQ(tx.attempts_size(), 2);
  EXPECT_EQ(tx.attempts(1).http_status(), 0);
  EXPECT_FALSE(tx.attempts(1).error().empty());
  absl::StatusOr<QueueStats> stats = store_->Stats();
  ASSERT_TRUE(stats.ok()) << stats.status();
  EXPECT_EQ(stats->dead_letters, 1);
}

TEST_F(DeliveryServiceTest, StopReturnsPromptlyWithNoWork) {
  AddDestination("outbox", "file:" + dir_.path() + "/outbox");
  // Idle workers would only look again after a minute: Stop must wake them.
  config_.mutable_delivery()->set_poll_interval_ms(60'000);
  StartService();
  std::this_thread::sleep_for(std::chrono::milliseconds(50));  // let the workers go idle
  auto stopped = std::async(std::launch::async, [this] { service_->Stop(); });
  EXPECT_EQ(stopped.wait_for(std::chrono::seconds(10)), std::future_status::ready)
      << "Stop waited for the poll interval";
}

TEST_F(DeliveryServiceTest, StartFailsForAFileDestinationThatCannotBeCreated) {
  const std::string file = dir_.path() + "/a-file";
  ASSERT_TRUE(WriteFile(file, "x"));
  AddDestination("outbox", "file:" + file + "/outbox");
  DeliveryService service(*store_, config_, metrics_);
  absl::Status started = service.Start();
  EXPECT_EQ(started.code(), absl::StatusCode::kUnavailable) << started;
  EXPECT_THAT(std::string(started.message()), HasSubstr(file));
}

}  // namespace
}  // namespace fhirgw::gateway
