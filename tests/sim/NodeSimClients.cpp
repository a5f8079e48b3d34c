// The whole-node simulator's clients: register clients (reads, writes and compare-and-swaps,
// recorded for the linearizability check) and session clients (create, ephemeral node,
// keepalives, walking away). Part of class NodeSim (NodeSim.h).

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "tests/sim/NodeSim.h"

namespace warden::tests::sim::detail {

// ---- register clients -------------------------------------------------------------------

NodeSim::SimNode* NodeSim::pickNode() {
  std::vector<SimNode*> live;
  for (auto& [id, n] : nodes_) {
    if (runs(*n)) live.push_back(n.get());
  }
  if (live.empty()) return nullptr;
  return live[rng_.range(0, live.size() - 1)];
}

void NodeSim::clientStep(std::size_t c, SimNode* aimedAt) {
  Client& client = clients_[c];
  if (client.busy || now_ >= clientsStopAt_) return;
  // A step aimed at a node (the deposed-reads schedule) is a lease read there.
  const bool aimed = aimedAt != nullptr;
  SimNode* n = aimed ? aimedAt : pickNode();
  if (!n) {
    schedule(now_ + 20'000, Event{Kind::ClientStep, 0, 0, {}, c});
    return;
  }
  const std::string key = kKeys[rng_.range(0, 2)];
  Operation op;
  op.client = c;
  op.key = key;
  op.invokedAt = now_;
  client.busy = true;
  client.node = n->id;
  client.process = n->process;
  client.op = history_.size();
  const std::uint64_t roll = rng_.range(0, 99);
  if (aimed || roll < 35) {
    result_.readsAtResume += aimed;
    op.kind = Operation::Kind::Read;
    history_.push_back(op);
    result_.reads++;
    auto answer = [this, c, n, key](Status status) {
      if (status != Status::Ok) return finishOp(c, Operation::Outcome::Failed, std::nullopt, false);
      storage::Txn txn = storage::Txn::read(*n->env);
      auto record = n->stateMachine->tree().get(txn, key);
      if (record) clients_[c].seen[key] = {record->data, record->stat.version};
      finishOp(c, Operation::Outcome::Ok, record ? std::optional<std::string>(record->data) : std::nullopt, false);
    };
    // Half the reads try the driver-free lease read first, as the HTTP edge does for all.
    if ((aimed || rng_.chance(0.5)) && n->core->fastRead()) {
      answer(Status::Ok);
    } else {
      n->core->readBarrier(answer);
    }
  } else {
    Op set;
    set.type = OpType::Set;
    set.path = key;
    std::string value = "c" + std::to_string(c) + "-" + std::to_string(++client.written);
    if (rng_.chance(options_.largeWriteShare)) value += std::string(rng_.range(100'000, 900'000), 'v');  // near the limits
    set.data = value;
    const bool cas = roll < 55 && client.seen.count(key);
    if (cas) {
      op.kind = Operation::Kind::Cas;
      op.expected = client.seen[key].first;
      set.version = client.seen[key].second;
    } else {
      op.kind = Operation::Kind::Write;
      set.createIfMissing = true;
    }
    op.value = value;
    history_.push_back(op);
    // Half the writes are answered as soon as applied, as the HTTP edge answers node writes, the
    // other half once committed (AnswerWhen).
    const auto when = rng_.chance(0.5) ? AnswerWhen::Applied : AnswerWhen::Visible;
    n->core->submit(txnCommand({set}), [this, c, cas](CommandResult r) {
      if (r.status == Status::Ok) return finishOp(c, Operation::Outcome::Ok, std::nullopt, true);
      if (cas && (r.status == Status::BadVersion || r.status == Status::NotFound)) {
        return finishOp(c, Operation::Outcome::Ok, std::nullopt, false);
      }
      // "Not applied" answers are judged: the history checker takes them at their word. Only a
      // timeout (or a crash, or a shutdown) leaves the outcome unknown.
      const bool unknown = r.status == Status::Timeout || r.status == Status::Unavailable;
      finishOp(c, unknown ? Operation::Outcome::Unknown : Operation::Outcome::Failed, std::nullopt, false);
    }, when);
  }
  n->core->endTurn();
}

void NodeSim::finishOp(std::size_t c, Operation::Outcome outcome, std::optional<std::string> observed, bool casSucceeded) {
  Client& client = clients_[c];
  if (!client.busy) return;
  Operation& op = history_[client.op];
  op.outcome = outcome;
  op.observed = std::move(observed);
  op.casSucceeded = casSucceeded;
  op.returnedAt = now_;
  client.busy = false;
  if (options_.trace) {
    static const char* kinds[] = {"read", "write", "cas"};
    static const char* outcomes[] = {"ok", "failed", "unknown"};
    std::string v = op.kind == Operation::Kind::Read ? (op.observed ? op.observed->substr(0, 20) : "absent")
                                                      : op.value->substr(0, 20);
    trace("client " + std::to_string(c) + " " + kinds[static_cast<int>(op.kind)] + " " + op.key + " " + v + " at node " +
          std::to_string(client.node) + ": " + outcomes[static_cast<int>(outcome)] +
          (op.kind == Operation::Kind::Cas ? (casSucceeded ? " (swapped)" : " (no swap)") : ""));
  }
  result_.operations++;
  if (outcome == Operation::Outcome::Ok) result_.okOperations++;
  if (outcome == Operation::Outcome::Unknown) result_.unknownOperations++;
  schedule(now_ + rng_.range(0, 20'000), Event{Kind::ClientStep, 0, 0, {}, c});
}

// ---- session clients --------------------------------------------------------------------

void NodeSim::sessionStep() {
  schedule(now_ + rng_.range(10'000, 40'000), Event{Kind::SessionStep});
  std::size_t kept = 0;
  for (const auto& s : sessionClients_) kept += s.keep && s.phase != SessionClient::Phase::Gone;
  if (!healed_ && kept < 8 && rng_.chance(0.3)) {
    SessionClient s;
    s.id = rng_.next() | 1;
    s.ttlMs = rng_.range(1'000, 2'500);
    if (rng_.chance(0.2)) abandon(s);
    sessionClients_.push_back(s);
    result_.sessions++;
  }
  for (auto& s : sessionClients_) {
    if (s.pending || s.phase == SessionClient::Phase::Gone || now_ < s.nextAt) continue;
    if (!s.keep && s.phase != SessionClient::Phase::Creating) continue;  // walked away once created
    if (s.phase == SessionClient::Phase::Keeping && now_ < sessionsQuietUntil_) continue;  // the nemesis silenced it
    if (!healed_ && s.phase == SessionClient::Phase::Keeping && rng_.chance(0.002)) {
      abandon(s);
      continue;
    }
    sessionAct(s);
  }
}

void NodeSim::abandon(SessionClient& s) {
  s.keep = false;
  s.abandonedAt = now_;
  trace("client abandons session " + std::to_string(s.id));
}

void NodeSim::sessionAct(SessionClient& s) {
  SimNode* n = pickNode();
  if (!n) return;
  const std::uint64_t id = s.id;
  pendingNode_[id] = n->id;
  auto find = [this, id]() -> SessionClient* {
    for (auto& x : sessionClients_) {
      if (x.id == id) return &x;
    }
    return nullptr;
  };
  if (s.phase == SessionClient::Phase::Creating) {
    Command create = sessionCommand(CommandType::SessionCreate, id);
    create.ttlMs = s.ttlMs;
    s.pending = true;
    const Time invoked = now_;
    n->core->submit(create, [this, find, invoked](CommandResult r) {
      SessionClient* x = find();
      x->pending = false;
      if (r.status == Status::Ok) {
        x->created = true;
        x->phase = SessionClient::Phase::Ephemeral;
        x->ackedInvoke = invoked;
        x->lastAckAt = now_;
        if (!x->keep) x->abandonedAt = now_;
      } else {
        sessionGaveNoAnswer(*x);  // it may exist: nobody keeps it, so it must expire
      }
    });
  } else if (s.phase == SessionClient::Phase::Ephemeral) {
    Op e;
    e.type = OpType::Create;
    e.path = "/e" + std::to_string(id);
    e.ephemeral = true;
    e.session = id;
    s.pending = true;
    n->core->submit(txnCommand({e}), [this, find](CommandResult r) {
      SessionClient* x = find();
      x->pending = false;
      if (r.status == Status::Ok) x->ephemeral = true;
      // Created by an earlier try whose answer was lost, or the session is gone: move on.
      x->phase = r.status == Status::SessionNotFound ? SessionClient::Phase::Gone : SessionClient::Phase::Keeping;
    });
  } else {
    const Time invoked = now_;
    auto done = [this, find, invoked](Status status, std::uint64_t) {
      SessionClient* x = find();
      x->pending = false;
      keepaliveAnswered(*x, status, invoked);
    };
    s.pending = true;
    if (auto ttl = n->core->fastKeepalive(id)) {
      done(Status::Ok, *ttl);
    } else {
      n->core->keepalive(id, done);
    }
  }
  n->core->endTurn();
}

void NodeSim::keepaliveAnswered(SessionClient& s, Status status, Time invoked) {
  trace("keepalive of session " + std::to_string(s.id) + " invoked at " + std::to_string(invoked / 1000) +
        " ms: " + (status == Status::Ok ? "ok" : status == Status::SessionNotFound ? "not found" : "no answer"));
  if (status == Status::Ok) {
    result_.keepalivesAcked++;
    auto gone = expiredAt_.find(s.id);
    if (gone != expiredAt_.end() && invoked > gone->second) {
      fail("keepalive-late", "a keepalive of session " + std::to_string(s.id) + " invoked at " +
                                 std::to_string(invoked / 1000) + " ms was acknowledged; its expiry took effect at " +
                                 std::to_string(gone->second / 1000) + " ms");
    }
    s.ackedInvoke = std::max(s.ackedInvoke, invoked);
    s.lastAckAt = now_;
    s.failedSinceAck = 0;
    s.nextAt = now_ + s.ttlMs * 1000 / 3;
  } else if (status == Status::SessionNotFound) {
    trace("client lost session " + std::to_string(s.id));
    s.phase = SessionClient::Phase::Gone;
  } else {
    s.failedSinceAck++;
    s.nextAt = now_ + 100'000;  // try again soon, maybe elsewhere
  }
}

void NodeSim::sessionGaveNoAnswer(SessionClient& s) {
  s.pending = false;
  if (s.phase == SessionClient::Phase::Creating) {
    // Its create may or may not have been applied: nobody keeps it alive now.
    s.phase = SessionClient::Phase::Gone;
    if (s.keep) abandon(s);
  } else {
    s.failedSinceAck++;
    s.nextAt = now_ + 100'000;
  }
}

}  // namespace warden::tests::sim::detail
