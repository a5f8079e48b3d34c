#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <iterator>

#include "coordinator/paxos/Message.h"
#include "coordinator/paxos/Ready.h"
#include "coordinator/paxos/Record.h"

namespace warden::coordinator::paxos {

std::size_t wireSize(const Value& value) {
  std::size_t n = 16;
  for (const auto& c : value.commands) n += c.size() + 8;
  return n;
}

std::string toString(const Ballot& ballot) {
  return "(" + std::to_string(ballot.round) + "," + std::to_string(ballot.node) + ")";
}

const char* messageName(const Payload& payload) {
  static const char* names[] = {"Prepare",   "Promise",        "Accept",         "Accepted",
                                "Heartbeat", "HeartbeatReply", "CatchupRequest", "CatchupReply",
                                "PreVote",   "PreVoteReply"};
  return names[payload.index()];
}

void applyRecord(DurableState& state, const Record& record) {
  if (const auto* p = std::get_if<PromiseRecord>(&record)) {
    if (p->promised > state.promised) state.promised = p->promised;
  } else if (const auto* a = std::get_if<AcceptRecord>(&record)) {
    if (a->slot > state.compactedUpTo) state.accepted[a->slot] = AcceptedValue{a->ballot, a->value};
  } else if (const auto* l = std::get_if<LearnerRecord>(&record)) {
    state.learner = l->learner;
    state.started = true;
  } else if (const auto* c = std::get_if<CompactRecord>(&record)) {
    if (c->upTo > state.compactedUpTo) {
      state.compactedUpTo = c->upTo;
      state.accepted.erase(state.accepted.begin(), state.accepted.upper_bound(c->upTo));
    }
  }
}

bool Ready::empty() const {
  return records.empty() && committed.empty() && reads.empty() && failedReads.empty() && rejected.empty() &&
         snapshotNeeded.empty() && messages_.empty();
}

std::vector<Message> Ready::release(const Persisted& proof) {
  if (proof.readyId_ != id_) {
    std::fprintf(stderr, "fatal: messages released with the proof of another Ready\n");
    std::abort();
  }
  return std::move(messages_);
}

std::vector<Message> Ready::releaseAccepts(bool withVotes) {
  const auto rest = std::stable_partition(messages_.begin(), messages_.end(), [withVotes](const Message& m) {
    return !std::holds_alternative<Accept>(m.payload) && !(withVotes && std::holds_alternative<Accepted>(m.payload));
  });
  std::vector<Message> accepts(std::make_move_iterator(rest), std::make_move_iterator(messages_.end()));
  messages_.erase(rest, messages_.end());
  return accepts;
}

}  // namespace warden::coordinator::paxos
