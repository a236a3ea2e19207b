#include "navarch/store/testing/store_conformance.h"

#include <algorithm>
#include <atomic>
#include <map>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "gmock/gmock.h"
#include "google/protobuf/util/message_differencer.h"
#include "navarch/api/time_util.h"

namespace navarch {

std::string StoreBackendName(
    const ::testing::TestParamInfo<StoreBackend>& info) {
  return info.param.name;
}

void PrintTo(const StoreBackend& backend, std::ostream* os) {
  *os << backend.name;
}

void StoreConformanceTest::SetUp() {
  harness_ = GetParam().make_harness();
  ASSERT_NE(harness_, nullptr);
  auto store = harness_->Open();
  ASSERT_TRUE(store.ok()) << store.status();
  store_ = *std::move(store);
}

void StoreConformanceTest::TearDown() {
  if (store_ != nullptr) store_->Close();
  store_.reset();
  harness_.reset();
}

void StoreConformanceTest::Reopen() {
  ASSERT_TRUE(harness_->durable());
  store_->Close();
  store_.reset();
  auto store = harness_->Open();
  ASSERT_TRUE(store.ok()) << store.status();
  store_ = *std::move(store);
}

namespace storetest {

absl::Time T(int64_t seconds) {
  return absl::FromUnixSeconds(1767225600 + seconds);
}

NodeRecord Node(const std::string& id, int64_t version,
                const std::string& pool) {
  NodeRecord r;
  r.set_version(version);
  NodeInfo* n = r.mutable_node();
  n->set_node_id(id);
  n->set_provider("fake");
  n->set_pool(pool);
  n->set_status(NODE_STATUS_ACTIVE);
  n->set_health_status(HEALTH_STATUS_HEALTHY);
  *n->mutable_registered_at() = ToTimestamp(T(1));
  return r;
}

InstanceRecord Instance(const std::string& id, int64_t version,
                        const std::string& pool) {
  InstanceRecord r;
  r.set_version(version);
  InstanceInfo* i = r.mutable_instance();
  i->set_instance_id(id);
  i->set_provider("fake");
  i->set_pool_name(pool);
  i->set_state(INSTANCE_STATE_RUNNING);
  *i->mutable_created_at() = ToTimestamp(T(1));
  return r;
}

CommandRecord Command(const std::string& id, const std::string& node_id,
                      int64_t version, internal::CommandState state,
                      absl::Time issued_at) {
  CommandRecord r;
  r.set_version(version);
  r.set_node_id(node_id);
  r.set_state(state);
  r.set_issued_by("operator");
  *r.mutable_updated_at() = ToTimestamp(issued_at);
  NodeCommand* c = r.mutable_command();
  c->set_command_id(id);
  c->set_type(NODE_COMMAND_TYPE_CORDON);
  *c->mutable_issued_at() = ToTimestamp(issued_at);
  return r;
}

Event MakeEvent(const std::string& kind, const std::string& node_id,
                const std::string& pool, absl::Time time) {
  Event e;
  e.set_kind(kind);
  e.set_node_id(node_id);
  e.set_pool(pool);
  e.set_actor("test");
  *e.mutable_time() = ToTimestamp(time);
  return e;
}

::testing::AssertionResult ProtoEquals(
    const google::protobuf::Message& expected,
    const google::protobuf::Message& actual) {
  if (google::protobuf::util::MessageDifferencer::Equals(expected, actual)) {
    return ::testing::AssertionSuccess();
  }
  return ::testing::AssertionFailure() << "expected:\n"
                                       << expected.DebugString() << "actual:\n"
                                       << actual.DebugString();
}

}  // namespace storetest

namespace {

using storetest::Command;
using storetest::Instance;
using storetest::MakeEvent;
using storetest::Node;
using storetest::ProtoEquals;
using storetest::T;
using ::testing::ElementsAre;
using ::testing::IsEmpty;
using ::testing::SizeIs;

WriteBatch NodesBatch(std::vector<NodeRecord> nodes) {
  WriteBatch b;
  b.nodes = std::move(nodes);
  return b;
}

WriteBatch EventsBatch(std::vector<Event> events) {
  WriteBatch b;
  b.events = std::move(events);
  return b;
}

// Test helpers that fail the test on a read error and return an empty value.
class Reader {
 public:
  explicit Reader(Store& store) : store_(store) {}

  std::optional<NodeRecord> Node(const std::string& id) {
    auto r = store_.GetNode(id);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : std::nullopt;
  }
  std::optional<CommandRecord> Command(const std::string& id) {
    auto r = store_.GetCommand(id);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *r : std::nullopt;
  }
  StoreSnapshot Load() {
    auto r = store_.Load();
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *std::move(r) : StoreSnapshot{};
  }
  EventPage Events(const EventQuery& q) {
    auto r = store_.ListEvents(q);
    EXPECT_TRUE(r.ok()) << r.status();
    return r.ok() ? *std::move(r) : EventPage{};
  }
  // Every matching event, following the cursor.
  std::vector<Event> AllEvents(EventQuery q = {}) {
    std::vector<Event> all;
    q.limit = 50;
    for (int pages = 0; pages < 10000; ++pages) {
      EventPage page = Events(q);
      all.insert(all.end(), page.events.begin(), page.events.end());
      if (!page.more || page.events.empty()) break;
      q.after_id = page.events.back().id();
    }
    return all;
  }
  std::vector<int64_t> EventIds(const EventQuery& q) {
    std::vector<int64_t> ids;
    for (const Event& e : Events(q).events) ids.push_back(e.id());
    return ids;
  }

 private:
  Store& store_;
};

std::vector<std::string> NodeIds(const StoreSnapshot& s) {
  std::vector<std::string> ids;
  for (const auto& n : s.nodes) ids.push_back(n.node().node_id());
  return ids;
}

std::vector<std::string> CommandIds(const std::vector<CommandRecord>& cs) {
  std::vector<std::string> ids;
  for (const auto& c : cs) ids.push_back(c.command().command_id());
  return ids;
}

// --- Versions (compare-and-set) ---

TEST_P(StoreConformanceTest, NewRecordNeedsVersionOne) {
  EXPECT_EQ(store().CommitSync(NodesBatch({Node("n1", 2)})).code(),
            absl::StatusCode::kAborted);
  WriteBatch instance;
  instance.instances.push_back(Instance("i1", 2));
  EXPECT_EQ(store().CommitSync(instance).code(), absl::StatusCode::kAborted);
  WriteBatch command;
  command.commands.push_back(
      Command("c1", "n1", 2, internal::COMMAND_STATE_PENDING, T(1)));
  EXPECT_EQ(store().CommitSync(command).code(), absl::StatusCode::kAborted);
  Reader read(store());
  EXPECT_EQ(read.Node("n1"), std::nullopt);
  EXPECT_EQ(read.Command("c1"), std::nullopt);
  EXPECT_THAT(read.Load().instances, IsEmpty());

  ASSERT_TRUE(store().CommitSync(NodesBatch({Node("n1", 1)})).ok());
  auto n1 = read.Node("n1");
  ASSERT_TRUE(n1.has_value());
  EXPECT_EQ(n1->version(), 1);
}

TEST_P(StoreConformanceTest, UpdateNeedsStoredVersionPlusOne) {
  ASSERT_TRUE(store().CommitSync(NodesBatch({Node("n1", 1)})).ok());
  NodeRecord again = Node("n1", 1);
  again.mutable_node()->set_status_reason("stale writer");
  absl::Status s = store().CommitSync(NodesBatch({again}));
  EXPECT_EQ(s.code(), absl::StatusCode::kAborted) << s;
  EXPECT_EQ(store().CommitSync(NodesBatch({Node("n1", 3)})).code(),
            absl::StatusCode::kAborted);

  NodeRecord next = Node("n1", 2);
  next.mutable_node()->set_status(NODE_STATUS_CORDONED);
  ASSERT_TRUE(store().CommitSync(NodesBatch({next})).ok());
  auto stored = Reader(store()).Node("n1");
  ASSERT_TRUE(stored.has_value());
  EXPECT_TRUE(ProtoEquals(next, *stored));
}

TEST_P(StoreConformanceTest, VersionsOfInstancesAndCommands) {
  WriteBatch b;
  b.instances.push_back(Instance("i1", 1));
  b.commands.push_back(
      Command("c1", "n1", 1, internal::COMMAND_STATE_PENDING, T(1)));
  ASSERT_TRUE(store().CommitSync(b).ok());
  EXPECT_EQ(store().CommitSync(b).code(), absl::StatusCode::kAborted);

  WriteBatch next;
  next.instances.push_back(Instance("i1", 2));
  next.instances.back().mutable_instance()->set_state(
      INSTANCE_STATE_TERMINATING);
  next.commands.push_back(
      Command("c1", "n1", 2, internal::COMMAND_STATE_DELIVERED, T(1)));
  ASSERT_TRUE(store().CommitSync(next).ok());
  Reader read(store());
  auto c1 = read.Command("c1");
  ASSERT_TRUE(c1.has_value());
  EXPECT_TRUE(ProtoEquals(next.commands[0], *c1));
  StoreSnapshot snap = read.Load();
  ASSERT_THAT(snap.instances, SizeIs(1));
  EXPECT_TRUE(ProtoEquals(next.instances[0], snap.instances[0]));
}

TEST_P(StoreConformanceTest, ConflictFailsTheWholeBatch) {
  WriteBatch setup;
  setup.nodes.push_back(Node("n1", 1));
  setup.instances.push_back(Instance("i1", 1));
  setup.events.push_back(MakeEvent("node.registered", "n1", "pool-a", T(1)));
  ASSERT_TRUE(store().CommitSync(setup).ok());

  WriteBatch b;
  b.nodes.push_back(Node("n2", 1));          // fine on its own
  b.nodes.push_back(Node("n1", 2));          // fine on its own
  b.instances.push_back(Instance("i1", 1));  // conflict: stored is 1
  b.commands.push_back(
      Command("c1", "n1", 1, internal::COMMAND_STATE_PENDING, T(2)));
  b.events.push_back(MakeEvent("node.registered", "n2", "pool-a", T(2)));
  absl::Status s = store().CommitSync(b);
  EXPECT_EQ(s.code(), absl::StatusCode::kAborted) << s;

  Reader read(store());
  EXPECT_EQ(read.Node("n2"), std::nullopt);
  auto n1 = read.Node("n1");
  ASSERT_TRUE(n1.has_value());
  EXPECT_EQ(n1->version(), 1);
  EXPECT_EQ(read.Command("c1"), std::nullopt);
  StoreSnapshot snap = read.Load();
  EXPECT_EQ(snap.last_event_id, 1);
  EXPECT_THAT(read.EventIds({}), ElementsAre(1));

  // The failed batch left no gap: the next event takes the next id.
  ASSERT_TRUE(store()
                  .CommitSync(EventsBatch(
                      {MakeEvent("node.registered", "n3", "", T(3))}))
                  .ok());
  EXPECT_THAT(read.EventIds({}), ElementsAre(1, 2));
}

// Backends that commit several batches together must fail only the batch
// that conflicts.
TEST_P(StoreConformanceTest, ConflictDoesNotFailOtherBatches) {
  ASSERT_TRUE(store().CommitSync(NodesBatch({Node("n1", 1)})).ok());
  absl::Mutex mu;
  std::vector<absl::Status> results(3);
  std::atomic<int> calls{0};
  auto done = [&](int i) {
    return [&, i](absl::Status s) {
      absl::MutexLock lock(&mu);
      results[i] = s;
      calls++;
    };
  };
  WriteBatch a = NodesBatch({Node("a", 1)});
  a.events.push_back(MakeEvent("node.registered", "a", "", T(1)));
  WriteBatch conflict = NodesBatch({Node("n1", 5)});
  conflict.events.push_back(MakeEvent("node.registered", "n1", "", T(1)));
  WriteBatch c = NodesBatch({Node("c", 1)});
  c.events.push_back(MakeEvent("node.registered", "c", "", T(1)));
  store().Commit(std::move(a), done(0));
  store().Commit(std::move(conflict), done(1));
  store().Commit(std::move(c), done(2));
  ASSERT_TRUE(store().CommitSync({}).ok());  // a barrier: commits are in order
  EXPECT_EQ(calls.load(), 3);
  absl::MutexLock lock(&mu);
  EXPECT_TRUE(results[0].ok()) << results[0];
  EXPECT_EQ(results[1].code(), absl::StatusCode::kAborted) << results[1];
  EXPECT_TRUE(results[2].ok()) << results[2];
  Reader read(store());
  EXPECT_EQ(read.Node("n1")->version(), 1);
  std::vector<Event> events = read.AllEvents();
  ASSERT_THAT(events, SizeIs(2));
  EXPECT_EQ(events[0].node_id(), "a");
  EXPECT_EQ(events[0].id(), 1);
  EXPECT_EQ(events[1].node_id(), "c");
  EXPECT_EQ(events[1].id(), 2);
}

TEST_P(StoreConformanceTest, TwoUpdatesOfOneRecordInOneBatch) {
  NodeRecord second = Node("n1", 2);
  second.mutable_node()->set_status(NODE_STATUS_DRAINING);
  ASSERT_TRUE(store().CommitSync(NodesBatch({Node("n1", 1), second})).ok());
  Reader read(store());
  auto stored = read.Node("n1");
  ASSERT_TRUE(stored.has_value());
  EXPECT_TRUE(ProtoEquals(second, *stored));

  // Two writers of the same next version in one batch: the second conflicts.
  EXPECT_EQ(
      store().CommitSync(NodesBatch({Node("n1", 3), Node("n1", 3)})).code(),
      absl::StatusCode::kAborted);
  EXPECT_EQ(read.Node("n1")->version(), 2);
}

TEST_P(StoreConformanceTest, SubmissionOrderIsCommitOrder) {
  // Each batch needs the one before it, so all succeed only in order.
  constexpr int kBatches = 100;
  std::atomic<int> ok{0};
  std::vector<int> order;
  absl::Mutex mu;
  for (int v = 1; v <= kBatches; ++v) {
    NodeRecord n = Node("n1", v);
    n.mutable_node()->set_status_reason(absl::StrCat("step ", v));
    WriteBatch b = NodesBatch({n});
    b.events.push_back(MakeEvent("node.updated", "n1", "", T(v)));
    store().Commit(std::move(b), [&, v](absl::Status s) {
      EXPECT_TRUE(s.ok()) << "version " << v << ": " << s;
      if (s.ok()) ok++;
      absl::MutexLock lock(&mu);
      order.push_back(v);
    });
  }
  ASSERT_TRUE(store().CommitSync({}).ok());
  EXPECT_EQ(ok.load(), kBatches);
  {
    absl::MutexLock lock(&mu);
    ASSERT_THAT(order, SizeIs(kBatches));
    EXPECT_TRUE(std::is_sorted(order.begin(), order.end()))
        << "done out of order";
  }
  Reader read(store());
  EXPECT_EQ(read.Node("n1")->node().status_reason(),
            absl::StrCat("step ", kBatches));
  std::vector<Event> events = read.AllEvents();
  ASSERT_THAT(events, SizeIs(kBatches));
  for (int i = 0; i < kBatches; ++i) {
    EXPECT_EQ(events[i].id(), i + 1);
    EXPECT_EQ(FromTimestamp(events[i].time()), T(i + 1));
  }
}

// --- Events ---

TEST_P(StoreConformanceTest, EventIdsIncreaseInCommitOrder) {
  Event detailed = MakeEvent("node.status_changed", "n1", "pool-a", T(5));
  detailed.set_message("cordoned by operator");
  (*detailed.mutable_details())["from"] = "active";
  (*detailed.mutable_details())["to"] = "cordoned";
  ASSERT_TRUE(store()
                  .CommitSync(EventsBatch(
                      {MakeEvent("node.registered", "n1", "pool-a", T(1)),
                       MakeEvent("node.registered", "n2", "pool-a", T(1))}))
                  .ok());
  ASSERT_TRUE(store().CommitSync(EventsBatch({detailed})).ok());
  // Ids follow commit order, not event time.
  ASSERT_TRUE(store()
                  .CommitSync(EventsBatch(
                      {MakeEvent("node.registered", "n3", "pool-a", T(0)),
                       MakeEvent("node.registered", "n4", "pool-a", T(0)),
                       MakeEvent("node.registered", "n5", "pool-a", T(0))}))
                  .ok());
  Reader read(store());
  std::vector<Event> events = read.AllEvents();
  ASSERT_THAT(events, SizeIs(6));
  std::vector<std::string> nodes;
  for (size_t i = 0; i < events.size(); ++i) {
    EXPECT_EQ(events[i].id(), static_cast<int64_t>(i) + 1);
    nodes.push_back(events[i].node_id());
  }
  EXPECT_THAT(nodes, ElementsAre("n1", "n2", "n1", "n3", "n4", "n5"));
  detailed.set_id(3);
  EXPECT_TRUE(ProtoEquals(detailed, events[2]));
  EXPECT_EQ(read.Load().last_event_id, 6);
}

class EventFilterFixture {
 public:
  static WriteBatch Batch() {
    return EventsBatch({
        MakeEvent("node.registered", "n1", "pool-a", T(10)),      // 1
        MakeEvent("node.status_changed", "n1", "pool-a", T(20)),  // 2
        MakeEvent("node.registered", "n2", "pool-b", T(30)),      // 3
        MakeEvent("command.issued", "n2", "pool-b", T(40)),       // 4
        MakeEvent("pool.scaled", "", "pool-a", T(50)),            // 5
        MakeEvent("nodes.counted", "", "", T(60)),  // 6: not "node.*"
        MakeEvent("node", "n3", "pool-c", T(70)),   // 7: not "node.*"
        // 8: just past every "node." kind in byte order, still not "node.*"
        MakeEvent("node/", "n3", "pool-c", T(80)),
    });
  }
};

TEST_P(StoreConformanceTest, ListEventsFilters) {
  ASSERT_TRUE(store().CommitSync(EventFilterFixture::Batch()).ok());
  Reader read(store());
  auto ids = [&](EventQuery q) { return read.EventIds(q); };

  EXPECT_THAT(ids({}), ElementsAre(1, 2, 3, 4, 5, 6, 7, 8));
  EXPECT_THAT(ids({.node_id = "n1"}), ElementsAre(1, 2));
  EXPECT_THAT(ids({.node_id = "nobody"}), IsEmpty());
  EXPECT_THAT(ids({.pool = "pool-b"}), ElementsAre(3, 4));
  EXPECT_THAT(ids({.kinds = {"node.registered"}}), ElementsAre(1, 3));
  EXPECT_THAT(ids({.kinds = {"node.*"}}), ElementsAre(1, 2, 3));
  EXPECT_THAT(ids({.kinds = {"command.issued", "pool.scaled"}}),
              ElementsAre(4, 5));
  EXPECT_THAT(ids({.kinds = {"node.*", "node.registered"}}),
              ElementsAre(1, 2, 3));
  EXPECT_THAT(ids({.kinds = {"*"}}), ElementsAre(1, 2, 3, 4, 5, 6, 7, 8));
  EXPECT_THAT(ids({.kinds = {"node"}}), ElementsAre(7));
  EXPECT_THAT(ids({.kinds = {"node*"}}), ElementsAre(1, 2, 3, 6, 7, 8));
  EXPECT_THAT(ids({.kinds = {"nod"}}), IsEmpty());
  EXPECT_THAT(ids({.node_id = "n2", .kinds = {"node.*"}}), ElementsAre(3));
  EXPECT_THAT(ids({.node_id = "n1", .pool = "pool-b"}), IsEmpty());
  EXPECT_THAT(
      ids({.pool = "pool-a", .kinds = {"pool.*", "node.status_changed"}}),
      ElementsAre(2, 5));
}

TEST_P(StoreConformanceTest, ListEventsTimeRange) {
  ASSERT_TRUE(store().CommitSync(EventFilterFixture::Batch()).ok());
  Reader read(store());
  auto ids = [&](EventQuery q) { return read.EventIds(q); };
  EXPECT_THAT(ids({.since = T(30)}),
              ElementsAre(3, 4, 5, 6, 7, 8));             // inclusive
  EXPECT_THAT(ids({.until = T(30)}), ElementsAre(1, 2));  // exclusive
  EXPECT_THAT(ids({.since = T(20), .until = T(50)}), ElementsAre(2, 3, 4));
  EXPECT_THAT(ids({.since = T(21), .until = T(29)}), IsEmpty());
  EXPECT_THAT(ids({.pool = "pool-b", .since = T(35)}), ElementsAre(4));
}

TEST_P(StoreConformanceTest, ListEventsPages) {
  std::vector<Event> events;
  for (int i = 0; i < 25; ++i) {
    events.push_back(
        MakeEvent(i % 2 == 0 ? "node.even" : "node.odd", "n1", "", T(i)));
  }
  ASSERT_TRUE(store().CommitSync(EventsBatch(events)).ok());
  Reader read(store());

  EventPage p1 = read.Events({.limit = 10});
  ASSERT_THAT(p1.events, SizeIs(10));
  EXPECT_TRUE(p1.more);
  EXPECT_EQ(p1.events.front().id(), 1);
  EventPage p2 = read.Events({.after_id = p1.events.back().id(), .limit = 10});
  ASSERT_THAT(p2.events, SizeIs(10));
  EXPECT_TRUE(p2.more);
  EXPECT_EQ(p2.events.front().id(), 11);
  EventPage p3 = read.Events({.after_id = p2.events.back().id(), .limit = 10});
  ASSERT_THAT(p3.events, SizeIs(5));
  EXPECT_FALSE(p3.more);
  EXPECT_EQ(p3.events.back().id(), 25);
  EventPage past_end = read.Events({.after_id = 25, .limit = 10});
  EXPECT_THAT(past_end.events, IsEmpty());
  EXPECT_FALSE(past_end.more);

  // Exactly `limit` matches left: no further page.
  EventPage exact = read.Events({.after_id = 15, .limit = 10});
  EXPECT_THAT(exact.events, SizeIs(10));
  EXPECT_FALSE(exact.more);

  // Paging through a filter: 13 even events, limit 5.
  EventQuery q{.kinds = {"node.even"}, .limit = 5};
  std::vector<int64_t> seen;
  std::vector<bool> mores;
  for (int i = 0; i < 5; ++i) {
    EventPage p = read.Events(q);
    for (const Event& e : p.events) seen.push_back(e.id());
    mores.push_back(p.more);
    if (!p.more) break;
    q.after_id = p.events.back().id();
  }
  EXPECT_THAT(mores, ElementsAre(true, true, false));
  ASSERT_THAT(seen, SizeIs(13));
  for (size_t i = 0; i < seen.size(); ++i)
    EXPECT_EQ(seen[i], 2 * static_cast<int64_t>(i) + 1);

  EventPage one = read.Events({.node_id = "n1", .limit = 1});
  ASSERT_THAT(one.events, SizeIs(1));
  EXPECT_TRUE(one.more);
}

TEST_P(StoreConformanceTest, ListEventsRejectsBadQueries) {
  EXPECT_EQ(store().ListEvents({.limit = 0}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store().ListEvents({.limit = -3}).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(store().ListEvents({.after_id = -1}).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// --- Load and point reads ---

TEST_P(StoreConformanceTest, LoadOfAnEmptyStore) {
  StoreSnapshot snap = Reader(store()).Load();
  EXPECT_THAT(snap.nodes, IsEmpty());
  EXPECT_THAT(snap.instances, IsEmpty());
  EXPECT_THAT(snap.open_commands, IsEmpty());
  EXPECT_EQ(snap.last_event_id, 0);
}

TEST_P(StoreConformanceTest, LoadReturnsEverything) {
  WriteBatch b;
  b.nodes = {Node("n2", 1), Node("n1", 1)};
  b.instances = {Instance("i2", 1), Instance("i1", 1)};
  using internal::CommandState;
  b.commands = {
      Command("late", "n1", 1, internal::COMMAND_STATE_PENDING, T(30)),
      Command("early", "n1", 1, internal::COMMAND_STATE_DELIVERED, T(10)),
      Command("same-b", "n2", 1, internal::COMMAND_STATE_PENDING, T(20)),
      Command("same-a", "n2", 1, internal::COMMAND_STATE_PENDING, T(20)),
      Command("ok", "n1", 1, internal::COMMAND_STATE_SUCCEEDED, T(5)),
      Command("failed", "n1", 1, internal::COMMAND_STATE_FAILED, T(6)),
      Command("cancelled", "n2", 1, internal::COMMAND_STATE_CANCELLED, T(7)),
  };
  b.events = {MakeEvent("node.registered", "n1", "", T(1)),
              MakeEvent("node.registered", "n2", "", T(1)),
              MakeEvent("command.issued", "n1", "", T(2))};
  ASSERT_TRUE(store().CommitSync(b).ok());

  StoreSnapshot snap = Reader(store()).Load();
  EXPECT_THAT(NodeIds(snap), ElementsAre("n1", "n2"));
  ASSERT_THAT(snap.instances, SizeIs(2));
  EXPECT_EQ(snap.instances[0].instance().instance_id(), "i1");
  EXPECT_EQ(snap.instances[1].instance().instance_id(), "i2");
  EXPECT_THAT(CommandIds(snap.open_commands),
              ElementsAre("early", "same-a", "same-b", "late"));
  EXPECT_TRUE(ProtoEquals(b.commands[1], snap.open_commands[0]));
  EXPECT_EQ(snap.last_event_id, 3);
}

TEST_P(StoreConformanceTest, GetNodeAndGetCommand) {
  Reader read(store());
  EXPECT_EQ(read.Node("n1"), std::nullopt);
  EXPECT_EQ(read.Command("c1"), std::nullopt);
  WriteBatch b;
  b.nodes.push_back(Node("n1", 1));
  b.commands.push_back(
      Command("c1", "n1", 1, internal::COMMAND_STATE_SUCCEEDED, T(3)));
  ASSERT_TRUE(store().CommitSync(b).ok());
  auto n1 = read.Node("n1");
  ASSERT_TRUE(n1.has_value());
  EXPECT_TRUE(ProtoEquals(b.nodes[0], *n1));
  // Finished commands are not in Load, but still readable by id.
  auto c1 = read.Command("c1");
  ASSERT_TRUE(c1.has_value());
  EXPECT_TRUE(ProtoEquals(b.commands[0], *c1));
  EXPECT_EQ(read.Node("N1"), std::nullopt);  // ids are case-sensitive
}

NodeRecord RichNode() {
  NodeRecord r = Node("rich", 1, "pool-gpu");
  r.set_consecutive_unhealthy(2);
  *r.mutable_status_changed_at() = ToTimestamp(T(7) + absl::Nanoseconds(123));
  NodeInfo* n = r.mutable_node();
  n->set_region("us-east-1");
  n->set_zone("us-east-1a");
  n->set_instance_type("p5.48xlarge");
  n->set_health_status(HEALTH_STATUS_DEGRADED);
  n->set_status_reason("xid 48 on gpu 3: uncorrectable ECC \xE2\x9A\xA0");
  *n->mutable_last_heartbeat() = ToTimestamp(T(9) + absl::Nanoseconds(1));
  *n->mutable_last_health_check() = ToTimestamp(T(8));
  for (int i = 0; i < 8; ++i) {
    GPUInfo* g = n->add_gpus();
    g->set_index(i);
    g->set_uuid(absl::StrCat("GPU-", i));
    g->set_name("H100");
  }
  n->mutable_metadata()->set_hostname("gpu-node-1");
  NodeMetrics* m = n->mutable_last_metrics();
  m->set_cpu_usage_percent(12.5);
  m->add_gpu_metrics()->set_temperature(71);
  return r;
}

TEST_P(StoreConformanceTest, RecordsRoundTripExactly) {
  WriteBatch b;
  b.nodes.push_back(RichNode());
  InstanceRecord i = Instance("i-1", 1, "pool-gpu");
  i.set_idempotency_key("provision-42");
  (*i.mutable_instance()->mutable_labels())["team"] = "ml";
  *i.mutable_instance()->mutable_ready_at() = ToTimestamp(T(3));
  b.instances.push_back(i);
  CommandRecord c =
      Command("c-1", "rich", 1, internal::COMMAND_STATE_PENDING, T(4));
  (*c.mutable_command()->mutable_parameters())["reason"] = "maintenance";
  c.set_result_message("");
  b.commands.push_back(c);
  Event e = MakeEvent("node.health_changed", "rich", "pool-gpu",
                      T(5) + absl::Nanoseconds(9));
  (*e.mutable_details())["rule"] = "xid-fatal";
  e.set_message("unhealthy: XID 79");
  b.events.push_back(e);
  ASSERT_TRUE(store().CommitSync(b).ok());

  Reader read(store());
  EXPECT_TRUE(ProtoEquals(b.nodes[0], *read.Node("rich")));
  StoreSnapshot snap = read.Load();
  ASSERT_THAT(snap.nodes, SizeIs(1));
  EXPECT_TRUE(ProtoEquals(b.nodes[0], snap.nodes[0]));
  ASSERT_THAT(snap.instances, SizeIs(1));
  EXPECT_TRUE(ProtoEquals(i, snap.instances[0]));
  ASSERT_THAT(snap.open_commands, SizeIs(1));
  EXPECT_TRUE(ProtoEquals(c, snap.open_commands[0]));
  std::vector<Event> events = read.AllEvents();
  ASSERT_THAT(events, SizeIs(1));
  e.set_id(1);
  EXPECT_TRUE(ProtoEquals(e, events[0]));
}

// --- Heartbeats ---

NodeMetrics Cpu(double percent) {
  NodeMetrics m;
  m.set_cpu_usage_percent(percent);
  return m;
}

TEST_P(StoreConformanceTest, HeartbeatsNeverGoBackwardsAndCarryMetrics) {
  ASSERT_TRUE(store().CommitSync(NodesBatch({Node("n1", 1)})).ok());
  Reader read(store());
  auto heartbeat = [&](absl::Time t, std::optional<NodeMetrics> m) {
    ASSERT_TRUE(store().UpdateHeartbeats({{"n1", t, m}}).ok());
  };
  auto check = [&](absl::Time want_time, double want_cpu) {
    auto n = read.Node("n1");
    ASSERT_TRUE(n.has_value());
    EXPECT_EQ(FromTimestamp(n->node().last_heartbeat()), want_time);
    EXPECT_EQ(n->node().last_metrics().cpu_usage_percent(), want_cpu);
    EXPECT_EQ(n->version(), 1);
  };
  heartbeat(T(100), Cpu(10));
  check(T(100), 10);
  heartbeat(T(50), Cpu(99));  // a late flush: neither time nor metrics go back
  check(T(100), 10);
  heartbeat(T(200), std::nullopt);  // time only
  check(T(200), 10);
  heartbeat(T(200), Cpu(20));  // same instant: newest metrics win
  check(T(200), 20);
  heartbeat(T(201) + absl::Nanoseconds(5), Cpu(30));
  check(T(201) + absl::Nanoseconds(5), 30);

  StoreSnapshot snap = read.Load();
  ASSERT_THAT(snap.nodes, SizeIs(1));
  EXPECT_EQ(FromTimestamp(snap.nodes[0].node().last_heartbeat()),
            T(201) + absl::Nanoseconds(5));
  EXPECT_EQ(snap.nodes[0].node().last_metrics().cpu_usage_percent(), 30);
}

TEST_P(StoreConformanceTest,
       UpdateHeartbeatsSkipsUnknownNodesAndKeepsVersions) {
  ASSERT_TRUE(
      store().CommitSync(NodesBatch({Node("n1", 1), Node("n2", 1)})).ok());
  ASSERT_TRUE(store()
                  .UpdateHeartbeats({{"ghost", T(10), Cpu(1)},
                                     {"n1", T(10), Cpu(2)},
                                     {"n2", T(11), std::nullopt}})
                  .ok());
  EXPECT_TRUE(store().UpdateHeartbeats({}).ok());
  Reader read(store());
  StoreSnapshot snap = read.Load();
  EXPECT_THAT(NodeIds(snap), ElementsAre("n1", "n2"));
  EXPECT_EQ(read.Node("ghost"), std::nullopt);
  EXPECT_EQ(FromTimestamp(read.Node("n1")->node().last_heartbeat()), T(10));
  EXPECT_EQ(FromTimestamp(read.Node("n2")->node().last_heartbeat()), T(11));
  EXPECT_FALSE(read.Node("n2")->node().has_last_metrics());
  // The heartbeat did not bump the version: the writer's next version is 2.
  EXPECT_EQ(read.Node("n1")->version(), 1);
  ASSERT_TRUE(store().CommitSync(NodesBatch({Node("n1", 2)})).ok());
}

TEST_P(StoreConformanceTest, CommitNeverLowersAHeartbeat) {
  ASSERT_TRUE(store().CommitSync(NodesBatch({Node("n1", 1)})).ok());
  ASSERT_TRUE(store().UpdateHeartbeats({{"n1", T(100), Cpu(5)}}).ok());

  // A writer whose copy of the record predates the heartbeat flush.
  NodeRecord stale = Node("n1", 2);
  *stale.mutable_node()->mutable_last_heartbeat() = ToTimestamp(T(50));
  stale.mutable_node()->set_status(NODE_STATUS_CORDONED);
  ASSERT_TRUE(store().CommitSync(NodesBatch({stale})).ok());
  Reader read(store());
  auto n = read.Node("n1");
  ASSERT_TRUE(n.has_value());
  EXPECT_EQ(n->version(), 2);
  EXPECT_EQ(n->node().status(), NODE_STATUS_CORDONED);
  EXPECT_EQ(FromTimestamp(n->node().last_heartbeat()), T(100));

  NodeRecord newer = Node("n1", 3);
  *newer.mutable_node()->mutable_last_heartbeat() = ToTimestamp(T(300));
  *newer.mutable_node()->mutable_last_metrics() = Cpu(7);
  ASSERT_TRUE(store().CommitSync(NodesBatch({newer})).ok());
  n = read.Node("n1");
  EXPECT_TRUE(ProtoEquals(newer, *n));
  // Older heartbeats still cannot lower what the commit wrote.
  ASSERT_TRUE(store().UpdateHeartbeats({{"n1", T(200), Cpu(99)}}).ok());
  EXPECT_TRUE(ProtoEquals(newer, *read.Node("n1")));
}

// Load and GetNode return each record with its latest liveness merged in:
// the flushed heartbeat where it is newer than the record's, the flushed
// metrics unless the flush was older; every other field as committed.
TEST_P(StoreConformanceTest, LoadAndGetNodeMergeHeartbeatsIntoRecords) {
  auto with_liveness = [](NodeRecord r, absl::Time at, double cpu) {
    *r.mutable_node()->mutable_last_heartbeat() = ToTimestamp(at);
    *r.mutable_node()->mutable_last_metrics() = Cpu(cpu);
    return r;
  };
  NodeRecord fresh = with_liveness(Node("fresh", 1, "pool-gpu"), T(5), 1);
  fresh.mutable_node()->set_status(NODE_STATUS_CORDONED);
  fresh.mutable_node()->add_gpus()->set_uuid("GPU-1");
  NodeRecord late = with_liveness(Node("late", 1), T(5), 2);
  NodeRecord bare = Node("bare", 1);  // no heartbeat, no metrics yet
  ASSERT_TRUE(store().CommitSync(NodesBatch({fresh, late, bare})).ok());
  ASSERT_TRUE(store()
                  .UpdateHeartbeats({{"fresh", T(10), Cpu(11)},
                                     {"late", T(3), Cpu(99)},  // older: ignored
                                     {"bare", T(7), std::nullopt}})
                  .ok());

  NodeRecord want_fresh = with_liveness(fresh, T(10), 11);
  NodeRecord want_bare = bare;
  *want_bare.mutable_node()->mutable_last_heartbeat() = ToTimestamp(T(7));
  auto check = [&] {
    Reader read(store());
    StoreSnapshot snap = read.Load();
    ASSERT_THAT(NodeIds(snap), ElementsAre("bare", "fresh", "late"));
    EXPECT_TRUE(ProtoEquals(want_bare, snap.nodes[0]));
    EXPECT_TRUE(ProtoEquals(want_fresh, snap.nodes[1]));
    EXPECT_TRUE(ProtoEquals(late, snap.nodes[2]));
    for (const NodeRecord& n : snap.nodes) {
      auto one = read.Node(n.node().node_id());
      ASSERT_TRUE(one.has_value());
      EXPECT_TRUE(ProtoEquals(n, *one));
    }
  };
  check();
  if (harness_->durable()) {
    Reopen();
    check();
  }

  // A commit from a copy older than the flush keeps the flushed time, and
  // its record's metrics are the latest now.
  NodeRecord stale = with_liveness(want_fresh, T(8), 50);
  stale.set_version(2);
  ASSERT_TRUE(store().CommitSync(NodesBatch({stale})).ok());
  NodeRecord want = with_liveness(stale, T(10), 50);
  Reader read(store());
  EXPECT_TRUE(ProtoEquals(want, *read.Node("fresh")));
  StoreSnapshot snap = read.Load();
  ASSERT_THAT(snap.nodes, SizeIs(3));
  EXPECT_TRUE(ProtoEquals(want, snap.nodes[1]));
}

// --- Node extras (WriteBatch::node_extras) ---

// NodeInfo wire format holding `gpus` GPUs, the host metadata and (if given)
// last metrics: what the fleet core hands over beside a record that has none
// of them.
NodeInfo ColdParts(int gpus, const std::string& hostname,
                   std::optional<NodeMetrics> metrics) {
  NodeInfo n;
  for (int i = 0; i < gpus; ++i) {
    GPUInfo* g = n.add_gpus();
    g->set_index(i);
    g->set_uuid(absl::StrCat("GPU-", hostname, "-", i));
    g->set_name("NVIDIA H100 80GB HBM3");
    g->set_memory_total(int64_t{80} << 30);
  }
  n.mutable_metadata()->set_hostname(hostname);
  (*n.mutable_metadata()->mutable_labels())["team"] = "ml";
  if (metrics) *n.mutable_last_metrics() = *metrics;
  return n;
}

NodeMetrics GpuMetrics(double cpu, int gpus) {
  NodeMetrics m = Cpu(cpu);
  for (int i = 0; i < gpus; ++i) {
    GPUMetrics* g = m.add_gpu_metrics();
    g->set_gpu_index(i);
    g->set_utilization_percent(90 + i);
  }
  return m;
}

// `record` with `extras` merged into its node: what the store must return.
NodeRecord Merged(NodeRecord record, const NodeInfo& extras) {
  record.mutable_node()->MergeFrom(extras);
  return record;
}

WriteBatch NodesWithExtras(std::vector<std::pair<NodeRecord, NodeInfo>> nodes) {
  WriteBatch b;
  for (auto& [record, extras] : nodes) {
    b.nodes.push_back(std::move(record));
    b.node_extras.push_back(extras.SerializeAsString());
  }
  return b;
}

TEST_P(StoreConformanceTest, NodeExtrasCompleteTheRecord) {
  // The hot part in the record, the GPUs, metadata and metrics beside it.
  NodeRecord hot = Node("n1", 1, "pool-gpu");
  *hot.mutable_node()->mutable_last_heartbeat() = ToTimestamp(T(5));
  hot.mutable_node()->set_status_reason("registered");
  hot.set_consecutive_unhealthy(2);
  NodeInfo cold = ColdParts(8, "host-1", GpuMetrics(40, 8));
  NodeRecord bare = Node("bare", 1);  // complete: no extras of its own
  WriteBatch b = NodesWithExtras({{hot, cold}, {bare, NodeInfo()}});
  b.events.push_back(MakeEvent("node.registered", "n1", "pool-gpu", T(5)));
  ASSERT_TRUE(store().CommitSync(std::move(b)).ok());

  NodeRecord want = Merged(hot, cold);
  auto check = [&] {
    Reader read(store());
    auto n1 = read.Node("n1");
    ASSERT_TRUE(n1.has_value());
    EXPECT_TRUE(ProtoEquals(want, *n1));
    EXPECT_TRUE(ProtoEquals(bare, *read.Node("bare")));
    StoreSnapshot snap = read.Load();
    ASSERT_THAT(NodeIds(snap), ElementsAre("bare", "n1"));
    EXPECT_TRUE(ProtoEquals(bare, snap.nodes[0]));
    EXPECT_TRUE(ProtoEquals(want, snap.nodes[1]));
    EXPECT_EQ(snap.last_event_id, 1);
  };
  check();
  if (harness_->durable()) {
    Reopen();
    check();
  }
  // The version check sees the record as usual.
  EXPECT_EQ(store().CommitSync(NodesWithExtras({{Node("n1", 1), cold}})).code(),
            absl::StatusCode::kAborted);
}

TEST_P(StoreConformanceTest, NodeExtrasAreReplacedByTheNextCommit) {
  NodeRecord v1 = Node("n1", 1);
  ASSERT_TRUE(store()
                  .CommitSync(NodesWithExtras(
                      {{v1, ColdParts(8, "host-1", GpuMetrics(40, 8))}}))
                  .ok());
  // Re-registered with half its GPUs, another hostname and no metrics yet:
  // the stored node has exactly that, not the old parts with these added.
  NodeRecord v2 = Node("n1", 2);
  v2.mutable_node()->set_status(NODE_STATUS_CORDONED);
  NodeInfo fewer = ColdParts(4, "host-1b", std::nullopt);
  ASSERT_TRUE(store().CommitSync(NodesWithExtras({{v2, fewer}})).ok());
  Reader read(store());
  NodeRecord want = Merged(v2, fewer);
  EXPECT_TRUE(ProtoEquals(want, *read.Node("n1")));
  EXPECT_EQ(read.Node("n1")->node().gpus_size(), 4);
  EXPECT_FALSE(read.Node("n1")->node().has_last_metrics());
  ASSERT_THAT(read.Load().nodes, SizeIs(1));
  EXPECT_TRUE(ProtoEquals(want, read.Load().nodes[0]));

  // A complete record (no extras) replaces them too.
  NodeRecord v3 = Node("n1", 3);
  v3.mutable_node()->add_gpus()->set_uuid("GPU-only");
  ASSERT_TRUE(store().CommitSync(NodesBatch({v3})).ok());
  EXPECT_TRUE(ProtoEquals(v3, *read.Node("n1")));
  if (harness_->durable()) {
    Reopen();
    EXPECT_TRUE(ProtoEquals(v3, *Reader(store()).Node("n1")));
  }
}

TEST_P(StoreConformanceTest, HeartbeatsAfterACommitWithNodeExtras) {
  NodeRecord hot = Node("n1", 1, "pool-gpu");
  *hot.mutable_node()->mutable_last_heartbeat() = ToTimestamp(T(5));
  NodeInfo cold = ColdParts(8, "host-1", GpuMetrics(40, 8));
  ASSERT_TRUE(store().CommitSync(NodesWithExtras({{hot, cold}})).ok());
  // The GPUs and metadata stay; the metrics are the flush's, whole (not
  // merged with the committed ones: the flushed metrics have no GPUs).
  NodeRecord want = Merged(hot, cold);
  *want.mutable_node()->mutable_last_heartbeat() = ToTimestamp(T(10));
  *want.mutable_node()->mutable_last_metrics() = Cpu(11);
  auto check = [&](const std::string& step) {
    SCOPED_TRACE(step);
    Reader read(store());  // the store of the moment: Reopen replaces it
    EXPECT_TRUE(ProtoEquals(want, *read.Node("n1")));
    StoreSnapshot snap = read.Load();
    ASSERT_THAT(snap.nodes, SizeIs(1));
    EXPECT_TRUE(ProtoEquals(want, snap.nodes[0]));
  };
  ASSERT_TRUE(store().UpdateHeartbeats({{"n1", T(10), Cpu(11)}}).ok());
  check("flush with metrics");
  ASSERT_TRUE(store().UpdateHeartbeats({{"n1", T(7), Cpu(99)}}).ok());
  check("older flush: ignored");
  ASSERT_TRUE(store().UpdateHeartbeats({{"n1", T(12), std::nullopt}}).ok());
  *want.mutable_node()->mutable_last_heartbeat() = ToTimestamp(T(12));
  check("flush without metrics");
  if (harness_->durable()) {
    Reopen();
    check("reopened");
  }

  // A commit from a copy older than the flush: the flushed time stays, and
  // the metrics in its extras are the latest now.
  NodeRecord v2 = hot;
  v2.set_version(2);
  *v2.mutable_node()->mutable_last_heartbeat() = ToTimestamp(T(11));
  NodeInfo cold2 = ColdParts(8, "host-1", GpuMetrics(50, 8));
  ASSERT_TRUE(store().CommitSync(NodesWithExtras({{v2, cold2}})).ok());
  want = Merged(v2, cold2);
  *want.mutable_node()->mutable_last_heartbeat() = ToTimestamp(T(12));
  check("commit after the flush");
  ASSERT_TRUE(store().UpdateHeartbeats({{"n1", T(20), Cpu(21)}}).ok());
  *want.mutable_node()->mutable_last_heartbeat() = ToTimestamp(T(20));
  *want.mutable_node()->mutable_last_metrics() = Cpu(21);
  check("second flush");
}

TEST_P(StoreConformanceTest, BadNodeExtrasAreRejectedWhole) {
  auto rejected = [&](WriteBatch b, absl::string_view message) {
    b.events.push_back(MakeEvent("node.registered", "n1", "", T(1)));
    absl::Status s = store().CommitSync(std::move(b));
    EXPECT_EQ(s.code(), absl::StatusCode::kInvalidArgument) << s;
    EXPECT_THAT(std::string(s.message()), ::testing::HasSubstr(message)) << s;
  };
  NodeInfo cold = ColdParts(2, "host-1", std::nullopt);
  {
    SCOPED_TRACE("fewer extras than records");
    WriteBatch b = NodesWithExtras({{Node("n1", 1), cold}});
    b.nodes.push_back(Node("n2", 1));
    rejected(std::move(b), "1 node extras for 2 node records");
  }
  {
    SCOPED_TRACE("more extras than records");
    WriteBatch b = NodesWithExtras({{Node("n1", 1), cold}});
    b.node_extras.push_back("");
    rejected(std::move(b), "2 node extras for 1 node records");
  }
  {
    SCOPED_TRACE("extras without records");
    WriteBatch b;
    b.node_extras.push_back(cold.SerializeAsString());
    rejected(std::move(b), "1 node extras for 0 node records");
  }
  {
    SCOPED_TRACE("malformed");
    WriteBatch b = NodesWithExtras({{Node("n1", 1), cold}});
    b.node_extras[0].push_back('\xff');
    rejected(std::move(b), "malformed");
  }
  for (auto set : std::vector<std::pair<std::string, void (*)(NodeInfo&)>>{
           {"status", [](NodeInfo& n) { n.set_status(NODE_STATUS_CORDONED); }},
           {"pool", [](NodeInfo& n) { n.set_pool("other"); }},
           {"node_id", [](NodeInfo& n) { n.set_node_id("n1"); }},
           {"health_status",
            [](NodeInfo& n) { n.set_health_status(HEALTH_STATUS_UNHEALTHY); }},
           {"last_heartbeat", [](NodeInfo& n) {
              *n.mutable_last_heartbeat() = ToTimestamp(T(1));
            }}}) {
    SCOPED_TRACE(set.first);
    NodeInfo extras = cold;
    set.second(extras);
    rejected(NodesWithExtras({{Node("n1", 1), extras}}),
             absl::StrCat("node n1: node extras set ", set.first));
  }
  StoreSnapshot snap = Reader(store()).Load();
  EXPECT_THAT(snap.nodes, IsEmpty());
  EXPECT_EQ(snap.last_event_id, 0);
}

// --- Prune ---

TEST_P(StoreConformanceTest, PruneRemovesOldRowsAndNeverReusesEventIds) {
  auto terminated = [](const std::string& id, std::optional<absl::Time> at) {
    InstanceRecord r = Instance(id, 1);
    r.mutable_instance()->set_state(INSTANCE_STATE_TERMINATED);
    if (at) *r.mutable_instance()->mutable_terminated_at() = ToTimestamp(*at);
    return r;
  };
  WriteBatch b;
  b.nodes.push_back(Node("n1", 1));
  b.instances = {terminated("gone", T(5)), terminated("recent", T(50)),
                 terminated("no-time", std::nullopt), Instance("running", 1)};
  b.commands = {
      Command("done-old", "n1", 1, internal::COMMAND_STATE_SUCCEEDED, T(5)),
      Command("cancelled-old", "n1", 1, internal::COMMAND_STATE_CANCELLED,
              T(6)),
      Command("failed-new", "n1", 1, internal::COMMAND_STATE_FAILED, T(50)),
      Command("pending-old", "n1", 1, internal::COMMAND_STATE_PENDING, T(5)),
      Command("delivered-old", "n1", 1, internal::COMMAND_STATE_DELIVERED,
              T(5))};
  b.events = {MakeEvent("a", "", "", T(10)), MakeEvent("b", "", "", T(20)),
              MakeEvent("c", "", "", T(30))};
  ASSERT_TRUE(store().CommitSync(b).ok());

  auto pruned = store().Prune(T(25));
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  EXPECT_EQ(*pruned, 2 + 1 + 2);
  Reader read(store());
  StoreSnapshot snap = read.Load();
  std::vector<std::string> instances;
  for (const auto& i : snap.instances)
    instances.push_back(i.instance().instance_id());
  EXPECT_THAT(instances, ElementsAre("no-time", "recent", "running"));
  EXPECT_THAT(CommandIds(snap.open_commands),
              ElementsAre("delivered-old", "pending-old"));
  EXPECT_EQ(read.Command("done-old"), std::nullopt);
  EXPECT_EQ(read.Command("cancelled-old"), std::nullopt);
  EXPECT_TRUE(read.Command("failed-new").has_value());
  EXPECT_THAT(read.EventIds({}), ElementsAre(3));
  EXPECT_THAT(NodeIds(snap), ElementsAre("n1"));  // nodes are never pruned
  EXPECT_EQ(snap.last_event_id, 3);

  // Pruning everything keeps the id sequence: cursors held by clients stay
  // valid.
  auto all = store().Prune(T(1000));
  ASSERT_TRUE(all.ok());
  EXPECT_EQ(*all, 1 + 1 + 1);  // event c, instance recent, command failed-new
  EXPECT_THAT(read.EventIds({}), IsEmpty());
  EXPECT_EQ(read.Load().last_event_id, 3);
  ASSERT_TRUE(
      store().CommitSync(EventsBatch({MakeEvent("d", "", "", T(2000))})).ok());
  EXPECT_THAT(read.EventIds({}), ElementsAre(4));

  auto none = store().Prune(T(0));
  ASSERT_TRUE(none.ok());
  EXPECT_EQ(*none, 0);
}

TEST_P(StoreConformanceTest, PruneHasACutoffPerKindAndTakesFailedInstances) {
  auto ended = [](const std::string& id, InstanceState state, absl::Time at) {
    InstanceRecord r = Instance(id, 1);
    r.mutable_instance()->set_state(state);
    *r.mutable_instance()->mutable_terminated_at() = ToTimestamp(at);
    return r;
  };
  WriteBatch b;
  b.nodes.push_back(Node("n1", 1));
  b.instances = {ended("terminated", INSTANCE_STATE_TERMINATED, T(10)),
                 ended("failed", INSTANCE_STATE_FAILED, T(10)),
                 ended("failed-new", INSTANCE_STATE_FAILED, T(100))};
  b.commands = {
      Command("done", "n1", 1, internal::COMMAND_STATE_SUCCEEDED, T(10))};
  b.events = {MakeEvent("a", "", "", T(10))};
  ASSERT_TRUE(store().CommitSync(b).ok());

  // Instances kept a day, history a week: only the instances go.
  PruneRequest r;
  r.instances_before = T(50);
  r.events_before = T(5);
  r.commands_before = T(5);
  auto pruned = store().Prune(r);
  ASSERT_TRUE(pruned.ok()) << pruned.status();
  EXPECT_EQ(*pruned, 2);
  Reader read(store());
  StoreSnapshot snap = read.Load();
  ASSERT_EQ(snap.instances.size(), 1u);
  EXPECT_EQ(snap.instances[0].instance().instance_id(), "failed-new");
  EXPECT_THAT(read.EventIds({}), ElementsAre(1));
  EXPECT_TRUE(read.Command("done").has_value());
}

// --- Validation ---

TEST_P(StoreConformanceTest, InvalidBatchesAreRejectedWhole) {
  std::vector<std::pair<std::string, WriteBatch>> cases;
  auto with_valid_parts = [](WriteBatch b) {
    b.nodes.insert(b.nodes.begin(), Node("valid", 1));
    if (!b.node_extras.empty()) b.node_extras.insert(b.node_extras.begin(), "");
    b.events.insert(b.events.begin(),
                    MakeEvent("node.registered", "valid", "", T(1)));
    return b;
  };
  {
    WriteBatch b;
    b.nodes.push_back(Node("", 1));
    cases.emplace_back("node without id", with_valid_parts(b));
  }
  {
    WriteBatch b;
    b.nodes.push_back(Node("n1", 0));
    cases.emplace_back("node version 0", with_valid_parts(b));
  }
  {
    WriteBatch b;
    b.instances.push_back(Instance("", 1));
    cases.emplace_back("instance without id", with_valid_parts(b));
  }
  {
    WriteBatch b;
    b.instances.push_back(Instance("i1", -1));
    cases.emplace_back("instance negative version", with_valid_parts(b));
  }
  {
    WriteBatch b;
    b.commands.push_back(
        Command("", "n1", 1, internal::COMMAND_STATE_PENDING, T(1)));
    cases.emplace_back("command without id", with_valid_parts(b));
  }
  {
    WriteBatch b;
    b.commands.push_back(
        Command("c1", "n1", 0, internal::COMMAND_STATE_PENDING, T(1)));
    cases.emplace_back("command version 0", with_valid_parts(b));
  }
  {
    WriteBatch b;
    b.events.push_back(MakeEvent("", "n1", "", T(1)));
    cases.emplace_back("event without kind", with_valid_parts(b));
  }
  {
    WriteBatch b;
    b.nodes.push_back(Node("n1", 1));
    b.node_extras = {"", ""};
    cases.emplace_back("node extras count", with_valid_parts(b));
  }
  {
    WriteBatch b;
    b.nodes.push_back(Node("n1", 1));
    NodeInfo status;
    status.set_status(NODE_STATUS_CORDONED);
    b.node_extras = {status.SerializeAsString()};
    cases.emplace_back("node extras with a status", with_valid_parts(b));
  }
  for (auto& [name, batch] : cases) {
    SCOPED_TRACE(name);
    bool called = false;
    absl::Status status;
    store().Commit(std::move(batch), [&](absl::Status s) {
      called = true;
      status = s;
    });
    ASSERT_TRUE(store().CommitSync({}).ok());  // the outcome is in by now
    EXPECT_TRUE(called);
    EXPECT_EQ(status.code(), absl::StatusCode::kInvalidArgument) << status;
  }
  StoreSnapshot snap = Reader(store()).Load();
  EXPECT_THAT(snap.nodes, IsEmpty());
  EXPECT_THAT(snap.instances, IsEmpty());
  EXPECT_THAT(snap.open_commands, IsEmpty());
  EXPECT_EQ(snap.last_event_id, 0);
}

TEST_P(StoreConformanceTest, EmptyBatchCommits) {
  EXPECT_TRUE(store().CommitSync({}).ok());
  EXPECT_EQ(Reader(store()).Load().last_event_id, 0);
}

// --- Ping and Close ---

TEST_P(StoreConformanceTest, PingAndName) {
  EXPECT_TRUE(store().Ping().ok());
  EXPECT_FALSE(store().Name().empty());
}

TEST_P(StoreConformanceTest, CloseRejectsLaterWrites) {
  ASSERT_TRUE(store().CommitSync(NodesBatch({Node("n1", 1)})).ok());
  store().Close();
  store().Close();  // idempotent
  bool called = false;
  absl::Status status;
  store().Commit(NodesBatch({Node("n2", 1)}), [&](absl::Status s) {
    called = true;
    status = s;
  });
  EXPECT_TRUE(called);
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_EQ(store().UpdateHeartbeats({{"n1", T(1), std::nullopt}}).code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(store().Prune(T(1)).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(store().Ping().code(), absl::StatusCode::kUnavailable);
}

TEST_P(StoreConformanceTest, CloseWaitsForSubmittedCommits) {
  constexpr int kBatches = 200;
  std::atomic<int> ok{0};
  std::atomic<int> calls{0};
  for (int i = 0; i < kBatches; ++i) {
    WriteBatch b = NodesBatch({Node(absl::StrCat("n", i), 1)});
    b.events.push_back(
        MakeEvent("node.registered", absl::StrCat("n", i), "", T(i)));
    store().Commit(std::move(b), [&](absl::Status s) {
      if (s.ok()) ok++;
      calls++;
    });
  }
  store().Close();
  EXPECT_EQ(calls.load(), kBatches);
  EXPECT_EQ(ok.load(), kBatches);
  if (!harness_->durable()) return;
  Reopen();
  StoreSnapshot snap = Reader(store()).Load();
  EXPECT_THAT(snap.nodes, SizeIs(kBatches));
  EXPECT_EQ(snap.last_event_id, kBatches);
}

// --- Concurrency ---

TEST_P(StoreConformanceTest, ConcurrentCommitsAllSucceedWithDenseEventIds) {
  constexpr int kThreads = 8;
  constexpr int kBatchesPerThread = 40;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kBatchesPerThread; ++i) {
        std::string node = absl::StrCat("t", t, "-", i);
        WriteBatch b = NodesBatch({Node(node, 1)});
        for (int k = 0; k < 2; ++k) {
          Event e =
              MakeEvent("node.registered", node, absl::StrCat("t", t), T(i));
          (*e.mutable_details())["seq"] = absl::StrCat(2 * i + k);
          b.events.push_back(e);
        }
        absl::Status s = store().CommitSync(std::move(b));
        if (!s.ok()) {
          ADD_FAILURE() << s;
          failures++;
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  ASSERT_EQ(failures.load(), 0);

  Reader read(store());
  std::vector<Event> events = read.AllEvents();
  constexpr int kEvents = kThreads * kBatchesPerThread * 2;
  ASSERT_THAT(events, SizeIs(kEvents));
  std::map<std::string, int>
      next_seq;  // per thread: commits stay in thread order
  for (int i = 0; i < kEvents; ++i) {
    EXPECT_EQ(events[i].id(), i + 1);
    int seq = std::stoi(events[i].details().at("seq"));
    EXPECT_EQ(seq, next_seq[events[i].pool()]++) << "event " << events[i].id();
  }
  StoreSnapshot snap = read.Load();
  EXPECT_THAT(snap.nodes, SizeIs(kThreads * kBatchesPerThread));
  EXPECT_EQ(snap.last_event_id, kEvents);
}

// Several writers (control planes, in HA) racing on one record: one wins.
TEST_P(StoreConformanceTest, RacingWritersOfOneRecordOneWins) {
  ASSERT_TRUE(store().CommitSync(NodesBatch({Node("n1", 1)})).ok());
  constexpr int kWriters = 8;
  std::vector<absl::Status> results(kWriters);
  std::vector<std::thread> threads;
  for (int w = 0; w < kWriters; ++w) {
    threads.emplace_back([&, w] {
      NodeRecord r = Node("n1", 2);
      r.mutable_node()->set_status_reason(absl::StrCat("writer ", w));
      results[w] = store().CommitSync(NodesBatch({r}));
    });
  }
  for (auto& th : threads) th.join();
  int winner = -1;
  for (int w = 0; w < kWriters; ++w) {
    if (results[w].ok()) {
      EXPECT_EQ(winner, -1) << "two writers won";
      winner = w;
    } else {
      EXPECT_EQ(results[w].code(), absl::StatusCode::kAborted) << results[w];
    }
  }
  ASSERT_NE(winner, -1);
  auto n = Reader(store()).Node("n1");
  EXPECT_EQ(n->version(), 2);
  EXPECT_EQ(n->node().status_reason(), absl::StrCat("writer ", winner));
}

TEST_P(StoreConformanceTest, ConcurrentReadsAndWrites) {
  std::atomic<bool> stop{false};
  std::atomic<int> read_errors{0};
  std::thread reader([&] {
    int64_t last_seen = 0;
    while (!stop.load()) {
      auto page = store().ListEvents({.after_id = 0, .limit = 1000});
      auto snap = store().Load();
      if (!page.ok() || !snap.ok()) {
        read_errors++;
        continue;
      }
      // Readers never see the log shrink or ids go backwards.
      if (snap->last_event_id < last_seen) read_errors++;
      last_seen = snap->last_event_id;
    }
  });
  for (int i = 0; i < 100; ++i) {
    WriteBatch b = NodesBatch({Node(absl::StrCat("n", i), 1)});
    b.events.push_back(
        MakeEvent("node.registered", absl::StrCat("n", i), "", T(i)));
    ASSERT_TRUE(store().CommitSync(std::move(b)).ok());
    ASSERT_TRUE(
        store().UpdateHeartbeats({{absl::StrCat("n", i), T(i), Cpu(i)}}).ok());
  }
  stop = true;
  reader.join();
  EXPECT_EQ(read_errors.load(), 0);
}

// --- Durable backends ---

TEST_P(StoreConformanceTest, ReopenReturnsEverything) {
  if (!harness_->durable()) GTEST_SKIP() << "not a durable backend";
  WriteBatch b;
  b.nodes = {RichNode(), Node("plain", 1)};
  b.instances = {Instance("i1", 1)};
  b.commands = {
      Command("open", "plain", 1, internal::COMMAND_STATE_PENDING, T(3)),
      Command("done", "plain", 1, internal::COMMAND_STATE_SUCCEEDED, T(2))};
  b.events = {MakeEvent("node.registered", "rich", "pool-gpu", T(1)),
              MakeEvent("node.registered", "plain", "pool-a", T(2))};
  ASSERT_TRUE(store().CommitSync(b).ok());
  ASSERT_TRUE(store().UpdateHeartbeats({{"plain", T(77), Cpu(3)}}).ok());
  Reader before(store());
  StoreSnapshot want = before.Load();
  std::vector<Event> want_events = before.AllEvents();

  Reopen();
  Reader after(store());
  StoreSnapshot got = after.Load();
  ASSERT_EQ(got.nodes.size(), want.nodes.size());
  for (size_t i = 0; i < want.nodes.size(); ++i) {
    EXPECT_TRUE(ProtoEquals(want.nodes[i], got.nodes[i]));
  }
  ASSERT_EQ(got.instances.size(), 1u);
  EXPECT_TRUE(ProtoEquals(want.instances[0], got.instances[0]));
  ASSERT_EQ(got.open_commands.size(), 1u);
  EXPECT_TRUE(ProtoEquals(want.open_commands[0], got.open_commands[0]));
  EXPECT_EQ(got.last_event_id, 2);
  std::vector<Event> got_events = after.AllEvents();
  ASSERT_EQ(got_events.size(), want_events.size());
  for (size_t i = 0; i < want_events.size(); ++i) {
    EXPECT_TRUE(ProtoEquals(want_events[i], got_events[i]));
  }
  EXPECT_EQ(FromTimestamp(after.Node("plain")->node().last_heartbeat()), T(77));
  EXPECT_TRUE(after.Command("done").has_value());

  // Versions and ids carry on where they were.
  EXPECT_EQ(store().CommitSync(NodesBatch({Node("plain", 1)})).code(),
            absl::StatusCode::kAborted);
  WriteBatch next = NodesBatch({Node("plain", 2)});
  next.events.push_back(MakeEvent("node.updated", "plain", "", T(9)));
  ASSERT_TRUE(store().CommitSync(next).ok());
  EXPECT_THAT(after.EventIds({.node_id = "plain"}), ElementsAre(2, 3));
}

TEST_P(StoreConformanceTest, ReopenAfterPruningEverythingKeepsEventIds) {
  if (!harness_->durable()) GTEST_SKIP() << "not a durable backend";
  ASSERT_TRUE(store()
                  .CommitSync(EventsBatch({MakeEvent("a", "", "", T(1)),
                                           MakeEvent("b", "", "", T(2))}))
                  .ok());
  ASSERT_TRUE(store().Prune(T(100)).ok());
  Reopen();
  EXPECT_EQ(Reader(store()).Load().last_event_id, 2);
  ASSERT_TRUE(
      store().CommitSync(EventsBatch({MakeEvent("c", "", "", T(3))})).ok());
  EXPECT_THAT(Reader(store()).EventIds({}), ElementsAre(3));
}

}  // namespace
}  // namespace navarch
