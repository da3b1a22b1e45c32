// Benchmark of the auditors' queries (AuditService.QueryTransactions = Store::Query) on a large
// SQLite log, and a check that none of them reads the whole transactions table.
//
// It fills a fresh log through the Store API -- N transactions spread over 50 clinics, 5,000
// patients, 4 record kinds, both directions, 3 destinations and 90 days, with delivery attempts
// (CompleteAttempt) giving most of them a final status -- then runs every filter alone, a few
// combinations, and deep pages reached through page tokens, many times each, and prints p50/p99
// latencies. Every query's plan (EXPLAIN QUERY PLAN of the exact SQL the store ran, captured with
// a statement trace) is printed; the exit status is 1 when a query scans the transactions table
// without an index, or walks a whole index although it filters.
//
//   build/tests/audit_query_bench                          # 1,000,000 transactions (minutes)
//   build/tests/audit_query_bench --transactions=2000 --repetitions=5   # smoke run (ctest)
//   build/tests/audit_query_bench --db=/var/tmp/audit.db --keep         # keep the log afterwards
//   build/tests/audit_query_bench --db=/var/tmp/audit.db --reuse --keep # only query it again
//
// Timing belongs here, never in tests: the smoke run only checks that it runs and that the plans
// are right.
#include <sqlite3.h>
#include <stdlib.h>
#include <sys/stat.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <functional>
#include <future>
#include <memory>
#include <mutex>
#include <random>
#include <string>
#include <vector>

#include "absl/flags/flag.h"
#include "absl/flags/parse.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gateway/security/crypto.h"
#include "gateway/store/sqlite/sqlite_store.h"
#include "gateway/store/store.h"

ABSL_FLAG(int64_t, transactions, 1'000'000, "transactions to log");
ABSL_FLAG(int, repetitions, 300, "runs of each query (each with freshly drawn parameters)");
ABSL_FLAG(int, batch, 5000, "transactions per AppendAll");
ABSL_FLAG(double, attempt_share, 1.0,
          "share of the outbound transactions (older than two hours) given an attempt");
ABSL_FLAG(bool, encrypt, true, "encrypt payloads (AES-256-GCM), as a production gateway does");
ABSL_FLAG(std::string, db, "", "the log file (default: a fresh temporary directory)");
ABSL_FLAG(bool, keep, false, "keep the log file afterwards");
ABSL_FLAG(bool, reuse, false,
          "query the log at --db as it is (kept by an earlier --keep run) instead of filling one");

namespace fhirgw::gateway {
namespace {

using Clock = std::chrono::steady_clock;

constexpr int kClinics = 50;
constexpr int kPatients = 5000;
constexpr int64_t kDayMs = 24 * 3600 * 1000;
constexpr int64_t kDays = 90;
constexpr int64_t kStartMs = 1'780'000'000'000;  // 2026-05-28T20:26:40Z
constexpr int64_t kEndMs = kStartMs + kDays * kDayMs;
constexpr int kPageSize = 50;
const char* const kDestinations[] = {"st-olaf-ehr", "mercy-ehr", "county-ehr"};

double Seconds(Clock::duration d) { return std::chrono::duration<double>(d).count(); }

// --- capturing the SQL the store runs ------------------------------------------------------------

std::atomic<bool> capture{false};
std::mutex captured_mu;
std::string captured_sql;  // guarded by captured_mu: the last audit query, parameters filled in

int TraceStatement(unsigned type, void*, void* statement, void* text) {
  if (type != SQLITE_TRACE_STMT || !capture.load()) return 0;
  const char* sql = static_cast<const char*>(text);
  if (sql == nullptr || std::strstr(sql, "FROM transactions") == nullptr ||
      std::strstr(sql, "ORDER BY received_at_ms DESC") == nullptr) {
    return 0;
  }
  char* expanded = sqlite3_expanded_sql(static_cast<sqlite3_stmt*>(statement));
  if (expanded != nullptr) {
    std::lock_guard<std::mutex> lock(captured_mu);
    captured_sql = expanded;
  }
  sqlite3_free(expanded);
  return 0;
}

// Runs for every connection opened in this process, the store's included.
int TraceEveryConnection(sqlite3* db, const char**, const sqlite3_api_routines*) {
  sqlite3_trace_v2(db, SQLITE_TRACE_STMT, TraceStatement, nullptr);
  return SQLITE_OK;
}

// The detail lines of EXPLAIN QUERY PLAN `sql` on `db`.
std::vector<std::string> PlanOf(sqlite3* db, const std::string& sql) {
  std::vector<std::string> plan;
  sqlite3_stmt* stmt = nullptr;
  if (sqlite3_prepare_v2(db, ("EXPLAIN QUERY PLAN " + sql).c_str(), -1, &stmt, nullptr) !=
      SQLITE_OK) {
    plan.push_back(absl::StrCat("(cannot explain: ", sqlite3_errmsg(db), ")"));
    return plan;
  }
  while (sqlite3_step(stmt) == SQLITE_ROW) {
    plan.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 3)));
  }
  sqlite3_finalize(stmt);
  return plan;
}

// --- the log ------------------------------------------------------------------------------------

struct Generated {
  std::vector<std::string> record_ids;  // a sample, for the record_id filter
};

const char* KindPrefix(v1::RecordKind kind) {
  switch (kind) {
    case v1::INFUSION:
      return "inf";
    case v1::QUESTIONNAIRE:
      return "phq";
    case v1::MEDICATION_STATEMENT:
      return "med";
    default:
      return "enc";
  }
}

std::string ClinicOf(int patient) { return absl::StrFormat("clinic-%02d", patient % kClinics); }
std::string PatientId(int patient) { return absl::StrFormat("P-%05d", patient); }

// A realistic record and Bundle: about 0.7 KB and 3 KB.
NewEntry MakeEntry(int64_t i, int patient, v1::RecordKind kind, v1::Direction direction,
                   int64_t at_ms) {
  NewEntry e;
  e.clinic_id = ClinicOf(patient);
  e.patient_id = PatientId(patient);
  e.record_id = absl::StrCat(KindPrefix(kind), "-", i);
  e.kind = kind;
  e.direction = direction;
  e.destination = kDestinations[(patient % kClinics) % 3];
  e.principal = direction == v1::CLINIC_TO_EHR ? absl::StrCat(e.clinic_id, "-emr")
                                               : absl::StrCat(e.destination, "-hospital");
  e.received_at_ms = at_ms;
  v1::ClinicRecord record;
  record.set_record_id(e.record_id);
  record.set_clinic_id(e.clinic_id);
  v1::PatientRef& ref = *record.mutable_patient();
  ref.set_clinic_patient_id(e.patient_id);
  ref.set_family_name(absl::StrFormat("Family%05d", patient));
  ref.add_given_names(absl::StrFormat("Given%05d", patient));
  ref.set_birth_date(
      absl::StrFormat("19%02d-%02d-%02d", 40 + patient % 60, 1 + patient % 12, 1 + patient % 28));
  v1::Identifier& mrn = *ref.add_identifiers();
  mrn.set_system("urn:oid:2.16.840.1.113883.3.4711.1");
  mrn.set_value(absl::StrFormat("MRN-%07d", patient));
  record.mutable_medication_statement()->mutable_medication()->set_display(
      "esketamine 28 MG Nasal Spray");
  record.mutable_medication_statement()->set_note(std::string(420, 'n'));
  e.record = record.SerializeAsString();
  e.content_hash = Sha256(e.record);
  e.fhir_json = absl::StrCat(R"({"resourceType":"Bundle","type":"transaction","id":")", e.record_id,
                             R"(","entry":[)", std::string(2900, ' '), "]}");
  if (direction == v1::CLINIC_TO_EHR) {
    e.patient_keys = {absl::StrCat("urn:fhirgw:", e.clinic_id, ":patient|", e.patient_id),
                      absl::StrCat(mrn.system(), "|", mrn.value())};
  }
  return e;
}

AttemptResult MakeAttempt(const std::string& id, int64_t at_ms, std::mt19937_64& rng) {
  AttemptResult result;
  result.transaction_id = id;
  result.attempt.set_number(1);
  result.attempt.mutable_started_at()->set_seconds(at_ms / 1000 + 1);
  result.attempt.set_duration_ms(180);
  const double draw = std::uniform_real_distribution<double>(0, 1)(rng);
  if (draw < 0.95) {
    result.new_status = v1::DELIVERED;
    result.attempt.set_http_status(200);
    result.attempt.set_outcome(v1::DeliveryAttempt::SUCCESS);
    result.attempt.set_response(
        absl::StrCat(R"({"resourceType":"Bundle","type":"transaction-response","entry":[)",
                     std::string(700, ' '), "]}"));
  } else if (draw < 0.975) {
    result.new_status = v1::REJECTED;
    result.attempt.set_http_status(422);
    result.attempt.set_outcome(v1::DeliveryAttempt::REJECTED);
    result.attempt.set_response(R"({"resourceType":"OperationOutcome"})");
    v1::Issue& issue = *result.attempt.add_issues();
    issue.set_path("MedicationStatement.status");
    issue.set_message("value rejected");
  } else {
    result.new_status = draw < 0.99 ? v1::RETRYING : v1::DEAD_LETTER;
    result.attempt.set_http_status(503);
    result.attempt.set_outcome(v1::DeliveryAttempt::RETRYABLE_ERROR);
    result.next_attempt_at_ms = kEndMs + kDayMs;
  }
  return result;
}

absl::StatusOr<std::vector<AppendResult>> AppendAllAndWait(Store& store,
                                                           std::vector<NewEntry> entries) {
  std::promise<absl::StatusOr<std::vector<AppendResult>>> promise;
  auto future = promise.get_future();
  store.AppendAll(std::move(entries), [&promise](absl::StatusOr<std::vector<AppendResult>> r) {
    promise.set_value(std::move(r));
  });
  return future.get();
}

// Fills `store` with `n` transactions in time order, then gives outbound ones their attempt.
absl::StatusOr<Generated> Fill(Store& store, int64_t n, std::mt19937_64& rng) {
  Generated generated;
  // A few patients are far more active than most (weekly infusions vs. a one-off intake).
  std::vector<double> weights(kPatients);
  for (int p = 0; p < kPatients; ++p) weights[p] = 1.0 + (p % 10 == 0 ? 4.0 : 0.0) + (p % 7);
  std::discrete_distribution<int> patient_of(weights.begin(), weights.end());
  std::discrete_distribution<int> kind_of({35, 15, 40, 10});  // infusion, med, questionnaire, enc
  std::uniform_real_distribution<double> unit(0, 1);
  const int batch_size = absl::GetFlag(FLAGS_batch);
  const double step = static_cast<double>(kEndMs - kStartMs) / static_cast<double>(n);

  struct Outbound {
    std::string id;
    int64_t at_ms;
  };
  std::vector<Outbound> outbound;
  outbound.reserve(static_cast<size_t>(n));
  const auto start = Clock::now();
  for (int64_t first = 0; first < n; first += batch_size) {
    std::vector<NewEntry> batch;
    for (int64_t i = first; i < std::min(n, first + batch_size); ++i) {
      const int patient = patient_of(rng);
      const auto kind = static_cast<v1::RecordKind>(kind_of(rng) + 1);
      const v1::Direction direction = unit(rng) < 0.15 ? v1::EHR_TO_CLINIC : v1::CLINIC_TO_EHR;
      const auto at =
          kStartMs + static_cast<int64_t>(static_cast<double>(i) * step + unit(rng) * step);
      batch.push_back(MakeEntry(i, patient, kind, direction, at));
      if (i % 997 == 0) generated.record_ids.push_back(batch.back().record_id);
    }
    std::vector<std::pair<v1::Direction, int64_t>> meta;
    for (const NewEntry& e : batch) meta.emplace_back(e.direction, e.received_at_ms);
    absl::StatusOr<std::vector<AppendResult>> results = AppendAllAndWait(store, std::move(batch));
    if (!results.ok()) return results.status();
    for (size_t k = 0; k < results->size(); ++k) {
      if (meta[k].first == v1::CLINIC_TO_EHR) {
        outbound.push_back({(*results)[k].transaction_id, meta[k].second});
      }
    }
    if ((first / batch_size) % 20 == 0) {
      std::fprintf(stderr, "\r  appended %lld / %lld", static_cast<long long>(first + batch_size),
                   static_cast<long long>(n));
    }
  }
  const double append_s = Seconds(Clock::now() - start);
  std::fprintf(stderr, "\n");

  const auto attempts_start = Clock::now();
  const double share = absl::GetFlag(FLAGS_attempt_share);
  int64_t attempts = 0;
  for (const Outbound& o : outbound) {
    if (o.at_ms > kEndMs - 2 * 3600 * 1000 || unit(rng) >= share) continue;  // still ACCEPTED
    if (absl::Status s = store.CompleteAttempt(MakeAttempt(o.id, o.at_ms, rng)); !s.ok()) return s;
    if (++attempts % 50000 == 0) {
      std::fprintf(stderr, "\r  attempts %lld", static_cast<long long>(attempts));
    }
  }
  const double attempts_s = Seconds(Clock::now() - attempts_start);
  std::fprintf(stderr, "\n");
  std::printf(
      "fill: %lld transactions appended in %.1f s (%.0f/s, AppendAll of %d); %lld "
      "attempts recorded in %.1f s (%.0f/s, one CompleteAttempt each)\n",
      static_cast<long long>(n), append_s, static_cast<double>(n) / append_s, batch_size,
      static_cast<long long>(attempts), attempts_s,
      attempts_s > 0 ? static_cast<double>(attempts) / attempts_s : 0.0);
  return generated;
}

// What Fill would have returned, read back from the log at `path` (for --reuse).
absl::StatusOr<Generated> Sample(const std::string& path) {
  sqlite3* db = nullptr;
  if (sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READONLY, nullptr) != SQLITE_OK) {
    sqlite3_close(db);
    return absl::NotFoundError(absl::StrCat("cannot open ", path));
  }
  Generated generated;
  sqlite3_stmt* stmt = nullptr;
  sqlite3_prepare_v2(db, "SELECT record_id FROM transactions WHERE seq % 997 = 1", -1, &stmt,
                     nullptr);
  while (stmt != nullptr && sqlite3_step(stmt) == SQLITE_ROW) {
    generated.record_ids.emplace_back(reinterpret_cast<const char*>(sqlite3_column_text(stmt, 0)));
  }
  sqlite3_finalize(stmt);
  sqlite3_close(db);
  if (generated.record_ids.empty()) {
    return absl::FailedPreconditionError(absl::StrCat(path, " holds no transactions"));
  }
  std::printf("reusing %s\n", path.c_str());
  return generated;
}

// --- the queries --------------------------------------------------------------------------------

struct Case {
  std::string name;
  std::function<TransactionQuery(std::mt19937_64&)> make;
  // Walking an index in time order is the plan only when nothing but time filters.
  bool ordered_scan_ok = false;
  int deep_pages = 0;  // > 0: measure the page reached after this many next_page_tokens
};

int64_t Uniform(std::mt19937_64& rng, int64_t lo, int64_t hi) {
  return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
}

std::vector<Case> Cases(const Generated& g) {
  auto clinic = [](std::mt19937_64& rng) {
    return absl::StrFormat("clinic-%02d", Uniform(rng, 0, kClinics - 1));
  };
  auto patient = [](std::mt19937_64& rng) {
    return static_cast<int>(Uniform(rng, 0, kPatients - 1));
  };
  auto week = [](std::mt19937_64& rng, TransactionQuery& q) {
    q.from_ms = Uniform(rng, kStartMs, kEndMs - 7 * kDayMs);
    q.to_ms = q.from_ms + 7 * kDayMs;
  };
  std::vector<Case> cases;
  cases.push_back(
      {"no filter (newest 50)", [](std::mt19937_64&) { return TransactionQuery(); }, true});
  cases.push_back({"time range (7 days)",
                   [week](std::mt19937_64& rng) {
                     TransactionQuery q;
                     week(rng, q);
                     return q;
                   },
                   true});
  cases.push_back({"clinic", [clinic](std::mt19937_64& rng) {
                     TransactionQuery q;
                     q.clinic_id = clinic(rng);
                     return q;
                   }});
  cases.push_back({"patient (clinic's id)", [patient](std::mt19937_64& rng) {
                     TransactionQuery q;
                     q.patient_identifier = PatientId(patient(rng));
                     return q;
                   }});
  cases.push_back({"patient (system|value, clinic's)", [patient](std::mt19937_64& rng) {
                     const int p = patient(rng);
                     TransactionQuery q;
                     q.patient_identifier =
                         absl::StrCat("urn:fhirgw:", ClinicOf(p), ":patient|", PatientId(p));
                     return q;
                   }});
  cases.push_back({"patient (system|value, hospital MRN)", [patient](std::mt19937_64& rng) {
                     TransactionQuery q;
                     q.patient_identifier = absl::StrFormat(
                         "urn:oid:2.16.840.1.113883.3.4711.1|MRN-%07d", patient(rng));
                     return q;
                   }});
  cases.push_back({"kind", [](std::mt19937_64& rng) {
                     TransactionQuery q;
                     q.kind = static_cast<v1::RecordKind>(Uniform(rng, 1, 4));
                     return q;
                   }});
  cases.push_back({"direction (inbound)", [](std::mt19937_64&) {
                     TransactionQuery q;
                     q.direction = v1::EHR_TO_CLINIC;
                     return q;
                   }});
  cases.push_back({"status DELIVERED (common)", [](std::mt19937_64&) {
                     TransactionQuery q;
                     q.status = v1::DELIVERED;
                     return q;
                   }});
  cases.push_back({"status DEAD_LETTER (rare)", [](std::mt19937_64&) {
                     TransactionQuery q;
                     q.status = v1::DEAD_LETTER;
                     return q;
                   }});
  cases.push_back({"destination", [](std::mt19937_64& rng) {
                     TransactionQuery q;
                     q.destination = kDestinations[Uniform(rng, 0, 2)];
                     return q;
                   }});
  cases.push_back({"record_id", [&g](std::mt19937_64& rng) {
                     TransactionQuery q;
                     q.record_id = g.record_ids[Uniform(rng, 0, g.record_ids.size() - 1)];
                     return q;
                   }});
  cases.push_back({"clinic + time range (7 days)", [clinic, week](std::mt19937_64& rng) {
                     TransactionQuery q;
                     q.clinic_id = clinic(rng);
                     week(rng, q);
                     return q;
                   }});
  cases.push_back({"clinic + kind", [clinic](std::mt19937_64& rng) {
                     TransactionQuery q;
                     q.clinic_id = clinic(rng);
                     q.kind = static_cast<v1::RecordKind>(Uniform(rng, 1, 4));
                     return q;
                   }});
  cases.push_back({"clinic + status REJECTED", [clinic](std::mt19937_64& rng) {
                     TransactionQuery q;
                     q.clinic_id = clinic(rng);
                     q.status = v1::REJECTED;
                     return q;
                   }});
  cases.push_back({"destination + status RETRYING + 7 days", [week](std::mt19937_64& rng) {
                     TransactionQuery q;
                     q.destination = kDestinations[Uniform(rng, 0, 2)];
                     q.status = v1::RETRYING;
                     week(rng, q);
                     return q;
                   }});
  cases.push_back({"kind + direction + 7 days", [week](std::mt19937_64& rng) {
                     TransactionQuery q;
                     q.kind = static_cast<v1::RecordKind>(Uniform(rng, 1, 4));
                     q.direction = v1::CLINIC_TO_EHR;
                     week(rng, q);
                     return q;
                   }});
  cases.push_back({"scoped auditor (5 clinics)", [](std::mt19937_64& rng) {
                     TransactionQuery q;
                     const int64_t first = Uniform(rng, 0, kClinics - 5);
                     for (int64_t c = first; c < first + 5; ++c) {
                       q.clinic_scope.push_back(absl::StrFormat("clinic-%02d", c));
                     }
                     return q;
                   }});
  Case deep{"no filter, page 200 (via tokens)", [](std::mt19937_64&) { return TransactionQuery(); },
            true, 199};
  cases.push_back(deep);
  Case deep_clinic{"clinic, page 40 (via tokens)", [clinic](std::mt19937_64& rng) {
                     TransactionQuery q;
                     q.clinic_id = clinic(rng);
                     return q;
                   }};
  deep_clinic.deep_pages = 39;
  cases.push_back(deep_clinic);
  return cases;
}

// Follows `pages` next_page_tokens from `query`; the query for the page reached.
absl::StatusOr<TransactionQuery> Deepen(Store& store, TransactionQuery query, int pages) {
  for (int i = 0; i < pages; ++i) {
    absl::StatusOr<TransactionPage> page = store.Query(query);
    if (!page.ok()) return page.status();
    if (page->next_page_token.empty()) break;
    query.page_token = page->next_page_token;
  }
  return query;
}

double Percentile(std::vector<double> values, double p) {
  if (values.empty()) return 0;
  std::sort(values.begin(), values.end());
  const size_t index = std::min(values.size() - 1, static_cast<size_t>(p * values.size()));
  return values[index];
}

// True when `plan` reads transactions only through index searches (or, when `ordered_scan_ok`,
// by walking an index in time order); prints why not.
bool PlanIsIndexed(const std::vector<std::string>& plan, bool ordered_scan_ok) {
  bool ok = true;
  for (const std::string& line : plan) {
    if (!absl::StartsWith(line, "SCAN ")) continue;
    const bool table =
        absl::StartsWith(line, "SCAN transactions") || absl::StartsWith(line, "SCAN patient_keys");
    if (!table) continue;
    if (!absl::StrContains(line, " USING ")) {
      std::printf("    !! full table scan: %s\n", line.c_str());
      ok = false;
    } else if (!ordered_scan_ok) {
      std::printf("    !! walks a whole index although the query filters: %s\n", line.c_str());
      ok = false;
    }
  }
  return ok;
}

int Run() {
  const int64_t n = absl::GetFlag(FLAGS_transactions);
  const int repetitions = absl::GetFlag(FLAGS_repetitions);
  std::string dir;
  std::string path = absl::GetFlag(FLAGS_db);
  if (path.empty()) {
    const char* tmp = std::getenv("TMPDIR");
    std::string pattern =
        std::string(tmp != nullptr && *tmp ? tmp : "/tmp") + "/fhirgw-audit-bench-XXXXXX";
    if (mkdtemp(pattern.data()) == nullptr) {
      std::fprintf(stderr, "audit_query_bench: cannot create a temporary directory\n");
      return 1;
    }
    dir = pattern;
    path = dir + "/fhirgw.db";
  } else if (std::filesystem::exists(path) && !absl::GetFlag(FLAGS_reuse)) {
    std::fprintf(stderr, "audit_query_bench: %s exists; the benchmark needs a fresh log\n",
                 path.c_str());
    return 1;
  }
  auto cleanup = [&] {
    if (absl::GetFlag(FLAGS_keep)) return;
    std::error_code ignored;
    if (!dir.empty()) {
      std::filesystem::remove_all(dir, ignored);
    } else {
      for (const char* suffix : {"", "-wal", "-shm", ".heads"}) {
        std::filesystem::remove(path + suffix, ignored);
      }
    }
  };

  sqlite3_auto_extension(reinterpret_cast<void (*)(void)>(TraceEveryConnection));
  SqliteOptions options;
  options.path = path;
  if (absl::GetFlag(FLAGS_encrypt)) {
    absl::StatusOr<std::shared_ptr<const PayloadCipher>> cipher =
        PayloadCipher::FromKeys({{"bench", std::string(32, 'k')}}, "bench");
    if (!cipher.ok()) {
      std::fprintf(stderr, "audit_query_bench: %s\n",
                   std::string(cipher.status().message()).c_str());
      return 1;
    }
    options.cipher = *cipher;
  }
  absl::StatusOr<std::unique_ptr<Store>> opened = OpenSqliteStore(options);
  if (!opened.ok()) {
    std::fprintf(stderr, "audit_query_bench: %s\n", std::string(opened.status().message()).c_str());
    return 1;
  }
  Store& store = **opened;
  std::mt19937_64 rng(20261127);
  std::printf(
      "audit_query_bench: %lld transactions, %d clinics, %d patients, %lld days, "
      "encryption %s, log %s\n",
      static_cast<long long>(n), kClinics, kPatients, static_cast<long long>(kDays),
      options.cipher ? "on" : "off", path.c_str());
  absl::StatusOr<Generated> generated =
      absl::GetFlag(FLAGS_reuse) ? Sample(path) : Fill(store, n, rng);
  if (!generated.ok()) {
    std::fprintf(stderr, "audit_query_bench: fill: %s\n",
                 std::string(generated.status().message()).c_str());
    cleanup();
    return 1;
  }

  sqlite3* db = nullptr;
  sqlite3_open_v2(path.c_str(), &db, SQLITE_OPEN_READWRITE, nullptr);
  sqlite3_exec(db, "PRAGMA wal_checkpoint(TRUNCATE)", nullptr, nullptr, nullptr);
  std::error_code ec;
  const auto db_bytes = std::filesystem::file_size(path, ec);
  int64_t logged = 0;
  {
    sqlite3_stmt* count = nullptr;
    sqlite3_prepare_v2(db, "SELECT count(*) FROM transactions", -1, &count, nullptr);
    if (count != nullptr && sqlite3_step(count) == SQLITE_ROW)
      logged = sqlite3_column_int64(count, 0);
    sqlite3_finalize(count);
  }
  std::printf("log: %lld transactions, %.2f GB (%s, after a WAL checkpoint)\n",
              static_cast<long long>(logged), static_cast<double>(db_bytes) / 1e9, path.c_str());

  bool plans_ok = true;
  std::vector<std::string> rows;
  for (const Case& c : Cases(*generated)) {
    // The plan, from the exact SQL of one run.
    TransactionQuery probe = c.make(rng);
    absl::StatusOr<TransactionQuery> deep = Deepen(store, probe, c.deep_pages);
    if (!deep.ok()) {
      std::fprintf(stderr, "audit_query_bench: %s: %s\n", c.name.c_str(),
                   std::string(deep.status().message()).c_str());
      plans_ok = false;
      continue;
    }
    {
      std::lock_guard<std::mutex> lock(captured_mu);
      captured_sql.clear();
    }
    capture = true;
    absl::StatusOr<TransactionPage> page = store.Query(*deep);
    capture = false;
    std::string sql;
    {
      std::lock_guard<std::mutex> lock(captured_mu);
      sql = captured_sql;
    }
    std::printf("\n%s\n  %s\n", c.name.c_str(), sql.c_str());
    const std::vector<std::string> plan = PlanOf(db, sql);
    for (const std::string& line : plan) std::printf("    plan: %s\n", line.c_str());
    if (sql.empty() || !page.ok()) {
      std::printf("    !! the query %s\n", page.ok()
                                               ? "ran no captured statement"
                                               : std::string(page.status().message()).c_str());
      plans_ok = false;
    }
    const bool indexed = PlanIsIndexed(plan, c.ordered_scan_ok);
    plans_ok = plans_ok && indexed;

    // The timing, with fresh parameters for each run. A deep page is reached by walking the
    // tokens (not timed), so fewer parameter draws are each timed several times.
    std::vector<double> ms;
    size_t results = 0;
    const int draws = c.deep_pages > 0 ? std::min(repetitions, 20) : repetitions;
    for (int d = 0; d < draws; ++d) {
      absl::StatusOr<TransactionQuery> query = Deepen(store, c.make(rng), c.deep_pages);
      if (!query.ok()) break;
      for (int r = 0; r < repetitions / draws; ++r) {
        const auto start = Clock::now();
        absl::StatusOr<TransactionPage> timed = store.Query(*query);
        ms.push_back(Seconds(Clock::now() - start) * 1000.0);
        if (timed.ok()) results += timed->transactions.size();
      }
    }
    const double p50 = Percentile(ms, 0.50);
    const double p99 = Percentile(ms, 0.99);
    std::printf("  p50 %.3f ms, p99 %.3f ms, %.1f rows a page, %zu runs%s\n", p50, p99,
                ms.empty() ? 0.0 : static_cast<double>(results) / ms.size(), ms.size(),
                indexed ? "" : "  (PLAN NOT INDEXED)");
    rows.push_back(absl::StrFormat("| %s | %.2f | %.2f | %.1f |", c.name, p50, p99,
                                   ms.empty() ? 0.0 : static_cast<double>(results) / ms.size()));
  }
  sqlite3_close(db);

  std::printf("\n| query (first page of %d unless noted) | p50 ms | p99 ms | rows |\n", kPageSize);
  std::printf("|---|---:|---:|---:|\n");
  for (const std::string& row : rows) std::printf("%s\n", row.c_str());
  std::printf("\n%s\n",
              plans_ok ? "plans: every query uses an index" : "plans: FAILED (see !! above)");
  store.Close();
  opened->reset();
  cleanup();
  return plans_ok ? 0 : 1;
}

}  // namespace
}  // namespace fhirgw::gateway

int main(int argc, char** argv) {
  absl::ParseCommandLine(argc, argv);
  return fhirgw::gateway::Run();
}
