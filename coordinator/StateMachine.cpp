#include "coordinator/StateMachine.h"

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <optional>

#include "coordinator/Path.h"
#include "coordinator/StateMachineContext.h"

namespace warden::coordinator {

namespace {
constexpr std::string_view kAppliedIndexKey = "applied_index";
constexpr std::string_view kRevisionKey = "revision";
constexpr std::string_view kSessionEpochKey = "session_epoch";  // round, node, takeover
constexpr std::string_view kTimestampKey = "timestamp";         // the latest entry's, ms
constexpr std::string_view kUsedBytesKey = "used_bytes";        // what the quota counts (usedBytes)

std::string u64Value(std::uint64_t v) { return storage::encodeU64Key(v); }

bool isEphemeral(const NodeRecord& record) { return record.stat.ephemeralOwner != 0; }

std::string sequenceName(std::string_view name, std::uint64_t sequence) {
  char digits[24];
  std::snprintf(digits, sizeof digits, "%010llu", static_cast<unsigned long long>(sequence));
  return std::string(name) + digits;
}
}  // namespace

std::uint64_t nodeCost(std::string_view path, std::size_t dataBytes) {
  return path.size() + dataBytes + kNodeOverheadBytes;
}

struct StateMachine::Outcome {
  Status status = Status::Ok;
  std::string message;
  OpResult result;

  static Outcome fail(Status status, std::string message) { return {status, std::move(message), {}}; }
};

namespace {

std::optional<StateMachine::Outcome> versionMismatch(const Op& op, const NodeRecord& record) {
  if (!op.version || *op.version == record.stat.version) return std::nullopt;
  return StateMachine::Outcome::fail(Status::BadVersion, "expected version " + std::to_string(*op.version) +
                                                             ", " + op.path + " is at version " +
                                                             std::to_string(record.stat.version));
}

std::string ephemeralParentMessage(std::string_view parent) {
  return std::string(parent) + " is ephemeral and cannot have children";
}

// Why a node cannot be created under this parent, if it cannot.
std::optional<StateMachine::Outcome> parentProblem(std::string_view parent,
                                                   const std::optional<NodeRecord>& record) {
  if (!record) return StateMachine::Outcome::fail(Status::NoParent, "parent " + std::string(parent) + " does not exist");
  if (isEphemeral(*record)) return StateMachine::Outcome::fail(Status::EphemeralParent, ephemeralParentMessage(parent));
  return std::nullopt;
}

}  // namespace

StateMachine::Dbs StateMachine::openDbs(storage::Txn& writeTxn) {
  return Dbs{writeTxn.openDb("nodes"),    writeTxn.openDb("children"), writeTxn.openDb("meta"),
             writeTxn.openDb("sessions"), writeTxn.openDb("owned"),    writeTxn.openDb("requests"),
             writeTxn.openDb("requests_by_slot"), writeTxn.openDb("snapshot_staging"),
             writeTxn.openDb("idempotency"), writeTxn.openDb("idempotency_by_time"),
             writeTxn.openDb("requests_by_deadline")};
}

StateMachine::StateMachine(Dbs dbs)
    : tree_(Tree::Dbs{dbs.nodes, dbs.children}),
      sessions_(session::SessionTable::Dbs{dbs.sessions, dbs.owned}),
      dbs_(dbs),
      meta_(dbs.meta) {}

void StateMachine::initialize(storage::Txn& txn) const {
  finishInterruptedInstall(txn);
  if (tree_.exists(txn, "/")) {
    // A store from before the quota: count what it holds, once (a pure function of the tree,
    // so every replica arrives at what it would have counted all along).
    if (!txn.get(meta_, kUsedBytesKey)) txn.put(meta_, kUsedBytesKey, u64Value(countUsedBytes(txn)));
    return;
  }
  tree_.put(txn, "/", NodeRecord{});
  txn.put(meta_, kUsedBytesKey, u64Value(0));
  txn.put(meta_, kAppliedIndexKey, u64Value(0));
  txn.put(meta_, kRevisionKey, u64Value(0));
}

std::uint64_t StateMachine::readMeta(storage::Txn& txn, std::string_view key) const {
  auto value = txn.get(meta_, key);
  return value ? storage::decodeU64Key(*value) : 0;
}

std::uint64_t StateMachine::revision(storage::Txn& txn) const { return readMeta(txn, kRevisionKey); }

bool StateMachine::admitRequest(storage::Txn& txn, std::uint64_t origin, std::uint64_t incarnation,
                                std::uint64_t requestId, std::uint64_t slot, std::uint64_t deadlineMs,
                                std::uint64_t stampMs) const {
  const auto id = storage::packU64Keys(origin, incarnation, requestId);
  // Requests without a deadline, and those a store from before the deadline order remembered
  // (small tables: a node's duties are few).
  if (txn.get(dbs_.requests, id)) return false;
  forgetBySlot(txn, slot, stampMs);
  if (deadlineMs == 0) {
    txn.put(dbs_.requests, id, storage::packU64Keys(slot, deadlineMs));
    txn.put(dbs_.requestsBySlot, storage::packU64Keys(slot, origin, incarnation, requestId), {});
    return true;
  }
  {
    // The front of the deadline order, as far as the applied time passed it (a few at a time:
    // each admission pays for about one).
    storage::Cursor cursor(txn, dbs_.requestsByDeadline);
    int forgotten = 0;
    for (auto item = cursor.first(); item && forgotten < 8; item = cursor.next(), ++forgotten) {
      if (storage::decodeU64Key(item->key.substr(0, 8)) >= stampMs && !bugs.forgetRequestsEarly) break;
      cursor.erase();
    }
  }
  // A copy carries its original's deadline, so it finds the original's key.
  return txn.insert(dbs_.requestsByDeadline, storage::packU64Keys(deadlineMs, origin, incarnation, requestId),
                    storage::packU64Keys(slot));
}

void StateMachine::forgetBySlot(storage::Txn& txn, std::uint64_t slot, std::uint64_t stampMs) const {
  // Forget what is older than the memory, a few at a time (each admission pays for its own).
  std::vector<std::string> doomed;
  {
    // A bounded scan from the oldest: a record whose deadline is still ahead is kept and passed
    // over, so that one far-off deadline does not stop the purge (apply() bounds how far).
    storage::Cursor cursor(txn, dbs_.requestsBySlot);
    int scanned = 0;
    for (auto item = cursor.first(); item && doomed.size() < 4 && scanned < 16; item = cursor.next(), ++scanned) {
      if (storage::decodeU64Key(item->key.substr(0, 8)) + kRequestMemorySlots >= slot) break;
      // Its value: the slot, then (since deadlines) its deadline.
      auto value = txn.get(dbs_.requests, item->key.substr(8));
      if (value && value->size() == 16 && storage::decodeU64Key(value->substr(8)) >= stampMs) continue;
      doomed.emplace_back(item->key);
    }
  }
  for (const auto& key : doomed) {
    txn.erase(dbs_.requestsBySlot, key);
    txn.erase(dbs_.requests, key.substr(8));
  }
}

std::uint64_t StateMachine::timestampMs(storage::Txn& txn) const { return readMeta(txn, kTimestampKey); }

SessionEpoch StateMachine::sessionEpoch(storage::Txn& txn) const {
  auto value = txn.get(meta_, kSessionEpochKey);
  if (!value) return {};
  return storage::decodeStored(*value, [](std::string_view bytes) {
    Decoder in(bytes);
    SessionEpoch e;
    e.ballot.round = in.varint();
    e.ballot.node = in.varint();
    e.takeover = in.varint();
    in.expectDone();
    return e;
  });
}

std::uint64_t StateMachine::appliedIndex(storage::Txn& txn) const {
  return readMeta(txn, kAppliedIndexKey);
}

std::vector<CommandResult> StateMachine::apply(storage::Txn& txn, const Entry& given, Notes* notes) const {
  const std::uint64_t applied = appliedIndex(txn);
  if (given.index != applied + 1) {
    std::fprintf(stderr, "fatal: applying entry %llu after %llu\n",
                 static_cast<unsigned long long>(given.index), static_cast<unsigned long long>(applied));
    std::abort();
  }
  // Leaders' clocks differ: the stored time only moves forward, so mtimes never run backwards.
  // It is stored with the state, so every replica (and every snapshot) clamps alike.
  const std::uint64_t last = readMeta(txn, kTimestampKey);
  std::optional<Entry> clamped;
  if (given.timestampMs < last) clamped = Entry{given.index, last, given.commands};
  const Entry& entry = clamped ? *clamped : given;
  if (entry.timestampMs != last) txn.put(meta_, kTimestampKey, u64Value(entry.timestampMs));
  std::uint64_t rev = revision(txn);
  std::optional<std::vector<CommandResult>> results;
  const bool anyMayFailAfterWriting = std::any_of(entry.commands.begin(), entry.commands.end(),
                                                  [this](const Command& c) { return mayFailAfterWriting(c); });
  if (entry.commands.size() > 1 && anyMayFailAfterWriting) {
    // All the entry's commands in one child transaction instead of one each: LMDB allocates
    // megabytes for each child transaction (its dirty page list), which under load was a large
    // share of apply's time, more so as the heap fragments. Alike while every command succeeds;
    // if one that writes in steps fails, the entry starts over, a child transaction a command.
    // (An entry of commands that cannot fail after writing, the usual one of single puts, needs
    // none of this: below, each gets a child only if its quota could refuse it.)
    const std::size_t eventsBefore = notes ? notes->events.size() : 0;
    std::uint64_t batchRev = rev;
    storage::Txn batch = storage::Txn::nested(txn);
    results = applyCommands(batch, entry, batchRev, notes, false);
    if (results) {
      batch.commit();
      rev = batchRev;
    } else {
      batch.abort();
      if (notes) notes->events.resize(eventsBefore);
    }
  }
  if (!results) results = applyCommands(txn, entry, rev, notes, true);
  txn.put(meta_, kAppliedIndexKey, u64Value(entry.index));
  txn.put(meta_, kRevisionKey, u64Value(rev));
  return std::move(*results);
}

std::optional<std::vector<CommandResult>> StateMachine::applyCommands(storage::Txn& txn, const Entry& entry,
                                                                      std::uint64_t& rev, Notes* notes,
                                                                      bool nest) const {
  std::vector<CommandResult> results;
  results.reserve(entry.commands.size());
  if (notes) notes->replays.assign(entry.commands.size(), false);
  std::vector<watch::Event>* events = notes ? &notes->events : nullptr;
  for (std::size_t i = 0; i < entry.commands.size(); ++i) {
    const Command& command = entry.commands[i];
    // Only client writes carry a key (a node's own commands, expiries and withdrawals, never do).
    const bool keyed = !command.idempotencyKey.empty();
    if (keyed) {
      if (auto first = replayed(txn, command)) {
        results.push_back(std::move(*first));  // applied before: answered alike, nothing changes
        if (notes) notes->replays[i] = true;
        continue;
      }
    }
    results.push_back(applyOne(txn, command, rev + 1, entry.timestampMs, events, nest));
    // Sessions' commands check everything before they write; the others may fail halfway.
    const bool stepwise = command.type == CommandType::Txn || isLockCommand(command.type);
    if (!nest && stepwise && results.back().status != Status::Ok && !keepFailedBatchWrites) return std::nullopt;
    if (keyed) remember(txn, command, results.back(), entry.timestampMs, entry.index);
    rev = results.back().revision;
  }
  return results;
}

CommandResult StateMachine::applyOne(storage::Txn& txn, const Command& command, std::uint64_t revision,
                                     std::uint64_t timestampMs, std::vector<watch::Event>* events, bool nest) const {
  if (command.type == CommandType::Txn) return applyTxn(txn, command, revision, timestampMs, events, nest);
  if (isLockCommand(command.type)) return applyLock(txn, command, revision, timestampMs, events, nest);
  return applySession(txn, command, revision, timestampMs, events);
}

CommandResult StateMachine::applySession(storage::Txn& txn, const Command& command, std::uint64_t revision,
                                         std::uint64_t timestampMs, std::vector<watch::Event>* events) const {
  CommandResult out;
  out.revision = revision - 1;
  auto fail = [&out](Status status, std::string message) {
    out.status = status;
    out.message = std::move(message);
    return out;
  };
  if (command.type == CommandType::Tick) {
    out.status = Status::Ok;
    return out;
  }
  if (command.type == CommandType::SessionEpoch) {
    // No revision: nothing a client sees changes.
    if (command.epoch > sessionEpoch(txn)) {
      Encoder value;
      value.varint(command.epoch.ballot.round);
      value.varint(command.epoch.ballot.node);
      value.varint(command.epoch.takeover);
      txn.put(meta_, kSessionEpochKey, value.data());
    }
    out.status = Status::Ok;
    return out;
  }
  if (command.type == CommandType::SessionExpire && command.epoch < sessionEpoch(txn)) {
    // Proposed by a leader that a later one has replaced, and found by that later one's phase
    // 1 (or a later one's): a session it kept alive must not die of it (PAXOS.md 9b).
    return fail(Status::Unavailable, "expiry proposed in session epoch " + toString(command.epoch) +
                                         ", ended since; ignored");
  }
  const std::string id = session::formatSessionId(command.session);
  if (command.type == CommandType::SessionCreate) {
    if (command.session == 0) return fail(Status::InvalidArgument, "session id 0 is reserved");
    if (command.ttlMs < session::kMinTtlMs || command.ttlMs > session::kMaxTtlMs) {
      return fail(Status::InvalidArgument, "ttl_ms must be between " + std::to_string(session::kMinTtlMs) +
                                               " and " + std::to_string(session::kMaxTtlMs));
    }
    if (command.name.size() > session::kMaxNameBytes) {
      return fail(Status::InvalidArgument, "a session name holds at most 1024 bytes");
    }
    if (sessions_.get(txn, command.session)) return fail(Status::Exists, "session " + id + " already exists");
    sessions_.put(txn, command.session, session::SessionRecord{command.ttlMs, command.name, revision, timestampMs});
    out.revision = revision;
    return out;
  }
  // Close and expiry: the session and every ephemeral node it owns go in this one revision.
  if (!sessions_.get(txn, command.session)) {
    return fail(Status::SessionNotFound, "session " + id + " does not exist (it expired or was closed)");
  }
  Context ctx{txn, revision, timestampMs};
  // An expiry (not a close) starts the lock-delay of the locks the session held.
  if (command.type == CommandType::SessionExpire) delayLocksOf(ctx, command.session);
  for (const std::string& path : sessions_.ephemerals(txn, command.session)) {
    if (auto record = tree_.get(txn, path)) {
      ctx.growth -= static_cast<std::int64_t>(nodeCost(path, record->data.size()));
      ctx.note(watch::EventType::Deleted, path, record->stat);
    }
    tree_.erase(txn, path);  // ephemeral nodes have no children
    unlinkFromParent(ctx, path);
    out.results.push_back(OpResult{OpType::Delete, path, std::nullopt});
  }
  // The locks it held or waited for go to the next in line.
  requeueLocksOf(ctx, out.results);
  if (ctx.growth != 0) addUsedBytes(txn, ctx.growth);
  sessions_.erase(txn, command.session);
  if (events) std::move(ctx.events.begin(), ctx.events.end(), std::back_inserter(*events));
  out.revision = revision;
  return out;
}

CommandResult StateMachine::applyTxn(storage::Txn& parent, const Command& command,
                                     std::uint64_t revision, std::uint64_t timestampMs,
                                     std::vector<watch::Event>* events, bool nest) const {
  CommandResult out;
  out.revision = revision - 1;
  if (command.ops.empty() || command.ops.size() > kMaxTxnOps) {
    out.status = Status::InvalidArgument;
    out.message = "a transaction holds 1 to " + std::to_string(kMaxTxnOps) + " ops";
    return out;
  }
  CommandTxn own(parent, nest && needsOwnTxn(parent, command));
  storage::Txn& txn = own.get();
  Context ctx{txn, revision, timestampMs, command.maxNodes};
  out.results.reserve(command.ops.size());
  for (std::size_t i = 0; i < command.ops.size(); ++i) {
    Outcome outcome = applyOp(ctx, command.ops[i]);
    if (outcome.status != Status::Ok) {
      own.abort();
      out.status = outcome.status;
      out.message = std::move(outcome.message);
      out.failedOp = i;
      out.results.clear();
      return out;
    }
    out.results.push_back(std::move(outcome.result));
  }
  const std::uint64_t used = usedBytes(txn);
  if (ctx.growth > 0 && command.quotaBytes != 0 && used + static_cast<std::uint64_t>(ctx.growth) > command.quotaBytes) {
    // Reads and writes that do not grow the state (deletes, smaller values) keep working.
    own.abort();
    out.status = Status::NoSpace;
    out.message = "the state holds " + std::to_string(used) + " bytes and this write adds " +
                  std::to_string(ctx.growth) + ", over the quota of " + std::to_string(command.quotaBytes) +
                  " (--quota-bytes); delete something to make room";
    out.results.clear();
    return out;
  }
  if (ctx.growth != 0) addUsedBytes(txn, ctx.growth);
  own.commit();
  if (ctx.changed) out.revision = revision;
  if (events) std::move(ctx.events.begin(), ctx.events.end(), std::back_inserter(*events));
  return out;
}

std::uint64_t StateMachine::usedBytes(storage::Txn& txn) const { return readMeta(txn, kUsedBytesKey); }

std::uint64_t StateMachine::countUsedBytes(storage::Txn& txn) const {
  // Walked from the root: the nodes table is keyed by a shortened path.
  std::uint64_t total = 0;
  std::vector<std::string> pending{"/"};
  while (!pending.empty()) {
    const std::string path = std::move(pending.back());
    pending.pop_back();
    for (const auto& name : tree_.children(txn, path)) {
      std::string child = childOf(path, name);
      if (auto record = tree_.get(txn, child)) total += nodeCost(child, record->data.size());
      pending.push_back(std::move(child));
    }
  }
  return total;
}

void StateMachine::addUsedBytes(storage::Txn& txn, std::int64_t delta) const {
  const std::uint64_t used = usedBytes(txn);
  // Never below zero: a state older than the count holds nodes it never counted.
  const std::uint64_t next = delta < 0 && static_cast<std::uint64_t>(-delta) > used ? 0 : used + static_cast<std::uint64_t>(delta);
  txn.put(meta_, kUsedBytesKey, u64Value(next));
}

std::optional<StateMachine::Outcome> StateMachine::overBudget(Context& ctx, std::uint64_t more,
                                                              std::string_view what) const {
  if (ctx.maxNodes == 0 || ctx.touched + more <= ctx.maxNodes) return std::nullopt;
  return Outcome::fail(Status::TooLarge, std::string(what) + ": this write would create or delete more than " +
                                             std::to_string(ctx.maxNodes) +
                                             " nodes, the limit of one write (--max-txn-nodes)");
}

std::uint64_t StateMachine::subtreeSizeUpTo(storage::Txn& txn, const std::string& path, const NodeRecord& record,
                                            std::uint64_t limit) const {
  // Stops as soon as it knows the answer is over the limit: its work is bounded by the limit.
  std::uint64_t size = 1;
  if (record.stat.numChildren == 0) return size;
  if (size + record.stat.numChildren > limit) return limit + 1;
  for (const std::string& name : tree_.children(txn, path)) {
    const std::string child = childOf(path, name);
    size += subtreeSizeUpTo(txn, child, *tree_.get(txn, child), limit - size);
    if (size > limit) return limit + 1;
  }
  return size;
}

StateMachine::Outcome StateMachine::applyOp(Context& ctx, const Op& op) const {
  // The edge validates too; apply checks again so that no command, however formed, can make
  // replicas diverge or store something the API forbids.
  if (auto problem = checkPath(op.path)) {
    return Outcome::fail(problem->tooLong ? Status::TooLarge : Status::InvalidArgument, problem->message);
  }
  if (op.data.size() > kMaxDataBytes) {
    return Outcome::fail(Status::TooLarge, "node data is larger than 1 MiB");
  }
  switch (op.type) {
    case OpType::Create: return create(ctx, op);
    case OpType::Set: return set(ctx, op);
    case OpType::Delete: return erase(ctx, op);
    case OpType::Check: return check(ctx, op);
  }
  return Outcome::fail(Status::InvalidArgument, "unknown op");
}

Stat StateMachine::createNode(Context& ctx, std::string_view path, std::string_view data,
                              std::uint64_t owner) const {
  // Precondition: the parent exists and is not ephemeral, the node does not exist.
  NodeRecord record;
  record.stat.created = record.stat.modified = ctx.revision;
  record.stat.ctime = record.stat.mtime = ctx.timestampMs;
  record.stat.ephemeralOwner = owner;
  record.data = std::string(data);
  record.stat.dataLength = record.data.size();
  tree_.put(ctx.txn, path, record);
  if (owner != 0) sessions_.addEphemeral(ctx.txn, owner, path);

  std::string_view parent = parentOf(path);
  NodeRecord parentRecord = *tree_.get(ctx.txn, parent);
  parentRecord.stat.cversion += 1;
  parentRecord.stat.numChildren += 1;
  tree_.put(ctx.txn, parent, parentRecord);
  tree_.addChild(ctx.txn, parent, nameOf(path));
  ctx.changed = true;
  ctx.touched += 1;
  ctx.growth += static_cast<std::int64_t>(nodeCost(path, data.size()));
  ctx.note(watch::EventType::Created, path, record.stat, record.data);
  return record.stat;
}

StateMachine::Outcome StateMachine::create(Context& ctx, const Op& op) const {
  if (isRoot(op.path)) return Outcome::fail(Status::Exists, "the root always exists");
  const std::string parent(parentOf(op.path));
  if (op.ephemeral && (op.session == 0 || !sessions_.get(ctx.txn, op.session))) {
    return Outcome::fail(Status::SessionNotFound, "session " + session::formatSessionId(op.session) +
                                                      " does not exist (it expired or was closed)");
  }
  // Closing or expiring a session deletes its ephemeral nodes in one command: bounded like any
  // write a client can send.
  if (op.ephemeral && ctx.maxNodes != 0 && sessions_.ephemeralsUpTo(ctx.txn, op.session, ctx.maxNodes) >= ctx.maxNodes) {
    return Outcome::fail(Status::TooLarge, "session " + session::formatSessionId(op.session) + " owns " +
                                               std::to_string(ctx.maxNodes) +
                                               " ephemeral nodes, the most one session may own (--max-txn-nodes)");
  }

  if (op.makeParents) {
    // Create missing ancestors top-down as plain, empty, persistent nodes.
    for (std::size_t slash = op.path.find('/', 1); slash != std::string::npos;
         slash = op.path.find('/', slash + 1)) {
      std::string ancestor = op.path.substr(0, slash);
      auto record = tree_.get(ctx.txn, ancestor);
      if (!record) {
        if (auto failure = overBudget(ctx, 1, op.path)) return std::move(*failure);
        createNode(ctx, ancestor, {}, 0);
      } else if (isEphemeral(*record)) {
        return Outcome::fail(Status::EphemeralParent, ephemeralParentMessage(ancestor));
      }
    }
  }

  auto parentRecord = tree_.get(ctx.txn, parent);
  if (auto failure = parentProblem(parent, parentRecord)) return std::move(*failure);

  std::string path = op.path;
  if (op.sequential) {
    path = childOf(parent, sequenceName(nameOf(op.path), parentRecord->nextSequence));
    if (path.size() > kMaxPathBytes) {
      return Outcome::fail(Status::TooLarge, "path with its sequence number is longer than 1024 bytes");
    }
    parentRecord->nextSequence += 1;
    tree_.put(ctx.txn, parent, *parentRecord);
  }
  if (tree_.exists(ctx.txn, path)) return Outcome::fail(Status::Exists, path + " already exists");
  if (auto failure = overBudget(ctx, 1, op.path)) return std::move(*failure);
  Stat stat = createNode(ctx, path, op.data, op.ephemeral ? op.session : 0);
  return Outcome{Status::Ok, {}, OpResult{OpType::Create, path, stat}};
}

StateMachine::Outcome StateMachine::set(Context& ctx, const Op& op) const {
  auto record = tree_.get(ctx.txn, op.path);
  if (!record) {
    if (op.createIfMissing && !op.version) {
      std::string_view parent = parentOf(op.path);
      if (auto failure = parentProblem(parent, tree_.get(ctx.txn, parent))) return std::move(*failure);
      if (auto failure = overBudget(ctx, 1, op.path)) return std::move(*failure);
      Stat stat = createNode(ctx, op.path, op.data, 0);
      return Outcome{Status::Ok, {}, OpResult{OpType::Set, op.path, stat}};
    }
    return Outcome::fail(Status::NotFound, op.path + " does not exist");
  }
  if (auto failure = versionMismatch(op, *record)) return std::move(*failure);
  ctx.growth += static_cast<std::int64_t>(op.data.size()) - static_cast<std::int64_t>(record->data.size());
  record->data = op.data;
  record->stat.dataLength = record->data.size();
  record->stat.version += 1;
  record->stat.modified = ctx.revision;
  record->stat.mtime = ctx.timestampMs;
  tree_.put(ctx.txn, op.path, *record);
  ctx.changed = true;
  ctx.note(watch::EventType::Changed, op.path, record->stat, record->data);
  return Outcome{Status::Ok, {}, OpResult{OpType::Set, op.path, record->stat}};
}

void StateMachine::eraseSubtree(Context& ctx, const std::string& path, const NodeRecord& record) const {
  if (record.stat.numChildren > 0) {
    for (const std::string& name : tree_.children(ctx.txn, path)) {
      std::string child = childOf(path, name);
      eraseSubtree(ctx, child, *tree_.get(ctx.txn, child));
      tree_.removeChild(ctx.txn, path, name);
    }
  }
  if (isEphemeral(record)) sessions_.removeEphemeral(ctx.txn, record.stat.ephemeralOwner, path);
  tree_.erase(ctx.txn, path);
  ctx.note(watch::EventType::Deleted, path, record.stat);
  ctx.touched += 1;
  ctx.growth -= static_cast<std::int64_t>(nodeCost(path, record.data.size()));
}

void StateMachine::unlinkFromParent(Context& ctx, std::string_view path) const {
  std::string_view parent = parentOf(path);
  tree_.removeChild(ctx.txn, parent, nameOf(path));
  NodeRecord parentRecord = *tree_.get(ctx.txn, parent);
  parentRecord.stat.cversion += 1;
  parentRecord.stat.numChildren -= 1;
  tree_.put(ctx.txn, parent, parentRecord);
  ctx.changed = true;
}

StateMachine::Outcome StateMachine::erase(Context& ctx, const Op& op) const {
  if (isRoot(op.path)) return Outcome::fail(Status::InvalidArgument, "the root cannot be deleted");
  auto record = tree_.get(ctx.txn, op.path);
  if (!record) return Outcome::fail(Status::NotFound, op.path + " does not exist");
  if (auto failure = versionMismatch(op, *record)) return std::move(*failure);
  if (record->stat.numChildren > 0 && !op.recursive) {
    return Outcome::fail(Status::NotEmpty, op.path + " has " + std::to_string(record->stat.numChildren) +
                                               " children; delete them first or pass recursive");
  }
  if (ctx.maxNodes != 0) {
    const std::uint64_t room = ctx.maxNodes - std::min(ctx.touched, ctx.maxNodes);
    if (subtreeSizeUpTo(ctx.txn, op.path, *record, room) > room) {
      return std::move(*overBudget(ctx, room + 1, op.path));
    }
  }
  eraseSubtree(ctx, op.path, *record);
  unlinkFromParent(ctx, op.path);
  return Outcome{Status::Ok, {}, OpResult{OpType::Delete, op.path, std::nullopt}};
}

StateMachine::Outcome StateMachine::check(Context& ctx, const Op& op) const {
  auto record = tree_.get(ctx.txn, op.path);
  if (!record) return Outcome::fail(Status::NotFound, op.path + " does not exist");
  if (auto failure = versionMismatch(op, *record)) return std::move(*failure);
  return Outcome{Status::Ok, {}, OpResult{OpType::Check, op.path, record->stat}};
}

}  // namespace warden::coordinator
