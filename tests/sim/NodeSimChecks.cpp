// The whole-node simulator's checks: a stable leader once settled, agreement and expiries as
// nodes apply, and after healing convergence, liveness and the sessions' fate. Part of class
// NodeSim (NodeSim.h); the linearizability check is in Linearizability.cpp.

#include <algorithm>
#include <optional>
#include <string>
#include <vector>

#include "tests/sim/NodeSim.h"

namespace warden::tests::sim::detail {

// Since when some leader has spoken for sessions without a break (0: nobody does now).
void NodeSim::noteServing() {
  bool serving = false;
  for (const auto& [id, n] : nodes_) {
    if (!runs(*n) || !n->core->servesSessions()) continue;
    serving = true;
    // Once healed and settled (a leader served for a second since the heal; the late node
    // still cut off), nothing should cost an election: a node back from a partition must not
    // depose the leader. (A second of serving that began before the heal is not enough: seed
    // 6000133, 3 nodes, settled at once on a leader about to lose its majority, one node cut
    // off and the third rebuilding a lost disk.)
    const paxos::Ballot ballot = n->core->replica()->ballot();
    if (healed_ && servingSince_ != 0 && now_ > std::max(servingSince_, settleFrom_) + 1'000'000 &&
        settledBallot_.isZero() && n->id != lateNode_) {
      settledBallot_ = ballot;
    }
    // Only a higher ballot is a new leader: a lower one is a leader deposed while it was paused
    // or cut off that has not taken a turn since (it checks its lease before it acts on it,
    // which the session and history checks judge). The sweep's seed 2004481 (5 nodes) met one
    // just resumed by the heal.
    if (settledBallot_.isZero() || !(settledBallot_ < ballot)) continue;
    // One change is no fault of the protocol: the late node back with a promise above the
    // settled leader's ballot, given before its cut (a campaign it began on a pre-vote a
    // majority granted while it was connected, or another's Prepare). It refuses that leader's
    // Accepts with it, and a leader that hears a higher ballot steps down (PAXOS.md 10; etcd's
    // raft does the same). Pre-vote cannot prevent it. Only once that node is back (before, it
    // can reach nobody), and then the check settles again on the next leader.
    if (allLinksBack_ && settledBallot_ < latePromiseAtCut_) {
      trace("stable-leader: node " + std::to_string(lateNode_) + ", back with promise " +
            paxos::toString(latePromiseAtCut_) + " from before its cut, deposed " + paxos::toString(settledBallot_) +
            "; settling again");
      settledBallot_ = paxos::Ballot{};
      settleFrom_ = now_;
      continue;
    }
    fail("stable-leader", "the leader changed from " + paxos::toString(settledBallot_) + " to " +
                              paxos::toString(ballot) + " in a healed, settled cluster");
  }
  if (serving && allLinksBack_ && !rebuildCheckPlanned_) {
    rebuildCheckPlanned_ = true;
    schedule(now_ + kRebuildUs, Event{Kind::RebuildCheck});
  }
  if (!serving) servingSince_ = 0;
  if (serving && servingSince_ == 0) servingSince_ = now_;
}

// ---- what apply did ---------------------------------------------------------------------

void NodeSim::onApplied(NodeId id, std::uint64_t slot, const paxos::Value& value, const Entry& entry,
                        const std::vector<CommandResult>& results) {
  const std::uint64_t h = valueHash(value);
  auto [it, first] = chosen_.emplace(slot, h);
  if (first) {
    result_.slots++;
    result_.digest = mix(result_.digest, h);
  } else if (it->second != h) {
    fail("agreement", "node " + std::to_string(id) + " applied a second value for slot " + std::to_string(slot));
    return;
  }
  for (std::size_t i = 0; i < entry.commands.size() && i < results.size(); ++i) {
    const Command& c = entry.commands[i];
    if (c.type != CommandType::SessionExpire || results[i].status != Status::Ok) continue;
    trace("node " + std::to_string(id) + " applies the expiry of session " + std::to_string(c.session) + " at slot " +
          std::to_string(slot) + " (epoch " + toString(c.epoch) + ")");
    if (expiredAt_.emplace(c.session, now_).second) {
      result_.expiries++;
      checkExpiry(c.session);
    }
  }
}

void NodeSim::checkExpiry(std::uint64_t id) {
  for (const auto& s : sessionClients_) {
    if (s.id != id || s.ackedInvoke == 0) continue;
    // The expiring leader's keeper waited a ttl on its own clock from a keepalive it answered
    // after its invocation, or from its takeover, which came later still.
    const Time minimum = s.ttlMs * 1000 * (1'000'000 - 2 * kMaxDriftPpm) / 1'000'000;
    if (now_ < s.ackedInvoke + minimum) {
      fail("expiry-early", "session " + std::to_string(id) + " (ttl " + std::to_string(s.ttlMs) +
                               " ms) expired at " + std::to_string(now_ / 1000) + " ms; its latest acknowledged keepalive was invoked at " +
                               std::to_string(s.ackedInvoke / 1000) + " ms");
    }
  }
}

// ---- after healing ----------------------------------------------------------------------

std::uint64_t NodeSim::stateDigest(SimNode& n) {
  storage::Txn txn = storage::Txn::read(*n.env);
  std::uint64_t h = n.stateMachine->appliedIndex(txn);
  n.stateMachine->exportState(txn, [&](StateMachine::Row row) {
    h = mix(h, row.table);
    h = mix(h, hashBytes(row.key));
    h = mix(h, hashBytes(row.value));
  });
  return h;
}

bool NodeSim::converged() {
  std::optional<std::uint64_t> first;
  for (auto& [id, n] : nodes_) {
    if (!n->core) return false;
    const std::uint64_t d = stateDigest(*n);
    if (first && *first != d) return false;
    first = d;
  }
  return true;
}

void NodeSim::checkEnd() {
  // Every node applies the same state (bounded: another simulated second at most).
  const Time limit = now_ + 3'000'000;
  bool same = false;
  for (Time probe = now_; probe < limit && result_.ok; probe += 100'000) {
    loop([&] { return now_ >= probe; });
    if ((same = converged())) break;
  }
  if (!result_.ok) return;
  if (!same) return fail("liveness", "the nodes did not converge after healing");
  // A write through each node succeeds.
  for (auto& [id, n] : nodes_) {
    std::optional<Status> answer;
    Op set;
    set.type = OpType::Set;
    set.path = "/final";
    set.data = std::to_string(id);
    set.createIfMissing = true;
    n->core->submit(txnCommand({set}), [&answer](CommandResult r) { answer = r.status; });
    n->core->endTurn();
    const Time deadline = now_ + 3'000'000;
    loop([&] { return answer.has_value() || now_ >= deadline; });
    if (!result_.ok) return;
    if (answer != Status::Ok) return fail("liveness", "a write through node " + std::to_string(id) + " failed after healing");
  }
  checkSessionsAtEnd();
  if (result_.ok) checkLockDelaysEnded();
}

void NodeSim::checkSessionsAtEnd() {
  for (auto& [id, n] : nodes_) {
    storage::Txn txn = storage::Txn::read(*n->env);
    for (const auto& s : sessionClients_) {
      const bool exists = n->stateMachine->sessions().get(txn, s.id).has_value();
      const bool keptToTheEnd = s.keep && s.phase == SessionClient::Phase::Keeping && s.failedSinceAck == 0 &&
                                now_ < s.lastAckAt + s.ttlMs * 1000 / 2;
      if (keptToTheEnd && !exists) {
        return fail("liveness", "node " + std::to_string(id) + " lost session " + std::to_string(s.id) +
                                    ", which its client keeps alive");
      }
      if (keptToTheEnd && s.ephemeral && !n->stateMachine->tree().get(txn, "/e" + std::to_string(s.id))) {
        return fail("liveness", "node " + std::to_string(id) + " lost the ephemeral node of live session " +
                                    std::to_string(s.id));
      }
      // Gone a ttl (and some slack) after it was abandoned, once some leader has been
      // speaking for sessions all that time.
      const Time from = std::max(s.abandonedAt, servingSince_);
      const Time gone = from + s.ttlMs * 1000 + 2'500'000;
      if (!s.keep && servingSince_ != 0 && now_ > gone && exists) {
        return fail("liveness", "node " + std::to_string(id) + " still has session " + std::to_string(s.id) +
                                    ", abandoned at " + std::to_string(s.abandonedAt / 1000) + " ms");
      }
    }
  }
}

// A lost disk is rebuilt within moments once a leader serves the whole network, while writes keep
// coming (they must not starve the rebuild).
void NodeSim::checkRebuilt() {
  if (now_ > clientsStopAt_) return;  // the writes stopped: nothing to judge
  for (auto& [id, n] : nodes_) {
    if (!n->store->state.started || n->store->state.learner) {
      return fail("rebuild", "node " + std::to_string(id) + " still rebuilds " + std::to_string(kRebuildUs / 1000) +
                                 " ms after every link came back, with writes running");
    }
  }
}

}  // namespace warden::tests::sim::detail
