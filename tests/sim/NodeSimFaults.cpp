// The whole-node simulator's faults: crashes, lost disks, pauses, partitions and wall-clock
// jumps and freezes while faulty, then the heal (with one node left cut off a while). Part of class
// NodeSim (NodeSim.h).

#include <string>

#include "tests/sim/NodeSim.h"

namespace warden::tests::sim::detail {

// ---- faults -----------------------------------------------------------------------------

void NodeSim::fault() {
  if (healed_) return;
  schedule(now_ + rng_.range(100'000, 600'000), Event{Kind::Fault});
  // A planned schedule has the network and the nodes to itself until it ends.
  if (nemesis_.program != Program::None) return;
  // Leaders get half of the faults: their hand-overs are where the node's rules are tested.
  NodeId id = static_cast<NodeId>(rng_.range(1, options_.replicas));
  if (rng_.chance(0.5)) {
    for (auto& [other, m] : nodes_) {
      if (m->core && m->core->replica() && m->core->replica()->isLeader()) id = other;
    }
  }
  SimNode& n = *nodes_[id];
  switch (rng_.range(0, 6)) {
    case 0:
    case 1: {
      if (options_.powerLossShare > 0 && rng_.chance(options_.powerLossShare)) {
        powerLoss(n);
      } else {
        crash(n);
      }
      schedule(now_ + rng_.range(50'000, 1'500'000), Event{Kind::Restart, id});
      break;
    }
    case 2: {
      // One lost disk at a time: the rebuild's argument assumes it.
      if (!n.core || someoneRebuilding()) break;
      crash(n);
      freshDisk(n);
      n.held.clear();
      result_.wipes++;
      trace("node " + std::to_string(id) + " loses its disk");
      schedule(now_ + rng_.range(50'000, 800'000), Event{Kind::Restart, id});
      break;
    }
    case 3: {
      if (!n.core) break;
      n.pausedUntil = now_ + rng_.range(100'000, 1'500'000);
      result_.pauses++;
      trace("node " + std::to_string(id) + " pauses until " + std::to_string(n.pausedUntil / 1000) + " ms");
      schedule(n.pausedUntil, Event{Kind::Resume, id});
      break;
    }
    case 4: {
      blocked_.clear();
      const bool oneWay = rng_.chance(0.3);
      for (NodeId other = 1; other <= options_.replicas; ++other) {
        if (other == id) continue;
        blocked_.insert({id, other});
        if (!oneWay) blocked_.insert({other, id});
      }
      result_.partitions++;
      trace("node " + std::to_string(id) + (oneWay ? " cannot send" : " is cut off"));
      break;
    }
    case 5: {
      blocked_.clear();
      releaseLate();
      trace("the network heals");
      break;
    }
    case 6: {
      if (rng_.chance(0.5)) {
        n.clock->wallJumpMs += static_cast<std::int64_t>(rng_.range(0, 4'000)) - 2'000;
      } else {
        n.clock->freezeWall(rng_.range(100'000, 2'000'000));
        trace("node " + std::to_string(id) + "'s wall clock freezes");
      }
      break;
    }
  }
}

void NodeSim::releaseLate() {
  for (auto& [from, to, frame] : late_) schedule(now_ + rng_.range(1'000, 2'000'000), Event{Kind::Deliver, to, from, std::move(frame)});
  late_.clear();
}

void NodeSim::heal() {
  if (nemesis_.program != Program::None) endNemesis("the run heals");
  healed_ = true;
  settleFrom_ = now_;
  blocked_.clear();
  releaseLate();
  for (auto& [id, n] : nodes_) {
    if (n->core && now_ < n->pausedUntil) trace("node " + std::to_string(id) + " resumes (the heal)");
    n->pausedUntil = 0;
    if (!n->core) restart(*n);
    releaseHeld(*n);
  }
  // One node stays cut off for longer than an election timeout, then comes back to a settled
  // cluster: that must cost no election (the stable-leader check).
  lateNode_ = static_cast<NodeId>(rng_.range(1, options_.replicas));
  for (NodeId other = 1; other <= options_.replicas; ++other) {
    if (other == lateNode_) continue;
    blocked_.insert({lateNode_, other});
    blocked_.insert({other, lateNode_});
  }
  // (A campaign it began before it was cut off may still depose the leader when it returns:
  // its promise is higher. Pre-vote cannot help there, so the check exempts that change.) Frames
  // already in its input queue reached it before the cut: a pre-vote grant among them that
  // completes its quorum starts its campaign at its next turn, after the cut (seed 6000536, 5
  // nodes: 0.3 ms after). wake() counts what those frames do to its promise.
  const SimNode& late = *nodes_[lateNode_];
  const auto* replica = late.core ? late.core->replica() : nullptr;
  latePromiseAtCut_ = replica ? replica->promised() : paxos::Ballot{};
  lateFramesAtCut_ = !late.inbox.empty();
  schedule(now_ + kLateHealUs, Event{Kind::LateHeal});
  trace("healed, but node " + std::to_string(lateNode_) + " stays cut off a while");
}

void NodeSim::lateHeal() {
  blocked_.clear();
  trace("node " + std::to_string(lateNode_) + " is back");
  allLinksBack_ = true;
}

}  // namespace warden::tests::sim::detail
