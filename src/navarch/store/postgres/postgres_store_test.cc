// The PostgreSQL store against a real server (tests/testing/postgres.h):
// the conformance suite every backend runs, and what only this backend has:
// migrations under an advisory lock, several stores (replicas) on one
// database, DSN rules, and a server restart.
#include "navarch/store/postgres/postgres_store.h"

#include <libpq-fe.h>

#include <atomic>
#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/notification.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "navarch/api/time_util.h"
#include "navarch/store/postgres/leader_lease.h"
#include "navarch/store/store_factory.h"
#include "navarch/store/testing/store_conformance.h"
#include "testing/postgres.h"

namespace navarch {
namespace {

using storetest::MakeEvent;
using storetest::Node;
using storetest::T;
using ::testing::HasSubstr;
using ::testing::Not;

// One server for the whole binary, started on first use, stopped at exit.
class ServerEnvironment : public ::testing::Environment {
 public:
  static testing::Postgres& Server() {
    if (server_ == nullptr) server_ = new testing::Postgres();
    return *server_;
  }
  void TearDown() override {
    delete server_;
    server_ = nullptr;
  }

 private:
  static testing::Postgres* server_;
};
testing::Postgres* ServerEnvironment::server_ = nullptr;
const auto* const kEnvironment =
    ::testing::AddGlobalTestEnvironment(new ServerEnvironment);

// Runs one statement over a connection of its own; "" or the error.
std::string Sql(const std::string& dsn, const std::string& sql) {
  PGconn* c = PQconnectdb(dsn.c_str());
  std::string error;
  if (PQstatus(c) != CONNECTION_OK) {
    error = PQerrorMessage(c);
  } else {
    PGresult* r = PQexec(c, sql.c_str());
    if (PQresultStatus(r) != PGRES_COMMAND_OK &&
        PQresultStatus(r) != PGRES_TUPLES_OK) {
      error = PQerrorMessage(c);
    }
    PQclear(r);
  }
  PQfinish(c);
  return error;
}

// A database of its own on `server`; its DSN.
std::string NewDatabase(testing::Postgres& server) {
  static std::atomic<int> next{0};
  std::string name = absl::StrCat("navarch_test_", next++);
  std::string error = Sql(server.Dsn(), "CREATE DATABASE " + name);
  EXPECT_EQ(error, "") << server.Log();
  return absl::StrCat(server.Dsn(), " dbname=", name);
}

absl::StatusOr<std::unique_ptr<Store>> OpenAt(const std::string& dsn) {
  PostgresOptions options;
  options.dsn = dsn;
  auto store = PostgresStore::Open(options);
  if (!store.ok()) return store.status();
  return std::unique_ptr<Store>(*std::move(store));
}

class PostgresHarness : public StoreHarness {
 public:
  PostgresHarness() : dsn_(NewDatabase(ServerEnvironment::Server())) {}
  absl::StatusOr<std::unique_ptr<Store>> Open() override {
    return OpenAt(dsn_);
  }
  bool durable() const override { return true; }

 private:
  std::string dsn_;
};

INSTANTIATE_TEST_SUITE_P(
    Postgres, StoreConformanceTest,
    ::testing::Values(StoreBackend{
        "postgres", [] { return std::make_unique<PostgresHarness>(); }}),
    StoreBackendName);

class PostgresStoreTest : public ::testing::Test {
 protected:
  testing::Postgres& server() { return ServerEnvironment::Server(); }
};

TEST_F(PostgresStoreTest, ADsnWithAPasswordIsRefusedWithoutEchoingIt) {
  PostgresOptions options;
  options.dsn = absl::StrCat(server().Dsn(), " password=hunter2");
  auto store = PostgresStore::Open(options);
  ASSERT_EQ(store.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(store.status().message(), HasSubstr("PGPASSWORD"));
  EXPECT_THAT(store.status().message(), Not(HasSubstr("hunter2")));

  options.dsn = "postgres://navarch:hunter2@127.0.0.1:1/db";
  store = PostgresStore::Open(options);
  ASSERT_EQ(store.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(store.status().message(), Not(HasSubstr("hunter2")));

  options.dsn = "not a = = dsn '";
  EXPECT_EQ(PostgresStore::Open(options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(PostgresStoreTest, AnUnreachableServerIsUnavailableAndNamed) {
  PostgresOptions options;
  options.dsn = "host=127.0.0.1 port=1 dbname=fleet";
  options.connect_timeout = absl::Seconds(1);
  auto store = PostgresStore::Open(options);
  ASSERT_EQ(store.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(store.status().message(), HasSubstr("127.0.0.1:1/fleet"));
}

TEST_F(PostgresStoreTest, ReplicasStartingTogetherMigrateOnce) {
  std::string dsn = NewDatabase(server());
  constexpr int kReplicas = 4;
  std::vector<absl::Status> results(kReplicas);
  std::vector<std::thread> threads;
  for (int i = 0; i < kReplicas; ++i) {
    threads.emplace_back([&, i] { results[i] = OpenAt(dsn).status(); });
  }
  for (auto& t : threads) t.join();
  for (const absl::Status& s : results) EXPECT_TRUE(s.ok()) << s;
  // One row per step: had two replicas run step 1, the second would have
  // failed on the existing tables or recorded it twice (a primary key).
  EXPECT_EQ(
      Sql(dsn,
          absl::StrCat("DO $$ BEGIN IF (SELECT count(*) FROM "
                       "schema_migrations) <> ",
                       pg::BuiltinMigrations().size(),
                       " THEN RAISE EXCEPTION 'wrong count'; END IF; END $$")),
      "");
}

TEST_F(PostgresStoreTest, ANewerOrForeignDatabaseIsRefused) {
  std::string dsn = NewDatabase(server());
  std::vector<pg::Migration> newer = pg::BuiltinMigrations();
  const int later = static_cast<int>(newer.size()) + 1;
  newer.push_back({later, "a later step", "CREATE TABLE later (x int)"});
  PostgresOptions options;
  options.dsn = dsn;
  options.migrations = &newer;
  auto store = PostgresStore::Open(options);
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->schema_version(), later);
  (*store)->Close();
  auto older = OpenAt(dsn);
  EXPECT_EQ(older.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(older.status().message(), HasSubstr("newer"));

  std::string foreign = NewDatabase(server());
  ASSERT_EQ(Sql(foreign, "CREATE TABLE customers (id int)"), "");
  auto refused = OpenAt(foreign);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(refused.status().message(), HasSubstr("not a Navarch"));
}

TEST_F(PostgresStoreTest, TwoReplicasNeverLoseAnUpdate) {
  std::string dsn = NewDatabase(server());
  auto a = OpenAt(dsn);
  auto b = OpenAt(dsn);
  ASSERT_TRUE(a.ok() && b.ok());
  WriteBatch first;
  first.nodes.push_back(Node("n1", 1));
  first.events.push_back(MakeEvent("node.registered", "n1", "pool-a", T(1)));
  ASSERT_TRUE((*a)->CommitSync(first).ok());
  // B has no cache to be stale: it checks against the database.
  WriteBatch again;
  again.nodes.push_back(Node("n1", 1));
  EXPECT_EQ((*b)->CommitSync(again).code(), absl::StatusCode::kAborted);
  WriteBatch update;
  update.nodes.push_back(Node("n1", 2, "pool-b"));
  update.events.push_back(MakeEvent("node.updated", "n1", "pool-b", T(2)));
  ASSERT_TRUE((*b)->CommitSync(update).ok());
  WriteBatch stale;
  stale.nodes.push_back(Node("n1", 2));
  EXPECT_EQ((*a)->CommitSync(stale).code(), absl::StatusCode::kAborted);
  // Each sees the other's writes, and event ids are one sequence.
  auto node = (*a)->GetNode("n1");
  ASSERT_TRUE(node.ok() && node->has_value());
  EXPECT_EQ((*node)->node().pool(), "pool-b");
  auto events = (*a)->ListEvents(EventQuery{});
  ASSERT_TRUE(events.ok());
  ASSERT_EQ(events->events.size(), 2u);
  EXPECT_EQ(events->events[0].id(), 1);
  EXPECT_EQ(events->events[1].id(), 2);
}

TEST_F(PostgresStoreTest, RacingReplicasOfOneNodeOneWinsEachRound) {
  std::string dsn = NewDatabase(server());
  auto a = OpenAt(dsn);
  auto b = OpenAt(dsn);
  ASSERT_TRUE(a.ok() && b.ok());
  int64_t version = 0;
  for (int round = 0; round < 30; ++round) {
    ++version;
    std::atomic<int> won{0};
    std::atomic<int> aborted{0};
    auto write = [&](Store& store, const std::string& pool) {
      WriteBatch batch;
      batch.nodes.push_back(Node("n1", version, pool));
      batch.events.push_back(MakeEvent("node.updated", "n1", pool, T(round)));
      absl::Status s = store.CommitSync(batch);
      if (s.ok()) won++;
      if (s.code() == absl::StatusCode::kAborted) aborted++;
    };
    std::thread ta([&] { write(**a, "a"); });
    std::thread tb([&] { write(**b, "b"); });
    ta.join();
    tb.join();
    ASSERT_EQ(won.load(), 1) << "round " << round;
    ASSERT_EQ(aborted.load(), 1) << "round " << round;
  }
  auto snap = (*b)->Load();
  ASSERT_TRUE(snap.ok());
  ASSERT_EQ(snap->nodes.size(), 1u);
  EXPECT_EQ(snap->nodes[0].version(), version);
  // Exactly the winners' events, densely numbered.
  EXPECT_EQ(snap->last_event_id, 30);
}

TEST_F(PostgresStoreTest, OneFlushMayCarrySeveralBeatsOfOneNode) {
  auto store = OpenAt(NewDatabase(server()));
  ASSERT_TRUE(store.ok());
  WriteBatch batch;
  batch.nodes.push_back(Node("n1", 1));
  batch.nodes.push_back(Node("n2", 1));
  ASSERT_TRUE((*store)->CommitSync(batch).ok());
  NodeMetrics older, newest;
  older.set_cpu_usage_percent(10);
  newest.set_cpu_usage_percent(90);
  std::vector<HeartbeatUpdate> updates = {
      {"n1", T(30), newest},
      {"n2", T(5), std::nullopt},
      {"n1", T(20), older},  // older than the one before: no metrics
      {"n1", T(10), std::nullopt},
      {"ghost", T(50), newest}};
  ASSERT_TRUE((*store)->UpdateHeartbeats(updates).ok());
  auto n1 = (*store)->GetNode("n1");
  ASSERT_TRUE(n1.ok() && n1->has_value());
  EXPECT_EQ(FromTimestamp((*n1)->node().last_heartbeat()), T(30));
  EXPECT_EQ((*n1)->node().last_metrics().cpu_usage_percent(), 90);
  auto n2 = (*store)->GetNode("n2");
  EXPECT_EQ(FromTimestamp((*n2)->node().last_heartbeat()), T(5));
  EXPECT_FALSE((*store)->GetNode("ghost")->has_value());
}

TEST_F(PostgresStoreTest, TheFactoryOpensIt) {
  auto store = OpenStore("postgres", "", NewDatabase(server()));
  ASSERT_TRUE(store.ok()) << store.status();
  EXPECT_EQ((*store)->Name(), "postgres");
  EXPECT_TRUE((*store)->Ping().ok());
}

LeaseOptions Lease(const std::string& dsn, const std::string& me,
                   absl::Duration duration) {
  LeaseOptions o;
  o.dsn = dsn;
  o.replica_id = me;
  o.duration = duration;
  return o;
}

TEST_F(PostgresStoreTest, TheLeaseHasOneHolderAndItsEpochOnlyGrows) {
  std::string dsn = NewDatabase(server());
  ASSERT_TRUE(OpenAt(dsn).ok());  // migrates
  PostgresLeaderLease a(Lease(dsn, "a", absl::Minutes(1)));
  PostgresLeaderLease b(Lease(dsn, "b", absl::Minutes(1)));
  auto won = a.TryAcquireOrRenew(0);
  ASSERT_TRUE(won.ok()) << won.status();
  EXPECT_TRUE(won->held);
  EXPECT_EQ(won->epoch, 1);
  EXPECT_GT(won->remaining, absl::Seconds(50));
  auto refused = b.TryAcquireOrRenew(0);
  ASSERT_TRUE(refused.ok());
  EXPECT_FALSE(refused->held);
  EXPECT_EQ(refused->holder, "a");
  auto renewed = a.TryAcquireOrRenew(1);
  EXPECT_TRUE(renewed->held);
  EXPECT_EQ(renewed->epoch, 1);  // renewing keeps the epoch
  ASSERT_TRUE(a.Release(1).ok());
  auto taken = b.TryAcquireOrRenew(0);
  EXPECT_TRUE(taken->held);
  EXPECT_EQ(taken->epoch, 2);
  // A's old epoch no longer renews anything.
  auto stale = a.TryAcquireOrRenew(1);
  EXPECT_FALSE(stale->held);
  EXPECT_EQ(stale->holder, "b");
  EXPECT_EQ(stale->epoch, 2);
}

TEST_F(PostgresStoreTest, ReplicasAnnounceThemselvesAndFollowersFindTheLeader) {
  std::string dsn = NewDatabase(server());
  ASSERT_TRUE(OpenAt(dsn).ok());
  LeaseOptions ao = Lease(dsn, "a", absl::Minutes(1));
  ao.grpc_address = "127.0.0.1:7001";
  ao.http_address = "127.0.0.1:8001";
  ao.version = "1.2.3";
  LeaseOptions bo = Lease(dsn, "b", absl::Minutes(1));
  bo.grpc_address = "127.0.0.1:7002";
  bo.http_address = "127.0.0.1:8002";
  PostgresLeaderLease a(ao);
  PostgresLeaderLease b(bo);
  auto won = a.TryAcquireOrRenew(0);
  ASSERT_TRUE(won.ok()) << won.status();
  EXPECT_EQ(won->holder_grpc_address, "127.0.0.1:7001");
  auto follower = b.TryAcquireOrRenew(0);
  ASSERT_TRUE(follower.ok());
  EXPECT_FALSE(follower->held);
  // The follower learns where the leader is, from the leader's row.
  EXPECT_EQ(follower->holder_grpc_address, "127.0.0.1:7001");
  EXPECT_EQ(follower->holder_http_address, "127.0.0.1:8001");

  auto view = b.ReadCluster();
  ASSERT_TRUE(view.ok()) << view.status();
  EXPECT_EQ(view->lease.holder, "a");
  EXPECT_EQ(view->lease.epoch, 1);
  ASSERT_EQ(view->replicas.size(), 2u);
  EXPECT_EQ(view->replicas[0].replica_id, "a");
  EXPECT_EQ(view->replicas[0].version, "1.2.3");
  EXPECT_EQ(view->replicas[1].http_address, "127.0.0.1:8002");
  EXPECT_LT(view->replicas[1].since_seen, absl::Seconds(30));
  EXPECT_LT(absl::Now() - view->replicas[0].started_at, absl::Minutes(5));

  // A clean stop leaves the list; a standby's too.
  ASSERT_TRUE(a.Release(1).ok());
  ASSERT_TRUE(b.Release(0).ok());
  view = a.ReadCluster();
  ASSERT_TRUE(view.ok());
  EXPECT_TRUE(view->replicas.empty());
  EXPECT_LE(view->lease.remaining, absl::ZeroDuration());
  EXPECT_EQ(view->lease.holder_grpc_address, "");  // gone with its row
}

TEST_F(PostgresStoreTest, AFencedLeaderCannotWriteAnything) {
  std::string dsn = NewDatabase(server());
  auto opened = PostgresStore::Open(PostgresOptions{dsn});
  ASSERT_TRUE(opened.ok());
  PostgresStore& old_leader = **opened;
  // A lease of zero: it runs out at once, as if A had been paused past it.
  PostgresLeaderLease a(Lease(dsn, "a", absl::ZeroDuration()));
  auto won = a.TryAcquireOrRenew(0);
  ASSERT_TRUE(won.ok());
  old_leader.SetFence("a", won->epoch);
  WriteBatch before;
  before.nodes.push_back(Node("n1", 1));
  ASSERT_TRUE(old_leader.CommitSync(before).ok());

  PostgresLeaderLease b(Lease(dsn, "b", absl::Minutes(1)));
  auto took = b.TryAcquireOrRenew(0);
  ASSERT_TRUE(took.ok() && took->held);
  EXPECT_EQ(took->epoch, won->epoch + 1);

  WriteBatch after;
  after.nodes.push_back(Node("n2", 1));
  after.events.push_back(MakeEvent("node.registered", "n2", "pool-a", T(2)));
  absl::Status fenced = old_leader.CommitSync(after);
  EXPECT_EQ(fenced.code(), absl::StatusCode::kFailedPrecondition) << fenced;
  EXPECT_THAT(fenced.message(), HasSubstr("fenced"));
  EXPECT_FALSE(old_leader.UpdateHeartbeats({{"n1", T(9), std::nullopt}}).ok());
  EXPECT_EQ(old_leader.Ping().code(), absl::StatusCode::kFailedPrecondition);

  auto new_leader = PostgresStore::Open(PostgresOptions{dsn});
  ASSERT_TRUE(new_leader.ok());
  (*new_leader)->SetFence("b", took->epoch);
  auto snap = (*new_leader)->Load();
  ASSERT_TRUE(snap.ok());
  ASSERT_EQ(snap->nodes.size(), 1u);  // nothing of the fenced write
  EXPECT_EQ(snap->last_event_id, 0);
  EXPECT_EQ(FromTimestamp(snap->nodes[0].node().last_heartbeat()),
            absl::InfinitePast());
  ASSERT_TRUE((*new_leader)->CommitSync(after).ok());
}

TEST_F(PostgresStoreTest, ADatabaseRestartIsUnavailableThenRecovers) {
  testing::Postgres own;  // stopped below; not the shared server
  std::string dsn = NewDatabase(own);
  auto store = OpenAt(dsn);
  ASSERT_TRUE(store.ok());
  WriteBatch before;
  before.nodes.push_back(Node("n1", 1));
  ASSERT_TRUE((*store)->CommitSync(before).ok());

  own.Stop();
  WriteBatch during;
  during.nodes.push_back(Node("n2", 1));
  // Never acknowledged: the server is gone.
  EXPECT_EQ((*store)->CommitSync(during).code(),
            absl::StatusCode::kUnavailable);
  EXPECT_FALSE((*store)->Ping().ok());
  EXPECT_EQ((*store)->Load().status().code(), absl::StatusCode::kUnavailable);

  own.Start();
  // Both connections come back by themselves, at the next use.
  ASSERT_TRUE((*store)->CommitSync(during).ok());
  EXPECT_TRUE((*store)->Ping().ok());
  auto snap = (*store)->Load();
  ASSERT_TRUE(snap.ok()) << snap.status();
  ASSERT_EQ(snap->nodes.size(), 2u);
  (*store)->Close();
}

}  // namespace
}  // namespace navarch
