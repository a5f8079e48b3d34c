#pragma once
// Messages between replicas. Every message names its sender and receiver; all are idempotent,
// so duplicates and reordering are harmless. Membership is static for now, but nothing here
// assumes a fixed member count: a reconfiguration entry in the log can change the quorum later.

#include <variant>
#include <vector>

#include "coordinator/paxos/Types.h"

namespace warden::coordinator::paxos {

// Phase 1a: "promise not to accept below `ballot` for every slot from `fromSlot` on".
struct Prepare {
  Ballot ballot;
  Slot fromSlot = 1;
};

struct PromisedEntry {
  Slot slot = 0;
  Ballot ballot;  // the ballot it was accepted in
  Value value;
  bool chosen = false;  // the sender knows this value is chosen
};

// Phase 1b. When !ok, `promised` is the higher ballot that blocked it (or the one holding a
// lease, when `leaseHeld`).
struct Promise {
  Ballot ballot;
  bool ok = false;
  bool leaseHeld = false;
  Ballot promised;
  std::vector<PromisedEntry> entries;  // every accepted slot >= fromSlot...
  Slot compactedUpTo = 0;              // the sender no longer has slots <= this one
  // ...unless they would not fit in one frame: then the candidate must catch up first, which
  // raises its fromSlot and shrinks the next promise.
  bool truncated = false;
};

// Phase 2a, with the leader's commit index piggybacked.
struct Accept {
  Ballot ballot;
  Slot slot = 0;
  Value value;
  Slot commitIndex = 0;
  Time sentAt = 0;  // leader's clock, echoed back for the lease
};

struct Accepted {
  Ballot ballot;
  Slot slot = 0;
  bool ok = false;
  Ballot promised;  // when !ok
  Time sentAt = 0;  // echoed from the Accept
};

struct Heartbeat {
  Ballot ballot;
  Slot commitIndex = 0;
  Slot nextSlot = 0;  // the first slot the leader has not proposed yet
  Time sentAt = 0;
};

struct HeartbeatReply {
  Ballot ballot;
  bool ok = false;
  Ballot promised;
  Time sentAt = 0;
  Slot commitIndex = 0;  // the follower's, so the leader can see who lags
};

// "Send me the chosen values from `fromSlot` on." Any replica answers from what it knows.
// A rebuilding replica adds a fresh nonce, so that it can tell an answer made after its
// restart from a stale packet.
struct CatchupRequest {
  Slot fromSlot = 1;
  std::uint64_t nonce = 0;
};

struct ChosenEntry {
  Slot slot = 0;
  Value value;
  bool operator==(const ChosenEntry&) const = default;
};

// Pre-vote (PAXOS.md 10): "would you vote for a new ballot?" Nothing is raised or made durable,
// so a node cut off from the others cannot inflate the ballots and depose a working leader when
// it comes back: it campaigns only once a majority has also lost touch with the leader.
struct PreVote {
  Ballot ballot;  // the ballot it would prepare
};

struct PreVoteReply {
  Ballot ballot;  // echoed
  bool granted = false;
};

struct CatchupReply {
  std::vector<ChosenEntry> entries;  // contiguous, from the requested slot
  bool snapshotNeeded = false;       // the requested slot was compacted away here
  Slot compactedUpTo = 0;
  std::uint64_t nonce = 0;  // echoed from the request
  Ballot leaderBallot;      // when the sender leads: its ballot...
  Slot nextSlot = 0;        // ...and the first slot it has not proposed yet
  // The sender's promised ballot when it answered. A rebuilding replica collects these from
  // every member, for a nonce of its own, to honour promises it gave before its disk was lost.
  Ballot promised;
};

using Payload = std::variant<Prepare, Promise, Accept, Accepted, Heartbeat, HeartbeatReply, CatchupRequest,
                             CatchupReply, PreVote, PreVoteReply>;

struct Message {
  NodeId from = 0;
  NodeId to = 0;
  Payload payload;
};

const char* messageName(const Payload& payload);

}  // namespace warden::coordinator::paxos
