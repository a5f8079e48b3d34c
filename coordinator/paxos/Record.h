#pragma once
// What a replica asks to be made durable before its messages leave (PAXOS.md point 2), and the
// state a restart loads back.

#include <map>
#include <variant>
#include <vector>

#include "coordinator/paxos/Types.h"

namespace warden::coordinator::paxos {

struct PromiseRecord {
  Ballot promised;
};

struct AcceptRecord {
  Slot slot = 0;
  Ballot ballot;
  Value value;
};

// Slots up to `upTo` are applied and captured in the node's state; their log records may go.
struct CompactRecord {
  Slot upTo = 0;
};

// A replica whose disk was wiped stays a learner across restarts until it has rebuilt.
struct LearnerRecord {
  bool learner = false;
};

using Record = std::variant<PromiseRecord, AcceptRecord, CompactRecord, LearnerRecord>;

struct AcceptedValue {
  Ballot ballot;
  Value value;
};

// Everything the acceptor promised and accepted, as last synced.
struct DurableState {
  Ballot promised;
  std::map<Slot, AcceptedValue> accepted;
  Slot compactedUpTo = 0;
  bool learner = false;
  // A LearnerRecord was ever written: this disk has held this replica's state since it joined,
  // even if nothing else is on it yet. A disk without it is new or was wiped.
  bool started = false;
};

// Folds records into a durable state, as a store does when it writes them.
void applyRecord(DurableState& state, const Record& record);

}  // namespace warden::coordinator::paxos
