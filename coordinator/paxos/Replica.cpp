#include "coordinator/paxos/Replica.h"

#include <algorithm>
#include <array>
#include <cstdio>
#include <cstdlib>
#include <functional>

namespace warden::coordinator::paxos {

namespace {
// A ballot no leader ever has: a restarted acceptor's lease is held "for nobody".
constexpr Ballot kNobody{UINT64_MAX, UINT64_MAX};
}  // namespace

// The learning side (chosen slots, catch-up, the rebuild of a lost disk and why it is safe) is
// in ReplicaLearning.cpp; phase 2 (proposals, which followers vote, accepts) in ReplicaPhase2.cpp.

Replica::Replica(ReplicaConfig config, DurableState durable, Slot appliedUpTo, bool wiped, Random& random, Time now)
    : config_(std::move(config)), random_(random), quorum_(config_.members.size() / 2 + 1), now_(now) {
  if (std::find(config_.members.begin(), config_.members.end(), config_.id) == config_.members.end()) {
    std::fprintf(stderr, "fatal: replica %llu is not a member\n", static_cast<unsigned long long>(config_.id));
    std::abort();
  }
  promised_ = durable.promised;
  // The node stores its applied index with its state: slots up to it must never be handed over
  // again, even where the log was not compacted that far.
  compacted_ = config_.bugs.restartForgetsApplied ? durable.compactedUpTo : std::max(durable.compactedUpTo, appliedUpTo);
  for (auto& [slot, accepted] : durable.accepted) {
    if (slot > compacted_) log_[slot] = LogEntry{accepted.ballot, std::move(accepted.value), false};
  }
  commitIndex_ = delivered_ = compacted_;
  learner_ = (wiped && !config_.bugs.wipedVotesAtOnce) || durable.learner;
  rebuildNonce_ = random_.next() | 1;
  // Remember across restarts that this replica is rebuilding: it must not vote after a crash
  // just because its disk now holds a little state.
  if (learner_ && !durable.learner) pendingRecords_.push_back(LearnerRecord{true});
  // Lease grants are not stored: after a restart, refuse every new ballot for one lease
  // duration, in case this acceptor granted one just before it went down.
  leaseBallot_ = kNobody;
  leaseUntil_ = now + config_.leaseDuration;
  // Nor does it grant pre-votes at once: a leader may be working that it has not heard yet, and
  // a queued pre-vote of a node cut off for long must not depose it.
  lastLeaderContact_ = now;
  resetElectionTimer();
}

// ---- the calls ------------------------------------------------------------------------------

Ready Replica::begin(Time now) {
  now_ = std::max(now_, now);  // a monotonic clock; tolerate equal readings
  Ready ready;
  ready.id_ = ++readyCounter_;
  ready.records = std::move(pendingRecords_);
  pendingRecords_.clear();
  return ready;
}

Ready Replica::finish() {
  Ready& out = *out_;
  for (Slot s = delivered_ + 1; s <= commitIndex_; ++s) {
    out.committed.push_back(ChosenEntry{s, log_.at(s).value});
  }
  delivered_ = commitIndex_;
  out_ = nullptr;
  return std::move(out);
}

Ready Replica::step(const Message& message, Time now) {
  Ready ready = begin(now);
  out_ = &ready;
  const NodeId from = message.from;
  if (message.to == config_.id &&
      std::find(config_.members.begin(), config_.members.end(), from) != config_.members.end()) {
    std::visit(
        [&](const auto& m) {
          using T = std::decay_t<decltype(m)>;
          if constexpr (std::is_same_v<T, Prepare>) onPrepare(from, m);
          if constexpr (std::is_same_v<T, Promise>) onPromise(from, m);
          if constexpr (std::is_same_v<T, Accept>) onAccept(from, m);
          if constexpr (std::is_same_v<T, Accepted>) onAccepted(from, m);
          if constexpr (std::is_same_v<T, Heartbeat>) onHeartbeat(from, m);
          if constexpr (std::is_same_v<T, HeartbeatReply>) onHeartbeatReply(from, m);
          if constexpr (std::is_same_v<T, CatchupRequest>) onCatchupRequest(from, m);
          if constexpr (std::is_same_v<T, CatchupReply>) onCatchupReply(from, m);
          if constexpr (std::is_same_v<T, PreVote>) onPreVote(from, m);
          if constexpr (std::is_same_v<T, PreVoteReply>) onPreVoteReply(from, m);
        },
        message.payload);
  }
  flushProposals();
  return finish();
}

Ready Replica::tick(Time now) {
  Ready ready = begin(now);
  out_ = &ready;
  switch (role_) {
    case Role::Leader: {
      // Step down when a majority has not answered for an election timeout: it has most likely
      // elected someone else, and clients should be sent there.
      std::vector<Time> heard;
      for (NodeId m : config_.members) heard.push_back(m == config_.id ? now_ : lastHeardAt_[m]);
      std::sort(heard.rbegin(), heard.rend());
      const Time quorumHeard = std::max(heard[quorum_ - 1], leaderSince_);
      if (now_ > quorumHeard + config_.electionTimeout) {
        stepDown(ballot_);
        break;
      }
      if (now_ >= lastHeartbeat_ + config_.heartbeatInterval) sendHeartbeats();
      // Resend what is still in flight: messages may have been dropped. Each slot on its own
      // time, a heartbeat after it was last sent: reads send heartbeats of their own and must not
      // put it off, and a slot sent just before a resend must not go to every member at once
      // (reviews of thrifty phase 2: a lost voter's slot never chosen; a gray voter kept).
      for (const auto& [slot, value] : proposed_) {
        if (log_.count(slot) && log_.at(slot).chosen) continue;
        Time& sentAt = lastSentAt_[slot];
        if (now_ < sentAt + config_.heartbeatInterval) continue;
        sentAt = now_;
        for (NodeId m : config_.members) {
          if (votes_[slot].count(m)) continue;
          send(m, Accept{ballot_, slot, value, commitIndex_, now_});
          // Thrifty: a follower asked that left an Accept unanswered for a whole heartbeat is
          // passed over for a while, even if it answers heartbeats (its link may lose only large
          // frames): else every write would wait for this resend.
          // Only the followers asked this slot: marking a voter asked since would pass over a healthy
          // follower and keep picking the gray one (review4).
          const std::vector<NodeId>& asked = config_.bugs.slowMarksEveryVoter ? voters_ : askedOf_[slot];
          if (std::find(asked.begin(), asked.end(), m) != asked.end()) slowAt_[m] = now_;
        }
      }
      break;
    }
    case Role::Candidate:
    case Role::Follower:
      if (now_ >= electionDeadline_ && !learner_) {
        if (config_.bugs.noPreVote) {
          startElection();
        } else {
          startPreVote();
        }
      }
      const Time lastAsked = config_.bugs.rebuildSharesCatchupTimer ? lastCatchupRequest_ : lastRebuildRequest_;
      if (learner_ && now_ >= lastAsked + config_.heartbeatInterval) askRebuild();
      expireCatchupRequest();
      break;
  }
  flushProposals();
  return finish();
}

Ready Replica::propose(std::vector<std::string> commands, Time now) {
  Ready ready = begin(now);
  out_ = &ready;
  if (role_ != Role::Leader || queue_.size() + commands.size() > config_.maxQueued) {
    ready.rejected.push_back(Rejected{std::move(commands), role_ == Role::Leader ? config_.id : leaderHint_});
  } else {
    for (auto& c : commands) queue_.push_back(std::move(c));
    flushProposals();
  }
  return finish();
}

Ready Replica::requestRead(std::uint64_t id, Time now) {
  Ready ready = begin(now);
  out_ = &ready;
  if (role_ != Role::Leader) {
    ready.failedReads.push_back(id);
  } else {
    if (config_.bugs.readIndexWithoutRound) {
      ready.reads.push_back(ReadReady{id, std::max(commitIndex_, recoveredUpTo_)});
      return finish();
    }
    reads_.push_back(PendingRead{id, std::max(commitIndex_, recoveredUpTo_), now_});
    sendHeartbeats();  // the confirming round
  }
  return finish();
}

std::optional<Slot> Replica::leaseRead(Time now) const {
  if (!leaseValid(now) || (commitIndex_ < recoveredUpTo_ && !config_.bugs.leaseReadBeforeRecovery)) return std::nullopt;
  return commitIndex_;
}

bool Replica::leaseValid(Time now) const { return now < leaseEnd(); }

Time Replica::leaseEnd() const {
  if (role_ != Role::Leader) return 0;
  // From when our message left, not when its ack came back: the grant may have started long
  // before we took the ack (the ack sat in a queue, or this leader was paused).
  const Time acked = config_.bugs.leaseFromReceipt ? quorumTime(lastHeardAt_) : quorumAckedAt();
  if (acked == 0) return 0;
  // An acceptor holds its grant for leaseDuration on its own clock from when it received our
  // message, which left here at `acked`. Both clocks may drift by maxDrift against true time,
  // so on our clock the grant surely lasts leaseDuration * (1 - d) / (1 + d) from `acked`.
  const double d = config_.maxDrift;
  const auto safe = static_cast<Time>(static_cast<double>(config_.leaseDuration) * (1 - d) / (1 + d));
  if (safe <= config_.leaseEpsilon) return 0;
  return acked + safe - config_.leaseEpsilon;
}

void Replica::forEachHeld(Slot from, Slot to, const std::function<void(Slot, std::size_t)>& visit) const {
  for (auto it = log_.lower_bound(from); it != log_.end() && it->first <= to; ++it) {
    visit(it->first, wireSize(it->second.value));
  }
}

Ready Replica::compact(Slot upTo) {
  Ready ready = begin(now_);
  out_ = &ready;
  upTo = std::min(upTo, delivered_);
  if (upTo > compacted_) {
    log_.erase(log_.begin(), log_.upper_bound(upTo));
    compacted_ = upTo;
    ready.records.push_back(CompactRecord{upTo});
  }
  return finish();
}

Ready Replica::installSnapshot(Slot upTo, Time now, NodeId from) {
  Ready ready = begin(now);
  out_ = &ready;
  // Slots chosen outside this leader's (or candidate's) own phase 2: see onCatchupReply.
  if (role_ != Role::Follower && upTo > commitIndex_ && !config_.bugs.leaderTakesPushes) stepDown(ballot_);
  installing_ = false;
  if (upTo > commitIndex_) {
    log_.erase(log_.begin(), log_.upper_bound(upTo));
    compacted_ = upTo;
    commitIndex_ = delivered_ = upTo;
    catchupRequested_ = false;
    if (from != config_.id && !config_.bugs.catchupFromLeaderAfterInstall) catchupSource_ = from;
    catchupSourceMisses_ = 0;
    // The slots up to upTo are chosen, so a leader message carrying no more than that was sent
    // before the snapshot was taken: only a slot learned past it ends the sender's turn (review17).
    highestLeaderCommit_ = std::max(highestLeaderCommit_, upTo + 1);
    ready.records.push_back(CompactRecord{upTo});
  }
  // A learner that reached its target during the install turns voter now (the node applies the
  // slots it held before this Ready's records are durable: NodeCore::finishInstall).
  advanceCommit();
  return finish();
}

// ---- sending ----------------------------------------------------------------------------------

void Replica::send(NodeId to, Payload payload) {
  out_->messages_.push_back(Message{config_.id, to, std::move(payload)});
}

void Replica::broadcast(Payload payload) { sendTo(config_.members, std::move(payload)); }

void Replica::sendTo(const std::vector<NodeId>& to, Payload payload) {
  // A copy for each but the last, which takes the original (an Accept carries its batch).
  for (std::size_t i = 0; i + 1 < to.size(); ++i) send(to[i], payload);
  send(to.back(), std::move(payload));
}

void Replica::resetElectionTimer() {
  const Time base = config_.electionTimeout;
  // Back off after failed elections so that duelling candidates drift apart (PAXOS.md 10).
  const Time spread = base << std::min<std::uint32_t>(failedElections_, 2);
  electionDeadline_ = now_ + base + random_.below(spread);
}

// ---- phase 1 ----------------------------------------------------------------------------------

Ballot Replica::nextBallot() const {
  // Above every ballot heard of, so that one refusal is enough to learn how high to go.
  return Ballot{std::max({promised_.round, ballot_.round, highestBallotSeen_.round}) + 1, config_.id};
}

void Replica::startPreVote() {
  preVoting_ = true;
  preVoteBallot_ = nextBallot();
  preVotes_ = {config_.id};  // its own timer ran out: it has lost the leader too
  resetElectionTimer();
  for (NodeId m : config_.members) {
    if (m != config_.id) send(m, PreVote{preVoteBallot_});
  }
  if (preVotes_.size() >= quorum_) startElection();
}

void Replica::onPreVote(NodeId from, const PreVote& m) {
  // Granted by whoever has not heard a leader for an election timeout either. The ballot does
  // not matter here: a real Prepare that is too low is refused and teaches how high to go.
  const bool leaderAlive = role_ == Role::Leader ||
                           (lastLeaderContact_ != 0 && now_ < lastLeaderContact_ + config_.electionTimeout);
  send(from, PreVoteReply{m.ballot, !leaderAlive});
}

void Replica::onPreVoteReply(NodeId from, const PreVoteReply& m) {
  if (!preVoting_ || m.ballot != preVoteBallot_ || !m.granted || role_ == Role::Leader) return;
  preVotes_.insert(from);
  if (preVotes_.size() >= quorum_) startElection();
}

void Replica::startElection() {
  if (role_ == Role::Candidate) ++failedElections_;
  role_ = Role::Candidate;
  preVoting_ = false;
  ballot_ = nextBallot();
  // The candidate's own promise is durable before any Prepare leaves: no ballot is ever reused
  // after a crash, and any ballot an acceptor promised stays at most its candidate's promised
  // ballot, which the rebuild of a lost disk relies on (see the top of ReplicaLearning.cpp).
  raisePromise(ballot_);
  prepareFrom_ = commitIndex_ + 1;
  promises_.clear();
  resetElectionTimer();
  if (config_.bugs.skipPhase1) {
    becomeLeader();
    return;
  }
  broadcast(Prepare{ballot_, prepareFrom_});
}

void Replica::onPrepare(NodeId from, const Prepare& m) {
  Promise reply;
  reply.ballot = m.ballot;
  reply.compactedUpTo = compacted_;
  highestBallotSeen_ = std::max(highestBallotSeen_, m.ballot);
  if (learner_) {
    reply.promised = promised_;  // a learner votes for nobody
    send(from, std::move(reply));
    return;
  }
  if (m.ballot < promised_) {
    reply.promised = promised_;
    send(from, std::move(reply));
    return;
  }
  if (now_ < leaseUntil_ && m.ballot != leaseBallot_ && !config_.bugs.ignoreLeaseOnPrepare) {
    reply.leaseHeld = true;
    reply.promised = promised_;  // not the lease holder: after a restart that is nobody
    send(from, std::move(reply));
    return;
  }
  raisePromise(m.ballot);
  // A lower ballot can arrive before this candidate's own prepare reaches its own acceptor;
  // only a higher one ends the candidacy.
  if (role_ != Role::Follower && m.ballot > ballot_) stepDown(m.ballot);
  reply.ok = true;
  reply.promised = promised_;
  std::size_t bytes = 0;
  for (auto it = log_.lower_bound(m.fromSlot); it != log_.end(); ++it) {
    bytes += wireSize(it->second.value);
    if (!reply.entries.empty() && bytes > config_.promiseBytes) {
      reply.truncated = true;
      break;
    }
    reply.entries.push_back(PromisedEntry{it->first, it->second.ballot, it->second.value, it->second.chosen});
  }
  send(from, std::move(reply));
}

void Replica::onPromise(NodeId from, const Promise& m) {
  if (!m.leaseHeld) highestBallotSeen_ = std::max(highestBallotSeen_, m.promised);
  if (role_ != Role::Candidate || m.ballot != ballot_) return;
  if (!m.ok) {
    if (!m.leaseHeld && m.promised > ballot_) stepDown(m.promised);
    return;
  }
  if ((m.compactedUpTo >= prepareFrom_ && !config_.bugs.ignoreCompactedPromise) || m.truncated) {
    // That acceptor has forgotten slots this candidate never learned, or knows more than one
    // frame holds: catch up first.
    stepDown(ballot_);
    send(from, CatchupRequest{commitIndex_ + 1});
    return;
  }
  promises_[from] = m;
  if (promises_.size() >= quorum_) becomeLeader();
}

void Replica::becomeLeader() {
  // For every slot from prepareFrom_ on, take the value accepted in the highest ballot among
  // the majority's answers (a value known to be chosen wins outright); fill holes with no-ops.
  std::map<Slot, PromisedEntry> best;
  for (const auto& [node, promise] : promises_) {
    for (const auto& e : promise.entries) {
      if (e.slot < prepareFrom_) continue;
      auto it = best.find(e.slot);
      if (it == best.end() || (!it->second.chosen && (e.chosen || e.ballot > it->second.ballot))) best[e.slot] = e;
    }
  }
  role_ = Role::Leader;
  leaderHint_ = config_.id;
  failedElections_ = 0;
  leaderSince_ = now_;
  lastHeardAt_.clear();
  ackedAt_.clear();
  votes_.clear();
  proposed_.clear();
  lastSentAt_.clear();
  askedOf_.clear();
  // The first followers asked are those that just promised: they are up.
  voters_.clear();
  slowAt_.clear();
  for (const auto& [node, promise] : promises_) {
    if (node != config_.id && voters_.size() + 1 < quorum_) voters_.push_back(node);
  }
  pushedUpTo_ = commitIndex_;
  reads_.clear();
  Slot maxSlot = prepareFrom_ - 1;
  if (!best.empty()) maxSlot = std::max(maxSlot, best.rbegin()->first);
  if (config_.bugs.skipPhase1) maxSlot = std::max(maxSlot, log_.empty() ? commitIndex_ : log_.rbegin()->first);
  nextSlot_ = maxSlot + 1;
  recoveredUpTo_ = maxSlot;
  for (Slot s = prepareFrom_; s <= maxSlot; ++s) {
    auto it = best.find(s);
    // A hole is a no-op, marked as one: an empty batch is not a value anyone proposed.
    const bool hole = it == best.end();
    proposeSlot(s, hole ? (config_.bugs.holeAsEmptyBatch ? Value{} : Value::makeNoop()) : it->second.value);
  }
  sendHeartbeats();
}

void Replica::stepDown(Ballot seen) {
  if (role_ == Role::Leader) {
    if (!queue_.empty()) {
      out_->rejected.push_back(Rejected{std::vector<std::string>(queue_.begin(), queue_.end()), 0});
      queue_.clear();
    }
    for (const auto& read : reads_) out_->failedReads.push_back(read.id);
    reads_.clear();
  }
  if (role_ != Role::Follower) ++failedElections_;
  role_ = Role::Follower;
  proposed_.clear();
  lastSentAt_.clear();
  askedOf_.clear();
  votes_.clear();
  promises_.clear();
  ackedAt_.clear();
  if (seen.node != config_.id) leaderHint_ = 0;
  resetElectionTimer();
}

void Replica::raisePromise(Ballot ballot) {
  if (ballot <= promised_) return;
  promised_ = ballot;
  if (!config_.bugs.votesInMemoryOnly) out_->records.push_back(PromiseRecord{ballot});
}

bool Replica::followLeader(Ballot ballot) {
  highestBallotSeen_ = std::max(highestBallotSeen_, ballot);
  if (ballot < promised_) return false;
  if (learner_ && learnerTarget_ != 0 && ballot > learnerBallot_) {
    // The leader that named the target was not the last one: ask the new one.
    learnerTarget_ = 0;
    learnerConfirmed_ = false;
  }
  if (!learner_) raisePromise(ballot);
  if (role_ != Role::Follower && ballot != ballot_) stepDown(ballot);
  leaderHint_ = ballot.node;
  if (ballot.node != config_.id) {
    failedElections_ = 0;  // a leader is working: back to the short timeout
    lastLeaderContact_ = now_;
    preVoting_ = false;
    resetElectionTimer();
  }
  leaseBallot_ = ballot;
  leaseUntil_ = now_ + config_.leaseDuration;
  return true;
}

void Replica::sendHeartbeats() {
  lastHeartbeat_ = now_;
  broadcast(Heartbeat{ballot_, commitIndex_, nextSlot_, now_});
}

void Replica::onHeartbeat(NodeId from, const Heartbeat& m) {
  if (!followLeader(m.ballot)) {
    send(from, HeartbeatReply{m.ballot, false, promised_, m.sentAt, commitIndex_});
    return;
  }
  // A learner's ack would vouch for a promise it has forgotten: it must not count toward a
  // lease or a read-index round, so it answers "not ok" without a higher ballot.
  send(from, HeartbeatReply{m.ballot, !learner_, promised_, m.sentAt, commitIndex_});
  learnCommit(m.ballot, m.commitIndex, from);
}

void Replica::onHeartbeatReply(NodeId from, const HeartbeatReply& m) {
  if (recordAck(from, m.ballot, m.ok, m.promised, m.sentAt)) checkReads();
}

// ---- reads ------------------------------------------------------------------------------------

Time Replica::quorumAckedAt() const { return quorumTime(ackedAt_); }

Time Replica::quorumTime(const std::map<NodeId, Time>& times) const {
  // Every lease check lands here, several times a turn: 3 or 5 members take no allocation.
  constexpr std::size_t kOnStack = 8;
  std::array<Time, kOnStack> onStack{};
  std::vector<Time> onHeap;
  Time* acked = onStack.data();
  if (config_.members.size() > kOnStack) {
    onHeap.resize(config_.members.size());
    acked = onHeap.data();
  }
  std::size_t n = 0;
  for (NodeId m : config_.members) {
    auto it = times.find(m);
    acked[n++] = it == times.end() ? 0 : it->second;
  }
  // The quorum-th latest time: a majority has acknowledged at or after it.
  std::nth_element(acked, acked + (quorum_ - 1), acked + n, std::greater<Time>());
  return acked[quorum_ - 1];
}

void Replica::checkReads() {
  if (reads_.empty()) return;
  const Time confirmed = quorumAckedAt();
  auto ready = std::stable_partition(reads_.begin(), reads_.end(),
                                     [&](const PendingRead& r) { return r.requestedAt > confirmed; });
  for (auto it = ready; it != reads_.end(); ++it) out_->reads.push_back(ReadReady{it->id, it->index});
  reads_.erase(ready, reads_.end());
}

}  // namespace warden::coordinator::paxos
