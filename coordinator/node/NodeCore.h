#pragma once
// The node core: everything a replicated node decides around the Paxos replica, with no threads,
// sockets or clocks of its own (ARCHITECTURE.md "the node core"). Production drives it from one
// driver thread (coordinator/ReplicatedLog); the whole-node simulator drives the same code from
// one seeded thread with a simulated network, clock and disk (tests/sim/NodeSimulation).
//
// The caller hands it inputs (client writes, read barriers, keepalives, peer frames, hellos) and
// then calls endTurn(), which ticks when due, serves what it can, writes every record of the turn
// in one LogStore write and makes it durable (one fsync, in the turn or, with flushBehind, on the
// store's flusher) before any of the turn's messages leave through the Outbox (the leader's
// Accepts excepted: SAFETY.md 9), and applies newly chosen slots to the state machine in one LMDB
// transaction that also records the applied index. Every done callback runs inside one of these
// calls.
//
// Its jobs, each in a file of its own:
//   NodeCore.cpp         inputs, the turn, frame dispatch, persisting, apply, deadlines, view
//   Writes.cpp           proposals: stamping at the leader, forwarding, refusals (PAXOS.md 5b)
//   ReadBarriers.cpp     lease reads, read index at the leader and through it for followers
//   SessionDuties.cpp    the leader's keeper, keepalive relays, epochs and expiries (PAXOS.md 9, 9b)
//   SnapshotTransfer.cpp the whole state for a peer behind the compacted log
//   Bootstrap.cpp        an empty disk: a new cluster or a wiped member (PAXOS.md 5)

#include <atomic>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "coordinator/AnswerWhen.h"
#include "coordinator/Bytes.h"
#include "coordinator/ClusterView.h"
#include "coordinator/Proposal.h"
#include "coordinator/StateMachine.h"
#include "coordinator/Status.h"
#include "coordinator/node/ClusterOptions.h"
#include "coordinator/node/Ports.h"
#include "coordinator/paxos/Replica.h"
#include "locks/DelayTimers.h"
#include "session/Keeper.h"

namespace warden::coordinator::node {

class NodeCore {
 public:
  using Done = std::function<void(CommandResult)>;
  using ReadDone = std::function<void(Status)>;
  // After each apply and snapshot install, with what changed (for the watch history).
  using AppliedHook = watch::AppliedHook;
  // Every slot this node applies, in order, with what apply made of it (for the simulator's
  // checks; may be empty). Called inside the apply transaction.
  using EntryHook = std::function<void(std::uint64_t slot, const paxos::Value& value, const Entry& entry,
                                       const std::vector<CommandResult>& results)>;

  struct Ports {
    Outbox& outbox;
    const Clock& clock;
    paxos::Random& random;
    paxos::LogStore& store;
    Log log;
    // Where snapshot chunks are cut; none: in this thread, the continuation at the next turn
    // (the simulator and the scenarios, which stay deterministic that way).
    Worker* worker = nullptr;
  };

  // `options` must have its members; paxos.id and paxos.members are filled in from them.
  NodeCore(storage::Env& env, const StateMachine& stateMachine, ClusterOptions options, Ports ports,
           AppliedHook onApplied, EntryHook onEntry = {});
  NodeCore(const NodeCore&) = delete;
  NodeCore& operator=(const NodeCore&) = delete;

  using AnswerWhen = coordinator::AnswerWhen;

  // ---- the driver's calls (one thread at a time) ----
  // done runs once: with the result once this node has applied the command; NoQuorum once it is
  // sure the command never applies (past its deadline in applied time); Timeout when it cannot
  // know (twice the write timeout, a snapshot install, shutdown after a leader took it);
  // Unavailable at shutdown otherwise.
  void submit(Command command, Done done, AnswerWhen when = AnswerWhen::Visible);
  // done(Ok) once this node has applied every write acknowledged anywhere before the call.
  void readBarrier(ReadDone done);
  void keepalive(std::uint64_t session, KeepaliveDone done);
  void peerFrame(std::uint64_t from, const std::string& body);
  void hello(std::uint64_t from, const std::string& http);
  // What a Worker job returned, run on the driver.
  void resume(const Worker::Continuation& continuation);
  void endTurn();
  // The latest time endTurn must run again even without inputs.
  std::uint64_t wakeAtUs() const;
  // Everyone still waiting hears Unavailable. Nothing may be called afterwards.
  void shutdown();

  // ---- any thread ----
  // The keepalive of a session this node keeps while it serves sessions under its lease, right
  // now, without the driver; nullopt means "take the driver's path".
  std::optional<std::uint64_t> fastKeepalive(std::uint64_t session);
  // True when a linearizable read may be answered from the state as committed now, without the
  // driver: this node leads under a lease and has applied, visibly, every slot it knows chosen
  // (ReadBarriers.cpp). False means "take readBarrier()".
  bool fastRead() const;
  std::size_t liveSessions() const { return liveSessions_.load(std::memory_order_relaxed); }
  ClusterView view() const;
  // The state's revision as this node applied it, an apply not yet committed included (what
  // it may have answered writes from): a wait for a revision up to it ends at the next commit.
  std::uint64_t appliedRevision() const { return appliedRevision_.load(std::memory_order_acquire); }

  // ---- for tests and the simulator (driver thread) ----
  const paxos::Replica* replica() const { return replica_.get(); }
  std::uint64_t incarnation() const { return incarnation_; }
  std::uint64_t applied() const { return applied_; }
  bool servesSessions() const { return serving_; }

 private:
  // A write taken here (PAXOS.md 5b). Its proposal carries a deadline in leader time, past which
  // apply skips it: once this node has applied an entry stamped later, the write never applies,
  // and the client may be told so (503). Until then it goes to whichever node leads.
  struct PendingWrite {
    Done done;
    std::uint64_t deadlineUs;  // this node's clock: then decide, if it can...
    std::uint64_t giveUpUs;    // ...and by then at the latest: the outcome is unknown (504)
    std::uint64_t deadlineMs;  // in the proposal, in leader time
    std::string proposal;      // origin-stamped, without the leader's timestamp; empty once sent
    std::string sent;          // what a leader holds, to hand to the next one; empty: none
    std::uint64_t sentTo = 0;  // that leader (this node, when it proposed it itself)
    bool everSent = false;     // some leader may hold it
    bool tick = false;         // a Tick of this node's own: nobody waits for it
    bool answerWhenApplied = false;  // AnswerWhen::Applied
    // Sent before a snapshot replaced this node's state: a copy may be applied inside it, so
    // neither a late copy in a later slot nor the applied time passing its deadline proves it
    // was never applied. Only an apply here answers it, else the give-up time (504).
    bool mayBeInSnapshot = false;
  };
  struct PendingRead {
    ReadDone done;
    std::uint64_t deadlineUs;
    bool asked = false;  // a read index was requested for it
    std::uint64_t askedAtUs = 0;
    std::uint64_t index = 0;  // once known: apply up to here, then answer
    bool indexKnown = false;
  };
  struct PendingKeepalive {
    std::uint64_t session;
    KeepaliveDone done;
    std::uint64_t deadlineUs;
    std::uint64_t askedAtUs = 0;  // when it was last relayed to a leader; 0: not yet
  };
  struct RelayedKeepalive {
    std::uint64_t from;
    std::uint64_t incarnation;  // of the follower's process
    std::uint64_t id;
    std::uint64_t session;
  };
  // A read index asked by a follower's process, to answer when known.
  struct ForwardedRead {
    std::uint64_t origin;
    std::uint64_t incarnation;
    std::uint64_t id;
  };
  // A snapshot on its way to a peer: a read transaction held open is the snapshot; chunks are
  // cut from it, one Worker job at a time, as the peer acknowledges earlier ones.
  struct OutgoingSnapshot {
    std::uint64_t id = 0;
    std::uint64_t applied = 0;
    std::shared_ptr<storage::Txn> txn;  // shared with the job cutting from it, which may outlive the stream
    StateMachine::ExportPosition at;
    std::uint64_t nextChunk = 0;
    std::uint64_t acked = 0;  // chunks the peer has staged
    bool allCut = false;
    bool cutting = false;         // a job is cutting chunk nextChunk
    std::uint64_t rewinds = 0;    // a job's chunk is stale once the stream rewound after it began
    std::deque<StateMachine::ExportPosition> unacked;  // where each chunk in flight was cut from
    std::uint64_t startedUs = 0;   // when the stream began
    std::uint64_t progressUs = 0;  // when the peer last acknowledged a chunk (or the stream began)
    std::uint64_t sentUs = 0;      // when chunks were last (re)sent
  };
  // The one snapshot being received, staged on disk chunk by chunk.
  struct IncomingSnapshot {
    std::uint64_t from = 0;
    std::uint64_t id = 0;
    std::uint64_t applied = 0;
    std::uint64_t nextChunk = 0;
    std::uint64_t lastChunkUs = 0;  // when it last staged a chunk
  };

  std::uint64_t now() const { return clock_.nowUs(); }
  void send(std::uint64_t to, std::string frame) {
    lastSentUs_[to] = now();
    outbox_.send(to, std::move(frame));
  }
  void pingQuietPeers();
  void onPeerFrame(std::uint64_t from, const std::string& body);
  void finishReadyBatch();
  // A Ready's parts that need no proof: newly chosen slots (into `chosen`), read answers,
  // refused proposals, snapshots to send.
  void takeOutputs(paxos::Ready& ready, std::vector<paxos::ChosenEntry>& chosen);
  // Sends the messages of every held Ready a flush has covered, oldest first; those to this
  // node go into `toSelf`.
  void releaseDurable(std::vector<paxos::Message>& toSelf);
  void sendPaxos(const paxos::Message& message);

  // Apply.cpp. apply() = applyInto() + commitApply(). applyInto() leaves its transaction open
  // (applyTxn_) until commitApply() commits it, and finishApply() then answers and tells the
  // hooks.
  struct ApplyOutcome {
    watch::Applied applied;
    std::vector<std::pair<std::uint64_t, CommandResult>> answers;
    std::vector<std::uint64_t> late;  // ours, chosen past their deadline
  };
  void apply(const std::vector<paxos::ChosenEntry>& entries);
  void applyInto(const std::vector<paxos::ChosenEntry>& entries);
  void commitApply();
  void finishApply();
  // Commits the apply unless it may wait (applyCommitDelayUs), to gather more slots per flush.
  void commitApplyUnlessItMayWait();
  // A write transaction of the driver's own, once the apply's is committed (LMDB has one writer).
  storage::Txn writeTxn();
  // Runs read(txn) over the state as applied: through the open apply transaction, if any.
  template <typename Read>
  void readState(Read read) {
    if (applyTxn_) return read(*applyTxn_);
    storage::Txn txn = storage::Txn::read(env_);
    read(txn);
  }
  void timeOut();
  void updateView();

  // Writes.cpp
  void sendUnsent();
  void proposeLocal(std::vector<std::string> proposals);
  void forward(std::uint64_t leader, std::vector<std::string> proposals);
  void onForward(std::uint64_t from, Decoder& in, std::size_t size);
  void onForwardRejected(Decoder& in, std::size_t size);
  void takeRejected(std::vector<paxos::Rejected>& rejected);
  bool ours(const ProposalHeader& p) const;
  std::string ownProposal(const Command& command, std::uint64_t deadlineMs = 0);
  std::uint64_t currentLeader() const;  // this node if it leads, a leader heard lately, or 0
  void settleOverdueWrites(std::uint64_t nowUs);
  void finishWrite(std::uint64_t requestId, CommandResult result);

  // ReadBarriers.cpp
  // Answers the reads whose index is applied; those that need an open apply committed only
  // with mayCommit (the end of the turn).
  void serveReads(bool mayCommit);
  void onReadIndexRequest(std::uint64_t from, Decoder& in);
  void onReadIndexReply(Decoder& in);
  void takeReadAnswers(const paxos::Ready& ready);
  void answerForwardedRead(const ForwardedRead& read, bool ok, std::uint64_t index);

  // SessionDuties.cpp
  void syncKeeper();
  void serveKeepalives();
  void onKeepaliveRequest(std::uint64_t from, Decoder& in, std::size_t size);
  void answerKeepalives(std::uint64_t follower, const std::vector<RelayedKeepalive>& relayed, bool retry);
  void answerKeepalives(std::uint64_t follower, std::uint64_t incarnation,
                        const std::vector<const RelayedKeepalive*>& relayed, bool retry);
  void answerHeldRelays(bool retry);
  std::optional<std::uint64_t> keepaliveLocked(std::uint64_t session, std::uint64_t atUs);
  void onKeepaliveReply(Decoder& in, std::size_t size);
  void proposeEpoch();
  void proposeExpiries();
  // Lock-delays (LockDelays.cpp): timed from what apply did, or from the whole state when it was
  // loaded or replaced; the serving leader proposes the end of each that is due.
  void noteLockDelays(const std::vector<watch::Event>& events, std::size_t from);
  void timeLockDelays();
  void proposeLockDelayEnds();

  // SnapshotTransfer.cpp
  void sendSnapshot(std::uint64_t peer);
  void pumpSnapshots();
  // Where the log may be compacted to now, or 0: applied_ - retainedSlots (or further, to keep
  // the newest retainedBytes and 16 slots at least), but not past a snapshot a peer is receiving
  // or installing (up to 50 x retainedSlots further back).
  std::uint64_t compactionPoint();
  // Brings heldSizes_ up to applied_ and drops what the log compacted since.
  void trackHeldSizes();
  void receiveSnapshotChunk(std::uint64_t from, Decoder& in, std::size_t size);
  void onSnapshotAck(std::uint64_t from, Decoder& in);
  void cutChunk(std::uint64_t peer, OutgoingSnapshot& s);
  void offload(Worker::Job job);
  void beginInstall(const IncomingSnapshot& done);
  void stepInstall();
  void finishInstall();

  // Bootstrap.cpp
  void startReplica();
  void probe();
  void onProbe(std::uint64_t from, Decoder& in);
  void onProbeReply(std::uint64_t from, Decoder& in);

  storage::Env& env_;
  const StateMachine& stateMachine_;
  ClusterOptions options_;
  Outbox& outbox_;
  const Clock& clock_;
  paxos::Random& random_;
  paxos::LogStore& store_;
  Log log_;
  AppliedHook onApplied_;
  EntryHook onEntry_;
  // Random per process: every id that matches a reply to a request carries it (PAXOS.md 5b).
  const std::uint64_t incarnation_;
  std::unique_ptr<paxos::Replica> replica_;  // null while an empty disk probes its peers

  std::vector<paxos::Ready> readies_;  // produced this turn, persisted together
  // Readies whose records are written under `ticket` (LogStore::writeBehind), their messages
  // held until a flush covers it; oldest first, so that messages leave in the order made.
  struct Held {
    std::uint64_t ticket = 0;
    paxos::Ready ready;
  };
  std::deque<Held> held_;
  bool heldDurable() const { return !held_.empty() && held_.front().ticket <= store_.durable(); }
  std::uint64_t nextTickUs_ = 0;
  std::uint64_t nextRequest_ = 1;
  Encoder commandScratch_;  // ownProposal's, reused so that its capacity stays
  std::map<std::uint64_t, PendingWrite> writes_;  // by request id, for writes received here
  std::uint64_t nextRead_ = 1;
  std::map<std::uint64_t, PendingRead> reads_;
  std::map<std::uint64_t, ForwardedRead> forwardedReads_;  // by the replica's read id
  std::set<std::uint64_t> probedEmpty_;  // peers that answered this process's probe without history
  std::optional<IncomingSnapshot> incoming_;
  // The snapshot being installed, a step per turn (StateMachine::installStep), and the chosen
  // slots handed out meanwhile, applied once it is in.
  std::optional<IncomingSnapshot> installing_;
  std::vector<paxos::ChosenEntry> heldChosen_;
  std::map<std::uint64_t, std::unique_ptr<OutgoingSnapshot>> outgoing_;  // by receiver
  // A snapshot sent whole: its slot, and until when the log keeps the slots after it for the
  // receiver's catch-up once installed (by receiver). See compactionPoint().
  struct SentSnapshot {
    std::uint64_t slot = 0;
    std::uint64_t untilUs = 0;
  };
  std::map<std::uint64_t, SentSnapshot> sentSnapshots_;
  // The applied slots the log still holds, with their sizes, oldest first (compactionPoint).
  using HeldSizes = std::deque<std::pair<std::uint64_t, std::size_t>>;
  HeldSizes heldSizes_;
  std::uint64_t heldBytes_ = 0;
  // The newest held slots within a bound in bytes, one at least: heldSizes_[split...]. Kept as
  // slots are added at the back and compacted at the front.
  struct HeldTail {
    std::size_t split = 0;
    std::uint64_t bytes = 0;  // theirs
    void added(const HeldSizes& sizes, std::uint64_t bound);  // sizes.back() is new
    void poppedFront(std::size_t frontBytes);
  };
  HeldTail retainedTail_;  // within retainedBytes: what the byte bound keeps
  HeldTail holdTail_;      // within kMaxHeldBytes x retainedBytes: the most a snapshot's hold keeps
  std::uint64_t heldTracked_ = 0;  // the last slot looked at
  Worker* worker_;
  std::vector<Worker::Continuation> deferred_;  // without a worker: jobs done, to resume next turn
  std::uint64_t nextSnapshotId_ = 1;
  std::uint64_t lastProbeUs_ = 0;
  // Applied in the state machine, committed or in applyTxn_ (left open past the turn only while
  // nothing needs it visible: no read barrier is answered while an apply is uncommitted).
  std::uint64_t applied_ = 0;
  std::optional<storage::Txn> applyTxn_;
  std::uint64_t applyOpenedUs_ = 0;  // when applyTxn_ began
  ApplyOutcome applyOutcome_;
  watch::PendingScan appliedScan_;  // how far appliesWanted looked at applyOutcome_'s events
  std::uint64_t lastTimestampMs_ = 0;
  std::uint64_t appliedStampMs_ = 0;  // the state machine's time (StateMachine::timestampMs)...
  std::uint64_t appliedStampAtUs_ = 0;  // ...and when this node's clock last saw it move
  void noteAppliedStamp(std::uint64_t stampMs);
  bool tickPending_ = false;
  std::uint64_t lastTickUs_ = 0;
  std::map<std::uint64_t, std::uint64_t> lastHeardUs_;
  std::map<std::uint64_t, std::uint64_t> lastSentUs_;
  std::map<std::uint64_t, std::string> peerHttp_;

  // The keeper is the driver's, but fastKeepalive() uses it from other threads while the leader
  // serves sessions (until servingUntilUs_, its lease's end): hence the lock.
  std::mutex keeperMutex_;
  session::Keeper keeper_;
  locks::DelayTimers lockDelays_;  // the driver's
  std::atomic<std::uint64_t> servingUntilUs_{0};
  // What fastRead() goes by, published by the driver: the replica's commit index, before any
  // message that carries it leaves (a follower acknowledges a write only once it heard it chosen)
  // and before this node answers a write; the applied index once that state is committed; the
  // lease's end while lease reads are possible (0 otherwise).
  void publishChosen();
  void publishLeaseReads();
  std::atomic<std::uint64_t> knownChosen_{0};
  std::atomic<std::uint64_t> visibleApplied_{0};
  std::atomic<std::uint64_t> appliedRevision_{0};  // appliedRevision(): set before early answers go
  std::atomic<std::uint64_t> fastReadUntilUs_{0};
  bool serving_ = false;  // leads with a lease, has applied everything before its term and ownEpoch_
  SessionEpoch epoch_;    // the state machine's session epoch, as last applied
  // This leadership's epoch: its ballot, and how often its lease lapsed since it was elected.
  SessionEpoch ownEpoch_;
  SessionEpoch epochProposed_;
  std::uint64_t epochProposedAtUs_ = 0;
  std::uint64_t nextKeepalive_ = 1;
  std::map<std::uint64_t, PendingKeepalive> keepalives_;  // received here, by local id
  std::vector<RelayedKeepalive> heldRelays_;  // from followers, while this leader catches up
  std::uint64_t nextExpiryScanUs_ = 0;
  std::uint64_t lastRelayUs_ = 0;  // when keepalives last went to the leader
  std::uint64_t relayWakeUs_ = 0;  // when the driver must wake to relay held keepalives; 0: none
  std::atomic<std::size_t> liveSessions_{0};

  mutable std::mutex viewMutex_;
  ClusterView view_;
};

}  // namespace warden::coordinator::node
