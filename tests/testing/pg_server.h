// A throwaway PostgreSQL server for tests, from Debian's `postgresql` package: initdb into a fresh
// directory, `postgres` on a free port with its unix socket in that directory, stopped and removed
// when the object goes. PostgreSQL refuses to run as root, so as root (CI) both run as the
// `postgres` system user the package creates (or `nobody`), through setpriv.
//
//   if (!PgServer::BinariesAvailable()) GTEST_SKIP() << PgServer::MissingMessage();
//   std::string error;
//   std::unique_ptr<PgServer> pg = PgServer::Start({}, &error);
//   ASSERT_NE(pg, nullptr) << error;
//   std::string dsn = pg->CreateDatabase("replicas", &error);  // "host=/tmp/... port=... ..."
//
// A crashed test leaves no server behind: the server gets SIGKILL when the thread that started it
// dies (PR_SET_PDEATHSIG), and its backends exit when the postmaster is gone.
#ifndef FHIRGW_TESTS_TESTING_PG_SERVER_H_
#define FHIRGW_TESTS_TESTING_PG_SERVER_H_

#include <memory>
#include <string>

#include "tests/testing/subprocess.h"

namespace fhirgw::testing {

struct PgServerOptions {
  // fsync off makes tests fast; benchmarks and durability checks keep it on.
  bool fsync = false;
  int max_connections = 200;
};

class PgServer {
 public:
  // The directory with initdb and postgres: $FHIRGW_PG_BINDIR, or the newest
  // /usr/lib/postgresql/<version>/bin. Empty when PostgreSQL is not installed.
  static std::string BinDir();
  static bool BinariesAvailable() { return !BinDir().empty(); }
  // Why a test skips when BinariesAvailable() is false.
  static std::string MissingMessage();

  // Creates the cluster and starts the server; nullptr (with `*error` set, including the server's
  // log) when it does not come up within a minute.
  static std::unique_ptr<PgServer> Start(const PgServerOptions& options, std::string* error);
  // Stops the server (fast shutdown) and removes its directory.
  ~PgServer();

  // A libpq connection string for `database` over the unix socket, as the superuser "fhirgw".
  std::string Dsn(const std::string& database) const;
  // The TCP port the server also listens on (127.0.0.1).
  int port() const { return port_; }
  const std::string& dir() const { return dir_; }

  // Creates `database`; returns its DSN, or "" with `*error` set.
  std::string CreateDatabase(const std::string& database, std::string* error);
  // Runs `sql` in `database`; returns the first column of the first row as text ("" when there is
  // none). `*error` is cleared, or set when the statement fails.
  std::string Query(const std::string& database, const std::string& sql, std::string* error);

  // The server's log so far.
  std::string Log() const;

 private:
  PgServer() = default;
  std::unique_ptr<Subprocess> process_;
  std::string dir_;
  std::string log_path_;
  int port_ = 0;
};

// The server shared by the tests of one test binary (each ctest process), started on first use;
// nullptr with `*error` set when it cannot start.
PgServer* SharedPgServer(std::string* error);

}  // namespace fhirgw::testing

#endif  // FHIRGW_TESTS_TESTING_PG_SERVER_H_
