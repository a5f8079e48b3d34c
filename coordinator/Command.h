#pragma once
// Commands are what the log carries: the HTTP edge turns a request into a Command, the log
// orders Commands into entries, and StateMachine::apply executes them. A Command is plain data
// with a stable binary encoding, so it can cross the peer link and be replayed identically.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

#include "coordinator/Bytes.h"
#include "coordinator/paxos/Types.h"

namespace warden::coordinator {

enum class OpType : std::uint8_t { Check = 1, Create = 2, Set = 3, Delete = 4 };

const char* opTypeName(OpType type);

// One namespace operation. Fields that do not belong to the op's type stay at their defaults.
struct Op {
  OpType type = OpType::Check;
  std::string path;
  std::string data;                    // create, set
  std::optional<std::int64_t> version;  // check, set, delete: compare-and-swap on Stat.version
  bool ephemeral = false;               // create
  bool sequential = false;              // create
  bool makeParents = false;             // create
  std::uint64_t session = 0;            // create: owner of an ephemeral node
  bool createIfMissing = false;         // set
  bool recursive = false;               // delete

  bool operator==(const Op&) const = default;
};

enum class CommandType : std::uint8_t {
  // All ops apply, in order and each seeing the previous ones, or none does; one revision.
  Txn = 1,
  SessionCreate = 2,  // session, ttlMs, name; the id is chosen at random by the node taking the request
  SessionClose = 3,   // session: its client closed it
  SessionExpire = 4,  // session, epoch: the leader of ballot `epoch` heard no keepalive for its ttl
  // epoch: a new leader's first entry. Sessions are decided by one leadership at a time
  // (PAXOS.md 9b): once a leader's epoch is applied, expiries stamped by earlier leaders are
  // ignored, and the leader speaks for sessions only after its own epoch is applied.
  SessionEpoch = 5,
  // Nothing: an entry whose only effect is its leader's timestamp. A node that must learn
  // whether a write of its past its deadline can still apply proposes one (NodeCore::timeOut).
  Tick = 7,
  // Locks (locks/LockQueue.h): session, name (the lock), shared, text (its owner's words).
  // Acquire queues the session's request (or finds the one it has); Release ends a held one by
  // its token; Withdraw takes a request that is still waiting out of the queue.
  LockAcquire = 10,
  LockRelease = 11,  // session, name, token
  LockWithdraw = 12,  // session, name, token (the revision that queued the request; 0: any)
  // Elections (the same queues under /_warden/elections): session, name, text (the value).
  // Campaign queues a candidacy; Proclaim changes the leader's value (token: its term); Resign
  // takes the session's candidacy out, leading or queued.
  ElectionCampaign = 13,
  ElectionProclaim = 14,
  ElectionResign = 15,
  // name, token: the leader ends lock `name`'s lock-delay set at revision `token` (timed on its
  // monotonic clock: locks/DelayTimers.h) and grants the queue's head. No session; a delay
  // extended since (a newer revision) runs on.
  LockDelayEnd = 16,
};

bool isElectionCommand(CommandType type);

// Locks and elections alike (they share a wire form and StateMachine::applyLock).
bool isLockCommand(CommandType type);

// Who speaks for sessions (PAXOS.md 9b): a leader's ballot, and which of its takeovers of the
// sessions this is (a leader whose lease lapsed takes them over again, with fresh ttls, and
// expiries it proposed before the lapse must not outlive that). Ordered: ballot first.
struct SessionEpoch {
  paxos::Ballot ballot;
  std::uint64_t takeover = 0;

  auto operator<=>(const SessionEpoch&) const = default;
  bool operator==(const SessionEpoch&) const = default;
};

std::string toString(const SessionEpoch& epoch);

struct Command {
  CommandType type = CommandType::Txn;
  std::vector<Op> ops;        // Txn
  std::uint64_t session = 0;  // Session*
  std::uint64_t ttlMs = 0;    // SessionCreate
  std::string name;           // SessionCreate
  SessionEpoch epoch;         // SessionExpire, SessionEpoch
  std::string text;           // LockAcquire: the owner's words
  std::uint64_t token = 0;    // LockRelease, ElectionProclaim (the term); LockAcquire: its lock-delay in ms
  bool shared = false;        // LockAcquire
  // Txn and locks: the limits of the node that admitted it, stamped there so that every replica applies
  // the command against the same ones (0: none, as for commands logged before they existed).
  std::uint64_t maxNodes = 0;    // nodes created and deleted, parents made included
  std::uint64_t quotaBytes = 0;  // a write that grows the state beyond this is refused
  // Txn, SessionCreate, SessionClose, LockRelease, ElectionProclaim and ElectionResign: the
  // client's Idempotency-Key (empty: none). A second command with the key gets the first one's result, and
  // nothing applies again (StateMachine, kIdempotencyMemoryMs).
  std::string idempotencyKey;

  bool operator==(const Command&) const = default;
};

Command txnCommand(std::vector<Op> ops);
// One op, moved in (a braced list would copy it: an initializer_list's elements are const).
Command txnCommand(Op op);
Command sessionCommand(CommandType type, std::uint64_t session);
Command expireCommand(std::uint64_t session, SessionEpoch epoch);
Command epochCommand(SessionEpoch epoch);
Command tickCommand();
// What an idempotency key is checked against: a transaction's ops, a session create's id, ttl
// and name, a session close's id, a lock or election command's type, session, name and fields.
std::string encodeOps(const Command& command);

void encodeCommand(Encoder& out, const Command& command);
Command decodeCommand(Decoder& in);  // throws DecodeError

}  // namespace warden::coordinator
