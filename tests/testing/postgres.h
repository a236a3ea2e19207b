// A real PostgreSQL server for tests (Debian's postgresql package): initdb in
// a temporary folder, the server on a free loopback port with its socket in
// that folder, trust authentication for one role, no fsync (a test's data
// need not survive a power cut). Stopped and deleted by the destructor.
// Works as an ordinary user and as root (CI): PostgreSQL refuses to run as
// root, so then it runs as the `postgres` user the package creates (or
// `nobody`), which owns the folder.
#ifndef NAVARCH_TESTS_TESTING_POSTGRES_H_
#define NAVARCH_TESTS_TESTING_POSTGRES_H_

#include <memory>
#include <string>

#include "testing/process.h"

namespace navarch::testing {

class Postgres {
 public:
  // initdb, start, wait until it accepts connections (30 s at most).
  // Throws std::runtime_error with the server's log on failure.
  Postgres();
  ~Postgres();  // fast shutdown (SIGINT), then SIGKILL if it lingers

  Postgres(const Postgres&) = delete;
  Postgres& operator=(const Postgres&) = delete;

  // Stops the server (fast shutdown: clients are disconnected) and starts
  // it again on the same port and data; for tests of a database restart.
  void Stop();
  void Start();  // waits until it accepts connections again

  int port() const { return port_; }
  const std::string& user() const { return user_; }  // "navarch"
  // A libpq connection string for the `postgres` database over TCP:
  // "host=127.0.0.1 port=N user=navarch dbname=postgres".
  std::string Dsn() const;
  std::string Log() const;  // what the server wrote
  // The folder holding the server's binaries (initdb, pg_ctl, postgres),
  // the newest of /usr/lib/postgresql/*/bin; "" when none is installed.
  static std::string BinDir();

 private:
  TempDir dir_;
  int port_ = 0;
  std::string user_ = "navarch";
  std::unique_ptr<Process> server_;
};

}  // namespace navarch::testing

#endif  // NAVARCH_TESTS_TESTING_POSTGRES_H_
