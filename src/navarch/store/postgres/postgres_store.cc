#include "navarch/store/postgres/postgres_store.h"

#include <algorithm>
#include <map>
#include <utility>
#include <variant>

#include "absl/strings/str_cat.h"
#include "navarch/api/time_util.h"
#include "navarch/base/status.h"
#include "navarch/store/event_sql.h"
#include "navarch/store/record_util.h"

namespace navarch {

using pg::Params;
using pg::Result;

namespace {

// Statement names. A new record (version 1) is an INSERT that does nothing
// when the id exists; an update is an UPDATE that matches only the stored
// version next - 1. Either way, no row back means the version check failed.
// A node's liveness row is written in the same statement (a data-modifying
// WITH), so a node costs one round trip.
constexpr char kNodeInsert[] = "node_insert";
constexpr char kNodeUpdate[] = "node_update";
constexpr char kNodeVersion[] = "node_version";
constexpr char kInstanceInsert[] = "instance_insert";
constexpr char kInstanceUpdate[] = "instance_update";
constexpr char kInstanceVersion[] = "instance_version";
constexpr char kCommandInsert[] = "command_insert";
constexpr char kCommandUpdate[] = "command_update";
constexpr char kCommandVersion[] = "command_version";
constexpr char kEventIds[] = "event_ids";
constexpr char kEventInsert[] = "event_insert";
constexpr char kHeartbeats[] = "heartbeats";
constexpr char kPruneEvents[] = "prune_events";
constexpr char kPruneInstances[] = "prune_instances";
constexpr char kPruneCommands[] = "prune_commands";
constexpr char kFence[] = "fence";

// Parameters of the node statements: $1 id, $2 version, $3 pool, $4 status,
// $5 health, $6 record, $7 the record's last heartbeat.
constexpr char kNodeLiveness[] =
    "INSERT INTO node_liveness (node_id, last_heartbeat_ns, metrics) "
    "SELECT node_id, $7::int8, NULL FROM n "
    "ON CONFLICT (node_id) DO UPDATE SET "
    // Heartbeat flushes may have moved past the writer's copy.
    "last_heartbeat_ns = greatest(node_liveness.last_heartbeat_ns, "
    "excluded.last_heartbeat_ns), "
    // The record is written whole: its metrics are now the latest.
    "metrics = NULL RETURNING 1";

std::vector<pg::Statement> WriterStatements() {
  return {
      {kNodeInsert,
       absl::StrCat(
           "WITH n AS (INSERT INTO nodes (node_id, version, pool, status, "
           "health_status, record) VALUES ($1::text, $2::int8, $3::text, "
           "$4::int8, $5::int8, $6::bytea) ON CONFLICT (node_id) DO NOTHING "
           "RETURNING node_id) ",
           kNodeLiveness)},
      {kNodeUpdate,
       absl::StrCat("WITH n AS (UPDATE nodes SET version = $2::int8, pool = "
                    "$3::text, status = $4::int8, health_status = $5::int8, "
                    "record = $6::bytea WHERE node_id = $1::text AND version "
                    "= $2::int8 - 1 RETURNING node_id) ",
                    kNodeLiveness)},
      {kNodeVersion, "SELECT version FROM nodes WHERE node_id = $1::text"},
      // $1 id, $2 version, $3 state, $4 pool, $5 node, $6 terminated_at,
      // $7 record.
      {kInstanceInsert,
       "INSERT INTO instances (instance_id, version, state, pool, node_id, "
       "terminated_at_ns, record) VALUES ($1::text, $2::int8, $3::int8, "
       "$4::text, $5::text, $6::int8, $7::bytea) ON CONFLICT (instance_id) "
       "DO NOTHING"},
      {kInstanceUpdate,
       "UPDATE instances SET version = $2::int8, state = $3::int8, pool = "
       "$4::text, node_id = $5::text, terminated_at_ns = $6::int8, record = "
       "$7::bytea WHERE instance_id = $1::text AND version = $2::int8 - 1"},
      {kInstanceVersion,
       "SELECT version FROM instances WHERE instance_id = $1::text"},
      // $1 id, $2 node, $3 state, $4 issued_at, $5 updated_at, $6 version,
      // $7 record.
      {kCommandInsert,
       "INSERT INTO commands (command_id, node_id, state, issued_at_ns, "
       "updated_at_ns, version, record) VALUES ($1::text, $2::text, "
       "$3::int8, $4::int8, $5::int8, $6::int8, $7::bytea) ON CONFLICT "
       "(command_id) DO NOTHING"},
      {kCommandUpdate,
       "UPDATE commands SET node_id = $2::text, state = $3::int8, "
       "issued_at_ns = $4::int8, updated_at_ns = $5::int8, version = "
       "$6::int8, record = $7::bytea WHERE command_id = $1::text AND "
       "version = $6::int8 - 1"},
      {kCommandVersion,
       "SELECT version FROM commands WHERE command_id = $1::text"},
      // Locks the counter row until this transaction ends: ids in commit
      // order across replicas (pg_schema.cc).
      {kEventIds,
       "UPDATE event_counter SET last_id = last_id + $1::int8 RETURNING "
       "last_id"},
      {kEventInsert,
       "INSERT INTO events (id, time_ns, kind, node_id, pool, record) "
       "SELECT * FROM unnest($1::int8[], $2::int8[], $3::text[], "
       "$4::text[], $5::text[], $6::bytea[])"},
      // Unknown nodes have no liveness row and are skipped, as the contract
      // says. SET expressions see the old row: metrics only from a
      // heartbeat not older than the stored one.
      {kHeartbeats,
       "UPDATE node_liveness AS l SET metrics = CASE WHEN u.m IS NOT NULL "
       "AND u.hb >= l.last_heartbeat_ns THEN u.m ELSE l.metrics END, "
       "last_heartbeat_ns = greatest(l.last_heartbeat_ns, u.hb) "
       "FROM unnest($1::text[], $2::int8[], $3::bytea[]) AS u(node_id, hb, "
       "m) WHERE l.node_id = u.node_id"},
      // FOR SHARE: a takeover's UPDATE of the row waits for this
      // transaction, and this one waits for a takeover in flight.
      {kFence,
       "SELECT 1 FROM leader_lease WHERE holder = $1::text AND epoch = "
       "$2::int8 FOR SHARE"},
      {kPruneEvents, "DELETE FROM events WHERE time_ns < $1::int8"},
      {kPruneInstances,
       "DELETE FROM instances WHERE state IN ($1::int8, $4::int8) AND "
       "terminated_at_ns <> $2::int8 AND terminated_at_ns < $3::int8"},
      {kPruneCommands,
       "DELETE FROM commands WHERE state NOT IN ($1::int8, $2::int8) AND "
       "updated_at_ns < $3::int8"},
  };
}

constexpr char kNodeSelect[] =
    "SELECT n.record, l.last_heartbeat_ns, l.metrics FROM nodes AS n "
    "LEFT JOIN node_liveness AS l ON l.node_id = n.node_id";
constexpr char kNodes[] = "nodes";
constexpr char kNode[] = "node";
constexpr char kInstances[] = "instances";
constexpr char kOpenCommands[] = "open_commands";
constexpr char kCommand[] = "command";
constexpr char kLastEventId[] = "last_event_id";

std::vector<pg::Statement> ReaderStatements() {
  return {
      {kNodes, absl::StrCat(kNodeSelect, " ORDER BY n.node_id")},
      {kNode, absl::StrCat(kNodeSelect, " WHERE n.node_id = $1::text")},
      {kInstances, "SELECT record FROM instances ORDER BY instance_id"},
      {kOpenCommands,
       absl::StrCat("SELECT record FROM commands WHERE state IN (",
                    internal::COMMAND_STATE_PENDING, ", ",
                    internal::COMMAND_STATE_DELIVERED,
                    ") ORDER BY issued_at_ns, command_id")},
      {kCommand, "SELECT record FROM commands WHERE command_id = $1::text"},
      {kLastEventId, "SELECT last_id FROM event_counter"},
  };
}

int64_t Nanos(const google::protobuf::Timestamp& ts) {
  return TimeToNanos(FromTimestamp(ts));
}

template <typename Message>
std::string Serialize(const Message& m) {
  std::string out;
  m.SerializeToString(&out);
  return out;
}

template <typename Message>
absl::StatusOr<Message> Parse(absl::string_view blob, absl::string_view what) {
  Message m;
  if (!m.ParseFromArray(blob.data(), static_cast<int>(blob.size()))) {
    return absl::InternalError(
        absl::StrCat("postgres: corrupt ", what, " record"));
  }
  return m;
}

// A node row (kNodeSelect): the record, with its liveness merged in.
absl::StatusOr<NodeRecord> ReadNode(const Result& r, int row) {
  NAVARCH_ASSIGN_OR_RETURN(NodeRecord node,
                           Parse<NodeRecord>(r.Bytes(row, 0), "node"));
  if (r.IsNull(row, 1)) return node;  // no liveness row: the record alone
  std::optional<absl::string_view> metrics;
  if (!r.IsNull(row, 2)) metrics = r.Bytes(row, 2);
  NAVARCH_RETURN_IF_ERROR(Annotate(
      MergeLiveness(NanosToTime(r.Int(row, 1)), metrics, node), "postgres"));
  return node;
}

// `updates` (in node order, from the writer) split into rounds in which each
// node appears at most once (one UPDATE cannot change a row twice): the
// k-th update of a node goes to round k, so the caller's order between two
// updates of one node holds, and each round stays in node order (one lock
// order for every replica).
std::vector<std::vector<const HeartbeatUpdate*>> HeartbeatRounds(
    const std::vector<HeartbeatUpdate>& updates) {
  std::vector<std::vector<const HeartbeatUpdate*>> rounds;
  size_t round = 0;
  for (size_t i = 0; i < updates.size(); ++i) {
    const bool repeat = i > 0 && updates[i - 1].node_id == updates[i].node_id;
    round = repeat ? round + 1 : 0;
    if (rounds.size() <= round) rounds.resize(round + 1);
    rounds[round].push_back(&updates[i]);
  }
  return rounds;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PostgresStore>> PostgresStore::Open(
    const PostgresOptions& options) {
  NAVARCH_RETURN_IF_ERROR(pg::CheckDsn(options.dsn));
  if (options.max_group < 1 || options.max_queue < 1) {
    return absl::InvalidArgumentError(
        "postgres: max_group and max_queue must be >= 1");
  }
  int version = 0;
  {
    pg::Session migrator(options.dsn, {}, options.connect_timeout);
    NAVARCH_RETURN_IF_ERROR(migrator.Ensure());
    NAVARCH_ASSIGN_OR_RETURN(
        version, pg::Migrate(migrator, options.migrations != nullptr
                                           ? *options.migrations
                                           : pg::BuiltinMigrations()));
  }
  auto store =
      std::unique_ptr<PostgresStore>(new PostgresStore(options, version));
  {
    absl::MutexLock lock(&store->read_mu_);
    NAVARCH_RETURN_IF_ERROR(store->read_session_.Ensure());
  }
  // The writer thread has not taken a job yet: connecting here, on this
  // thread, reports a bad server at Open rather than at the first write.
  NAVARCH_RETURN_IF_ERROR(store->write_session_.Ensure());
  store->writer_ = std::make_unique<GroupCommitWriter>(
      GroupCommitWriter::Options{"postgres", options.max_group,
                                 options.max_queue},
      static_cast<WriteTransaction*>(store.get()));
  return store;
}

PostgresStore::PostgresStore(PostgresOptions options, int schema_version)
    : options_(std::move(options)),
      schema_version_(schema_version),
      write_session_(options_.dsn, WriterStatements(),
                     options_.connect_timeout),
      read_session_(options_.dsn, ReaderStatements(),
                    options_.connect_timeout) {}

PostgresStore::~PostgresStore() { Close(); }

// --- Writes ---

void PostgresStore::Commit(WriteBatch batch,
                           std::function<void(absl::Status)> done) {
  writer_->SubmitBatch(std::move(batch), std::move(done));
}

absl::Status PostgresStore::UpdateHeartbeats(
    const std::vector<HeartbeatUpdate>& updates) {
  return writer_->SubmitHeartbeats(updates);
}

absl::StatusOr<int64_t> PostgresStore::Prune(const PruneRequest& request) {
  return writer_->SubmitPrune(request);
}

absl::Status PostgresStore::BeginTransaction() {
  // Reconnects after a lost connection; a transaction is never resumed
  // across one (its jobs failed with UNAVAILABLE).
  NAVARCH_RETURN_IF_ERROR(write_session_.Ensure());
  NAVARCH_RETURN_IF_ERROR(write_session_.Exec("BEGIN"));
  return CheckFence();
}

void PostgresStore::SetFence(const std::string& holder, int64_t epoch) {
  absl::MutexLock lock(&fence_mu_);
  fence_holder_ = holder;
  fence_epoch_ = epoch;
}

absl::Status PostgresStore::CheckFence() {
  std::string holder;
  int64_t epoch = 0;
  {
    absl::MutexLock lock(&fence_mu_);
    holder = fence_holder_;
    epoch = fence_epoch_;
  }
  if (epoch == 0) return absl::OkStatus();
  NAVARCH_ASSIGN_OR_RETURN(
      Result r, write_session_.Run(kFence, Params().Text(holder).Int(epoch)));
  if (r.rows() == 1) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "postgres: fenced: replica ", holder, " no longer leads at epoch ", epoch,
      " (another replica took over); its writes are refused"));
}

absl::Status PostgresStore::CommitTransaction() {
  return write_session_.Exec("COMMIT");
}

void PostgresStore::RollbackTransaction() {
  write_session_.Exec("ROLLBACK").IgnoreError();
}

absl::Status PostgresStore::Savepoint() {
  return write_session_.Exec("SAVEPOINT job");
}

absl::Status PostgresStore::RollbackToSavepoint() {
  return write_session_.Exec("ROLLBACK TO SAVEPOINT job");
}

absl::Status PostgresStore::ReleaseSavepoint() {
  return write_session_.Exec("RELEASE SAVEPOINT job");
}

bool PostgresStore::InTransaction() { return write_session_.InTransaction(); }

absl::Status PostgresStore::ApplyBatch(WriteBatch& batch) {
  static const std::string kNoExtras;
  for (size_t i = 0; i < batch.nodes.size(); ++i) {
    NAVARCH_RETURN_IF_ERROR(WriteNode(
        batch.nodes[i],
        batch.node_extras.empty() ? kNoExtras : batch.node_extras[i]));
  }
  for (const InstanceRecord& r : batch.instances)
    NAVARCH_RETURN_IF_ERROR(WriteInstance(r));
  for (const CommandRecord& r : batch.commands)
    NAVARCH_RETURN_IF_ERROR(WriteCommand(r));
  return WriteEvents(batch.events);
}

absl::Status PostgresStore::Conflict(absl::string_view what,
                                     const char* statement,
                                     const std::string& id, int64_t next) {
  NAVARCH_ASSIGN_OR_RETURN(Result r,
                           write_session_.Run(statement, Params().Text(id)));
  int64_t current = r.rows() == 0 ? 0 : r.Int(0, 0);
  absl::Status s = CheckVersion(what, id, current, next);
  // The write changed nothing, so the check must fail; if it passes, the
  // row changed between the two statements (another replica): a conflict
  // all the same.
  if (s.ok()) {
    return absl::AbortedError(absl::StrCat(what, " ", id, ": version ", next,
                                           " was written concurrently"));
  }
  return s;
}

absl::Status PostgresStore::WriteNode(const NodeRecord& r,
                                      const std::string& extras) {
  const NodeInfo& n = r.node();
  std::string blob = Serialize(r);
  // The extras go in as they are, a second `node` field that the parse on
  // read merges into the first (record_util.h AppendNodeExtras).
  AppendNodeExtras(extras, blob);
  Params p;
  p.Text(n.node_id())
      .Int(r.version())
      .Text(n.pool())
      .Int(n.status())
      .Int(n.health_status())
      .Bytes(blob)
      .Int(Nanos(n.last_heartbeat()));
  NAVARCH_ASSIGN_OR_RETURN(
      Result res,
      write_session_.Run(r.version() == 1 ? kNodeInsert : kNodeUpdate, p));
  if (res.rows() == 1) return absl::OkStatus();
  return Conflict("node", kNodeVersion, n.node_id(), r.version());
}

absl::Status PostgresStore::WriteInstance(const InstanceRecord& r) {
  const InstanceInfo& i = r.instance();
  Params p;
  p.Text(i.instance_id())
      .Int(r.version())
      .Int(i.state())
      .Text(i.pool_name())
      .Text(i.node_id())
      .Int(Nanos(i.terminated_at()))
      .Bytes(Serialize(r));
  NAVARCH_ASSIGN_OR_RETURN(
      Result res, write_session_.Run(
                      r.version() == 1 ? kInstanceInsert : kInstanceUpdate, p));
  if (res.Affected() == 1) return absl::OkStatus();
  return Conflict("instance", kInstanceVersion, i.instance_id(), r.version());
}

absl::Status PostgresStore::WriteCommand(const CommandRecord& r) {
  const NodeCommand& c = r.command();
  Params p;
  p.Text(c.command_id())
      .Text(r.node_id())
      .Int(r.state())
      .Int(Nanos(c.issued_at()))
      .Int(Nanos(r.updated_at()))
      .Int(r.version())
      .Bytes(Serialize(r));
  NAVARCH_ASSIGN_OR_RETURN(
      Result res, write_session_.Run(
                      r.version() == 1 ? kCommandInsert : kCommandUpdate, p));
  if (res.Affected() == 1) return absl::OkStatus();
  return Conflict("command", kCommandVersion, c.command_id(), r.version());
}

absl::Status PostgresStore::WriteEvents(std::vector<Event>& events) {
  if (events.empty()) return absl::OkStatus();
  NAVARCH_ASSIGN_OR_RETURN(
      Result counter,
      write_session_.Run(kEventIds,
                         Params().Int(static_cast<int64_t>(events.size()))));
  if (counter.rows() != 1)
    return absl::InternalError("postgres: the event counter row is missing");
  int64_t first = counter.Int(0, 0) - static_cast<int64_t>(events.size()) + 1;
  std::vector<int64_t> ids, times;
  std::vector<std::string> blobs;
  std::vector<absl::string_view> kinds, nodes, pools;
  for (size_t i = 0; i < events.size(); ++i) {
    Event& e = events[i];
    e.clear_id();  // the row's id is the event id
    ids.push_back(first + static_cast<int64_t>(i));
    times.push_back(Nanos(e.time()));
    kinds.push_back(e.kind());
    nodes.push_back(e.node_id());
    pools.push_back(e.pool());
    blobs.push_back(Serialize(e));
  }
  std::vector<std::optional<absl::string_view>> records(blobs.begin(),
                                                        blobs.end());
  Params p;
  p.IntArray(ids).IntArray(times).TextArray(kinds).TextArray(nodes).TextArray(
      pools);
  p.BytesArray(records);
  return write_session_.Run(kEventInsert, p).status();
}

absl::Status PostgresStore::ApplyHeartbeats(
    const std::vector<HeartbeatUpdate>& updates) {
  for (const auto& round : HeartbeatRounds(updates)) {
    std::vector<absl::string_view> ids;
    std::vector<int64_t> times;
    std::vector<std::string> metrics;
    std::vector<std::optional<absl::string_view>> blobs;
    metrics.reserve(round.size());  // blobs point into it
    for (const HeartbeatUpdate* u : round) {
      ids.push_back(u->node_id);
      times.push_back(TimeToNanos(u->last_heartbeat));
      if (!u->metrics) {
        blobs.emplace_back(std::nullopt);
        continue;
      }
      metrics.push_back(Serialize(*u->metrics));
      blobs.emplace_back(metrics.back());
    }
    Params p;
    p.TextArray(ids).IntArray(times).BytesArray(blobs);
    NAVARCH_RETURN_IF_ERROR(write_session_.Run(kHeartbeats, p).status());
  }
  return absl::OkStatus();
}

absl::StatusOr<int64_t> PostgresStore::ApplyPrune(const PruneRequest& request) {
  int64_t removed = 0;
  NAVARCH_ASSIGN_OR_RETURN(
      Result events,
      write_session_.Run(kPruneEvents,
                         Params().Int(TimeToNanos(request.events_before))));
  removed += events.Affected();
  NAVARCH_ASSIGN_OR_RETURN(
      Result instances,
      write_session_.Run(kPruneInstances,
                         Params()
                             .Int(INSTANCE_STATE_TERMINATED)
                             .Int(TimeToNanos(absl::InfinitePast()))  // unset
                             .Int(TimeToNanos(request.instances_before))
                             .Int(INSTANCE_STATE_FAILED)));
  removed += instances.Affected();
  NAVARCH_ASSIGN_OR_RETURN(
      Result commands,
      write_session_.Run(kPruneCommands,
                         Params()
                             .Int(internal::COMMAND_STATE_PENDING)
                             .Int(internal::COMMAND_STATE_DELIVERED)
                             .Int(TimeToNanos(request.commands_before))));
  removed += commands.Affected();
  return removed;
}

// --- Reads ---

absl::Status PostgresStore::ReaderReady() {
  if (read_closed_) return absl::UnavailableError("postgres: store is closed");
  return read_session_.Ensure();
}

absl::StatusOr<StoreSnapshot> PostgresStore::Load() {
  absl::MutexLock lock(&read_mu_);
  NAVARCH_RETURN_IF_ERROR(ReaderReady());
  // One snapshot: the tables come from one committed state.
  NAVARCH_RETURN_IF_ERROR(
      read_session_.Exec("BEGIN ISOLATION LEVEL REPEATABLE READ READ ONLY"));
  absl::StatusOr<StoreSnapshot> snap = LoadLocked();
  if (!snap.ok()) {
    if (read_session_.InTransaction())
      read_session_.Exec("ROLLBACK").IgnoreError();
    return snap.status();
  }
  NAVARCH_RETURN_IF_ERROR(read_session_.Exec("COMMIT"));
  return snap;
}

absl::StatusOr<StoreSnapshot> PostgresStore::LoadLocked() {
  StoreSnapshot snap;
  NAVARCH_ASSIGN_OR_RETURN(Result nodes, read_session_.Run(kNodes, Params()));
  snap.nodes.reserve(nodes.rows());
  for (int i = 0; i < nodes.rows(); ++i) {
    NAVARCH_ASSIGN_OR_RETURN(snap.nodes.emplace_back(), ReadNode(nodes, i));
  }
  NAVARCH_ASSIGN_OR_RETURN(Result instances,
                           read_session_.Run(kInstances, Params()));
  for (int i = 0; i < instances.rows(); ++i) {
    NAVARCH_ASSIGN_OR_RETURN(
        snap.instances.emplace_back(),
        Parse<InstanceRecord>(instances.Bytes(i, 0), "instance"));
  }
  NAVARCH_ASSIGN_OR_RETURN(Result commands,
                           read_session_.Run(kOpenCommands, Params()));
  for (int i = 0; i < commands.rows(); ++i) {
    NAVARCH_ASSIGN_OR_RETURN(
        snap.open_commands.emplace_back(),
        Parse<CommandRecord>(commands.Bytes(i, 0), "command"));
  }
  NAVARCH_ASSIGN_OR_RETURN(Result last,
                           read_session_.Run(kLastEventId, Params()));
  snap.last_event_id = last.rows() == 1 ? last.Int(0, 0) : 0;
  return snap;
}

absl::StatusOr<std::optional<NodeRecord>> PostgresStore::GetNode(
    const std::string& node_id) {
  absl::MutexLock lock(&read_mu_);
  NAVARCH_RETURN_IF_ERROR(ReaderReady());
  NAVARCH_ASSIGN_OR_RETURN(Result r,
                           read_session_.Run(kNode, Params().Text(node_id)));
  if (r.rows() == 0) return std::optional<NodeRecord>();
  NAVARCH_ASSIGN_OR_RETURN(NodeRecord node, ReadNode(r, 0));
  return std::optional<NodeRecord>(std::move(node));
}

absl::StatusOr<std::optional<CommandRecord>> PostgresStore::GetCommand(
    const std::string& command_id) {
  absl::MutexLock lock(&read_mu_);
  NAVARCH_RETURN_IF_ERROR(ReaderReady());
  NAVARCH_ASSIGN_OR_RETURN(
      Result r, read_session_.Run(kCommand, Params().Text(command_id)));
  if (r.rows() == 0) return std::optional<CommandRecord>();
  NAVARCH_ASSIGN_OR_RETURN(CommandRecord c,
                           Parse<CommandRecord>(r.Bytes(0, 0), "command"));
  return std::optional<CommandRecord>(std::move(c));
}

absl::StatusOr<EventPage> PostgresStore::ListEvents(const EventQuery& query) {
  NAVARCH_RETURN_IF_ERROR(ValidateQuery(query));
  EventSql q = BuildEventSql(query, [](int index, bool is_int) {
    return absl::StrCat("$", index, is_int ? "::int8" : "::text");
  });
  Params params;
  for (const auto& v : q.params) {
    if (const auto* i = std::get_if<int64_t>(&v)) {
      params.Int(*i);
    } else {
      params.Text(std::get<std::string>(v));
    }
  }
  absl::MutexLock lock(&read_mu_);
  NAVARCH_RETURN_IF_ERROR(ReaderReady());
  NAVARCH_ASSIGN_OR_RETURN(Result r, read_session_.Query(q.sql, params));
  EventPage page;
  for (int i = 0; i < r.rows(); ++i) {
    if (static_cast<int>(page.events.size()) == query.limit) {
      page.more = true;
      break;
    }
    NAVARCH_ASSIGN_OR_RETURN(Event e, Parse<Event>(r.Bytes(i, 1), "event"));
    e.set_id(r.Int(i, 0));
    page.events.push_back(std::move(e));
  }
  return page;
}

absl::Status PostgresStore::Ping() {
  NAVARCH_RETURN_IF_ERROR(writer_->Health());
  absl::MutexLock lock(&read_mu_);
  NAVARCH_RETURN_IF_ERROR(ReaderReady());
  return read_session_.Run(kLastEventId, Params()).status();
}

void PostgresStore::Close() {
  absl::MutexLock close_lock(&close_mu_);
  if (closed_) return;
  closed_ = true;
  // The writer drains the queue before it stops.
  if (writer_ != nullptr) writer_->Close();
  write_session_.Disconnect();
  absl::MutexLock lock(&read_mu_);
  read_closed_ = true;
  read_session_.Disconnect();
}

}  // namespace navarch
