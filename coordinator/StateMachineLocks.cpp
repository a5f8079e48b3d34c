// Locks and elections as state-machine commands over the namespace (API.md "Locks", "Leader
// election"; the queue's rules are in locks/LockQueue.h). A lock is /_warden/locks/{name}; each
// request is an ephemeral child owned by its session, named by the revision that queued it, so that a session's close or expiry removes its requests with
// its other ephemeral nodes, in the same revision, and the next in line is granted there too.
// A grant writes the request's token (the granting revision): the waiting client's node sees
// the change as a watch event on that one request, so a release wakes only the next grantee.

#include <algorithm>
#include <cstdio>

#include "coordinator/Path.h"
#include "coordinator/StateMachineContext.h"
#include "locks/LockQueue.h"

namespace warden::coordinator {

namespace {
// Named by the revision that queued it: arrival order, and never the name of an earlier request
// (a lock's node, and any counter in it, goes when its queue empties; a waiter that finds "its"
// path must never find someone else's request there).
std::string requestName(std::uint64_t revision) {
  char name[32];
  std::snprintf(name, sizeof name, "r-%020llu", static_cast<unsigned long long>(revision));
  return name;
}
}  // namespace

std::optional<std::string> StateMachine::lockRequestOf(storage::Txn& txn, std::uint64_t session,
                                                       std::string_view lock) const {
  // Through the session's own ephemerals (bounded), not the lock's queue (which may be long).
  for (const std::string& path : sessions_.ephemerals(txn, session)) {
    if (parentOf(path) == lock) return path;
  }
  return std::nullopt;
}

void StateMachine::ensureNode(Context& ctx, const std::string& path) const {
  if (tree_.exists(ctx.txn, path)) return;
  ensureNode(ctx, std::string(parentOf(path)));
  createNode(ctx, path, {}, 0);
}

void StateMachine::rewriteData(Context& ctx, const std::string& path, NodeRecord& record, std::string data) const {
  ctx.growth += static_cast<std::int64_t>(data.size()) - static_cast<std::int64_t>(record.data.size());
  record.data = std::move(data);
  record.stat.dataLength = record.data.size();
  record.stat.version += 1;
  record.stat.modified = ctx.revision;
  record.stat.mtime = ctx.timestampMs;
  tree_.put(ctx.txn, path, record);
  ctx.changed = true;
  ctx.note(watch::EventType::Changed, path, record.stat, record.data);
}

void StateMachine::removeLockRequest(Context& ctx, const std::string& path) const {
  auto record = tree_.get(ctx.txn, path);
  if (!record) return;
  if (record->stat.ephemeralOwner != 0) sessions_.removeEphemeral(ctx.txn, record->stat.ephemeralOwner, path);
  tree_.erase(ctx.txn, path);
  ctx.note(watch::EventType::Deleted, path, record->stat);
  ctx.touched += 1;
  ctx.growth -= static_cast<std::int64_t>(nodeCost(path, record->data.size()));
  unlinkFromParent(ctx, path);
}

void StateMachine::grantLock(Context& ctx, const std::string& lock) const {
  auto lockRecord = tree_.get(ctx.txn, lock);
  if (!lockRecord) return;
  // After a holder with a lock-delay expired, nobody is granted the lock (and its node stays)
  // until the leader ends the delay (LockDelayEnd).
  if (locks::decodeDelay(lockRecord->data)) return;
  if (lockRecord->stat.numChildren == 0) {
    // Nobody holds or waits: the lock's node goes too, so that used names do not pile up.
    tree_.erase(ctx.txn, lock);
    ctx.note(watch::EventType::Deleted, lock, lockRecord->stat);
    ctx.growth -= static_cast<std::int64_t>(nodeCost(lock, lockRecord->data.size()));
    unlinkFromParent(ctx, lock);
    return;
  }
  // The holders lead the queue: read it a page at a time up to its first exclusive request
  // (which either holds alone or ends the run of shared holders before it).
  std::vector<std::pair<std::string, locks::Request>> head;
  std::string after;
  for (bool done = false; !done;) {
    const Tree::Page page = tree_.childrenPage(ctx.txn, lock, after, 64);
    for (const std::string& name : page.names) {
      after = name;
      const std::string path = childOf(lock, name);
      auto record = tree_.get(ctx.txn, path);
      auto request = record ? locks::decodeRequest(record->data) : std::nullopt;
      if (!request) continue;
      if (lockBugs.grantEveryone) request->shared = true;
      head.emplace_back(path, *request);
      if (!request->shared) {
        done = true;
        break;
      }
    }
    if (!page.more) done = true;
  }
  std::vector<locks::Request> queue;
  for (const auto& [path, request] : head) queue.push_back(request);
  const std::size_t holders = locks::holders(queue);
  for (std::size_t i = 0; i < holders; ++i) {
    auto& [path, request] = head[i];
    if (request.granted()) continue;
    request.token = ctx.revision;  // the fencing token: strictly increasing grant after grant
    if (lockBugs.tokenPerLockNode) request.token = static_cast<std::uint64_t>(lockRecord->stat.cversion);
    request.sinceMs = ctx.timestampMs;
    NodeRecord record = *tree_.get(ctx.txn, path);
    rewriteData(ctx, path, record, locks::encodeRequest(request, locks::isElection(lock)));
  }
}

void StateMachine::delayLocksOf(Context& ctx, std::uint64_t session) const {
  for (const std::string& path : sessions_.ephemerals(ctx.txn, session)) {
    const std::string_view lock = parentOf(path);
    if (!locks::isQueue(lock) || locks::isElection(lock)) continue;
    auto record = tree_.get(ctx.txn, path);
    auto request = record ? locks::decodeRequest(record->data) : std::nullopt;
    if (!request || !request->granted() || request->delayMs == 0) continue;
    NodeRecord lockRecord = *tree_.get(ctx.txn, lock);
    // Extended by a second expiry, it runs the longest of the lengths from the latest expiry:
    // a node that times it afresh from the state (a start, an install) must never time less
    // than what the first expiry asked for (DelayTimers).
    locks::Delay delay = locks::decodeDelay(lockRecord.data).value_or(locks::Delay{});
    delay.availableAtMs = std::max(delay.availableAtMs, ctx.timestampMs + request->delayMs);
    delay.delayMs = std::max(delay.delayMs, request->delayMs);
    rewriteData(ctx, std::string(lock), lockRecord, locks::encodeDelay(delay));
  }
}

void StateMachine::requeueLocksOf(Context& ctx, const std::vector<OpResult>& deleted) const {
  std::vector<std::string> touched;
  for (const OpResult& r : deleted) {
    const std::string_view parent = parentOf(r.path);
    if (!locks::isQueue(parent)) continue;
    if (std::find(touched.begin(), touched.end(), parent) == touched.end()) touched.emplace_back(parent);
  }
  for (const std::string& lock : touched) grantLock(ctx, lock);
}

std::vector<StateMachine::RunningDelay> StateMachine::lockDelays(storage::Txn& txn) const {
  std::vector<RunningDelay> out;
  const std::string root(locks::kLocksRoot);
  std::string after;
  for (bool more = tree_.exists(txn, root); more;) {
    const Tree::Page page = tree_.childrenPage(txn, root, after, 256);
    more = page.more;
    for (const std::string& name : page.names) {
      after = name;
      const std::string lock = childOf(root, name);
      auto record = tree_.get(txn, lock);
      auto delay = record ? locks::decodeDelay(record->data) : std::nullopt;
      if (delay) out.push_back(RunningDelay{lock, record->stat.modified, delay->delayMs});
    }
  }
  return out;
}

CommandResult StateMachine::endLockDelay(storage::Txn& parent, const Command& command, std::uint64_t revision,
                                         std::uint64_t timestampMs, std::vector<watch::Event>* events,
                                         bool nest) const {
  CommandResult out;
  out.revision = revision - 1;
  CommandTxn own(parent, nest);
  storage::Txn& txn = own.get();
  Context ctx{txn, revision, timestampMs, command.maxNodes};
  const std::string lock = locks::lockPath(command.name);
  auto record = tree_.get(txn, lock);
  // Only the delay the leader timed: one extended since was set at a later revision.
  if (record && locks::decodeDelay(record->data) && record->stat.modified == command.token) {
    rewriteData(ctx, lock, *record, {});
    grantLock(ctx, lock);
  }
  if (ctx.growth != 0) addUsedBytes(txn, ctx.growth);
  own.commit();
  if (ctx.changed) out.revision = revision;
  if (events) std::move(ctx.events.begin(), ctx.events.end(), std::back_inserter(*events));
  return out;
}

CommandResult StateMachine::applyLock(storage::Txn& parent, const Command& command, std::uint64_t revision,
                                      std::uint64_t timestampMs, std::vector<watch::Event>* events,
                                      bool nest) const {
  CommandResult out;
  out.revision = revision - 1;
  auto fail = [&out](Status status, std::string message) {
    out.status = status;
    out.message = std::move(message);
    return out;
  };
  if (auto problem = locks::lockNameProblem(command.name)) return fail(Status::InvalidArgument, *problem);
  if (command.text.size() > locks::kMaxOwnerBytes) return fail(Status::InvalidArgument, "owner holds at most 1024 bytes");
  const std::string id = session::formatSessionId(command.session);
  if (command.type == CommandType::LockDelayEnd) return endLockDelay(parent, command, revision, timestampMs, events, nest);
  if (command.session == 0 || !sessions_.get(parent, command.session)) {
    return fail(Status::SessionNotFound, "session " + id + " does not exist (it expired or was closed)");
  }
  CommandTxn own(parent, nest);
  storage::Txn& txn = own.get();
  Context ctx{txn, revision, timestampMs, command.maxNodes};
  const bool election = isElectionCommand(command.type);
  const std::string lock = election ? locks::electionPath(command.name) : locks::lockPath(command.name);
  const std::optional<std::string> mine = lockRequestOf(txn, command.session, lock);
  std::optional<std::string> resultPath = mine;
  const bool acquire = command.type == CommandType::LockAcquire || command.type == CommandType::ElectionCampaign;
  if (acquire && !mine) {
    // Bounded like any ephemeral: a session's close stays one bounded write.
    if (ctx.maxNodes != 0 && sessions_.ephemeralsUpTo(txn, command.session, ctx.maxNodes) >= ctx.maxNodes) {
      return fail(Status::TooLarge, "session " + id + " owns " + std::to_string(ctx.maxNodes) +
                                        " ephemeral nodes and lock requests, the most one session may own (--max-txn-nodes)");
    }
    ensureNode(ctx, lock);
    const std::string path = childOf(lock, lockBugs.requestsBySession ? "r-" + id : requestName(revision));
    locks::Request request{command.session, command.shared && !election, command.text, 0, 0, 0};
    if (!election) request.delayMs = std::min(command.token, locks::kMaxLockDelayMs);
    createNode(ctx, path, locks::encodeRequest(request, election), command.session);
    grantLock(ctx, lock);
    resultPath = path;
  } else if (command.type == CommandType::LockRelease) {
    auto record = mine ? tree_.get(txn, *mine) : std::nullopt;
    auto request = record ? locks::decodeRequest(record->data) : std::nullopt;
    if (!request || !request->granted() || request->token != command.token) {
      return fail(Status::NotHolder, "session " + id + " does not hold lock '" + command.name + "' with token " +
                                         std::to_string(command.token));
    }
    removeLockRequest(ctx, *mine);
    grantLock(ctx, lock);
    resultPath.reset();
  } else if (command.type == CommandType::ElectionResign) {
    // Leading or queued, the candidacy goes (200 either way).
    if (mine) {
      removeLockRequest(ctx, *mine);
      grantLock(ctx, lock);
    }
    resultPath.reset();
  } else if (command.type == CommandType::ElectionProclaim) {
    auto record = mine ? tree_.get(txn, *mine) : std::nullopt;
    auto request = record ? locks::decodeRequest(record->data) : std::nullopt;
    if (!request || !request->granted() || request->token != command.token) {
      return fail(Status::NotLeader, "session " + id + " does not lead election '" + command.name + "' in term " +
                                         std::to_string(command.token));
    }
    request->owner = command.text;
    rewriteData(ctx, *mine, *record, locks::encodeRequest(*request, true));
  } else if (command.type == CommandType::LockWithdraw && mine &&
             (command.token == 0 || *mine == childOf(lock, requestName(command.token)))) {
    // Only a request still waiting leaves: one granted meanwhile is the caller's to keep (its
    // token is in the request, which the caller reads next). A withdrawal naming its request
    // (token: the revision that queued it) leaves a newer request of the session alone: it may
    // come late, from a wait that ended on a node that had fallen behind.
    auto record = tree_.get(txn, *mine);
    auto request = record ? locks::decodeRequest(record->data) : std::nullopt;
    if (request && !request->granted()) {
      removeLockRequest(ctx, *mine);
      grantLock(ctx, lock);
      resultPath.reset();
    }
  }
  if (resultPath) out.results.push_back(OpResult{OpType::Create, *resultPath, tree_.get(txn, *resultPath)->stat});
  // Releases, withdrawals and resignations always go through (like deletes): the grants they
  // make write tokens, but refusing them would hold the lock.
  const bool grows = acquire || command.type == CommandType::ElectionProclaim;
  const std::uint64_t used = usedBytes(txn);
  if (grows && ctx.growth > 0 && command.quotaBytes != 0 && used + static_cast<std::uint64_t>(ctx.growth) > command.quotaBytes) {
    own.abort();
    out.results.clear();
    return fail(Status::NoSpace, "the state is over its quota (--quota-bytes); delete something to make room");
  }
  if (ctx.growth != 0) addUsedBytes(txn, ctx.growth);
  own.commit();
  if (ctx.changed) out.revision = revision;
  if (events) std::move(ctx.events.begin(), ctx.events.end(), std::back_inserter(*events));
  return out;
}

}  // namespace warden::coordinator
