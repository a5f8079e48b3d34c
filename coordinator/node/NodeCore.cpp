#include "coordinator/node/NodeCore.h"

#include <malloc.h>

#include <algorithm>
#include <cstdio>

#include "coordinator/node/Frames.h"
#include "coordinator/paxos/MessageCodec.h"

namespace warden::coordinator::node {

namespace {

constexpr std::uint64_t kTickUs = 10'000;
// Every node hears from every peer at least every ClusterOptions::pingUs (a Ping when it has
// nothing else to say), so a member silent for kHealthyWithinUs is reported down.
constexpr std::uint64_t kHealthyWithinUs = 700'000;
// Ticks (settleOverdueWrites) at most this often.
constexpr std::uint64_t kTickEveryUs = 100'000;

// Removes every pending request whose deadline has passed, then tells each (its callback may
// queue more work, so the map is no longer walked by then).
template <typename Pending, typename Tell>
void takeOverdue(std::map<std::uint64_t, Pending>& pending, std::uint64_t nowUs, Tell tell) {
  std::vector<Pending> overdue;
  for (auto it = pending.begin(); it != pending.end();) {
    if (nowUs < it->second.deadlineUs) {
      ++it;
      continue;
    }
    overdue.push_back(std::move(it->second));
    it = pending.erase(it);
  }
  for (auto& p : overdue) tell(p);
}

}  // namespace

NodeCore::NodeCore(storage::Env& env, const StateMachine& stateMachine, ClusterOptions options, Ports ports,
                   AppliedHook onApplied, EntryHook onEntry)
    : env_(env),
      stateMachine_(stateMachine),
      options_(std::move(options)),
      outbox_(ports.outbox),
      clock_(ports.clock),
      random_(ports.random),
      store_(ports.store),
      log_(std::move(ports.log)),
      onApplied_(std::move(onApplied)),
      onEntry_(std::move(onEntry)),
      incarnation_(ports.random.next() | 1),
      worker_(ports.worker) {
  options_.paxos.id = options_.id;
  options_.paxos.members.clear();
  for (const auto& [id, address] : options_.members) options_.paxos.members.push_back(id);
  {
    storage::Txn txn = storage::Txn::write(env_);
    if (stateMachine_.finishInterruptedInstall(txn)) log_("finished installing the snapshot an earlier process began");
    txn.commit();
  }
  {
    storage::Txn txn = storage::Txn::read(env_);
    applied_ = stateMachine_.appliedIndex(txn);
    visibleApplied_.store(applied_, std::memory_order_release);
    appliedRevision_.store(stateMachine_.revision(txn), std::memory_order_release);
    epoch_ = stateMachine_.sessionEpoch(txn);
    appliedStampMs_ = stateMachine_.timestampMs(txn);
  }
  appliedStampAtUs_ = now();
  timeLockDelays();
  startReplica();
  nextTickUs_ = now() + kTickUs;
  updateView();
}

// ---- inputs ---------------------------------------------------------------------------------

void NodeCore::submit(Command command, Done done, AnswerWhen when) {
  const std::uint64_t requestId = nextRequest_;
  // Counted in leader time: as this node last applied it, moved on by its own clock since (or its
  // own wall clock, if later). A node whose wall clock is behind the leader's still gives its
  // writes their whole time.
  const std::uint64_t leaderTimeMs = appliedStampMs_ + (now() - appliedStampAtUs_) / 1000;
  const std::uint64_t deadlineMs = std::max(clock_.wallMs(), leaderTimeMs) + options_.writeTimeoutMs;
  PendingWrite w;
  w.done = std::move(done);
  w.deadlineUs = now() + options_.writeTimeoutMs * 1000;
  w.giveUpUs = now() + 2 * options_.writeTimeoutMs * 1000;
  w.deadlineMs = deadlineMs;
  w.proposal = ownProposal(command, deadlineMs);
  w.answerWhenApplied = when == AnswerWhen::Applied;
  writes_[requestId] = std::move(w);
}

void NodeCore::readBarrier(ReadDone done) {
  if (options_.bugs.localReads) return done(Status::Ok);
  reads_[nextRead_++] = PendingRead{std::move(done), now() + options_.writeTimeoutMs * 1000};
}

void NodeCore::keepalive(std::uint64_t session, KeepaliveDone done) {
  keepalives_[nextKeepalive_++] = PendingKeepalive{session, std::move(done), now() + options_.writeTimeoutMs * 1000};
}

void NodeCore::peerFrame(std::uint64_t from, const std::string& body) {
  lastHeardUs_[from] = now();
  try {
    onPeerFrame(from, body);
  } catch (const DecodeError& e) {
    log_("dropped a malformed frame from node " + std::to_string(from) + ": " + e.what());
  }
}

void NodeCore::hello(std::uint64_t from, const std::string& http) {
  lastHeardUs_[from] = now();
  peerHttp_[from] = http;
}

void NodeCore::onPeerFrame(std::uint64_t from, const std::string& body) {
  if (body.empty()) throw DecodeError("empty frame");
  const auto kind = static_cast<Frame>(body[0]);
  const std::string_view rest = std::string_view(body).substr(1);
  Decoder in(rest);
  switch (kind) {
    case Frame::Paxos: {
      paxos::Message message = paxos::decodeMessage(rest);
      if (message.from != from || message.to != options_.id) throw DecodeError("misaddressed message");
      if (replica_) readies_.push_back(replica_->step(message, now()));
      break;
    }
    case Frame::Forward: onForward(from, in, rest.size()); break;
    case Frame::ForwardRejected: onForwardRejected(in, rest.size()); break;
    case Frame::ReadIndexRequest: onReadIndexRequest(from, in); break;
    case Frame::ReadIndexReply: onReadIndexReply(in); break;
    case Frame::Probe: onProbe(from, in); break;
    case Frame::ProbeReply: onProbeReply(from, in); break;
    case Frame::SnapshotChunk: receiveSnapshotChunk(from, in, rest.size()); break;
    case Frame::KeepaliveRequest: onKeepaliveRequest(from, in, rest.size()); break;
    case Frame::KeepaliveReply: onKeepaliveReply(in, rest.size()); break;
    case Frame::SnapshotAck: onSnapshotAck(from, in); break;
    case Frame::Ping: break;  // peerFrame() noted the time
    default: throw DecodeError("unknown frame kind");
  }
}

// ---- the turn -------------------------------------------------------------------------------

void NodeCore::endTurn() {
  try {
    sendUnsent();
    if (now() >= nextTickUs_) {
      // Not while installing a snapshot: such a node must not campaign (it could win and then
      // lead without serving until the install is done), nor ask for catch-up it cannot use.
      if (replica_ && !installing_) readies_.push_back(replica_->tick(now()));
      probe();
      timeOut();
      proposeEpoch();
      proposeExpiries();
      proposeLockDelayEnds();
      pingQuietPeers();
      nextTickUs_ = now() + kTickUs;
    }
    serveKeepalives();
    serveReads(false);
    stepInstall();
    finishReadyBatch();
    pumpSnapshots();
    publishLeaseReads();
    updateView();
    outbox_.flush();
  } catch (const storage::LmdbError& e) {
    // The acceptor state or the state machine could not be written: carrying on could vote on
    // something not durable. Stop loudly.
    log_(std::string("fatal storage error in the replicated log: ") + e.what());
    std::abort();
  }
}

std::uint64_t NodeCore::wakeAtUs() const {
  if (installing_) return now();  // a step of the install every turn until it is in
  std::uint64_t at = relayWakeUs_ != 0 ? std::min(nextTickUs_, relayWakeUs_) : nextTickUs_;
  if (applyTxn_) at = std::min(at, applyOpenedUs_ + options_.applyCommitDelayUs);
  return at;
}

void NodeCore::shutdown() {
  try {
    commitApply();  // its answers go out as results, not as "shutting down"
  } catch (const storage::LmdbError& e) {
    log_(std::string("the last apply could not be committed at shutdown: ") + e.what());
  }
  for (auto& [id, w] : writes_) {
    if (w.tick) continue;
    CommandResult r;
    // One a leader may hold can still be applied: its outcome is unknown.
    r.status = w.everSent ? Status::Timeout : Status::Unavailable;
    r.message = w.everSent ? "the node is shutting down: the write may or may not be applied" : "the node is shutting down";
    w.done(std::move(r));
  }
  for (auto& [id, r] : reads_) r.done(Status::Unavailable);
  for (auto& [id, k] : keepalives_) k.done(Status::Unavailable, 0);
  writes_.clear();
  reads_.clear();
  keepalives_.clear();
}

ClusterView NodeCore::view() const {
  std::lock_guard lock(viewMutex_);
  return view_;
}

void NodeCore::finishReadyBatch() {
  // What the turn's inputs answered (read index and keepalive replies, forwards, snapshot
  // acknowledgements) leaves before the turn's flush to disk.
  outbox_.flush();
  // Persist, release, deliver to self, repeat: self-addressed messages may produce more. What the
  // rounds apply stays in the open apply transaction (commitApplyUnlessItMayWait at the end).
  // With flushBehind, a round's records are written and flushed by the store in the background:
  // their Readies wait in held_ and are released by the round that finds them durable.
  for (int round = 0; round < 64 && (!readies_.empty() || heldDurable()); ++round) {
    std::vector<paxos::Ready> batch = std::move(readies_);
    readies_.clear();
    publishChosen();  // before this round's messages leave
    // A Ready that ends a rebuild (LearnerRecord{false}) must not be durable before the slots it
    // delivers: they were learned by catch-up, in no acceptor log here, and a voter is counted on
    // to hold them. Applied and committed first, they are flushed before it (below; a power loss
    // then keeps them without the mark, or both; found by the review of issue 14:
    // PowerLossScenarioTest).
    // (All of the round's slots, in order: an earlier Ready of the batch may deliver the slots
    // before the voter's.)
    auto holds = [&batch](auto isKind) {
      return std::any_of(batch.begin(), batch.end(), [&](const paxos::Ready& ready) {
        return std::any_of(ready.records.begin(), ready.records.end(), isKind);
      });
    };
    const bool turnsVoter = holds([](const paxos::Record& r) {
      const auto* l = std::get_if<paxos::LearnerRecord>(&r);
      return l && !l->learner;
    });
    if (turnsVoter && !options_.bugs.voterBeforeLearnedDurable) {
      std::vector<paxos::ChosenEntry> early;
      for (auto& ready : batch) {
        std::move(ready.committed.begin(), ready.committed.end(), std::back_inserter(early));
        ready.committed.clear();
      }
      if (!early.empty()) applyInto(early);
    }
    // A compaction drops slots the state must hold, and a learner's voter mark counts on the
    // slots it learned: the store flushes the applied state before either (LmdbLogStore), so the
    // apply so far must be committed.
    const bool compacts = holds([](const paxos::Record& r) { return std::holds_alternative<paxos::CompactRecord>(r); });
    const bool learns = holds([](const paxos::Record& r) { return std::holds_alternative<paxos::LearnerRecord>(r); });
    if (compacts || learns) commitApply();
    // Those two are flushed before the round goes on, as is everything without flushBehind (the
    // flush covers every record written before, held ones included).
    const bool behind = options_.flushBehind && !compacts && !learns;
    std::vector<paxos::Message> toSelf;
    if (behind) {
      for (auto& ready : batch) {
        for (auto& accept : ready.releaseAccepts(options_.bugs.votesBeforeFlush)) {
          if (accept.to == options_.id) {
            toSelf.push_back(std::move(accept));  // the vote it makes, written next round, is held
          } else {
            sendPaxos(accept);
          }
        }
      }
    }
    const std::uint64_t ticket = store_.writeBehind(batch);
    if (ticket > store_.durable()) {
      if (behind) {
        store_.flushBehind();
      } else {
        store_.flushNow();
      }
    }
    // The slots a compaction dropped are freed, but glibc keeps freed memory for reuse: a large
    // state's slots (transactions of many creates) would hold twice what is retained. Handed
    // back here, at each compaction (every retainedSlots slots, or retainedBytes of them).
    if (compacts) ::malloc_trim(0);
    std::vector<paxos::ChosenEntry> chosen;
    for (auto& ready : batch) {
      takeOutputs(ready, chosen);
      held_.push_back(Held{ticket, std::move(ready)});
    }
    releaseDurable(toSelf);
    outbox_.flush();  // this round's messages leave before its applies and the next round's flush
    if (!chosen.empty()) applyInto(chosen);
    for (const auto& message : toSelf) readies_.push_back(replica_->step(message, now()));
    if (const std::uint64_t point = compactionPoint(); point > 0) readies_.push_back(replica_->compact(point));
  }
  commitApplyUnlessItMayWait();
  serveReads(true);
}

void NodeCore::takeOutputs(paxos::Ready& ready, std::vector<paxos::ChosenEntry>& chosen) {
  std::move(ready.committed.begin(), ready.committed.end(), std::back_inserter(chosen));
  ready.committed.clear();
  takeReadAnswers(ready);
  ready.reads.clear();
  ready.failedReads.clear();
  takeRejected(ready.rejected);
  for (std::uint64_t peer : ready.snapshotNeeded) sendSnapshot(peer);
  ready.snapshotNeeded.clear();
}

void NodeCore::releaseDurable(std::vector<paxos::Message>& toSelf) {
  while (!held_.empty()) {
    Held& front = held_.front();
    const std::optional<paxos::Persisted> proof = store_.proofFor(front.ready, front.ticket);
    if (!proof) break;
    for (auto& message : front.ready.release(*proof)) {
      if (message.to == options_.id) {
        toSelf.push_back(std::move(message));
      } else if (const auto* catchup = std::get_if<paxos::CatchupRequest>(&message.payload);
                 catchup && (installing_ || catchup->fromSlot <= applied_)) {
        // A heartbeat's commit index makes the replica ask for slots the install will cover
        // (or, asked in the turn an install ended, covered already); the leader would answer
        // with yet another snapshot stream. (Lost messages are normal.)
        continue;
      } else {
        sendPaxos(message);
      }
    }
    held_.pop_front();
  }
}

void NodeCore::sendPaxos(const paxos::Message& message) {
  send(message.to, frame(Frame::Paxos, paxos::encodeMessage(message)));
}

void NodeCore::noteAppliedStamp(std::uint64_t stampMs) {
  if (stampMs == appliedStampMs_) return;
  appliedStampMs_ = stampMs;
  appliedStampAtUs_ = now();
}

void NodeCore::finishWrite(std::uint64_t requestId, CommandResult result) {
  auto it = writes_.find(requestId);
  if (it == writes_.end()) return;  // answered already
  Done done = std::move(it->second.done);
  const bool tick = it->second.tick;
  writes_.erase(it);
  if (tick) {
    tickPending_ = false;
    return;
  }
  // A callback that throws must not take the driver (and the node's vote) with it.
  try {
    done(std::move(result));
  } catch (const std::exception& e) {
    log_(std::string("a write's completion failed: ") + e.what());
  }
}

void NodeCore::timeOut() {
  const std::uint64_t at = now();
  settleOverdueWrites(at);
  takeOverdue(reads_, at, [](PendingRead& r) { r.done(Status::NoQuorum); });
  takeOverdue(keepalives_, at, [](PendingKeepalive& k) { k.done(Status::NoQuorum, 0); });
}

void NodeCore::settleOverdueWrites(std::uint64_t nowUs) {
  bool undecided = false;
  std::vector<std::pair<std::uint64_t, CommandResult>> decided;
  for (auto& [id, w] : writes_) {
    if (nowUs < w.deadlineUs || w.tick) continue;
    CommandResult r;
    if (!w.everSent) {
      r.status = Status::NoQuorum;  // no leader ever held it: it cannot be chosen
      r.message = "not applied: no leader was reachable within " + std::to_string(options_.writeTimeoutMs) + " ms";
    } else if ((appliedStampMs_ > w.deadlineMs && !w.mayBeInSnapshot) || options_.bugs.refuseOnDeadline) {
      r.status = Status::NoQuorum;  // applied time passed its deadline: apply skips it from now on
      r.message = "not applied: no leader with a majority committed it within " + std::to_string(options_.writeTimeoutMs) + " ms";
    } else if (nowUs >= w.giveUpUs) {
      r.status = Status::Timeout;
      r.message = "no answer within " + std::to_string(2 * options_.writeTimeoutMs) +
                  " ms: the write may or may not be applied (retry it with the same Idempotency-Key)";
    } else {
      undecided = true;  // wait for an entry stamped past its deadline
      continue;
    }
    decided.emplace_back(id, std::move(r));
  }
  for (auto& [id, r] : decided) finishWrite(id, std::move(r));
  // Ticks give the log entries stamped with the leader's time, so that a write past its deadline
  // is decided even when nobody else writes.
  if (undecided && !tickPending_ && nowUs >= lastTickUs_ + kTickEveryUs) {
    tickPending_ = true;
    lastTickUs_ = nowUs;
    PendingWrite tick;
    tick.done = [](CommandResult) {};
    tick.deadlineUs = tick.giveUpUs = nowUs + 2 * options_.writeTimeoutMs * 1000;
    tick.proposal = ownProposal(tickCommand(), 0);
    tick.tick = true;
    writes_[nextRequest_ - 1] = std::move(tick);
  }
  // A tick nobody took in time is dropped; another follows if still needed.
  for (auto it = writes_.begin(); it != writes_.end();) {
    if (it->second.tick && nowUs >= it->second.giveUpUs) {
      tickPending_ = false;
      it = writes_.erase(it);
    } else {
      ++it;
    }
  }
}

void NodeCore::pingQuietPeers() {
  if (options_.pingUs == 0) return;
  const std::uint64_t at = now();
  for (const auto& [id, address] : options_.members) {
    if (id == options_.id) continue;
    auto sent = lastSentUs_.find(id);
    if (sent == lastSentUs_.end() || at - sent->second >= options_.pingUs) send(id, frame(Frame::Ping));
  }
}

void NodeCore::updateView() {
  ClusterView v;
  v.id = options_.id;
  const std::uint64_t at = now();
  if (replica_) {
    const std::uint64_t leader = replica_->isLeader() ? options_.id : replica_->leaderHint();
    if (leader != 0) v.leader = leader;
    v.commitIndex = replica_->commitIndex();
    const paxos::Ballot promised = replica_->promised();
    if (!promised.isZero()) v.ballot = std::to_string(promised.round) + "." + std::to_string(promised.node);
    v.learner = replica_->isLearner();
  } else {
    v.learner = true;
  }
  v.appliedIndex = visibleApplied_.load(std::memory_order_relaxed);  // what reads see: committed
  v.appliedPending = applied_;
  {
    std::lock_guard lock(keeperMutex_);
    liveSessions_.store(keeper_.size(), std::memory_order_relaxed);
  }
  v.members.reserve(options_.members.size());  // built every turn: one allocation, not one per doubling
  for (const auto& [id, address] : options_.members) {
    MemberView m;
    m.id = id;
    m.peer = address;
    if (id == options_.id) {
      m.http = options_.http;
      m.healthy = true;
    } else {
      if (auto it = peerHttp_.find(id); it != peerHttp_.end()) m.http = it->second;
      auto heard = lastHeardUs_.find(id);
      // Pings keep even followers that have nothing to say to each other heard (pingQuietPeers).
      // A connection alone proves nothing: one never written to looks alive after its peer died.
      m.healthy = heard != lastHeardUs_.end() && at - heard->second < kHealthyWithinUs;
    }
    m.leader = v.leader && *v.leader == id;
    v.members.push_back(std::move(m));
  }
  std::lock_guard lock(viewMutex_);
  view_ = std::move(v);
}

}  // namespace warden::coordinator::node
