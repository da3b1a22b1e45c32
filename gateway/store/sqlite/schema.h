// The SQLite log's tables and indexes.
#ifndef FHIRGW_GATEWAY_STORE_SQLITE_SCHEMA_H_
#define FHIRGW_GATEWAY_STORE_SQLITE_SCHEMA_H_

#include <sqlite3.h>

#include "absl/status/status.h"

namespace fhirgw::gateway::sqlite {

// Creates the tables and indexes that do not exist yet.
absl::Status CreateSchema(sqlite3* db);

}  // namespace fhirgw::gateway::sqlite

#endif  // FHIRGW_GATEWAY_STORE_SQLITE_SCHEMA_H_
