// The test-support PostgreSQL (tests/testing/postgres.h) is a real server
// that answers SQL over TCP on loopback, two can run at once, and it is gone
// (process and folder) after its destructor. The store's PostgreSQL backend
// (issue 18) builds its conformance tests on it.
#include <libpq-fe.h>
#include <signal.h>

#include <string>

#include "gtest/gtest.h"
#include "testing/postgres.h"

namespace navarch {
namespace {

std::string Query(const std::string& dsn, const std::string& sql) {
  PGconn* c = PQconnectdb(dsn.c_str());
  std::string out;
  if (PQstatus(c) == CONNECTION_OK) {
    PGresult* r = PQexec(c, sql.c_str());
    if (PQresultStatus(r) == PGRES_TUPLES_OK && PQntuples(r) == 1) {
      out = PQgetvalue(r, 0, 0);
    } else {
      out = std::string("error: ") + PQerrorMessage(c);
    }
    PQclear(r);
  } else {
    out = std::string("error: ") + PQerrorMessage(c);
  }
  PQfinish(c);
  return out;
}

TEST(PostgresHarnessTest, ARealServerAnswersOnLoopbackAndIsGoneAfterwards) {
  std::string dsn;
  {
    testing::Postgres a;
    testing::Postgres b;  // several at once, each on its own port
    EXPECT_NE(a.port(), b.port());
    dsn = a.Dsn();
    EXPECT_EQ(Query(dsn, "SELECT 41 + 1"), "42") << a.Log();
    EXPECT_EQ(Query(b.Dsn(), "SELECT current_user"), "navarch") << b.Log();
    EXPECT_EQ(Query(dsn, "SELECT inet_server_addr()::text"), "127.0.0.1/32");
    EXPECT_EQ(Query(dsn, "SHOW fsync"), "off");
  }
  EXPECT_EQ(Query(dsn + " connect_timeout=2", "SELECT 1").rfind("error:", 0),
            0u);
}

}  // namespace
}  // namespace navarch
