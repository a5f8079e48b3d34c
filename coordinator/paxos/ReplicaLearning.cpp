// The learning side of a Replica: marking slots chosen, following the commit index, catching up
// from peers, and rebuilding after a lost disk (the argument below). Part of class Replica
// (Replica.h); phase 2 is in ReplicaPhase2.cpp, phase 1, leases and reads in Replica.cpp.

#include "coordinator/paxos/Replica.h"

#include <algorithm>

namespace warden::coordinator::paxos {

// ---- why a lost disk cannot make two values chosen for one slot (PAXOS.md 5) --------------------
//
// A replica that lost its disk forgot three things: values it accepted, values it knows chosen,
// and ballots it promised. It votes again only once all three are covered:
//  - chosen values: it learns every slot up to one that the current leader had not proposed
//    before the restart (named in answer to a nonce made after it), so every value chosen
//    before the restart, with or without its vote, is in its log before it votes again and is
//    reported in its promises ("Paxos Made Live" 5.1);
//  - accepted but unchosen values: while it learns it accepts nothing, so such a value can be
//    chosen only by a majority without it, which any later phase 1 sees;
//  - promises: a candidate makes its own ballot durable in its own promise before any Prepare
//    leaves (startElection), and promises only rise. So any ballot this replica promised before
//    the loss is at most its candidate's promised ballot at any later time. The rebuilding
//    replica asks every other member for its promised ballot (for its nonce, so the answers
//    are from after the restart) and votes from above the highest. A candidate still holding its
//    forgotten promise can then never be outvoted by values this replica accepts in a lower
//    ballot. This needs every member's answer: a wiped node waits for all of them, and one lost
//    disk at a time is assumed (a member whose own disk was lost answers from what it rebuilt).

void Replica::askRebuild() {
  // Ask for a slot that no leader had proposed before this restart, and for every member's
  // promised ballot: the answers to a nonce made now cannot be older than the restart.
  lastRebuildRequest_ = now_;
  if (config_.bugs.rebuildSharesCatchupTimer) lastCatchupRequest_ = now_;
  const CatchupRequest ask{commitIndex_ + 1, rebuildNonce_};
  for (NodeId m : config_.members) {
    if (m == config_.id) continue;
    const bool needTarget = learnerTarget_ == 0 && (leaderHint_ == 0 || leaderHint_ == m);
    if (needTarget || !memberPromises_.count(m)) send(m, ask);
  }
}

// ---- learning -------------------------------------------------------------------------------

void Replica::markChosen(Slot slot, const Value& value) {
  if (slot <= compacted_) return;
  auto& entry = log_[slot];
  // Paxos makes a second, different value for a chosen slot impossible; the simulator's
  // agreement check is what catches it if a bug ever makes it happen, so keep the first.
  if (entry.chosen) return;
  entry.value = value;
  entry.chosen = true;
}

void Replica::countChosen() {
  while (true) {
    auto it = log_.find(commitIndex_ + 1);
    if (it == log_.end() || !it->second.chosen) break;
    ++commitIndex_;
  }
}

void Replica::advanceCommit() {
  countChosen();
  // Rebuilt: the leader that named learnerTarget_ (in answer to a nonce made after the restart)
  // says it chose that slot in its own ballot, everything up to it is known here, and every
  // member said what it promised. Vote from above all of that (highestBallotSeen_ holds it), in
  // case a ballot was promised before the wipe.
  const bool promisesKnown =
      config_.bugs.rebuildIgnoresPromises || memberPromises_.size() + 1 >= config_.members.size();
  const bool installing = installing_ && !config_.bugs.voterWhileInstalling;
  if (learner_ && learnerConfirmed_ && commitIndex_ >= learnerTarget_ && promisesKnown && !installing) {
    learner_ = false;
    raisePromise(std::max(learnerBallot_, highestBallotSeen_));
    out_->records.push_back(LearnerRecord{false});
  }
}

void Replica::learnCommit(Ballot ballot, Slot leaderCommit, NodeId leader) {
  if (learner_ && learnerTarget_ != 0 && ballot == learnerBallot_ && leaderCommit >= learnerTarget_) {
    learnerConfirmed_ = true;
  }
  // A slot accepted here in the leader's own ballot holds the one value that ballot proposed
  // for it, so once the leader says it is chosen, it is chosen with that value.
  for (Slot s = commitIndex_ + 1; s <= leaderCommit; ++s) {
    auto it = log_.find(s);
    if (it == log_.end() || (!it->second.chosen && it->second.ballot != ballot)) break;
    it->second.chosen = true;
    commitIndex_ = s;
  }
  advanceCommit();
  // Caught up: the next lag is the leader's to fill. Caught up to the highest commit index heard,
  // not to this message's: a heartbeat sent before the snapshot was taken and delivered after the
  // install (or a deposed leader's, which a learner follows) carries one the snapshot covers, and
  // the leader has most likely compacted the slots the sender kept (review15).
  highestLeaderCommit_ = std::max(highestLeaderCommit_, leaderCommit);
  const Slot caughtUpTo = config_.bugs.catchupSourceLateAnswers ? leaderCommit : highestLeaderCommit_;
  if (commitIndex_ >= caughtUpTo) catchupSource_ = 0;
  if (commitIndex_ < leaderCommit && leader != config_.id) {
    expireCatchupRequest();
    requestCatchup(catchupSource_ != 0 ? catchupSource_ : leader);
  }
}

void Replica::expireCatchupRequest() {
  if (!catchupRequested_ || now_ < lastCatchupRequest_ + config_.heartbeatInterval) return;
  catchupRequested_ = false;  // the answer was lost; the next commit index asks again...
  // ...and not the snapshot's sender, if it was the one asked and has left the requests of two
  // heartbeats in a row unanswered: it may be down or cut off, while the leader holds every
  // chosen slot it has not compacted (review13). Not at the first: one answer lost, or a round
  // trip longer than a heartbeat, would cost a second snapshot, for the leader has most likely
  // compacted what the sender kept (review14).
  if (catchupSource_ != 0 && catchupAsked_ == catchupSource_ &&
      (++catchupSourceMisses_ >= kCatchupSourceMisses || config_.bugs.catchupSourceOneMiss)) {
    catchupSource_ = 0;
  }
}

void Replica::requestCatchup(NodeId from) {
  if (catchupRequested_ && now_ < lastCatchupRequest_ + config_.heartbeatInterval) return;
  catchupRequested_ = true;
  catchupAsked_ = from;
  lastCatchupRequest_ = now_;
  send(from, CatchupRequest{commitIndex_ + 1});
}

void Replica::pushChosen(Slot from) {
  // Only chosen slots: a follower takes what it is sent as chosen and applies it. In commit
  // order, as a catch-up answer to a request nobody made; one that missed a push (it was cut
  // off) keeps the later ones and fetches the gap at the next heartbeat's commit index.
  const std::vector<NodeId> asked = askedToVote();
  std::vector<NodeId> told;
  for (NodeId m : config_.members) {
    if (std::find(asked.begin(), asked.end(), m) == asked.end()) told.push_back(m);
  }
  if (told.empty()) return;
  Slot upTo = commitIndex_;
  if (config_.bugs.pushUnchosen && !proposed_.empty()) upTo = std::max(upTo, proposed_.rbegin()->first);
  std::vector<CatchupReply> pushes;
  std::size_t bytes = 0;
  for (Slot s = from + 1; s <= upTo; ++s) {
    auto chosen = log_.find(s);
    const Value* value = chosen != log_.end() && chosen->second.chosen ? &chosen->second.value : nullptr;
    if (!value && config_.bugs.pushUnchosen && proposed_.count(s)) value = &proposed_.at(s);
    if (!value) break;
    bytes += wireSize(*value);
    if (pushes.empty() || bytes > config_.catchupBytes) {  // one frame each, as a catch-up answer
      pushes.emplace_back();
      pushes.back().compactedUpTo = compacted_;
      pushes.back().leaderBallot = ballot_;
      pushes.back().nextSlot = nextSlot_;
      pushes.back().promised = promised_;
      bytes = wireSize(*value);
    }
    pushes.back().entries.push_back(ChosenEntry{s, *value});
  }
  for (std::size_t i = 0; i < told.size(); ++i) {
    for (auto& push : pushes) {
      if (i + 1 < told.size()) {
        send(told[i], push);
      } else {
        send(told[i], std::move(push));
      }
    }
  }
}

void Replica::onCatchupRequest(NodeId from, const CatchupRequest& m) {
  CatchupReply reply;
  reply.compactedUpTo = compacted_;
  reply.nonce = m.nonce;
  reply.promised = promised_;
  if (role_ == Role::Leader) {
    reply.leaderBallot = ballot_;
    reply.nextSlot = nextSlot_;
    // A rebuilding replica waits for slot nextSlot_ to be chosen: make sure one is proposed.
    if (m.nonce != 0) learnerWaiting_ = true;
  }
  if (m.fromSlot <= compacted_) {
    reply.snapshotNeeded = true;
    out_->snapshotNeeded.push_back(from);
  } else {
    std::size_t bytes = 0;
    for (Slot s = m.fromSlot; s <= commitIndex_ && reply.entries.size() < config_.catchupBatch; ++s) {
      bytes += wireSize(log_.at(s).value);
      if (!reply.entries.empty() && bytes > config_.catchupBytes && !config_.bugs.catchupByCountOnly) break;
      reply.entries.push_back(ChosenEntry{s, log_.at(s).value});
    }
  }
  send(from, std::move(reply));
}

void Replica::onCatchupReply(NodeId from, const CatchupReply& m) {
  // Only the peer asked answers the request outstanding: a late reply from another (an answer
  // to a rebuild request, say) must not let a silent one be asked again before it times out.
  if (from == catchupAsked_) catchupRequested_ = false;
  // A candidate or leader takes no slot as chosen from outside its own phase 2: the slot may have
  // been chosen in a higher ballot, with another value than this one proposes for it, and the
  // commit index it sends in its ballot would make an acceptor of that ballot take its own vote as
  // chosen (learnCommit; review4, five members or more). A leader needs no catch-up, and a
  // candidate that does steps down first (onPromise). A higher ballot deposes it; then it learns.
  if (role_ != Role::Follower && !config_.bugs.leaderTakesPushes) {
    const Ballot higher = std::max(m.promised, m.leaderBallot);
    highestBallotSeen_ = std::max(highestBallotSeen_, higher);
    if (higher <= ballot_) return;
    stepDown(higher);
  }
  if (learner_ && m.nonce == rebuildNonce_ && !config_.bugs.rebuildIgnoresPromises) {
    memberPromises_[from] = m.promised;
    highestBallotSeen_ = std::max(highestBallotSeen_, m.promised);
  }
  if (learner_ && learnerTarget_ == 0 && m.nonce == rebuildNonce_ && !m.leaderBallot.isZero()) {
    learnerTarget_ = std::max<Slot>(m.nextSlot, 1);
    learnerBallot_ = m.leaderBallot;
  }
  const Slot before = commitIndex_;
  // Every slot in it is chosen, also one past a gap here (a slot pushed by the leader while an
  // earlier one is still being fetched): it is kept, and counted once the gap is filled.
  for (const auto& e : m.entries) {
    if (e.slot > commitIndex_) markChosen(e.slot, e.value);
  }
  countChosen();
  // The snapshot's sender has given all it knows (or compacted it): the rest is the leader's. Only
  // an answer with no slot at all says so: one whose slots are all known here already answers an
  // older request, or one for the same slots another answer of the sender's brought (review14).
  // Nor does a "snapshot needed" whose compacted point is below the slot wanted now: it answers a
  // request from before an install (of the sender's new snapshot, say), and the sender holds
  // the slots after it (review15).
  if (from == catchupSource_) catchupSourceMisses_ = 0;
  const bool late = m.snapshotNeeded && m.compactedUpTo <= commitIndex_ && !config_.bugs.catchupSourceLateAnswers;
  const bool nothingThere = (m.entries.empty() && !late) || config_.bugs.catchupSourceOneMiss;
  if (from == catchupSource_ && m.nonce == 0 && commitIndex_ == before && nothingThere) catchupSource_ = 0;
  advanceCommit();
}

}  // namespace warden::coordinator::paxos
