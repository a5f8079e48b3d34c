// The Paxos simulator's faults while faulty: crashes, restarts, wiped disks, pauses past the
// lease, partitions (both ways, one way, one link, a split) and a worse network; then the heal.
// Part of class Simulation (PaxosSim.h).

#include <string>
#include <vector>

#include "tests/sim/PaxosSim.h"

namespace warden::tests::sim::paxos_detail {

// ---- faults ----------------------------------------------------------------------------

void Simulation::injectFault() {
  if (now_ >= options_.faultyFor) return;
  schedule(Event{now_ + rng_.range(100'000, 900'000), 0, EventKind::Fault});
  std::vector<SimNode*> up, down;
  for (auto& n : nodes_) (n->up ? up : down).push_back(n.get());
  SimNode* leader = nullptr;
  for (auto* n : up) {
    if (n->replica->isLeader()) leader = n;
  }
  const auto pick = rng_.below(100);
  if (pick < 18 && !up.empty()) {
    crash(*up[rng_.below(up.size())]);
  } else if (pick < 36 && !down.empty()) {
    restart(*down[rng_.below(down.size())], false);
  } else if (pick < 42 && down.empty()) {
    // Wipe one disk, but only while every other node is up and none is still rebuilding:
    // losing a second disk before the first has rebuilt can lose data in any system.
    bool rebuilding = false;
    for (auto* n : up) rebuilding = rebuilding || n->replica->isLearner();
    if (!rebuilding) {
      SimNode* victim = up[rng_.below(up.size())];
      crash(*victim);
      restart(*victim, true);
    }
  } else if (pick < 56 && !up.empty()) {
    SimNode* victim = (leader && rng_.chance(0.7)) ? leader : up[rng_.below(up.size())];
    if (!victim->paused) {
      result_.pauses++;
      victim->paused = true;
      trace("pause " + std::to_string(victim->id));
      // Often longer than the lease: the node must notice when it wakes.
      schedule(Event{now_ + rng_.range(50'000, 1'500'000), 0, EventKind::Resume, victim->id, victim->incarnation});
    }
  } else if (pick < 70) {
    partition(leader);
  } else if (pick < 85) {
    blocked_.clear();
    trace("heal partition");
  } else {
    dropRate_ = rng_.unit() * 0.15;
    dupRate_ = rng_.unit() * 0.05;
    maxDelay_ = rng_.range(200, 30'000);
  }
}

void Simulation::partition(SimNode* leader) {
  result_.partitions++;
  blocked_.clear();
  const auto n = nodes_.size();
  const NodeId someone = static_cast<NodeId>(rng_.range(1, n));
  const NodeId isolated = leader && rng_.chance(0.6) ? leader->id : someone;
  switch (rng_.below(4)) {
    case 0:  // one node cut off both ways
    case 1:  // one node can hear but not be heard
      for (auto& other : nodes_) {
        if (other->id == isolated) continue;
        blocked_.insert({isolated, other->id});
        if (rng_.chance(0.5)) blocked_.insert({other->id, isolated});
      }
      trace("partition around " + std::to_string(isolated));
      break;
    case 2: {  // a single link fails one way: a follower stops hearing the leader
      NodeId to = static_cast<NodeId>(rng_.range(1, n));
      if (to == isolated) to = to % n + 1;
      blocked_.insert({isolated, to});
      trace("link " + std::to_string(isolated) + "->" + std::to_string(to) + " down");
      break;
    }
    default: {  // a random split into two sides
      std::vector<int> side(n + 1);
      for (NodeId id = 1; id <= n; ++id) side[id] = static_cast<int>(rng_.below(2));
      for (NodeId a = 1; a <= n; ++a) {
        for (NodeId b = 1; b <= n; ++b) {
          if (side[a] != side[b]) blocked_.insert({a, b});
        }
      }
      trace("split partition");
      break;
    }
  }
}

void Simulation::heal() {
  trace("heal everything");
  blocked_.clear();
  dropRate_ = 0;
  dupRate_ = 0;
  maxDelay_ = 5'000;
  for (auto& n : nodes_) {
    if (!n->up) restart(*n, false);
    if (n->paused) schedule(Event{now_, 0, EventKind::Resume, n->id, n->incarnation});
  }
}

}  // namespace warden::tests::sim::paxos_detail
