// The store backends a parameterized test runs over (TEST_P ... Values(Backend::kSqlite,
// Backend::kPostgres), BackendName); PostgreSQL runs use pg_server.h.
#ifndef FHIRGW_TESTS_TESTING_STORE_BACKEND_H_
#define FHIRGW_TESTS_TESTING_STORE_BACKEND_H_

#include <ostream>
#include <string>

#include "gtest/gtest.h"

namespace fhirgw::testing {

enum class Backend { kSqlite, kPostgres };

inline const char* BackendLabel(Backend backend) {
  return backend == Backend::kSqlite ? "Sqlite" : "Postgres";
}

// Test name suffixes: ".../Sqlite", ".../Postgres".
inline std::string BackendName(const ::testing::TestParamInfo<Backend>& info) {
  return BackendLabel(info.param);
}

// Printed in test names and failure messages as the backend's name, not as bytes.
inline void PrintTo(Backend backend, std::ostream* out) { *out << BackendLabel(backend); }

}  // namespace fhirgw::testing

#endif  // FHIRGW_TESTS_TESTING_STORE_BACKEND_H_
