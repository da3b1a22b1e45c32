#include "tests/testing/pg_server.h"

#include <arpa/inet.h>
#include <libpq-fe.h>
#include <netinet/in.h>
#include <pwd.h>
#include <signal.h>
#include <stdlib.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <vector>

namespace fhirgw::testing {
namespace {

using std::chrono::milliseconds;

constexpr char kSuperuser[] = "fhirgw";

bool Executable(const std::string& path) { return ::access(path.c_str(), X_OK) == 0; }

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream text;
  text << in.rdbuf();
  return text.str();
}

// A TCP port that was free a moment ago on 127.0.0.1.
int FreePort() {
  const int fd = ::socket(AF_INET, SOCK_STREAM, 0);
  if (fd < 0) return 0;
  sockaddr_in address{};
  address.sin_family = AF_INET;
  address.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  address.sin_port = 0;
  socklen_t length = sizeof address;
  int port = 0;
  if (::bind(fd, reinterpret_cast<sockaddr*>(&address), sizeof address) == 0 &&
      ::getsockname(fd, reinterpret_cast<sockaddr*>(&address), &length) == 0) {
    port = ntohs(address.sin_port);
  }
  ::close(fd);
  return port;
}

// The user the server runs as when the test runs as root (PostgreSQL refuses root).
const passwd* ServerUser() {
  if (const passwd* user = ::getpwnam("postgres"); user != nullptr) return user;
  return ::getpwnam("nobody");
}

std::string SetprivPath() {
  for (const char* path : {"/usr/bin/setpriv", "/bin/setpriv"}) {
    if (Executable(path)) return path;
  }
  return "";
}

}  // namespace

std::string PgServer::BinDir() {
  if (const char* dir = std::getenv("FHIRGW_PG_BINDIR"); dir != nullptr && *dir != '\0') {
    return Executable(std::string(dir) + "/initdb") ? dir : "";
  }
  std::error_code ec;
  int best_version = -1;
  std::string best;
  for (const auto& entry : std::filesystem::directory_iterator("/usr/lib/postgresql", ec)) {
    const std::string bin = entry.path().string() + "/bin";
    const int version = std::atoi(entry.path().filename().c_str());
    if (version > best_version && Executable(bin + "/initdb") && Executable(bin + "/postgres")) {
      best_version = version;
      best = bin;
    }
  }
  return best;
}

std::string PgServer::MissingMessage() {
  return "PostgreSQL is not installed (no initdb and postgres under $FHIRGW_PG_BINDIR or "
         "/usr/lib/postgresql/*/bin): the PostgreSQL store tests are skipped. "
         "scripts/deps.sh --test installs the postgresql package.";
}

std::unique_ptr<PgServer> PgServer::Start(const PgServerOptions& options, std::string* error) {
  const std::string bin = BinDir();
  if (bin.empty()) {
    *error = MissingMessage();
    return nullptr;
  }
  std::unique_ptr<PgServer> server(new PgServer());
  const bool root = ::geteuid() == 0;
  // As root the server's user must reach the directory: /tmp is open to everyone, $TMPDIR may not
  // be.
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern =
      std::string(root || tmp == nullptr || *tmp == '\0' ? "/tmp" : tmp) + "/fhirgw-pg-XXXXXX";
  if (::mkdtemp(pattern.data()) == nullptr) {
    *error = "cannot create a directory for PostgreSQL under " + pattern;
    return nullptr;
  }
  server->dir_ = pattern;
  server->log_path_ = server->dir_ + "/postgres.log";

  std::vector<std::string> as_user;
  if (root) {
    const passwd* user = ServerUser();
    const std::string setpriv = SetprivPath();
    if (user == nullptr || setpriv.empty()) {
      *error =
          "running as root, but there is no 'postgres' or 'nobody' user, or no setpriv, to "
          "run PostgreSQL unprivileged";
      return nullptr;
    }
    if (::chown(server->dir_.c_str(), user->pw_uid, user->pw_gid) != 0) {
      *error = "cannot hand " + server->dir_ + " to the user " + user->pw_name;
      return nullptr;
    }
    // --pdeathsig again after the change of user (which clears the one Subprocess set).
    as_user = {setpriv, "--reuid=" + std::to_string(user->pw_uid),
               "--regid=" + std::to_string(user->pw_gid), "--clear-groups", "--pdeathsig=KILL"};
  }

  SubprocessOptions initdb;
  initdb.argv = as_user;
  for (const std::string& arg :
       {bin + "/initdb", std::string("--pgdata=") + server->dir_ + "/data",
        std::string("--username=") + kSuperuser, std::string("--auth=trust"),
        std::string("--encoding=UTF8"), std::string("--locale=C"), std::string("--no-sync"),
        std::string("--no-instructions")}) {
    initdb.argv.push_back(arg);
  }
  initdb.working_dir = server->dir_;
  SubprocessResult created = RunSubprocess(initdb, std::chrono::minutes(2));
  if (!created.ExitedWith(0)) {
    *error = "initdb failed:\n" + created.Describe();
    return nullptr;
  }

  server->port_ = FreePort();
  SubprocessOptions postgres;
  postgres.argv = as_user;
  // The log goes to a file (a pipe nobody reads would block the server once full).
  for (const std::string& arg : {std::string("/bin/sh"),
                                 std::string("-c"),
                                 std::string("exec \"$0\" \"$@\" >>\"$FHIRGW_PG_LOG\" 2>&1"),
                                 bin + "/postgres",
                                 std::string("-D"),
                                 server->dir_ + "/data",
                                 std::string("-k"),
                                 server->dir_,
                                 std::string("-p"),
                                 std::to_string(server->port_),
                                 std::string("-c"),
                                 std::string("listen_addresses=127.0.0.1"),
                                 std::string("-c"),
                                 "max_connections=" + std::to_string(options.max_connections),
                                 std::string("-c"),
                                 std::string("fsync=") + (options.fsync ? "on" : "off"),
                                 std::string("-c"),
                                 std::string("full_page_writes=") + (options.fsync ? "on" : "off"),
                                 std::string("-c"),
                                 std::string("log_min_messages=warning"),
                                 std::string("-c"),
                                 std::string("log_min_error_statement=panic")}) {
    postgres.argv.push_back(arg);
  }
  postgres.env = {"FHIRGW_PG_LOG=" + server->log_path_};
  postgres.working_dir = server->dir_;
  server->process_ = Subprocess::Start(postgres, error);
  if (server->process_ == nullptr) return nullptr;
  const std::string dsn = server->Dsn("postgres") + " connect_timeout=2";
  const bool up = server->process_->WaitUntil(
      [&dsn](const std::string&, const std::string&) { return PQping(dsn.c_str()) == PQPING_OK; },
      std::chrono::minutes(1));
  if (!up) {
    *error = "PostgreSQL did not start\n" + server->process_->Describe() + "log:\n" + server->Log();
    return nullptr;
  }
  return server;
}

PgServer::~PgServer() {
  if (process_ != nullptr && process_->running()) {
    process_->Signal(SIGINT);  // fast shutdown: disconnect clients, checkpoint, exit
    process_->Wait(std::chrono::seconds(60));
  }
  process_.reset();
  if (!dir_.empty()) {
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
}

std::string PgServer::Dsn(const std::string& database) const {
  return "host=" + dir_ + " port=" + std::to_string(port_) + " user=" + kSuperuser +
         " dbname=" + database;
}

std::string PgServer::Query(const std::string& database, const std::string& sql,
                            std::string* error) {
  error->clear();
  PGconn* conn = PQconnectdb(Dsn(database).c_str());
  std::string value;
  if (PQstatus(conn) != CONNECTION_OK) {
    *error = std::string("cannot connect to ") + database + ": " + PQerrorMessage(conn);
  } else {
    PGresult* result = PQexec(conn, sql.c_str());
    const ExecStatusType status = PQresultStatus(result);
    if (status != PGRES_COMMAND_OK && status != PGRES_TUPLES_OK) {
      *error = sql + ": " + PQresultErrorMessage(result);
    } else if (PQntuples(result) > 0 && PQnfields(result) > 0) {
      value = PQgetvalue(result, 0, 0);
    }
    PQclear(result);
  }
  PQfinish(conn);
  return value;
}

std::string PgServer::CreateDatabase(const std::string& database, std::string* error) {
  Query("postgres", "CREATE DATABASE \"" + database + "\"", error);
  return error->empty() ? Dsn(database) : "";
}

std::string PgServer::Log() const { return ReadAll(log_path_); }

PgServer* SharedPgServer(std::string* error) {
  static std::unique_ptr<PgServer> server;
  static std::string start_error;
  static bool started = false;
  if (!started) {
    started = true;
    server = PgServer::Start(PgServerOptions(), &start_error);
  }
  if (server == nullptr) *error = start_error;
  return server.get();
}

}  // namespace fhirgw::testing
