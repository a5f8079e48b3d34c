#pragma once
// The namespace state machine. apply() is deterministic: its effect is a function of the stored
// state and the entry alone (time comes from entry.timestampMs), so every replica that applies
// the same log holds byte-identical state. The applied index and the revision are written in the
// caller's transaction, together with the state they describe.

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "coordinator/Entry.h"
#include "coordinator/Status.h"
#include "coordinator/Tree.h"
#include "coordinator/watch/Event.h"
#include "coordinator/storage/Lmdb.h"
#include "session/SessionTable.h"

namespace warden::coordinator {

inline constexpr std::size_t kMaxDataBytes = 1 << 20;
inline constexpr std::size_t kMaxTxnOps = 1024;
// How long, in leader time, a write's Idempotency-Key is remembered with its result; and how
// many keys at most (the oldest go first).
// many keys and bytes at most (the oldest go first). A key is also kept for kIdempotencyMemorySlots
// slots, so that one leader whose clock runs far ahead does not make every key old at once.
inline constexpr std::uint64_t kIdempotencyMemoryMs = 10 * 60 * 1000;
inline constexpr std::uint64_t kIdempotencyMemorySlots = 100'000;
inline constexpr std::uint64_t kMaxIdempotencyKeys = 100'000;
inline constexpr std::uint64_t kMaxIdempotencyBytes = std::uint64_t{256} << 20;
// What the quota counts per node beyond its path and data: its stat and index entries.
inline constexpr std::uint64_t kNodeOverheadBytes = 100;
// The bytes a node counts against the quota.
std::uint64_t nodeCost(std::string_view path, std::size_t dataBytes);

class StateMachine {
 public:
  struct Dbs {
    MDB_dbi nodes;
    MDB_dbi children;
    MDB_dbi meta;
    MDB_dbi sessions;
    MDB_dbi owned;
    MDB_dbi requests;        // origin, incarnation, request id -> slot, deadline (requests without one)
    MDB_dbi requestsBySlot;  // slot, origin, incarnation, request id -> ""
    MDB_dbi staging;         // table byte ++ key -> value (or 0xfe ++ seq -> table, key, value when
                             // that key would be too long): a snapshot being received
    MDB_dbi idempotency;        // key -> applied time, ops digest, encoded result
    MDB_dbi idempotencyByTime;  // applied time ++ key -> ""
    MDB_dbi requestsByDeadline;  // deadline, origin, incarnation, request id -> slot (requests with one)
  };
  static Dbs openDbs(storage::Txn& writeTxn);

  explicit StateMachine(Dbs dbs);

  // Creates the root node in a fresh store; does nothing to an existing one.
  void initialize(storage::Txn& txn) const;

  // What apply did beyond its results, for its caller.
  struct Notes {
    // Per command: answered from the idempotency table (applied before: nothing changed, and
    // the session keeper must not hear of it again).
    std::vector<bool> replays;
    std::vector<watch::Event> events;  // appended, in order (for the watch history)
  };
  // Precondition: entry.index == appliedIndex(txn) + 1 (checked: a gap aborts loudly).
  // Returns one result per command, in order.
  std::vector<CommandResult> apply(storage::Txn& txn, const Entry& entry, Notes* notes = nullptr) const;

  // The whole applied state as (table, key, value) rows, for a snapshot sent to a peer, and its
  // atomic replacement by such rows on the receiving side (in the caller's write transaction).
  struct Row {
    std::uint8_t table;  // 0 nodes, 1 children, 2 meta, 3 sessions, 4 owned, 5 requests, 6 requests by slot
    std::string key;
    std::string value;
  };
  void exportState(storage::Txn& txn, const std::function<void(Row)>& emit) const;
  void importState(storage::Txn& txn, const std::vector<Row>& rows) const;

  // The same, a piece at a time, for states larger than memory. An export resumes after
  // `at` and stops once `budgetBytes` of rows were emitted; it returns true when every row is
  // out. (The read transaction must stay open between pieces: it is the snapshot.)
  struct ExportPosition {
    std::uint8_t table = 0;
    std::optional<std::string> after;  // the last key emitted from `table`
  };
  bool exportPiece(storage::Txn& txn, ExportPosition& at, std::size_t budgetBytes,
                   const std::function<void(Row)>& emit) const;
  // An import stages rows (each piece in its own transaction, on disk, not in memory), then
  // replaces the whole state with them: at once (installStaged), or in steps, each in its own
  // transaction (StateMachineSnapshot.cpp). beginInstall marks the install durably; each
  // installStep does about `budgetBytes` of it and returns true once the state is the staged one
  // and the mark is gone. While the mark is there the tables are half old, half new: nothing
  // may read them (installing), and initialize() finishes the install after a restart.
  void clearStaging(storage::Txn& txn) const;
  // Whether a row can be stored in its table (a known table, a key LMDB takes): a snapshot
  // chunk holding one that cannot is refused as it is decoded.
  bool rowFits(const Row& row) const;
  void stageRows(storage::Txn& txn, const std::vector<Row>& rows) const;
  void installStaged(storage::Txn& txn) const;
  void beginInstall(storage::Txn& txn) const;
  bool installStep(storage::Txn& txn, std::size_t budgetBytes) const;
  bool installing(storage::Txn& txn) const;
  // A process that stopped halfway through an install left a state that is neither the old one
  // nor the new: this finishes it (true) before anything looks at it.
  bool finishInterruptedInstall(storage::Txn& txn) const;

  // Exactly once for a proposal, whatever copies of it reach the log (a frame resent after a
  // reconnect, a duplicate): true the first time this (origin, incarnation, request id) is
  // applied, at `slot`, false for a copy, which must be skipped. Part of the replicated state
  // (and of snapshots), so every replica skips the same copies.
  // A request with a deadline (every client write) is kept until the applied time (`stampMs`,
  // never running backwards) passed its deadline: apply skips any copy chosen later without
  // asking (a copy carries its original's deadline), so nothing older can matter. Kept in
  // deadline order, the memory is forgotten from its front, and a request costs one insert and
  // about one delete. A request without a deadline (a node's own duties) is kept for
  // kRequestMemorySlots, counted in slots, not leader time (leaders' clocks may jump).
  static constexpr std::uint64_t kRequestMemorySlots = 10'000;
  bool admitRequest(storage::Txn& txn, std::uint64_t origin, std::uint64_t incarnation, std::uint64_t requestId,
                    std::uint64_t slot, std::uint64_t deadlineMs = 0, std::uint64_t stampMs = 0) const;
  // The time of the latest entry applied (leader stamps, never running backwards).
  std::uint64_t timestampMs(storage::Txn& txn) const;

  std::uint64_t revision(storage::Txn& txn) const;
  // The latest SessionEpoch applied (zero: none).
  SessionEpoch sessionEpoch(storage::Txn& txn) const;
  std::uint64_t appliedIndex(storage::Txn& txn) const;
  // What the quota counts: every node's path, data and kNodeOverheadBytes (deterministic, unlike
  // the size of the LMDB file, so every replica refuses the same writes).
  std::uint64_t usedBytes(storage::Txn& txn) const;
  const Tree& tree() const { return tree_; }
  const session::SessionTable& sessions() const { return sessions_; }

  // Every lock-delay running: (lock path, revision that set it, its length in ms). For a node
  // that starts, or replaced its state, to time them (locks/DelayTimers.h).
  struct RunningDelay {
    std::string lock;
    std::uint64_t revision = 0;
    std::uint64_t delayMs = 0;
  };
  std::vector<RunningDelay> lockDelays(storage::Txn& txn) const;

  // Test-only defects in the lock queue's rules: the whole-node simulator plants each to show
  // that its lock checks catch it (warden_nodesim --bug). Never set in a server.
  struct LockBugs {
    bool grantEveryone = false;     // every request counts as shared: exclusive holders overlap
    bool requestsBySession = false;  // requests named by session, not arrival: the queue is not FIFO
    bool tokenPerLockNode = false;   // tokens count the lock node's changes, restarting when it goes
  } lockBugs;
  // Test-only, likewise (warden serve --test-bug forget-idempotency): every write is applied as
  // new, its Idempotency-Key ignored, so that the outside-in checks show they catch it. It
  // changes apply: set on every node of a cluster or on none, or replicas diverge.
  bool forgetIdempotencyKeys = false;
  // Test-only: apply's batched path keeps what a failed command wrote before it failed, instead
  // of starting the entry over (StateMachineTest shows the check catching it).
  bool keepFailedBatchWrites = false;
  // Test-only: every command is applied as one that cannot fail after writing (no child
  // transaction of its own, no start-over of its entry), so that a failed command may leave what
  // it wrote (BatchedApplyTest shows the check catching it).
  bool noOwnTxnEver = false;
  // Test-only: every command gets a child transaction of its own, as apply did before it
  // spared them (the reference that BatchedApplyTest compares with). Changes nothing visible.
  bool ownTxnEveryCommand = false;
  // Test-only: admitRequest forgets requests before their deadline has passed, so that a late
  // copy of a write applies twice (RequestMemoryTest and the [review11] NodeNet probe show the
  // checks catching it).
  struct Bugs {
    bool forgetRequestsEarly = false;
    bool stageLongRowsPlain = false;  // stage every row under table byte + key, as before
  } bugs;

  struct Outcome;  // one op's result; defined in the .cpp

 private:
  struct Context;
  // Each appends its events to `events` (may be null) only if it changed something. With `nest`
  // a command is all-or-nothing in a child transaction of its own; without, it writes into
  // `txn` directly and a failure may leave part of it there (apply's batched path, which then
  // starts over: see apply()).
  // The entry's commands, from revision `rev` on (left at the last one's). Without `nest`,
  // nullopt as soon as a command that writes in steps fails: what it wrote must be undone.
  std::optional<std::vector<CommandResult>> applyCommands(storage::Txn& txn, const Entry& entry, std::uint64_t& rev,
                                                          Notes* notes, bool nest) const;
  CommandResult applyOne(storage::Txn& txn, const Command& command, std::uint64_t revision,
                         std::uint64_t timestampMs, std::vector<watch::Event>* events, bool nest) const;
  CommandResult applyLock(storage::Txn& parent, const Command& command, std::uint64_t revision,
                          std::uint64_t timestampMs, std::vector<watch::Event>* events, bool nest) const;
  CommandResult endLockDelay(storage::Txn& parent, const Command& command, std::uint64_t revision,
                             std::uint64_t timestampMs, std::vector<watch::Event>* events, bool nest) const;
  CommandResult applySession(storage::Txn& txn, const Command& command, std::uint64_t revision,
                             std::uint64_t timestampMs, std::vector<watch::Event>* events) const;
  // Whether a command may fail after it wrote something, and so needs a child transaction that
  // its failure aborts: by its kind alone (mayFailAfterWriting), and with the state's size
  // against its quota, which a transaction checks after its ops wrote (needsOwnTxn).
  bool mayFailAfterWriting(const Command& command) const;
  bool needsOwnTxn(storage::Txn& txn, const Command& command) const;
  CommandResult applyTxn(storage::Txn& parent, const Command& command, std::uint64_t revision,
                         std::uint64_t timestampMs, std::vector<watch::Event>* events, bool nest) const;
  // The first result of a write with this idempotency key, if it is remembered.
  std::optional<CommandResult> replayed(storage::Txn& txn, const Command& command) const;
  void remember(storage::Txn& txn, const Command& command, const CommandResult& result, std::uint64_t timestampMs,
                std::uint64_t slot) const;
  // used_bytes for a store written before the quota existed: the sum over its nodes.
  std::uint64_t countUsedBytes(storage::Txn& txn) const;
  // The requests without a deadline (and a store's older rows) past kRequestMemorySlots, a few.
  void forgetBySlot(storage::Txn& txn, std::uint64_t slot, std::uint64_t stampMs) const;
  Outcome applyOp(Context& ctx, const Op& op) const;
  Outcome create(Context& ctx, const Op& op) const;
  Outcome set(Context& ctx, const Op& op) const;
  Outcome erase(Context& ctx, const Op& op) const;
  Outcome check(Context& ctx, const Op& op) const;
  Stat createNode(Context& ctx, std::string_view path, std::string_view data,
                  std::uint64_t owner) const;
  void eraseSubtree(Context& ctx, const std::string& path, const NodeRecord& record) const;
  void unlinkFromParent(Context& ctx, std::string_view path) const;
  // Locks (StateMachineLocks.cpp).
  std::optional<std::string> lockRequestOf(storage::Txn& txn, std::uint64_t session, std::string_view lock) const;
  void removeLockRequest(Context& ctx, const std::string& path) const;
  void grantLock(Context& ctx, const std::string& lock) const;
  void requeueLocksOf(Context& ctx, const std::vector<OpResult>& deleted) const;
  void delayLocksOf(Context& ctx, std::uint64_t session) const;
  void ensureNode(Context& ctx, const std::string& path) const;
  // Replaces a node's data as a change of this revision (version, mtime, the quota, its event).
  void rewriteData(Context& ctx, const std::string& path, NodeRecord& record, std::string data) const;
  std::optional<Outcome> overBudget(Context& ctx, std::uint64_t more, std::string_view what) const;
  std::uint64_t subtreeSizeUpTo(storage::Txn& txn, const std::string& path, const NodeRecord& record,
                                std::uint64_t limit) const;
  void addUsedBytes(storage::Txn& txn, std::int64_t delta) const;
  std::uint64_t readMeta(storage::Txn& txn, std::string_view key) const;

  Tree tree_;
  session::SessionTable sessions_;
  Dbs dbs_;
  MDB_dbi meta_;
};

}  // namespace warden::coordinator
