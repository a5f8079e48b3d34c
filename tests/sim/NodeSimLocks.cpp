// The whole-node simulator's lock clients and the checks that judge their history. A few clients
// contend for one exclusive lock through random nodes, each with a session of its own kept alive
// as it goes: acquire (queue), watch its request by linearizable reads until it is granted or its
// wait ends (then withdraw), hold it for a while checking its token as a fenced resource would,
// release it by token. Sessions expire under partitions and pauses, so holders lose the lock
// without knowing; that is what fencing is for, and what the checks allow.
//
// Checks, judged over the whole history once the run ends (each observation is a linearizable
// read: the read that saw a grant, or a fenced check that found the token held):
//   lock-exclusive  no token is seen held after a larger token was seen held (two exclusive
//                   holders at once, as a fenced resource would see them)
//   lock-tokens     a grant seen before another acquire was invoked has the smaller token
//   lock-fifo       of two requests both granted, the one queued (acknowledged) before the
//                   other was asked for is granted first
// and, with the liveness check, that every lock-delay (some holders ask for one) was ended.
// Part of class NodeSim (NodeSim.h).

#include <algorithm>
#include <map>
#include <string>

#include "locks/LockQueue.h"
#include "tests/sim/NodeSim.h"

namespace warden::tests::sim::detail {

namespace {
const char* const kLock = "m";
}

void NodeSim::lockStep() {
  schedule(now_ + rng_.range(10'000, 30'000), Event{Kind::LockStep});
  // They stop (keepalives too) 3 s before the other clients: their sessions (ttl at most 2.5 s)
  // expire and any lock-delay (at most 600 ms) ends before the run does.
  if (now_ + 3'000'000 >= clientsStopAt_) return;
  for (std::size_t c = 0; c < lockClients_.size(); ++c) {
    LockClient& l = lockClients_[c];
    if (l.phase != LockClient::Phase::NoSession && l.phase != LockClient::Phase::Creating && !l.keepalivePending &&
        now_ >= l.keepaliveAt) {
      lockKeepalive(c);
    }
    if (!l.pending && now_ >= l.nextAt) lockAct(c);
  }
}

// Runs `body` at a random running node for client c, remembering where its call went.
NodeSim::SimNode* NodeSim::lockNode(std::size_t c) {
  SimNode* n = pickNode();
  if (n) lockClients_[c].node = n->id;
  return n;
}

void NodeSim::lockKeepalive(std::size_t c) {
  SimNode* n = pickNode();
  if (!n) return;
  LockClient& l = lockClients_[c];
  l.keepalivePending = true;
  l.keepaliveNode = n->id;
  const std::uint64_t session = l.session, generation = ++l.keepaliveGeneration;
  auto done = [this, c, session, generation](Status status, std::uint64_t) {
    LockClient& x = lockClients_[c];
    if (x.session != session || x.keepaliveGeneration != generation) return;
    x.keepalivePending = false;
    if (status == Status::Ok) {
      x.keepaliveAt = now_ + x.ttlMs * 1000 / 3;
    } else if (status == Status::SessionNotFound) {
      lockSessionLost(x);
    } else {
      x.keepaliveAt = now_ + 100'000;
    }
  };
  if (auto ttl = n->core->fastKeepalive(session)) {
    done(Status::Ok, *ttl);
  } else {
    n->core->keepalive(session, done);
  }
  n->core->endTurn();
}

void NodeSim::lockSessionLost(LockClient& l) {
  trace("lock client of session " + std::to_string(l.session) + " lost it");
  l.phase = LockClient::Phase::NoSession;
  l.session = 0;
  l.keepalivePending = false;
  l.unknownAcquire = false;
}

void NodeSim::lockAct(std::size_t c) {
  LockClient& l = lockClients_[c];
  SimNode* n = lockNode(c);
  if (!n) return;
  const std::uint64_t generation = ++l.generation;
  // Answers for an earlier call (its node crashed, so the client moved on) are ignored.
  auto mine = [this, c, generation]() -> LockClient* {
    LockClient& x = lockClients_[c];
    if (x.generation != generation || !x.pending) return nullptr;
    x.pending = false;
    return &x;
  };
  l.pending = true;
  switch (l.phase) {
    case LockClient::Phase::NoSession: {
      l.session = rng_.next() | 1;
      l.ttlMs = rng_.range(1'500, 2'500);
      l.phase = LockClient::Phase::Creating;
      Command create = sessionCommand(CommandType::SessionCreate, l.session);
      create.ttlMs = l.ttlMs;
      n->core->submit(create, [this, mine](CommandResult r) {
        LockClient* x = mine();
        if (!x) return;
        if (r.status != Status::Ok) {
          x->phase = LockClient::Phase::NoSession;  // may exist: nobody keeps it, so it expires
          x->nextAt = now_ + 50'000;
          return;
        }
        x->phase = LockClient::Phase::Idle;
        x->keepaliveAt = now_ + x->ttlMs * 1000 / 3;
      });
      break;
    }
    case LockClient::Phase::Creating: l.pending = false; break;  // (a lost create: see lockGaveNoAnswer)
    case LockClient::Phase::Idle: {
      LockHold hold;
      hold.client = c;
      hold.acquireInvoked = now_;
      hold.fifoJudged = !l.unknownAcquire;
      l.hold = lockHolds_.size();
      lockHolds_.push_back(hold);
      Command acquire = sessionCommand(CommandType::LockAcquire, l.session);
      acquire.name = kLock;
      // Some holders ask for a lock-delay: a session that expires holding it keeps the lock from
      // everyone for that long, until the leader ends it (locks/DelayTimers.h).
      if (rng_.chance(0.3)) acquire.token = rng_.range(100, 600);
      n->core->submit(acquire, [this, mine](CommandResult r) {
        LockClient* x = mine();
        if (!x) return;
        if (r.status == Status::Ok && !r.results.empty()) {
          lockHolds_[x->hold].request = r.results[0].path;
          lockHolds_[x->hold].queuedAt = now_;
          x->phase = LockClient::Phase::Waiting;
          x->waitUntil = now_ + rng_.range(200'000, 1'500'000);
          x->withdrawn = false;
        } else if (r.status == Status::SessionNotFound) {
          lockSessionLost(*x);
        } else {
          // Maybe queued: the next acquire of this session finds it, but where it stands in the
          // queue is unknown from here on.
          x->unknownAcquire = true;
          x->nextAt = now_ + 50'000;
        }
      });
      break;
    }
    case LockClient::Phase::Waiting: {
      if (now_ >= l.waitUntil && !l.withdrawn) {
        Command withdraw = sessionCommand(CommandType::LockWithdraw, l.session);
        withdraw.name = kLock;
        n->core->submit(withdraw, [this, mine](CommandResult r) {
          LockClient* x = mine();
          if (!x) return;
          // Out of the queue, unless granted meanwhile: the next read tells.
          if (r.status == Status::Ok) x->withdrawn = true;
          else if (r.status == Status::SessionNotFound) lockSessionLost(*x);
          else x->nextAt = now_ + 50'000;
        });
        break;
      }
      lockObserve(c, *n, mine);
      break;
    }
    case LockClient::Phase::Holding: {
      if (now_ >= l.holdUntil) {
        Command release = sessionCommand(CommandType::LockRelease, l.session);
        release.name = kLock;
        release.token = lockHolds_[l.hold].token;
        n->core->submit(release, [this, mine](CommandResult r) {
          LockClient* x = mine();
          if (!x) return;
          if (r.status == Status::Ok || r.status == Status::NotHolder) {
            x->phase = LockClient::Phase::Idle;
            x->nextAt = now_ + rng_.range(0, 100'000);
          } else if (r.status == Status::SessionNotFound) {
            lockSessionLost(*x);
          } else {
            x->nextAt = now_ + 50'000;  // released by its token again
          }
        });
        break;
      }
      lockObserve(c, *n, mine);
      break;
    }
  }
  n->core->endTurn();
}

// A linearizable read of the lock: a waiter looks for its grant, a holder checks its token as a
// fenced resource would (API.md: GET /v1/locks/{name}/check).
void NodeSim::lockObserve(std::size_t c, SimNode& n, std::function<LockClient*()> mine) {
  const Time invoked = now_;
  n.core->readBarrier([this, c, &n, invoked, mine](Status status) {
    LockClient* x = mine();
    if (!x) return;
    x->nextAt = now_ + rng_.range(10'000, 40'000);
    if (status != Status::Ok) return;
    LockHold& hold = lockHolds_[x->hold];
    storage::Txn txn = storage::Txn::read(*n.env);
    const auto& tree = n.stateMachine->tree();
    if (x->phase == LockClient::Phase::Waiting) {
      auto record = tree.get(txn, hold.request);
      auto request = record ? locks::decodeRequest(record->data) : std::nullopt;
      if (request && request->granted()) {
        hold.token = request->token;
        hold.grantSeenAt = now_;
        lockSeen_.push_back(LockSeen{request->token, invoked, now_});
        x->phase = LockClient::Phase::Holding;
        x->holdUntil = now_ + rng_.range(20'000, 200'000);
        result_.lockGrants++;
      } else if (!request || x->withdrawn) {
        // Withdrawn, or gone with its session: asked again from the start.
        x->phase = LockClient::Phase::Idle;
        if (!n.stateMachine->sessions().get(txn, x->session)) lockSessionLost(*x);
      }
      return;
    }
    // Holding: is its token held? (The holders lead the queue.)
    const std::string lock = locks::lockPath(kLock);
    bool held = false;
    for (const std::string& child : tree.childrenPage(txn, lock, "", 64).names) {
      auto record = tree.get(txn, lock + "/" + child);
      auto request = record ? locks::decodeRequest(record->data) : std::nullopt;
      if (request && request->granted() && request->token == hold.token) held = true;
    }
    result_.lockChecks++;
    if (held) lockSeen_.push_back(LockSeen{hold.token, invoked, now_});
    else x->holdUntil = now_;  // lost it (its session expired): release, which is refused
  });
}

void NodeSim::lockGaveNoAnswer(NodeId node) {
  for (auto& l : lockClients_) {
    if (l.keepalivePending && l.keepaliveNode == node) {
      l.keepalivePending = false;
      l.keepaliveAt = now_ + 100'000;
    }
    if (!l.pending || l.node != node) continue;
    l.pending = false;
    l.nextAt = now_ + 50'000;
    if (l.phase == LockClient::Phase::Creating) l.phase = LockClient::Phase::NoSession;
    if (l.phase == LockClient::Phase::Idle) l.unknownAcquire = true;  // its acquire may have queued
  }
}

// At the end, every lock-delay was ended (the lock clients stopped 5 s before it): a leader that
// never ends one would keep its lock from everyone for good. Judged once a leader has served for
// 4 s: a takeover gives every session a fresh ttl (2.5 s at most), then the delay (0.6 s).
void NodeSim::checkLockDelaysEnded() {
  if (servingSince_ == 0 || now_ < servingSince_ + 4'000'000) return;
  for (auto& [id, n] : nodes_) {
    storage::Txn txn = storage::Txn::read(*n->env);
    if (!n->stateMachine->lockDelays(txn).empty()) {
      return fail("liveness", "node " + std::to_string(id) + " still holds lock " + kLock + " under a lock-delay at the end");
    }
  }
}

void NodeSim::checkLocks() {
  // lock-exclusive: a token seen held after (in real time) a larger one was seen held. Each
  // check goes on after a failure the caller left out (skipChecks), so each can be shown alone.
  std::map<std::uint64_t, Time> lastInvoked, firstReturned;
  for (const LockSeen& s : lockSeen_) {
    lastInvoked[s.token] = std::max(lastInvoked[s.token], s.invoked);
    auto [it, fresh] = firstReturned.emplace(s.token, s.returned);
    if (!fresh) it->second = std::min(it->second, s.returned);
  }
  Time earliestLarger = ~Time{0};
  std::uint64_t larger = 0;
  for (auto it = firstReturned.rbegin(); it != firstReturned.rend(); ++it) {
    const std::uint64_t token = it->first;
    if (earliestLarger < lastInvoked[token]) {
      fail("lock-exclusive", "token " + std::to_string(token) + " was seen held by a read invoked at " +
                                        std::to_string(lastInvoked[token] / 1000) + " ms, after token " +
                                        std::to_string(larger) + " was seen held at " +
                                        std::to_string(earliestLarger / 1000) + " ms");
      break;  // (a check left out by the caller goes on to the next)
    }
    if (it->second < earliestLarger) {
      earliestLarger = it->second;
      larger = token;
    }
  }
  for (const LockHold& a : lockHolds_) {
    if (a.token == 0) continue;
    for (const LockHold& b : lockHolds_) {
      if (b.token == 0 || a.request == b.request) continue;
      // lock-tokens: granted (and seen) before the other was even asked for.
      if (a.grantSeenAt < b.acquireInvoked && b.token <= a.token) {
        fail("lock-tokens", "a grant seen at " + std::to_string(a.grantSeenAt / 1000) + " ms has token " +
                                       std::to_string(a.token) + "; a later acquire (invoked at " +
                                       std::to_string(b.acquireInvoked / 1000) + " ms) was granted token " +
                                       std::to_string(b.token));
        if (!result_.ok) return;
      }
      // lock-fifo: queued before the other was asked for, so granted first.
      if (b.fifoJudged && a.queuedAt != 0 && a.queuedAt < b.acquireInvoked && b.token < a.token) {
        fail("lock-fifo", "request " + a.request + " queued at " + std::to_string(a.queuedAt / 1000) +
                                     " ms was granted token " + std::to_string(a.token) + " after request " + b.request +
                                     ", asked for at " + std::to_string(b.acquireInvoked / 1000) + " ms (token " +
                                     std::to_string(b.token) + ")");
        if (!result_.ok) return;
      }
    }
  }
}

}  // namespace warden::tests::sim::detail
