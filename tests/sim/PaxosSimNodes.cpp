// The Paxos simulator's nodes and network: starting a replica from what its disk kept, what a
// node does with a Ready (apply, answer, fsync, then send), the network that drops, duplicates
// and delays messages, and crashes and restarts (with a wiped disk or not). Part of class
// Simulation (PaxosSim.h).

#include <algorithm>
#include <memory>
#include <string>
#include <utility>

#include "tests/sim/PaxosSim.h"

namespace warden::tests::sim::paxos_detail {

// ---- processes and their disks ---------------------------------------------------------

void Simulation::startReplica(SimNode& n, bool wiped) {
  paxos::DurableState durable = n.store.load();
  // A wiped node that crashed before it could record that it is rebuilding comes back to an
  // empty disk again; production tells this case by an empty data directory in a cluster
  // with history, the simulator by remembering the wipe.
  const bool pristine = !durable.learner && durable.promised.isZero() && durable.accepted.empty() &&
                        durable.compactedUpTo == 0 && n.applied.empty();
  if (n.wiped && pristine) wiped = true;
  if (wiped) n.wiped = true;
  n.replica = std::make_unique<Replica>(config(n.id), std::move(durable), n.applied.size(), wiped, n.rng, localNow(n));
}

paxos::ReplicaConfig Simulation::config(NodeId id) const {
  paxos::ReplicaConfig c = config_;
  c.id = id;
  return c;
}

// ---- a node's Ready, and the network ---------------------------------------------------

// What a node does with a Ready: apply and answer at once, queue the rest behind its fsync.
void Simulation::handle(SimNode& n, Ready ready) {
  for (const auto& entry : ready.committed) apply(n, entry);
  for (const auto& read : ready.reads) finishRead(n, read);
  for (const auto& rejected : ready.rejected) {
    if (rejected.leaderHint != 0) knownLeader_ = rejected.leaderHint;
  }
  for (NodeId peer : ready.snapshotNeeded) {
    result_.snapshots++;
    Event e{now_ + rng_.range(1'000, 5'000), 0, EventKind::Snapshot, peer, node(peer).incarnation};
    e.snapshot = n.applied;
    schedule(std::move(e));
  }
  if (!result_.ok) return;
  if (ready.records.empty() && !ready.hasMessages()) return;
  // One disk per node, syncs in order; a Ready without records waits only for earlier ones.
  Time done = std::max(now_, n.syncFreeAt) + (ready.records.empty() ? 0 : rng_.range(50, 1'500));
  n.syncFreeAt = done;
  n.unsynced.push_back(std::move(ready));
  schedule(Event{done, 0, EventKind::SyncDone, n.id, n.incarnation});
  maybeCompact(n);
}

void Simulation::transmit(SimNode& from, Message message) {
  SimNode& to = node(message.to);
  if (message.to == from.id) {  // to itself: no network
    schedule(Event{now_, 0, EventKind::Deliver, to.id, to.incarnation, std::move(message)});
    return;
  }
  if (blocked_.count({from.id, to.id}) || rng_.chance(dropRate_)) return;
  if (rng_.chance(dupRate_)) {
    schedule(Event{now_ + rng_.range(100, maxDelay_), 0, EventKind::Deliver, to.id, to.incarnation, message});
  }
  schedule(Event{now_ + rng_.range(100, maxDelay_), 0, EventKind::Deliver, to.id, to.incarnation, std::move(message)});
}

// ---- crashes and restarts --------------------------------------------------------------

void Simulation::crash(SimNode& n) {
  trace("crash " + std::to_string(n.id));
  result_.crashes++;
  n.up = false;
  n.paused = false;
  n.incarnation++;
  n.unsynced.clear();  // never fsynced: lost, messages and all
  n.deferred.clear();
  n.syncFreeAt = 0;
  n.replica.reset();
  n.keeper = ::warden::session::Keeper();  // memory only
  n.keeper.bugs = options_.keeperBugs;
}

void Simulation::restart(SimNode& n, bool wiped) {
  trace(std::string(wiped ? "wipe and restart " : "restart ") + std::to_string(n.id));
  if (wiped) {
    n.store.state = {};
    n.applied.clear();
    rebuildSessions(n);
    result_.wipes++;
  }
  n.up = true;
  n.incarnation++;
  startReplica(n, wiped);
}

}  // namespace warden::tests::sim::paxos_detail
