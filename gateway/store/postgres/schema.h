// The PostgreSQL log's tables and indexes.
#ifndef FHIRGW_GATEWAY_STORE_POSTGRES_SCHEMA_H_
#define FHIRGW_GATEWAY_STORE_POSTGRES_SCHEMA_H_

#include "absl/status/status.h"
#include "gateway/store/postgres/connection.h"

namespace fhirgw::gateway::postgres {

// Creates the tables and indexes that do not exist yet, under an advisory lock (replicas starting
// together do not race).
absl::Status CreateSchema(Connection& conn);

}  // namespace fhirgw::gateway::postgres

#endif  // FHIRGW_GATEWAY_STORE_POSTGRES_SCHEMA_H_
