// Phase 2 of a Replica: proposing slots, choosing which followers vote on them (thrifty),
// voting, and counting votes. Part of class Replica (Replica.h); the other phases, leases and
// reads are in Replica.cpp, the learning side in ReplicaLearning.cpp.

#include "coordinator/paxos/Replica.h"

#include <algorithm>

namespace warden::coordinator::paxos {

void Replica::proposeSlot(Slot slot, Value value) {
  proposed_[slot] = value;
  lastSentAt_[slot] = now_;
  votes_[slot].clear();
  std::vector<NodeId> asked = askedToVote();
  auto& followers = askedOf_[slot];
  followers.clear();
  for (NodeId m : asked) {
    if (m != config_.id) followers.push_back(m);
  }
  sendTo(std::move(asked), Accept{ballot_, slot, std::move(value), commitIndex_, now_});
}

std::vector<NodeId> Replica::askedToVote() {
  if (!config_.thrifty) return config_.members;
  // The same followers while they answer: a change of them costs the one left out a catch-up.
  // One not heard from for a heartbeat, or passed over (tick), is replaced by the follower heard
  // from last (the others answer every heartbeat); one that refuses (a learner) is never heard
  // from here, so it is asked only when nobody else answers. In its first heartbeat a leader
  // keeps those that promised to it (becomeLeader).
  auto heard = [&](NodeId m) {
    auto it = lastHeardAt_.find(m);
    return it == lastHeardAt_.end() ? Time{0} : it->second;
  };
  auto slow = [&](NodeId m) {
    auto it = slowAt_.find(m);
    return it != slowAt_.end() && now_ < it->second + config_.electionTimeout;
  };
  const Time quiet = now_ - std::min(now_, config_.heartbeatInterval);
  auto alive = [&](NodeId m) { return heard(m) >= quiet; };
  bool keep = voters_.size() + 1 == quorum_;
  for (NodeId m : voters_) keep = keep && !slow(m) && (alive(m) || leaderSince_ >= quiet);
  if (!keep) {
    std::vector<NodeId> followers = voters_;  // first among equals
    for (NodeId m : config_.members) {
      if (m != config_.id && std::find(followers.begin(), followers.end(), m) == followers.end()) followers.push_back(m);
    }
    // One heard from lately first, even if passed over (one marked slow may never have been
    // asked the slot it left unanswered), then one not passed over.
    std::stable_sort(followers.begin(), followers.end(), [&](NodeId a, NodeId b) {
      if (alive(a) != alive(b)) return alive(a);
      if (slow(a) != slow(b)) return !slow(a);
      return heard(a) > heard(b);
    });
    voters_.assign(followers.begin(), followers.begin() + static_cast<std::ptrdiff_t>(quorum_ - 1));
  }
  std::vector<NodeId> asked{config_.id};
  asked.insert(asked.end(), voters_.begin(), voters_.end());
  return asked;
}

void Replica::flushProposals() {
  if (role_ != Role::Leader) return;
  if (learnerWaiting_ && queue_.empty() && nextSlot_ == commitIndex_ + 1) {
    // A learner needs a slot chosen after it restarted; give it one.
    learnerWaiting_ = false;
    proposeSlot(nextSlot_++, Value::makeNoop());
  }
  while (!queue_.empty() && nextSlot_ - 1 - commitIndex_ < config_.window) {
    Value value;
    std::size_t bytes = 0;
    while (!queue_.empty() && value.commands.size() < config_.maxBatch) {
      const std::size_t size = queue_.front().size();
      if (!value.commands.empty() && bytes + size > config_.maxBatchBytes) break;
      bytes += size;
      value.commands.push_back(std::move(queue_.front()));
      queue_.pop_front();
    }
    proposeSlot(nextSlot_++, std::move(value));
  }
}

void Replica::onAccept(NodeId from, const Accept& m) {
  if (learner_) {
    // A learner does not vote, but it follows the leader and learns what is chosen.
    if (followLeader(m.ballot)) learnCommit(m.ballot, m.commitIndex, from);
    return;
  }
  if (!followLeader(m.ballot)) {
    send(from, Accepted{m.ballot, m.slot, false, promised_, m.sentAt});
    return;
  }
  if (m.slot > compacted_) {
    auto& entry = log_[m.slot];
    if (entry.chosen && entry.value != m.value && !config_.bugs.acceptOverChosen) {
      // Paxos rules this out; if a bug ever proposed it, a vote for it must not count.
      send(from, Accepted{m.ballot, m.slot, false, promised_, m.sentAt});
      return;
    }
    if (!entry.chosen && (entry.ballot != m.ballot || entry.value != m.value)) {
      entry.ballot = m.ballot;
      entry.value = m.value;
      if (!config_.bugs.votesInMemoryOnly) out_->records.push_back(AcceptRecord{m.slot, m.ballot, m.value});
    }
  }
  send(from, Accepted{m.ballot, m.slot, true, promised_, m.sentAt});
  learnCommit(m.ballot, m.commitIndex, from);
}

bool Replica::recordAck(NodeId from, Ballot ballot, bool ok, Ballot promised, Time sentAt) {
  if (!ok) {
    highestBallotSeen_ = std::max(highestBallotSeen_, promised);
    if (promised > ballot_ && role_ != Role::Follower) stepDown(promised);
    return false;
  }
  if (role_ != Role::Leader || ballot != ballot_) return false;
  lastHeardAt_[from] = now_;
  ackedAt_[from] = std::max(ackedAt_[from], sentAt);
  return true;
}

void Replica::onAccepted(NodeId from, const Accepted& m) {
  if (!recordAck(from, m.ballot, m.ok, m.promised, m.sentAt)) return;
  auto proposal = proposed_.find(m.slot);
  if (proposal == proposed_.end()) return;  // chosen already
  auto& voters = votes_[m.slot];
  voters.insert(from);
  if (voters.size() >= quorum_) {
    const Slot before = commitIndex_;
    markChosen(m.slot, proposal->second);
    proposed_.erase(proposal);
    lastSentAt_.erase(m.slot);
    askedOf_.erase(m.slot);
    votes_.erase(m.slot);
    advanceCommit();
    // From the last slot pushed: the commit index may also have moved by a catch-up answer.
    if (config_.thrifty && config_.bugs.pushUnchosen) pushChosen(before);
    if (config_.thrifty && commitIndex_ > pushedUpTo_) pushChosen(std::max(pushedUpTo_, compacted_));
    pushedUpTo_ = std::max(pushedUpTo_, commitIndex_);
  }
  checkReads();
}

}  // namespace warden::coordinator::paxos
