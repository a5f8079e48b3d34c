// Lock-delays at the node (locks/DelayTimers.h): every node times each delay from when it learned
// of it, so that a new leader already knows how long the ones it inherits have run; the serving
// leader proposes their ends. Part of class NodeCore (NodeCore.h).

#include "coordinator/node/NodeCore.h"

namespace warden::coordinator::node {

void NodeCore::noteLockDelays(const std::vector<watch::Event>& events, std::size_t from) {
  for (std::size_t i = from; i < events.size(); ++i) lockDelays_.noteChange(events[i], now() / 1000);
}

void NodeCore::timeLockDelays() {
  // Found in the state: from now, which is no earlier than each began.
  lockDelays_.clear();
  readState([&](storage::Txn& txn) {
    for (const auto& d : stateMachine_.lockDelays(txn)) lockDelays_.started(d.lock, d.revision, d.delayMs, now() / 1000);
  });
}

void NodeCore::proposeLockDelayEnds() {
  const std::uint64_t at = now();
  // As for expiries (PAXOS.md 9): only a serving leader, its lease checked at this instant. (An
  // end proposed by anyone would still be safe, each node's timer being long enough; this keeps
  // it to one proposer.)
  if (!serving_ || !replica_->leaseValid(at) || options_.bugs.neverEndLockDelays) return;
  std::vector<std::string> proposals;
  for (const auto& [lock, revision] : lockDelays_.due(at / 1000)) {
    // Nobody waits for the answer: apply ends the timer, and a lost end is due again.
    proposals.push_back(ownProposal(locks::DelayTimers::endCommand(lock, revision)));
  }
  if (!proposals.empty()) proposeLocal(std::move(proposals));
}

}  // namespace warden::coordinator::node
