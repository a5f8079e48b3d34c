// The Paxos simulator's sessions: the node's rule for when a leader speaks for sessions, the
// leader's Keeper and the expiries it proposes, the session table in apply, and the session
// clients (create, ephemeral nodes, keepalives, walking away). Part of class Simulation
// (PaxosSim.h); the session checks are in PaxosSimChecks.cpp.

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tests/sim/PaxosSim.h"

namespace warden::tests::sim::paxos_detail {

// ---- sessions --------------------------------------------------------------------------

Time Simulation::localMs(Time localUs) { return localUs / 1000; }

// The node's rule (ReplicatedLog::syncKeeper): a leader speaks for sessions only while it holds
// a lease and has applied every slot that lease read covers.
bool Simulation::servesSessions(SimNode& n) {
  if (!runnable(n) || !n.replica->isLeader()) return false;
  auto index = n.replica->leaseRead(localNow(n));
  return index && n.applied.size() >= *index;
}

void Simulation::syncKeeper(SimNode& n) {
  if (!n.replica || !n.replica->isLeader()) {
    if (n.keeper.leading()) n.keeper.stepDown();
    return;
  }
  if (!servesSessions(n) || n.keeper.leading()) return;
  std::vector<std::pair<std::uint64_t, std::uint64_t>> table(n.sessions.begin(), n.sessions.end());
  n.keeper.takeOver(localMs(localNow(n)), table);
  trace("node " + std::to_string(n.id) + " speaks for " + std::to_string(table.size()) + " sessions");
}

void Simulation::proposeExpiries(SimNode& n) {
  syncKeeper(n);
  if (!servesSessions(n) || !n.keeper.leading() || localNow(n) < n.nextExpiryScan) return;
  n.nextExpiryScan = localNow(n) + 50'000;
  std::vector<std::string> commands;
  for (std::uint64_t id : n.keeper.due(localMs(localNow(n)))) {
    std::string c = "X" + std::to_string(id) + "@" + std::to_string(now_);
    proposedCommands_.insert(c);
    expiryProposed_.insert(id);
    commands.push_back(std::move(c));
  }
  if (commands.empty()) return;
  trace("node " + std::to_string(n.id) + " proposes " + std::to_string(commands.size()) + " expiries");
  handle(n, n.replica->propose(std::move(commands), localNow(n)));
}

// The session table's part of apply; `live` tells the Keeper, as the node's apply does.
void Simulation::applySessions(SimNode& n, const Value& value, bool live) {
  for (const auto& c : value.commands) {
    auto sc = parseSessionCommand(c);
    if (!sc) continue;
    if (sc->kind == 'S') {
      if (n.sessions.emplace(sc->id, sc->number).second && live) {
        n.keeper.created(sc->id, sc->number, localMs(localNow(n)));
      }
    } else if (sc->kind == 'E') {
      if (n.sessions.count(sc->id)) n.ephemerals.emplace(sc->path, sc->id);
    } else if (n.sessions.erase(sc->id)) {
      std::erase_if(n.ephemerals, [&](const auto& e) { return e.second == sc->id; });
      if (live) n.keeper.ended(sc->id);
    }
  }
}

void Simulation::rebuildSessions(SimNode& n) {
  n.sessions.clear();
  n.ephemerals.clear();
  n.keeper.stepDown();  // rebuilt from the table when it leads again
  for (const auto& value : n.applied) applySessions(n, value, false);
}

void Simulation::sessionStep() {
  schedule(Event{now_ + rng_.range(10'000, 40'000), 0, EventKind::Sessions});
  const Time stopNew = options_.faultyFor + options_.healedFor / 2;
  std::size_t kept = 0;
  for (const auto& [id, cs] : clientSessions_) kept += cs.keep && !cs.lost;
  if (now_ < stopNew && kept < 6 && rng_.chance(0.3)) {
    const std::uint64_t id = ++sessionCounter_;
    ClientSession cs;
    cs.ttlMs = rng_.range(300, 1500);
    cs.create = "S" + std::to_string(id) + ":" + std::to_string(cs.ttlMs);
    // Some clients walk away at once; the rest keep their session (a few abandon it later).
    cs.keep = rng_.chance(0.8);
    cs.abandonedAt = now_;
    proposedCommands_.insert(cs.create);
    cs.createTaken = propose({cs.create});
    clientSessions_[id] = cs;
    result_.sessions++;
  }
  for (auto& [id, cs] : clientSessions_) {
    // A create no leader took is surely not in the log: sending it again cannot apply it twice.
    if (!cs.createTaken && now_ < stopNew) cs.createTaken = propose({cs.create});
    if (!cs.keep || cs.lost || now_ < cs.nextKeepalive) continue;
    if (!chosenCommands_.count(cs.create)) {
      cs.nextKeepalive = now_ + 20'000;  // not created (yet)
      continue;
    }
    if (now_ < stopNew && rng_.chance(0.01)) {
      cs.keep = false;
      cs.abandonedAt = now_;
      continue;
    }
    keepalive(id, cs);
    if (now_ < stopNew && cs.keep && !cs.lost && cs.nodes.size() < 3 && rng_.chance(0.2)) {
      std::string c = "E" + std::to_string(id) + ":/s" + std::to_string(id) + "/n" + std::to_string(cs.nodes.size());
      proposedCommands_.insert(c);
      cs.nodes.push_back(c);
      propose({c});
    }
  }
}

void Simulation::keepalive(std::uint64_t id, ClientSession& cs) {
  NodeId target = knownLeader_ != 0 ? knownLeader_ : static_cast<NodeId>(rng_.range(1, nodes_.size()));
  SimNode& n = node(target);
  syncKeeper(n);
  if (!servesSessions(n) || !n.keeper.leading()) {
    // Not the leader (or not yet able to speak for sessions): ask again soon, maybe elsewhere.
    knownLeader_ = runnable(n) && n.replica->leaderHint() != n.id ? n.replica->leaderHint() : 0;
    cs.nextKeepalive = now_ + rng_.range(5'000, 30'000);
    return;
  }
  knownLeader_ = n.id;
  if (auto ttl = n.keeper.keepalive(id, localMs(localNow(n)))) {
    if (expiryChosen_.count(id)) {
      fail("keepalive-after-expiry", "node " + std::to_string(n.id) + " acknowledged a keepalive of session " + std::to_string(id) +
           " after its expiry was chosen");
      return;
    }
    result_.keepalivesAcked++;
    cs.lastAck = now_;
    cs.nextKeepalive = now_ + cs.ttlMs * 1000 / 3;
    return;
  }
  if (!expiryProposed_.count(id)) {
    fail("keepalive-refused", "node " + std::to_string(n.id) + " refused a keepalive of live session " + std::to_string(id));
    return;
  }
  cs.lost = true;
  trace("client lost session " + std::to_string(id));
}

}  // namespace warden::tests::sim::paxos_detail
