// The Paxos simulator's client: batches of commands proposed (and proposed again when not
// chosen), and lease and read-index reads checked against what was already chosen. Part of
// class Simulation (PaxosSim.h).

#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "tests/sim/PaxosSim.h"

namespace warden::tests::sim::paxos_detail {

// ---- the client ------------------------------------------------------------------------

void Simulation::clientStep() {
  const Time stopNew = options_.faultyFor + options_.healedFor / 2;
  if (now_ < stopNew) {
    std::vector<std::string> batch;
    const auto count = rng_.range(1, 3);
    for (std::uint64_t i = 0; i < count; ++i) {
      std::string c = "c" + std::to_string(++commandCounter_);
      proposedCommands_.insert(c);
      pending_[c] = now_;
      batch.push_back(c);
    }
    propose(std::move(batch));
  }
  // Commands not chosen after a while are proposed again (they may end up chosen twice).
  std::vector<std::string> retry;
  for (auto& [command, at] : pending_) {
    if (now_ >= at + 300'000 && retry.size() < 64) {
      retry.push_back(command);
      at = now_;
    }
  }
  if (!retry.empty()) propose(std::move(retry));
  schedule(Event{now_ + rng_.range(5'000, 40'000), 0, EventKind::Client});
}

// True when a leader took the commands (they may still be lost with it).
bool Simulation::propose(std::vector<std::string> commands) {
  NodeId target = knownLeader_ != 0 ? knownLeader_ : static_cast<NodeId>(rng_.range(1, nodes_.size()));
  SimNode& n = node(target);
  if (!runnable(n)) {
    knownLeader_ = 0;
    return false;
  }
  Ready ready = n.replica->propose(std::move(commands), localNow(n));
  const bool taken = ready.rejected.empty();
  if (!taken && ready.rejected.front().leaderHint == 0) knownLeader_ = 0;
  handle(n, std::move(ready));
  return taken;
}

void Simulation::readStep() {
  schedule(Event{now_ + rng_.range(10'000, 100'000), 0, EventKind::Read});
  SimNode& n = node(static_cast<NodeId>(rng_.range(1, nodes_.size())));
  if (!runnable(n)) return;
  const Slot required = maxApplied();
  // Half the reads try the lease first; the rest take the read-index path.
  auto index = rng_.chance(0.5) ? n.replica->leaseRead(localNow(n)) : std::nullopt;
  if (index) {
    result_.leaseReads++;
    if (*index < required) {
      fail("stale-lease-read", "node " + std::to_string(n.id) + ": index " + std::to_string(*index) +
           " but slot " + std::to_string(required) + " was already chosen");
    }
    return;
  }
  if (n.replica->isLeader()) {
    const std::uint64_t id = ++readCounter_;
    readRequired_[id] = required;
    handle(n, n.replica->requestRead(id, localNow(n)));
  }
}

void Simulation::finishRead(SimNode& n, const paxos::ReadReady& read) {
  auto it = readRequired_.find(read.id);
  if (it == readRequired_.end()) return;
  result_.indexReads++;
  if (read.index < it->second) {
    fail("stale-read-index", "node " + std::to_string(n.id) + ": index " + std::to_string(read.index) +
         " but slot " + std::to_string(it->second) + " was chosen before the read began");
  }
  readRequired_.erase(it);
}

}  // namespace warden::tests::sim::paxos_detail
