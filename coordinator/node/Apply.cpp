// Applying chosen slots to the state machine (NodeCore's apply; see NodeCore.h).
//
// The apply transaction is left open through the rest of the turn's persist rounds, and past
// the turn for up to applyCommitDelayUs while nothing needs it visible, so that one commit (one
// disk flush; the votes have their own, in the write-ahead log) covers many turns' applies.
// Nothing outside the driver sees an apply before that commit: watch events, read barriers and
// the writes whose callers read the state wait for finishApply(), after it.
// Writes submitted with AnswerWhen::Applied are answered from applyInto(), before it: their
// slots are chosen, so their results are final (a crash re-applies them alike).

#include "coordinator/node/NodeCore.h"

namespace warden::coordinator::node {

namespace {

// A write's deadline at most this far ahead of applied time is honoured (see applyInto()).
constexpr std::uint64_t kMaxDeadlineAheadMs = 10 * 60 * 1000;

}  // namespace

void NodeCore::apply(const std::vector<paxos::ChosenEntry>& entries) {
  applyInto(entries);
  commitApply();
}

void NodeCore::applyInto(const std::vector<paxos::ChosenEntry>& entries) {
  struct Origin {
    std::uint64_t requestId = 0;
    bool ours = false;
  };
  if (installing_) {
    // The tables are half replaced: these wait for the install (which may cover them).
    heldChosen_.insert(heldChosen_.end(), entries.begin(), entries.end());
    log_("held " + std::to_string(entries.size()) + " chosen slots during an install");
    return;
  }
  if (!applyTxn_) {
    applyTxn_.emplace(storage::Txn::write(env_));
    applyOpenedUs_ = now();
  }
  storage::Txn& txn = *applyTxn_;
  watch::Applied& applied = applyOutcome_.applied;
  auto& answers = applyOutcome_.answers;
  auto& late = applyOutcome_.late;
  std::vector<std::pair<std::uint64_t, CommandResult>> early;  // AnswerWhen::Applied
  {
    for (const auto& chosen : entries) {
      if (chosen.slot <= applied_) continue;  // a snapshot installed this turn covers it
      Entry entry;
      entry.index = chosen.slot;
      // Time comes from the log alone (the proposals' leader stamps; StateMachine::apply keeps it
      // from running backwards), never from what this process happens to remember: a node that
      // restarted or installed a snapshot must apply the same entry identically.
      entry.timestampMs = 0;
      // Sized once: each grown a command at a time was several trips through malloc a slot.
      const std::size_t count = chosen.value.commands.size();
      std::vector<Origin> slotOrigins;
      slotOrigins.reserve(count);
      entry.commands.reserve(count);
      std::vector<std::pair<ProposalView, Command>> proposals;  // views into chosen.value
      proposals.reserve(count);
      // The slot's time: its leader's stamps, never before what was applied already.
      std::uint64_t slotStamp = stateMachine_.timestampMs(txn);
      for (const auto& bytes : chosen.value.commands) {
        // A proposal that does not decode is skipped the same way on every replica.
        try {
          const ProposalView p = viewProposal(bytes);
          Decoder in(p.command);
          Command command = decodeCommand(in);
          in.expectDone();
          slotStamp = std::max(slotStamp, p.timestampMs);
          proposals.emplace_back(p, std::move(command));
        } catch (const DecodeError&) {
        }
      }
      for (auto& [p, command] : proposals) {
        if (p.deadlineMs != 0 && slotStamp > p.deadlineMs && !options_.bugs.applyPastDeadline) {
          // Chosen too late: its origin may have told the client it was not applied.
          if (ours(p)) late.push_back(p.requestId);
          continue;
        }
        // A deadline absurdly far ahead (an origin whose clock is far off) would keep its
        // request's memory from ever being freed: such a proposal is never applied (its origin
        // ends with "outcome unknown").
        if (p.deadlineMs > slotStamp + kMaxDeadlineAheadMs && !options_.bugs.applyPastDeadline) continue;
        // A copy of a proposal applied already (a resent or duplicated frame) is skipped.
        if (!stateMachine_.admitRequest(txn, p.origin, p.incarnation, p.requestId, chosen.slot, p.deadlineMs, slotStamp)) {
          continue;
        }
        entry.timestampMs = std::max(entry.timestampMs, p.timestampMs);
        entry.commands.push_back(std::move(command));
        slotOrigins.push_back(Origin{p.requestId, ours(p)});
      }
      // The slot's time is stored even when its proposals were all skipped: the skips above were
      // decided at slotStamp, so applied time must not stay below it (a later slot carrying a
      // lower stamp would admit a copy of a write already answered 503).
      entry.timestampMs = slotStamp;
      StateMachine::Notes notes;
      const std::size_t eventsBefore = applied.events.size();
      notes.events = std::move(applied.events);
      auto results = stateMachine_.apply(txn, entry, &notes);
      applied.events = std::move(notes.events);
      noteLockDelays(applied.events, eventsBefore);
      if (onEntry_) onEntry_(chosen.slot, chosen.value, entry, results);
      lastTimestampMs_ = std::max(lastTimestampMs_, entry.timestampMs);  // for this node's own stamps
      {
        std::lock_guard lock(keeperMutex_);
        for (std::size_t i = 0; i < results.size(); ++i) {
          // A write answered from the idempotency table changed nothing: the keeper heard of it
          // when it applied (telling it again could end a session recreated since, or revive
          // one whose expiry is under way).
          if (!notes.replays[i]) keeper_.applied(entry.commands[i], results[i], now() / 1000);
        }
      }
      for (std::size_t i = 0; i < results.size(); ++i) {
        if (!slotOrigins[i].ours) continue;
        // Only a caller that reads the state waits for the commit; nobody waits for a tick, and
        // a write answered already (or an entry of this node's own duties) has nobody at all.
        auto w = writes_.find(slotOrigins[i].requestId);
        if (w == writes_.end()) continue;
        auto& to = w->second.answerWhenApplied || w->second.tick ? early : answers;
        to.emplace_back(slotOrigins[i].requestId, std::move(results[i]));
      }
      applied_ = chosen.slot;
    }
    applied.revision = stateMachine_.revision(txn);
    appliedRevision_.store(applied.revision, std::memory_order_release);
    epoch_ = stateMachine_.sessionEpoch(txn);
    noteAppliedStamp(stateMachine_.timestampMs(txn));
  }
  if (!early.empty()) {
    // Chosen, so final, whatever happens to this transaction: a crash before its commit applies
    // the same slots alike again. What they wrote is not visible yet, so the commit index goes
    // out first: a lease read begun after this answer sees it is behind and waits for the
    // commit (fastRead, serveReads).
    publishChosen();
    for (auto& [requestId, result] : early) finishWrite(requestId, std::move(result));
  }
}

storage::Txn NodeCore::writeTxn() {
  commitApply();
  return storage::Txn::write(env_);
}

void NodeCore::commitApplyUnlessItMayWait() {
  if (!applyTxn_) return;
  // Waiting callers (writes answered once visible, and those answered "not applied"; reads
  // and watchers outside, appliesWanted), or the delay is over (at once with a delay of 0): now.
  const bool waited = !applyOutcome_.answers.empty() || !applyOutcome_.late.empty() ||
                      (options_.appliesWanted && options_.appliesWanted(applyOutcome_.applied, appliedScan_));
  if (waited || now() >= applyOpenedUs_ + options_.applyCommitDelayUs) commitApply();
}

void NodeCore::commitApply() {
  if (!applyTxn_) return;
  // Not synced (one disk flush less on every write's path): applied state is rebuilt from the
  // acceptor log, whose commits are durable and make every earlier apply durable with them. A
  // machine crash may undo these applies, which is a process crash just before them: the slots
  // stay in the log (compaction is a durable commit, after them) and apply again alike.
  applyTxn_->commitWithoutSync();
  applyTxn_.reset();
  finishApply();
}

void NodeCore::finishApply() {
  // Committed: visible to every reader now; and what this node answers below is known chosen.
  publishChosen();
  visibleApplied_.store(applied_, std::memory_order_release);
  ApplyOutcome done = std::move(applyOutcome_);
  applyOutcome_ = {};
  appliedScan_ = {};
  if (onApplied_) onApplied_(done.applied);
  for (auto& [requestId, result] : done.answers) finishWrite(requestId, std::move(result));
  for (std::uint64_t requestId : done.late) {
    if (auto it = writes_.find(requestId); it != writes_.end() && it->second.mayBeInSnapshot) continue;
    CommandResult r;
    r.status = Status::NoQuorum;
    r.message = "not applied: no leader with a majority committed it within " + std::to_string(options_.writeTimeoutMs) + " ms";
    finishWrite(requestId, std::move(r));
  }
}

}  // namespace warden::coordinator::node
