#include "navarch/store/sqlite/sqlite_store.h"

#include <grp.h>
#include <signal.h>
#include <sqlite3.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cerrno>
#include <cstdio>
#include <filesystem>
#include <map>
#include <random>
#include <thread>
#include <vector>

#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/synchronization/blocking_counter.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "navarch/api/time_util.h"
#include "navarch/store/testing/store_conformance.h"

namespace navarch {
namespace {

using sqlite::TimeToNanos;
using storetest::MakeEvent;
using storetest::Node;
using storetest::ProtoEquals;
using storetest::T;
using ::testing::HasSubstr;

// A directory of its own under the test temp dir, removed afterwards.
class TempDir {
 public:
  TempDir() {
    static std::atomic<int> counter{0};
    path_ = std::filesystem::path(::testing::TempDir()) /
            absl::StrCat("navarch-sqlite-", getpid(), "-", counter++);
    std::filesystem::remove_all(path_);
    std::filesystem::create_directories(path_);
  }
  ~TempDir() {
    std::error_code ec;
    std::filesystem::remove_all(path_, ec);
  }
  std::string File(const std::string& name) const {
    return (path_ / name).string();
  }

 private:
  std::filesystem::path path_;
};

class SqliteHarness : public StoreHarness {
 public:
  absl::StatusOr<std::unique_ptr<Store>> Open() override {
    SqliteOptions options;
    options.path = dir_.File("db/navarch.db");  // the store creates db/
    auto store = SqliteStore::Open(options);
    if (!store.ok()) return store.status();
    return std::unique_ptr<Store>(*std::move(store));
  }
  bool durable() const override { return true; }

 private:
  TempDir dir_;
};

INSTANTIATE_TEST_SUITE_P(Sqlite, StoreConformanceTest,
                         ::testing::Values(StoreBackend{
                             "sqlite",
                             [] { return std::make_unique<SqliteHarness>(); }}),
                         StoreBackendName);

// A plain SQLite connection, to look at or tamper with the file from outside.
class RawDb {
 public:
  explicit RawDb(const std::string& path) {
    EXPECT_EQ(sqlite3_open(path.c_str(), &db_), SQLITE_OK);
  }
  ~RawDb() { sqlite3_close(db_); }
  sqlite3* get() { return db_; }
  void Exec(const std::string& sql) {
    char* error = nullptr;
    EXPECT_EQ(sqlite3_exec(db_, sql.c_str(), nullptr, nullptr, &error),
              SQLITE_OK)
        << sql << ": " << (error ? error : "");
    sqlite3_free(error);
  }
  std::string QueryText(const std::string& sql) {
    sqlite3_stmt* s = nullptr;
    std::string out;
    EXPECT_EQ(sqlite3_prepare_v2(db_, sql.c_str(), -1, &s, nullptr), SQLITE_OK)
        << sql;
    if (sqlite3_step(s) == SQLITE_ROW && sqlite3_column_text(s, 0) != nullptr) {
      out = reinterpret_cast<const char*>(sqlite3_column_text(s, 0));
    }
    sqlite3_finalize(s);
    return out;
  }

 private:
  sqlite3* db_ = nullptr;
};

class SqliteStoreTest : public ::testing::Test {
 protected:
  SqliteOptions Options() {
    SqliteOptions o;
    o.path = path_;
    return o;
  }
  std::unique_ptr<SqliteStore> Open(SqliteOptions o) {
    auto store = SqliteStore::Open(o);
    EXPECT_TRUE(store.ok()) << store.status();
    return store.ok() ? *std::move(store) : nullptr;
  }
  std::unique_ptr<SqliteStore> Open() { return Open(Options()); }

  TempDir dir_;
  std::string path_ = dir_.File("navarch.db");
};

WriteBatch NewNode(const std::string& id, int64_t version = 1) {
  WriteBatch b;
  b.nodes.push_back(Node(id, version));
  b.events.push_back(MakeEvent("node.registered", id, "pool-a", T(1)));
  return b;
}

// --- Files, modes, options ---

TEST_F(SqliteStoreTest, UsesWalAndCreatesParentDirectories) {
  SqliteOptions o = Options();
  o.path = dir_.File("deep/er/navarch.db");
  auto store = Open(o);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->CommitSync(NewNode("n1")).ok());
  EXPECT_TRUE(std::filesystem::exists(o.path + "-wal"));
  RawDb raw(o.path);
  EXPECT_EQ(raw.QueryText("PRAGMA journal_mode"), "wal");
  EXPECT_EQ(store->Name(), "sqlite");
  EXPECT_EQ(store->path(), o.path);
}

TEST_F(SqliteStoreTest, RejectsBadOptions) {
  SqliteOptions o;
  EXPECT_EQ(SqliteStore::Open(o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o.path = ":memory:";
  EXPECT_EQ(SqliteStore::Open(o).status().code(),
            absl::StatusCode::kInvalidArgument);
  o = Options();
  o.max_group = 0;
  EXPECT_EQ(SqliteStore::Open(o).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(SqliteStoreTest, UnusablePathIsUnavailable) {
  // A regular file where a directory should be.
  { RawDb(dir_.File("file")).Exec("CREATE TABLE x (y)"); }
  SqliteOptions o = Options();
  o.path = dir_.File("file/navarch.db");
  auto store = SqliteStore::Open(o);
  EXPECT_EQ(store.status().code(), absl::StatusCode::kUnavailable)
      << store.status();
}

// The data folder made read-only for the user the store runs as. Run in a
// death-test child: as root, the child first becomes `nobody` (root writes
// through permissions).
void OpenAsUserWithoutWriteAccess(const std::string& dir,
                                  const SqliteOptions& o) {
  if (::geteuid() == 0 && (::setgroups(0, nullptr) != 0 ||
                           ::setgid(65534) != 0 || ::setuid(65534) != 0)) {
    _exit(3);
  }
  auto store = SqliteStore::Open(o);
  std::fprintf(stderr, "%s\n", store.status().ToString().c_str());
  _exit(store.ok() ? 1 : 0);
}

TEST_F(SqliteStoreTest, ReadOnlyDataFolderSaysReadOnly) {
  GTEST_FLAG_SET(death_test_style, "threadsafe");
  std::string folder = dir_.File("ro");
  std::filesystem::create_directories(folder);
  std::filesystem::permissions(dir_.File(""),
                               std::filesystem::perms::owner_all |
                                   std::filesystem::perms::others_exec |
                                   std::filesystem::perms::others_read);
  std::filesystem::permissions(folder, std::filesystem::perms::owner_read |
                                           std::filesystem::perms::owner_exec |
                                           std::filesystem::perms::others_read |
                                           std::filesystem::perms::others_exec);
  SqliteOptions o = Options();
  o.path = folder + "/navarch.db";
  EXPECT_EXIT(OpenAsUserWithoutWriteAccess(folder, o),
              ::testing::ExitedWithCode(0),
              "data folder .*/ro is read-only for this user");
  std::filesystem::permissions(folder, std::filesystem::perms::owner_all);
}

TEST_F(SqliteStoreTest, DamagedDatabasePointsAtTheRestoreSteps) {
  std::filesystem::create_directories(
      std::filesystem::path(path_).parent_path());
  {
    std::FILE* f = std::fopen(path_.c_str(), "wb");
    ASSERT_NE(f, nullptr);
    std::string junk(8192, 'x');
    std::fwrite(junk.data(), 1, junk.size(), f);
    std::fclose(f);
  }
  auto store = SqliteStore::Open(Options());
  ASSERT_FALSE(store.ok());
  EXPECT_THAT(store.status().message(), HasSubstr("restore the last backup"));
  EXPECT_THAT(store.status().message(), HasSubstr("docs/storage.md"));
  EXPECT_THAT(store.status().message(), HasSubstr(path_));
}

TEST(SqliteUtilTest, StatementsInErrorsAreWholeOrNamedNeverCut) {
  EXPECT_EQ(sqlite::DescribeStatement("PRAGMA query_only = ON"),
            "`PRAGMA query_only = ON`");
  std::string schema =
      "CREATE TABLE nodes (node_id TEXT PRIMARY KEY, version INTEGER NOT NULL, "
      "record BLOB NOT NULL);";
  EXPECT_EQ(sqlite::DescribeStatement(schema),
            absl::StrCat("the statement beginning `CREATE TABLE nodes` (",
                         schema.size(), " bytes)"));
}

// --- Migrations ---

TEST_F(SqliteStoreTest, NewDatabaseRecordsItsSchemaHistory) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  int latest = static_cast<int>(sqlite::BuiltinMigrations().size());
  EXPECT_EQ(store->schema_version(), latest);
  RawDb raw(path_);
  EXPECT_EQ(raw.QueryText("SELECT max(version) FROM schema_migrations"),
            absl::StrCat(latest));
  EXPECT_THAT(
      raw.QueryText("SELECT name FROM schema_migrations WHERE version = 1"),
      HasSubstr("initial"));
  EXPECT_FALSE(
      raw.QueryText("SELECT applied_at FROM schema_migrations").empty());
}

TEST_F(SqliteStoreTest, MigratesAnOlderDatabaseAndKeepsItsData) {
  {
    auto store = Open();
    ASSERT_TRUE(store->CommitSync(NewNode("n1")).ok());
  }
  // A newer binary with one more step.
  std::vector<sqlite::Migration> newer = sqlite::BuiltinMigrations();
  int next = static_cast<int>(newer.size()) + 1;
  newer.push_back({next, "test: node notes",
                   "ALTER TABLE nodes ADD COLUMN note TEXT;"
                   "UPDATE nodes SET note = 'migrated';"});
  SqliteOptions o = Options();
  o.migrations = &newer;
  {
    auto store = Open(o);
    ASSERT_NE(store, nullptr);
    EXPECT_EQ(store->schema_version(), next);
    auto n1 = store->GetNode("n1");
    ASSERT_TRUE(n1.ok() && n1->has_value());
    EXPECT_EQ((*n1)->version(), 1);
    ASSERT_TRUE(store->CommitSync(NewNode("n2")).ok());
  }
  RawDb raw(path_);
  EXPECT_EQ(raw.QueryText("SELECT note FROM nodes WHERE node_id = 'n1'"),
            "migrated");
  // Opening it again migrates nothing.
  auto again = Open(o);
  ASSERT_NE(again, nullptr);
  EXPECT_EQ(raw.QueryText("SELECT count(*) FROM schema_migrations"),
            absl::StrCat(next));
}

TEST_F(SqliteStoreTest, RefusesADatabaseNewerThanTheBinary) {
  std::vector<sqlite::Migration> newer = sqlite::BuiltinMigrations();
  int next = static_cast<int>(newer.size()) + 1;
  newer.push_back({next, "from the future", "CREATE TABLE future (x);"});
  SqliteOptions o = Options();
  o.migrations = &newer;
  { ASSERT_NE(Open(o), nullptr); }
  auto old_binary = SqliteStore::Open(Options());
  EXPECT_EQ(old_binary.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(old_binary.status().message(),
              HasSubstr(absl::StrCat("schema version ", next, " is newer")));
  EXPECT_THAT(old_binary.status().message(), HasSubstr(path_));
}

TEST_F(SqliteStoreTest, FailedMigrationChangesNothing) {
  { ASSERT_NE(Open(), nullptr); }
  std::vector<sqlite::Migration> broken = sqlite::BuiltinMigrations();
  int next = static_cast<int>(broken.size()) + 1;
  broken.push_back({next, "half broken",
                    "ALTER TABLE nodes ADD COLUMN note TEXT;"
                    "THIS IS NOT SQL;"});
  SqliteOptions o = Options();
  o.migrations = &broken;
  auto failed = SqliteStore::Open(o);
  ASSERT_FALSE(failed.ok());
  EXPECT_THAT(failed.status().message(), HasSubstr("half broken"));
  // The step's first statement was rolled back with it.
  RawDb raw(path_);
  EXPECT_EQ(raw.QueryText("SELECT count(*) FROM pragma_table_info('nodes') "
                          "WHERE name = 'note'"),
            "0");
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->schema_version(), next - 1);
}

TEST_F(SqliteStoreTest, RefusesAForeignDatabase) {
  { RawDb(path_).Exec("CREATE TABLE accounts (id INTEGER PRIMARY KEY)"); }
  auto store = SqliteStore::Open(Options());
  EXPECT_EQ(store.status().code(), absl::StatusCode::kFailedPrecondition)
      << store.status();
  EXPECT_THAT(store.status().message(), HasSubstr("not a Navarch"));
  RawDb raw(path_);
  EXPECT_EQ(
      raw.QueryText("SELECT count(*) FROM sqlite_master WHERE name = 'nodes'"),
      "0");
}

TEST_F(SqliteStoreTest, RejectsAMalformedHistory) {
  std::vector<sqlite::Migration> gap = {{1, "one", "CREATE TABLE a (x);"},
                                        {3, "three", "CREATE TABLE b (x);"}};
  SqliteOptions o = Options();
  o.migrations = &gap;
  EXPECT_EQ(SqliteStore::Open(o).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// --- Liveness (schema v2: node_liveness) ---

NodeMetrics Cpu(double percent) {
  NodeMetrics m;
  m.set_cpu_usage_percent(percent);
  return m;
}

// A blob as an SQL literal.
std::string Hex(const std::string& bytes) {
  return absl::StrCat("x'", absl::BytesToHexString(bytes), "'");
}

// A database exactly as a version-1 binary left it: the v1 schema, and nodes
// whose heartbeat columns hold what flushes wrote beside their records.
TEST_F(SqliteStoreTest, MigratesAVersionOneDatabaseKeepingLiveness) {
  NodeRecord flushed = Node("flushed", 3);  // a flush after the record
  *flushed.mutable_node()->mutable_last_heartbeat() = ToTimestamp(T(5));
  *flushed.mutable_node()->mutable_last_metrics() = Cpu(1);
  NodeRecord committed = Node("committed", 1);  // the record is the newest
  *committed.mutable_node()->mutable_last_heartbeat() = ToTimestamp(T(20));
  *committed.mutable_node()->mutable_last_metrics() = Cpu(7);
  NodeRecord time_only = Node("time-only", 2);  // a flush without metrics
  {
    RawDb raw(path_);
    std::vector<sqlite::Migration> v1 = {sqlite::BuiltinMigrations()[0]};
    auto version = sqlite::Migrate(raw.get(), v1);
    ASSERT_TRUE(version.ok()) << version.status();
    ASSERT_EQ(*version, 1);
    auto insert = [&](const NodeRecord& r, absl::Time heartbeat,
                      const std::string& metrics_sql) {
      raw.Exec(absl::StrCat(
          "INSERT INTO nodes (node_id, version, pool, status, health_status, "
          "last_heartbeat_ns, metrics, record) VALUES ('",
          r.node().node_id(), "', ", r.version(), ", 'pool-a', 1, 1, ",
          TimeToNanos(heartbeat), ", ", metrics_sql, ", ",
          Hex(r.SerializeAsString()), ")"));
    };
    insert(flushed, T(50), Hex(Cpu(42).SerializeAsString()));
    insert(committed, T(20), "NULL");
    insert(time_only, T(9), "NULL");
  }

  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->schema_version(), 2);
  NodeRecord want_flushed = flushed;
  *want_flushed.mutable_node()->mutable_last_heartbeat() = ToTimestamp(T(50));
  *want_flushed.mutable_node()->mutable_last_metrics() = Cpu(42);
  NodeRecord want_time_only = time_only;
  *want_time_only.mutable_node()->mutable_last_heartbeat() = ToTimestamp(T(9));
  auto check = [&] {
    auto snap = store->Load();
    ASSERT_TRUE(snap.ok()) << snap.status();
    ASSERT_EQ(snap->nodes.size(), 3u);  // by id
    EXPECT_TRUE(ProtoEquals(committed, snap->nodes[0]));
    EXPECT_TRUE(ProtoEquals(want_flushed, snap->nodes[1]));
    EXPECT_TRUE(ProtoEquals(want_time_only, snap->nodes[2]));
    for (const NodeRecord& n : snap->nodes) {
      auto one = store->GetNode(n.node().node_id());
      ASSERT_TRUE(one.ok() && one->has_value());
      EXPECT_TRUE(ProtoEquals(n, **one));
    }
  };
  check();
  {
    RawDb raw(path_);
    EXPECT_EQ(raw.QueryText("SELECT count(*) FROM node_liveness"), "3");
    // The old copies are gone, so nothing can read them stale.
    EXPECT_EQ(raw.QueryText("SELECT count(*) FROM pragma_table_info('nodes') "
                            "WHERE name IN ('last_heartbeat_ns', 'metrics')"),
              "0");
    EXPECT_THAT(
        raw.QueryText("SELECT name FROM schema_migrations WHERE version = 2"),
        HasSubstr("liveness"));
  }
  // An older heartbeat than the migrated one changes nothing.
  ASSERT_TRUE(store
                  ->UpdateHeartbeats({{"flushed", T(40), Cpu(0)},
                                      {"committed", T(19), Cpu(0)}})
                  .ok());
  check();
  // A newer one does; versions carry on.
  ASSERT_TRUE(store->UpdateHeartbeats({{"flushed", T(60), Cpu(60)}}).ok());
  auto n = store->GetNode("flushed");
  ASSERT_TRUE(n.ok() && n->has_value());
  EXPECT_EQ(FromTimestamp((*n)->node().last_heartbeat()), T(60));
  EXPECT_EQ((*n)->node().last_metrics().cpu_usage_percent(), 60);
  EXPECT_EQ(store->CommitSync(NewNode("flushed", 3)).code(),
            absl::StatusCode::kAborted);
  EXPECT_TRUE(store->CommitSync(NewNode("flushed", 4)).ok());
}

TEST_F(SqliteStoreTest, HeartbeatFlushWritesOnlyTheLivenessTable) {
  {
    auto store = Open();
    ASSERT_TRUE(store->CommitSync(NewNode("n1")).ok());
    ASSERT_TRUE(store->CommitSync(NewNode("n2")).ok());
  }
  {
    // Counts every write of a nodes row from now on.
    RawDb raw(path_);
    raw.Exec(
        "CREATE TABLE node_writes (node_id TEXT);"
        "CREATE TRIGGER count_node_updates AFTER UPDATE ON nodes BEGIN "
        "INSERT INTO node_writes VALUES (new.node_id); END;");
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store
                  ->UpdateHeartbeats(
                      {{"n1", T(10), Cpu(1)}, {"n2", T(11), std::nullopt}})
                  .ok());
  RawDb raw(path_);
  EXPECT_EQ(raw.QueryText("SELECT count(*) FROM node_writes"), "0");
  EXPECT_EQ(raw.QueryText(
                "SELECT last_heartbeat_ns FROM node_liveness WHERE node_id = "
                "'n1'"),
            absl::StrCat(TimeToNanos(T(10))));
  EXPECT_EQ(
      raw.QueryText(
          "SELECT lower(hex(metrics)) FROM node_liveness WHERE node_id = 'n1'"),
      absl::BytesToHexString(Cpu(1).SerializeAsString()));
  // The probe does see a node write.
  ASSERT_TRUE(store->CommitSync(NewNode("n1", 2)).ok());
  EXPECT_EQ(raw.QueryText("SELECT group_concat(node_id) FROM node_writes"),
            "n1");
}

// WriteBatch::node_extras are appended to the serialized record unparsed,
// as a second `node` field: the blob on disk is still one NodeRecord, the
// whole node, for any reader of the file; the columns come from the record.
TEST_F(SqliteStoreTest, NodeExtrasAreStoredInTheRecordBlob) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  NodeRecord hot = Node("n1", 1, "pool-gpu");
  hot.mutable_node()->set_status(NODE_STATUS_CORDONED);
  NodeInfo extras;
  for (int i = 0; i < 8; ++i) extras.add_gpus()->set_uuid(absl::StrCat(i));
  extras.mutable_metadata()->set_hostname("host-1");
  *extras.mutable_last_metrics() = Cpu(3);
  WriteBatch b;
  b.nodes.push_back(hot);
  b.node_extras.push_back(extras.SerializeAsString());
  ASSERT_TRUE(store->CommitSync(std::move(b)).ok());

  NodeRecord want = hot;
  want.mutable_node()->MergeFrom(extras);
  RawDb raw(path_);
  std::string blob = absl::HexStringToBytes(
      raw.QueryText("SELECT hex(record) FROM nodes WHERE node_id = 'n1'"));
  NodeRecord on_disk;
  ASSERT_TRUE(on_disk.ParseFromString(blob));
  EXPECT_TRUE(ProtoEquals(want, on_disk));
  EXPECT_EQ(raw.QueryText("SELECT pool || ',' || status FROM nodes"),
            absl::StrCat("pool-gpu,", NODE_STATUS_CORDONED));
  EXPECT_EQ(raw.QueryText("SELECT count(*) FROM node_liveness WHERE node_id "
                          "= 'n1' AND metrics IS NULL"),
            "1");
}

TEST_F(SqliteStoreTest, OlderHeartbeatLeavesTheLivenessRowAlone) {
  auto store = Open();
  ASSERT_TRUE(store->CommitSync(NewNode("n1")).ok());
  ASSERT_TRUE(store->UpdateHeartbeats({{"n1", T(100), Cpu(10)}}).ok());
  RawDb raw(path_);
  auto row = [&] {
    return raw.QueryText(
        "SELECT last_heartbeat_ns || ':' || lower(hex(metrics)) FROM "
        "node_liveness "
        "WHERE node_id = 'n1'");
  };
  const std::string want =
      absl::StrCat(TimeToNanos(T(100)), ":",
                   absl::BytesToHexString(Cpu(10).SerializeAsString()));
  ASSERT_EQ(row(), want);
  ASSERT_TRUE(store->UpdateHeartbeats({{"n1", T(99), Cpu(99)}}).ok());
  EXPECT_EQ(row(), want);
  ASSERT_TRUE(store->UpdateHeartbeats({{"n1", T(50), std::nullopt}}).ok());
  EXPECT_EQ(row(), want);
  // The same instant is not older: its metrics win.
  ASSERT_TRUE(store->UpdateHeartbeats({{"n1", T(100), Cpu(20)}}).ok());
  EXPECT_EQ(row(),
            absl::StrCat(TimeToNanos(T(100)), ":",
                         absl::BytesToHexString(Cpu(20).SerializeAsString())));
}

// The Store interface deletes no node (Prune keeps them), but an operator
// may, and a later version may prune them: the liveness row goes with it.
TEST_F(SqliteStoreTest, DeletingANodeRemovesItsLiveness) {
  {
    auto store = Open();
    ASSERT_TRUE(store->CommitSync(NewNode("n1")).ok());
    ASSERT_TRUE(store->CommitSync(NewNode("n2")).ok());
    ASSERT_TRUE(
        store
            ->UpdateHeartbeats({{"n1", T(100), Cpu(1)}, {"n2", T(100), Cpu(2)}})
            .ok());
  }
  {
    RawDb raw(path_);
    raw.Exec("DELETE FROM nodes WHERE node_id = 'n1'");
    EXPECT_EQ(raw.QueryText("SELECT group_concat(node_id) FROM node_liveness"),
              "n2");
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  auto snap = store->Load();
  ASSERT_TRUE(snap.ok());
  ASSERT_EQ(snap->nodes.size(), 1u);
  EXPECT_EQ(snap->nodes[0].node().node_id(), "n2");
  // Registered again, n1 starts afresh: nothing of the deleted node's
  // liveness comes back.
  ASSERT_TRUE(store->CommitSync(NewNode("n1")).ok());
  auto n1 = store->GetNode("n1");
  ASSERT_TRUE(n1.ok() && n1->has_value());
  EXPECT_TRUE(ProtoEquals(Node("n1", 1), **n1));
}

// Every node has a liveness row; should one go missing anyway (by hand),
// the node still reads as its record, and the next flush recreates it.
TEST_F(SqliteStoreTest, MissingLivenessRowReadsAsTheRecordAndIsRecreated) {
  NodeRecord r = Node("n1", 1);
  *r.mutable_node()->mutable_last_heartbeat() = ToTimestamp(T(5));
  *r.mutable_node()->mutable_last_metrics() = Cpu(5);
  {
    auto store = Open();
    WriteBatch b;
    b.nodes.push_back(r);
    ASSERT_TRUE(store->CommitSync(b).ok());
    ASSERT_TRUE(store->UpdateHeartbeats({{"n1", T(9), Cpu(9)}}).ok());
  }
  { RawDb(path_).Exec("DELETE FROM node_liveness"); }
  auto store = Open();
  auto n1 = store->GetNode("n1");
  ASSERT_TRUE(n1.ok() && n1->has_value());
  EXPECT_TRUE(ProtoEquals(r, **n1));
  ASSERT_TRUE(store
                  ->UpdateHeartbeats(
                      {{"n1", T(10), Cpu(10)}, {"ghost", T(10), Cpu(10)}})
                  .ok());
  n1 = store->GetNode("n1");
  ASSERT_TRUE(n1.ok() && n1->has_value());
  EXPECT_EQ(FromTimestamp((*n1)->node().last_heartbeat()), T(10));
  EXPECT_EQ((*n1)->node().last_metrics().cpu_usage_percent(), 10);
  RawDb raw(path_);
  EXPECT_EQ(raw.QueryText("SELECT group_concat(node_id) FROM node_liveness"),
            "n1");
}

// A flush runs in a transaction of its own, without a savepoint: when one
// of its updates fails, the whole flush goes and nothing else does.
TEST_F(SqliteStoreTest, FailedHeartbeatFlushChangesNothing) {
  {
    auto store = Open();
    ASSERT_TRUE(store->CommitSync(NewNode("n1")).ok());
    ASSERT_TRUE(store->CommitSync(NewNode("n2")).ok());
    ASSERT_TRUE(store->UpdateHeartbeats({{"n1", T(5), Cpu(5)}}).ok());
  }
  {
    RawDb(path_).Exec(absl::StrCat(
        "CREATE TRIGGER refuse BEFORE UPDATE ON node_liveness "
        "WHEN new.last_heartbeat_ns = ",
        TimeToNanos(T(666)), " BEGIN SELECT RAISE(ABORT, 'refused'); END;"));
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  absl::Status flush = store->UpdateHeartbeats(
      {{"n1", T(10), Cpu(10)}, {"n2", T(666), std::nullopt}});
  EXPECT_FALSE(flush.ok());
  EXPECT_THAT(flush.message(), HasSubstr("refused"));
  auto n1 = store->GetNode("n1");
  ASSERT_TRUE(n1.ok() && n1->has_value());
  EXPECT_EQ(FromTimestamp((*n1)->node().last_heartbeat()), T(5));
  EXPECT_EQ((*n1)->node().last_metrics().cpu_usage_percent(), 5);
  // The store is fine: the failure was the flush's own.
  EXPECT_TRUE(store->Ping().ok());
  EXPECT_TRUE(store->CommitSync(NewNode("n3")).ok());
  ASSERT_TRUE(store->UpdateHeartbeats({{"n1", T(11), Cpu(11)}}).ok());
  n1 = store->GetNode("n1");
  ASSERT_TRUE(n1.ok() && n1->has_value());
  EXPECT_EQ(FromTimestamp((*n1)->node().last_heartbeat()), T(11));
}

// The store applies a flush in node_id order (its table's order); two
// updates of one node at the same instant still apply in the caller's order.
TEST_F(SqliteStoreTest, UpdatesOfOneNodeApplyInTheCallersOrder) {
  auto store = Open();
  for (const char* id : {"a", "b", "c", "d"})
    ASSERT_TRUE(store->CommitSync(NewNode(id)).ok());
  ASSERT_TRUE(store
                  ->UpdateHeartbeats({{"d", T(5), Cpu(1)},
                                      {"c", T(5), Cpu(1)},
                                      {"c", T(5), Cpu(2)},
                                      {"b", T(5), Cpu(1)},
                                      {"c", T(5), Cpu(3)},
                                      {"a", T(5), Cpu(1)},
                                      {"c", T(4), Cpu(9)}})
                  .ok());
  auto c = store->GetNode("c");
  ASSERT_TRUE(c.ok() && c->has_value());
  EXPECT_EQ(FromTimestamp((*c)->node().last_heartbeat()), T(5));
  EXPECT_EQ((*c)->node().last_metrics().cpu_usage_percent(), 3);
}

// --- Group commit ---

TEST_F(SqliteStoreTest, QueuedCommitsShareOneTransaction) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  constexpr int kBatches = 64;
  absl::BlockingCounter pending(kBatches);
  std::atomic<int> ok{0};
  {
    // Another process holds the write lock, so every commit queues up behind
    // the first one.
    RawDb blocker(path_);
    blocker.Exec("BEGIN EXCLUSIVE");
    for (int i = 0; i < kBatches; ++i) {
      store->Commit(NewNode(absl::StrCat("n", i)), [&](absl::Status s) {
        if (s.ok()) ok++;
        pending.DecrementCount();
      });
    }
    blocker.Exec("COMMIT");
  }
  pending.Wait();
  EXPECT_EQ(ok.load(), kBatches);
  SqliteStore::Stats stats = store->stats();
  EXPECT_EQ(stats.jobs, kBatches);
  // The writer may have taken the first few jobs before it met the lock; all
  // the others waited in the queue and went into the next transaction.
  EXPECT_LE(stats.transactions, 2);
  EXPECT_GE(stats.largest_group, kBatches / 2);
  EXPECT_EQ(store->Load()->last_event_id, kBatches);
}

TEST_F(SqliteStoreTest, ConcurrentWritersShareTransactions) {
  auto store = Open();
  ASSERT_NE(store, nullptr);
  constexpr int kThreads = 16;
  constexpr int kPerThread = 25;
  std::vector<std::thread> threads;
  std::atomic<int> failures{0};
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kPerThread; ++i) {
        if (!store->CommitSync(NewNode(absl::StrCat("t", t, "-", i))).ok())
          failures++;
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_EQ(failures.load(), 0);
  SqliteStore::Stats stats = store->stats();
  EXPECT_EQ(stats.jobs, kThreads * kPerThread);
  EXPECT_LT(stats.transactions, stats.jobs)
      << "no two commits ever shared a transaction";
  RecordProperty("transactions", static_cast<int>(stats.transactions));
}

TEST_F(SqliteStoreTest, FullQueueFailsFast) {
  SqliteOptions o = Options();
  o.max_queue = 1;
  auto store = Open(o);
  ASSERT_NE(store, nullptr);
  constexpr int kBatches = 3;
  absl::BlockingCounter pending(kBatches);
  std::vector<absl::Status> results(kBatches);
  {
    RawDb blocker(path_);
    blocker.Exec("BEGIN EXCLUSIVE");
    for (int i = 0; i < kBatches; ++i) {
      store->Commit(NewNode(absl::StrCat("n", i)), [&, i](absl::Status s) {
        results[i] = s;
        pending.DecrementCount();
      });
    }
    blocker.Exec("COMMIT");
  }
  pending.Wait();
  // The writer holds at most one job while it waits for the lock and the
  // queue one more, so of three commits at least one is refused at once
  // (which one depends on when the writer woke).
  EXPECT_TRUE(results[0].ok()) << results[0];
  int refused = 0;
  for (const absl::Status& r : results) {
    if (r.ok()) continue;
    ++refused;
    EXPECT_EQ(r.code(), absl::StatusCode::kUnavailable) << r;
    EXPECT_THAT(r.message(), HasSubstr("queue full"));
  }
  EXPECT_GE(refused, 1);
}

// --- Failures ---

TEST_F(SqliteStoreTest, LockedDatabaseIsUnavailableThenRecovers) {
  SqliteOptions o = Options();
  o.busy_timeout = absl::Milliseconds(50);
  auto store = Open(o);
  ASSERT_NE(store, nullptr);
  ASSERT_TRUE(store->CommitSync(NewNode("n1")).ok());
  {
    RawDb blocker(path_);
    blocker.Exec("BEGIN EXCLUSIVE");
    absl::Status s = store->CommitSync(NewNode("n2"));
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
    EXPECT_THAT(s.message(), HasSubstr("locked"));
    EXPECT_EQ(store->UpdateHeartbeats({{"n1", T(5), std::nullopt}}).code(),
              absl::StatusCode::kUnavailable);
    EXPECT_EQ(store->Ping().code(), absl::StatusCode::kUnavailable);
    // Reads go on: WAL readers do not wait for writers.
    EXPECT_TRUE(store->GetNode("n1").ok());
    blocker.Exec("COMMIT");
  }
  EXPECT_TRUE(store->CommitSync(NewNode("n2")).ok());
  EXPECT_TRUE(store->Ping().ok());
  EXPECT_EQ(store->Load()->nodes.size(), 2u);
}

TEST_F(SqliteStoreTest, CorruptRecordIsInternal) {
  {
    auto store = Open();
    ASSERT_TRUE(store->CommitSync(NewNode("n1")).ok());
  }
  {
    RawDb(path_).Exec("UPDATE nodes SET record = x'ffff' WHERE node_id = 'n1'");
  }
  auto store = Open();
  ASSERT_NE(store, nullptr);
  EXPECT_EQ(store->GetNode("n1").status().code(), absl::StatusCode::kInternal);
  EXPECT_EQ(store->Load().status().code(), absl::StatusCode::kInternal);
  EXPECT_THAT(store->Load().status().message(), HasSubstr("corrupt node"));
  // The reader connection is still usable afterwards.
  EXPECT_TRUE(store->ListEvents({}).ok());
  EXPECT_TRUE(store->Ping().ok());
}

// --- Crash durability: kill -9 of a process that is committing ---

struct Ack {
  int64_t key;
  int64_t version;
};

// Commits forever from several threads; reports every acknowledged write on
// `fd`. Runs in a forked child: no gtest, no return.
[[noreturn]] void CommitUntilKilled(const std::string& path, int fd) {
  SqliteOptions o;
  o.path = path;
  auto opened = SqliteStore::Open(o);
  if (!opened.ok()) _exit(3);
  std::unique_ptr<SqliteStore> store = *std::move(opened);
  std::atomic<int64_t> next{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&] {
      for (;;) {
        int64_t key = next++;
        if (key > 200000) _exit(5);  // the parent must have gone away
        std::string id = absl::StrCat("crash-", key);
        for (int64_t version = 1; version <= 2; ++version) {
          WriteBatch b;
          b.nodes.push_back(Node(id, version));
          b.events.push_back(MakeEvent("node.updated", id, "", T(key)));
          if (!store->CommitSync(std::move(b)).ok()) _exit(4);
          Ack ack{key, version};
          // Smaller than PIPE_BUF: each write is atomic across threads.
          if (write(fd, &ack, sizeof ack) != sizeof ack) _exit(6);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  _exit(0);
}

bool ReadAck(int fd, Ack& ack) {
  char* p = reinterpret_cast<char*>(&ack);
  size_t got = 0;
  while (got < sizeof ack) {
    ssize_t n = read(fd, p + got, sizeof ack - got);
    if (n == 0) return false;
    if (n < 0) {
      if (errno == EINTR) continue;
      return false;
    }
    got += static_cast<size_t>(n);
  }
  return true;
}

TEST_F(SqliteStoreTest, AcknowledgedCommitsSurviveKill9) {
  // A fixed seed keeps the kill points reproducible in what we ask for; the
  // child's progress at that moment still varies run to run.
  std::mt19937 rng(20261127);
  std::uniform_int_distribution<int> kill_after(1, 600);
  for (int round = 0; round < 4; ++round) {
    std::string path = dir_.File(absl::StrCat("crash-", round, ".db"));
    int target = kill_after(rng);
    SCOPED_TRACE(
        absl::StrCat("round ", round, ", kill after ", target, " acks"));
    int fds[2];
    ASSERT_EQ(pipe(fds), 0);
    pid_t pid = fork();
    ASSERT_GE(pid, 0);
    if (pid == 0) {
      close(fds[0]);
      CommitUntilKilled(path, fds[1]);
    }
    close(fds[1]);
    std::map<int64_t, int64_t> acked;  // key -> highest acknowledged version
    int received = 0;
    bool killed = false;
    Ack ack;
    // Acks already in the pipe when the child dies were acknowledged too:
    // read to the end.
    while (ReadAck(fds[0], ack)) {
      acked[ack.key] = std::max(acked[ack.key], ack.version);
      if (!killed && ++received >= target) {
        ASSERT_EQ(kill(pid, SIGKILL), 0);
        killed = true;
      }
    }
    close(fds[0]);
    int status = 0;
    ASSERT_EQ(waitpid(pid, &status, 0), pid);
    ASSERT_TRUE(killed) << "the child stopped by itself, status " << status;
    ASSERT_TRUE(WIFSIGNALED(status) && WTERMSIG(status) == SIGKILL) << status;

    {
      RawDb raw(path);
      EXPECT_EQ(raw.QueryText("PRAGMA integrity_check"), "ok");
    }
    SqliteOptions o;
    o.path = path;
    auto store = Open(o);
    ASSERT_NE(store, nullptr);
    auto snap = store->Load();
    ASSERT_TRUE(snap.ok()) << snap.status();
    EXPECT_GE(snap->nodes.size(), acked.size());
    int missing = 0;
    for (const auto& [key, version] : acked) {
      std::string id = absl::StrCat("crash-", key);
      auto node = store->GetNode(id);
      ASSERT_TRUE(node.ok()) << node.status();
      if (!node->has_value()) {
        ADD_FAILURE() << id << " was acknowledged at version " << version
                      << " but is gone";
        if (++missing > 5) break;
        continue;
      }
      EXPECT_GE((*node)->version(), version) << id;
      auto events = store->ListEvents({.node_id = id});
      ASSERT_TRUE(events.ok());
      EXPECT_GE(static_cast<int64_t>(events->events.size()), version) << id;
    }
    // Whatever the kill interrupted was rolled back whole: ids stay dense.
    auto all = store->ListEvents({.limit = 1000000});
    ASSERT_TRUE(all.ok());
    for (size_t i = 0; i < all->events.size(); ++i) {
      ASSERT_EQ(all->events[i].id(), static_cast<int64_t>(i) + 1);
    }
    EXPECT_EQ(snap->last_event_id, static_cast<int64_t>(all->events.size()));
  }
}

}  // namespace
}  // namespace navarch
