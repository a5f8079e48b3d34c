#pragma once
// One Multi-Paxos replica as a pure state machine: it takes messages, ticks, proposals and read
// requests, each with the replica's own clock reading, and returns a Ready of records to make
// durable, messages to send after that, and newly chosen slots to apply. No threads, sockets,
// disk, clock or randomness inside (STYLE.md 1-4); the node and the simulator drive it.
//
// Every replica is acceptor and learner; one at a time leads. A would-be leader runs phase 1
// once for every slot from its first unchosen one (PAXOS.md 3), then runs phase 2 per slot,
// batching commands into slots and keeping up to `window` slots in flight. Acceptors grant the
// leader a lease with every accept or heartbeat they take; while a majority's grants last, the
// leader may answer reads alone (PAXOS.md 6-9). A replica whose disk was wiped is a learner
// until it has rebuilt (PAXOS.md 5).

#include <deque>
#include <functional>
#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "coordinator/paxos/Message.h"
#include "coordinator/paxos/Random.h"
#include "coordinator/paxos/Ready.h"
#include "coordinator/paxos/Record.h"

namespace warden::coordinator::paxos {

struct ReplicaConfig {
  NodeId id = 1;
  std::vector<NodeId> members;  // every member, this one included
  Time heartbeatInterval = 50'000;
  Time electionTimeout = 500'000;  // a follower waits a random time in [this, 2 * this)
  // What an acceptor promises the leader on its own clock. Must be below electionTimeout.
  Time leaseDuration = 300'000;
  double maxDrift = 0.01;  // every clock's rate is within this fraction of true time
  Time leaseEpsilon = 1'000;
  std::size_t window = 8;      // slots in flight at once
  std::size_t maxBatch = 512;  // commands in one slot...
  std::size_t maxBatchBytes = 1u << 20;  // ...and bytes (a single larger command gets a slot alone)
  std::size_t catchupBatch = 64;
  std::size_t catchupBytes = 4u << 20;   // a catch-up reply stops at this many bytes (one entry at least)
  // A promise carries accepted entries up to this many bytes; beyond, it says it is truncated.
  // With maxBatchBytes and window these keep every frame far below the peer frame limit.
  std::size_t promiseBytes = 16u << 20;
  std::size_t maxQueued = 100'000;  // proposals beyond this are rejected
  // Phase 2 asks only a majority (the leader and the followers heard from last) for their
  // votes; the other followers are sent each slot once it is chosen, and vote only on slots
  // that stay unchosen for a heartbeat (a follower asked has gone quiet). Each such follower
  // then makes no flush and sends no answer for a slot: a third less work per write in a
  // cluster of three.
  bool thrifty = true;

  // Deliberate bugs, for tests that prove the simulator's checks can fail. Never set elsewhere.
  struct Bugs {
    bool skipPhase1 = false;        // a new leader proposes without learning what was accepted
    // Each is caught by the Paxos simulator check in parentheses (README: its table of --bug names).
    bool votesInMemoryOnly = false;     // answer promises and accepts without recording them (agreement)
    bool wipedVotesAtOnce = false;      // a replica on a wiped disk votes at once, no rebuild (agreement)
    bool holeAsEmptyBatch = false;      // phase 1 fills a hole with an empty batch, not a no-op (validity)
    bool restartForgetsApplied = false;  // a restart counts only the compaction point as applied (in-order-apply)
    bool ignoreCompactedPromise = false;  // count a promise that lacks slots its acceptor compacted (snapshot-prefix)
    bool leaseFromReceipt = false;  // count the lease from when acks arrived, not when they were sent (two-leases)
    bool ignoreLeaseOnPrepare = false;  // promise a new ballot while a lease is granted
    bool rebuildIgnoresPromises = false;  // a rebuilt replica votes without every member's promised ballot
    bool voterWhileInstalling = false;  // a learner turns voter while its node installs a snapshot
    bool noPreVote = false;               // campaign without asking whether a majority lost the leader
    bool rebuildSharesCatchupTimer = false;  // ordinary catch-up requests postpone the rebuild request
    bool leaseReadBeforeRecovery = false;  // lease reads before re-choosing what phase 1 found
    bool readIndexWithoutRound = false;    // answer a read index without confirming leadership
    bool acceptOverChosen = false;  // acknowledge an Accept for a slot known chosen with another value
    bool catchupByCountOnly = false;  // a catch-up reply stops at catchupBatch slots, whatever their bytes
    bool catchupFromLeaderAfterInstall = false;  // after an install, catch up from the leader, not the sender (a second snapshot)
    // pass over the snapshot's sender at its first unanswered request, or at an answer with
    // nothing new (a stale one): as 2f3c2e1 did (review14: a second snapshot)
    bool catchupSourceOneMiss = false;
    // end the sender's turn at a late leader message's commit index, or at a late "snapshot
    // needed" for a slot an install since covers: as 469b5b6 did (review15: a second snapshot)
    bool catchupSourceLateAnswers = false;
    bool pushUnchosen = false;  // thrifty: send the followers not asked slots not yet chosen (agreement)
    // a leader or candidate takes the chosen slots of a catch-up answer or a push, as d511895
    // did (review4: an acceptor of its ballot takes its vote as chosen; two values for a slot)
    bool leaderTakesPushes = false;
    // a resend marks slow every current voter without a vote, also one never asked that slot, as
    // d511895 did (review4: a gray follower kept being picked)
    bool slowMarksEveryVoter = false;
  } bugs;
};

class Replica {
 public:
  enum class Role { Follower, Candidate, Leader };

  // `durable` is what the store loaded; slots up to `appliedUpTo` are applied by the node.
  // `wiped`: the store lost its state, so this replica starts as a learner.
  Replica(ReplicaConfig config, DurableState durable, Slot appliedUpTo, bool wiped, Random& random, Time now);

  Ready step(const Message& message, Time now);
  Ready tick(Time now);
  Ready propose(std::vector<std::string> commands, Time now);
  // Read index (PAXOS.md 8): answered in Ready::reads once leadership is confirmed by a round.
  Ready requestRead(std::uint64_t id, Time now);
  // The slot a lease read must wait for, when this replica may answer a read alone right now.
  std::optional<Slot> leaseRead(Time now) const;
  // The node has captured slots <= upTo in its state: their log may go.
  Ready compact(Slot upTo);
  // The node begins installing a snapshot: until installSnapshot(), it holds the slots it is
  // handed in memory, unapplied, so a learner must not turn voter meanwhile (a voter is counted
  // on to hold, durably, every slot it learned before it voted).
  void beginInstall() { installing_ = true; }
  // The node installed a snapshot of the state up to upTo, received from peer `from` (0: unknown).
  Ready installSnapshot(Slot upTo, Time now, NodeId from = 0);

  Role role() const { return role_; }
  bool isLeader() const { return role_ == Role::Leader; }
  NodeId id() const { return config_.id; }
  NodeId leaderHint() const { return leaderHint_; }
  Ballot ballot() const { return ballot_; }
  Ballot promised() const { return promised_; }
  Slot commitIndex() const { return commitIndex_; }
  Slot compactedUpTo() const { return compacted_; }
  // Each slot of the log from `from` to `to` that is still held (above compacted_), oldest first,
  // with the bytes of its value: what retaining it costs in memory.
  void forEachHeld(Slot from, Slot to, const std::function<void(Slot, std::size_t)>& visit) const;
  bool isLearner() const { return learner_; }
  bool leaseValid(Time now) const;
  // The instant (on this replica's clock) until which its lease holds, if nothing changes; 0: none.
  Time leaseEnd() const;

 private:
  struct LogEntry {
    Ballot ballot;
    Value value;
    bool chosen = false;
  };
  struct PendingRead {
    std::uint64_t id;
    Slot index;
    Time requestedAt;
  };

  Ready begin(Time now);
  Ready finish();
  void send(NodeId to, Payload payload);
  void broadcast(Payload payload);  // to every member
  void sendTo(const std::vector<NodeId>& to, Payload payload);

  void onPrepare(NodeId from, const Prepare& m);
  void onPromise(NodeId from, const Promise& m);
  void onAccept(NodeId from, const Accept& m);
  void onAccepted(NodeId from, const Accepted& m);
  void onHeartbeat(NodeId from, const Heartbeat& m);
  void onHeartbeatReply(NodeId from, const HeartbeatReply& m);
  // The leader side of an Accepted or HeartbeatReply: a refusal may end this leadership; an
  // ack of the current ballot counts toward the lease. True for such an ack.
  bool recordAck(NodeId from, Ballot ballot, bool ok, Ballot promised, Time sentAt);
  void onCatchupRequest(NodeId from, const CatchupRequest& m);
  void onCatchupReply(NodeId from, const CatchupReply& m);
  void onPreVote(NodeId from, const PreVote& m);
  void onPreVoteReply(NodeId from, const PreVoteReply& m);

  void startPreVote();
  void startElection();
  Ballot nextBallot() const;
  void becomeLeader();
  void stepDown(Ballot seen);
  // Acceptor side of every message from a leader: raise the promise, follow, grant the lease.
  bool followLeader(Ballot ballot);
  void raisePromise(Ballot ballot);
  void proposeSlot(Slot slot, Value value);
  // The members asked to vote in phase 2: every member, or (thrifty) this one and the
  // followers heard from last, a majority in all.
  std::vector<NodeId> askedToVote();
  // Thrifty: hand the followers not asked the slots chosen after `from` (commit order).
  void pushChosen(Slot from);
  void flushProposals();
  void sendHeartbeats();
  void markChosen(Slot slot, const Value& value);
  void advanceCommit();
  void countChosen();  // moves the commit index over the chosen slots that follow it
  void learnCommit(Ballot ballot, Slot leaderCommit, NodeId leader);
  void requestCatchup(NodeId from);
  void expireCatchupRequest();
  void askRebuild();
  void checkReads();
  void resetElectionTimer();
  Time quorumAckedAt() const;  // the majority-th latest echo of this leader's send times
  // The majority-th latest of `times` (per member): ackedAt_, or with leaseFromReceipt lastHeardAt_.
  Time quorumTime(const std::map<NodeId, Time>& times) const;

  ReplicaConfig config_;
  Random& random_;
  std::size_t quorum_;
  Time now_ = 0;
  Ready* out_ = nullptr;  // the Ready being built by the current call
  std::uint64_t readyCounter_ = 0;

  // Acceptor and learner state.
  Ballot promised_;
  std::map<Slot, LogEntry> log_;  // slots above compacted_
  Slot compacted_ = 0;
  Slot commitIndex_ = 0;  // every slot up to here is chosen and known
  Slot delivered_ = 0;    // handed to the node in Ready::committed
  Ballot leaseBallot_;    // the leader this acceptor promised not to undermine...
  Time leaseUntil_ = 0;   // ...until this time on its own clock
  NodeId leaderHint_ = 0;
  Time electionDeadline_ = 0;
  Time lastCatchupRequest_ = 0;
  bool catchupRequested_ = false;
  // The peer whose snapshot was installed last: it keeps the slots after the snapshot for a while
  // (NodeCore::compactionPoint), where the leader may have compacted them, so the catch-up after
  // an install asks it first, until it has nothing more to give or does not answer.
  NodeId catchupSource_ = 0;
  NodeId catchupAsked_ = 0;  // where the outstanding catch-up request went
  // Requests to catchupSource_ unanswered for a heartbeat since it last answered; at
  // kCatchupSourceMisses it is passed over (expireCatchupRequest).
  std::uint32_t catchupSourceMisses_ = 0;
  static constexpr std::uint32_t kCatchupSourceMisses = 2;
  // The highest commit index a leader's message has carried (this process): catching up to a late
  // message's lower one is not catching up (learnCommit, review15).
  Slot highestLeaderCommit_ = 0;
  Time lastLeaderContact_ = 0;  // when a leader other than this replica last spoke to it; 0: never
  bool preVoting_ = false;
  Ballot preVoteBallot_;
  std::set<NodeId> preVotes_;

  // A wiped replica learns until slot learnerTarget_, which the leader of learnerBallot_ had not
  // proposed before the restart (it named it in answer to rebuildNonce_), is chosen by that
  // leader and every slot up to it is known here, and until every other member has told it its
  // promised ballot (also for rebuildNonce_); then it votes from above all of them (see
  // advanceCommit and the argument in ReplicaLearning.cpp).
  bool learner_ = false;
  std::uint64_t rebuildNonce_ = 0;
  Time lastRebuildRequest_ = 0;  // its own timer: ordinary catch-up must not starve it
  std::map<NodeId, Ballot> memberPromises_;
  std::vector<Record> pendingRecords_;  // made in the constructor, handed out with the first Ready
  Slot learnerTarget_ = 0;
  Ballot learnerBallot_;
  bool learnerConfirmed_ = false;  // learnerBallot_'s leader reported learnerTarget_ chosen
  bool installing_ = false;        // beginInstall() .. installSnapshot()
  Ballot highestBallotSeen_;       // in any prepare, leader message or refusal since this start

  // Candidate and leader state.
  Role role_ = Role::Follower;
  Ballot ballot_;
  Slot prepareFrom_ = 1;
  std::map<NodeId, Promise> promises_;
  std::uint32_t failedElections_ = 0;
  Slot nextSlot_ = 1;
  Slot recoveredUpTo_ = 0;  // reads wait until the commit index reaches what phase 1 found
  std::map<Slot, Value> proposed_;  // in flight
  std::map<Slot, std::set<NodeId>> votes_;
  std::map<Slot, Time> lastSentAt_;  // when each slot in flight was last sent (tick resends)
  std::map<Slot, std::vector<NodeId>> askedOf_;  // the followers each slot in flight was first sent to
  // Thrifty: the followers asked to vote (askedToVote), those passed over for leaving an Accept
  // unanswered for a heartbeat (when), and the commit index pushed to the others so far.
  std::vector<NodeId> voters_;
  std::map<NodeId, Time> slowAt_;
  Slot pushedUpTo_ = 0;
  std::deque<std::string> queue_;
  std::map<NodeId, Time> ackedAt_;      // latest echoed send time per member, this ballot
  std::map<NodeId, Time> lastHeardAt_;  // when each member last answered, own clock
  Time lastHeartbeat_ = 0;
  Time leaderSince_ = 0;
  bool learnerWaiting_ = false;  // a learner needs a fresh slot chosen
  std::vector<PendingRead> reads_;
};

}  // namespace warden::coordinator::paxos
