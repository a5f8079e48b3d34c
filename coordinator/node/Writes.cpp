// Writes: the node that takes a client's write wraps it in a Proposal carrying its id, its
// process incarnation, a request number and a deadline; the leader stamps it with its clock and
// hands it to the replica; a follower forwards it to the leader, and to the next leader if that
// one fails; a node that cannot take forwarded proposals sends them back. Only apply answers a
// write: a chosen proposal whose origin and incarnation are this process's completes the
// pending write of that number (PAXOS.md 5b); one chosen past its deadline is skipped.

#include "coordinator/node/Frames.h"
#include "coordinator/node/NodeCore.h"

namespace warden::coordinator::node {

void NodeCore::sendUnsent() {
  const std::uint64_t leader = currentLeader();
  if (leader == 0) return;  // no leader that spoke lately: they wait (their deadlines still run)
  // Writes not yet handed to a leader go now; those a former leader holds go to this one too,
  // so that a write outlives its leader's failure. Apply admits one copy (admitRequest).
  std::vector<std::string> batch;
  for (auto& [id, w] : writes_) {
    if (!w.proposal.empty()) {
      w.sent = std::move(w.proposal);
      w.proposal.clear();
    } else if (w.sent.empty() || w.sentTo == leader) {
      continue;
    }
    w.sentTo = leader;
    w.everSent = true;
    batch.push_back(w.sent);
  }
  if (batch.empty()) return;
  if (leader == options_.id) {
    proposeLocal(std::move(batch));
  } else {
    forward(leader, std::move(batch));
  }
}

std::uint64_t NodeCore::currentLeader() const {
  if (replica_ && replica_->isLeader()) return options_.id;
  const std::uint64_t leader = replica_ ? replica_->leaderHint() : 0;
  auto heard = lastHeardUs_.find(leader);
  const bool recent = heard != lastHeardUs_.end() && now() - heard->second < 3 * options_.paxos.heartbeatInterval;
  return leader != 0 && leader != options_.id && recent ? leader : 0;
}

void NodeCore::proposeLocal(std::vector<std::string> proposals) {
  // The leader stamps time once per command; apply uses only these stamps (ARCHITECTURE.md 1).
  const std::uint64_t stamp = std::max(clock_.wallMs(), lastTimestampMs_);
  for (auto& bytes : proposals) stampProposal(bytes, stamp);
  readies_.push_back(replica_->propose(std::move(proposals), now()));
}

void NodeCore::forward(std::uint64_t leader, std::vector<std::string> proposals) {
  for (auto& f : proposalsFrames(Frame::Forward, proposals)) send(leader, std::move(f));
}

void NodeCore::onForward(std::uint64_t from, Decoder& in, std::size_t size) {
  auto proposals = decodeProposals(in, size);
  in.expectDone();
  for (const auto& bytes : proposals) decodeProposal(bytes);  // malformed: the whole frame is dropped
  if (replica_ && replica_->isLeader()) {
    proposeLocal(std::move(proposals));
  } else {
    for (auto& f : proposalsFrames(Frame::ForwardRejected, proposals)) send(from, std::move(f));
  }
}

void NodeCore::onForwardRejected(Decoder& in, std::size_t size) {
  for (const auto& bytes : decodeProposals(in, size)) {
    Proposal p = decodeProposal(bytes);
    auto it = writes_.find(p.requestId);
    if (ours(p) && it != writes_.end()) {
      p.timestampMs = 0;
      it->second.proposal = encodeProposal(p);  // try again next turn
      it->second.sent.clear();
    }
  }
}

void NodeCore::takeRejected(std::vector<paxos::Rejected>& rejected) {
  // Proposals the replica could not take (it stopped leading): ours wait for the next leader,
  // others go back to the node that forwarded them.
  for (auto& r : rejected) {
    std::map<std::uint64_t, std::vector<std::string>> byOrigin;
    for (auto& bytes : r.commands) {
      Proposal p = decodeProposal(bytes);
      p.timestampMs = 0;
      byOrigin[p.origin].push_back(encodeProposal(p));
    }
    for (auto& [origin, proposals] : byOrigin) {
      if (origin != options_.id) {
        for (auto& f : proposalsFrames(Frame::ForwardRejected, proposals)) send(origin, std::move(f));
        continue;
      }
      for (auto& bytes : proposals) {
        const Proposal p = decodeProposal(bytes);
        auto it = writes_.find(p.requestId);
        if (ours(p) && it != writes_.end()) {
          it->second.proposal = std::move(bytes);
          it->second.sent.clear();
        }
      }
    }
  }
}

bool NodeCore::ours(const ProposalHeader& p) const {
  return p.origin == options_.id && (p.incarnation == incarnation_ || options_.bugs.ignoreIncarnation);
}

std::string NodeCore::ownProposal(const Command& command, std::uint64_t deadlineMs) {
  Proposal p;
  p.origin = options_.id;
  p.incarnation = incarnation_;
  p.requestId = nextRequest_++;
  p.deadlineMs = deadlineMs;
  // Encoded into a buffer kept from write to write, then copied once into the proposal.
  commandScratch_.clear();
  encodeCommand(commandScratch_, command);
  return encodeProposal(p, commandScratch_.data());
}

}  // namespace warden::coordinator::node
