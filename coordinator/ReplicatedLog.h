#pragma once
// The replicated log: the Paxos replica driven by one thread, with the peer transport, the LMDB
// acceptor store and the state machine around it. It takes the same submit() calls as
// LocalLog, so the HTTP edge does not change, and adds linearizable read barriers.
//
// The driver thread owns the Replica. Each turn it takes every queued input (peer frames, local
// writes, read requests) and a tick, persists the records of all resulting Readies in one LMDB
// transaction (one fsync), only then releases their messages, and applies newly chosen slots to
// the state machine in one write transaction that also records the applied index and revision.
// A follower forwards writes to the leader; the leader stamps each command with its clock, so
// apply stays deterministic. The node that received a write answers it when it applies the
// command itself; a write that is not applied within its deadline gets Status::NoQuorum.
//
// Sessions: the leader keeps their deadlines (session::Keeper) once it holds a lease and has
// applied everything chosen before its term; it alone answers keepalives, and proposes an
// expiry when a deadline passes. A follower relays the keepalives it receives to the leader,
// all of one turn in one frame, and answers its clients when the leader replies.

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <set>
#include <thread>
#include <variant>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "coordinator/Bytes.h"
#include "coordinator/ClusterView.h"
#include "coordinator/LmdbLogStore.h"
#include "coordinator/Proposal.h"
#include "coordinator/StateMachine.h"
#include "coordinator/Status.h"
#include "coordinator/paxos/Replica.h"
#include "coordinator/transport/PeerTransport.h"
#include "session/Keeper.h"

namespace warden::coordinator {

struct ClusterOptions {
  std::uint64_t id = 1;
  std::map<std::uint64_t, std::string> members;  // id -> peer address, this node included
  std::string http;                              // this node's HTTP address, advertised to peers
  std::uint64_t writeTimeoutMs = 5000;
  std::uint64_t retainedSlots = 10'000;  // applied slots kept in the log for laggards
  paxos::ReplicaConfig paxos;            // timing; id and members are filled in
  // Deliberate bugs, for tests that prove the checks can fail. Never set elsewhere.
  struct Bugs {
    bool serveWithoutEpoch = false;  // speak for sessions before this leadership's epoch is applied
  } bugs;
};

class ReplicatedLog {
 public:
  using Done = std::function<void(CommandResult)>;
  using ReadDone = std::function<void(Status)>;
  using AppliedHook = std::function<void(std::uint64_t revision)>;

  ReplicatedLog(storage::Env& env, const StateMachine& stateMachine, ClusterOptions options, AppliedHook onApplied);
  ~ReplicatedLog();
  ReplicatedLog(const ReplicatedLog&) = delete;
  ReplicatedLog& operator=(const ReplicatedLog&) = delete;

  // Thread-safe. done runs once, on the driver thread: with the result once this node has
  // applied the command, or with NoQuorum / Unavailable / Overloaded.
  void submit(Command command, Done done);
  // Thread-safe. done(Ok) once this node has applied every write acknowledged anywhere before
  // the call (lease or read index at the leader), else done(NoQuorum) at the deadline.
  void readBarrier(ReadDone done);
  // Thread-safe. done runs once, on the driver thread, with the leader's answer or NoQuorum.
  void keepalive(std::uint64_t session, KeepaliveDone done);
  std::size_t liveSessions() const { return liveSessions_.load(std::memory_order_relaxed); }
  ClusterView view() const;
  void stop();

 private:
  struct PeerFrame {
    std::uint64_t from;
    std::string body;
  };
  struct Hello {
    std::uint64_t from;
    std::string http;
  };
  struct Submit {
    Command command;
    Done done;
  };
  struct Read {
    ReadDone done;
  };
  struct Keepalive {
    std::uint64_t session;
    KeepaliveDone done;
  };
  using Input = std::variant<PeerFrame, Hello, Submit, Read, Keepalive>;

  struct PendingWrite {
    Done done;
    std::uint64_t deadlineUs;
    std::string proposal;  // origin-stamped, without the leader's timestamp; empty once sent
  };
  struct PendingRead {
    ReadDone done;
    std::uint64_t deadlineUs;
    bool asked = false;           // a read index was requested for it
    std::uint64_t askedAtUs = 0;
    std::uint64_t index = 0;      // once known: apply up to here, then answer
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

  void push(Input input);
  void run();
  void turn(std::deque<Input>& inputs);
  void handle(Input& input);
  void onPeerFrame(std::uint64_t from, const std::string& body);
  void proposeLocal(std::vector<std::string> proposals);
  void forward(std::vector<std::string> proposals);
  void serveReads();
  void answerForwardedRead(const ForwardedRead& read, bool ok, std::uint64_t index);
  bool ours(const Proposal& p) const;
  void finishReadyBatch();
  void sendSnapshot(std::uint64_t peer);
  void receiveSnapshotChunk(std::uint64_t from, Decoder& in, std::size_t size);
  void apply(const std::vector<paxos::ChosenEntry>& entries);
  void syncKeeper();
  void serveKeepalives();
  void answerKeepalives(std::uint64_t follower, const std::vector<RelayedKeepalive>& relayed, bool retry);
  void answerKeepalives(std::uint64_t follower, std::uint64_t incarnation,
                        const std::vector<const RelayedKeepalive*>& relayed, bool retry);
  void answerHeldRelays(bool retry);
  // The keeper's keepalive under its lock: any thread.
  std::optional<std::uint64_t> keepaliveLocked(std::uint64_t session, std::uint64_t atUs);
  void onKeepaliveReply(Decoder& in, std::size_t size);
  void proposeEpoch();
  void proposeExpiries();
  // A proposal of this process's (origin, incarnation, next request id) for `command`.
  std::string ownProposal(const Command& command);
  void expire();
  void updateView();
  std::uint64_t nowUs() const;
  std::uint64_t wallMs() const;

  storage::Env& env_;
  const StateMachine& stateMachine_;
  ClusterOptions options_;
  AppliedHook onApplied_;
  LmdbLogStore store_;
  std::unique_ptr<paxos::Random> random_;
  // Random per process: every id that matches a reply to a request carries it (PAXOS.md 5b).
  std::uint64_t incarnation_;
  std::unique_ptr<paxos::Replica> replica_;

  boost::asio::io_context ioc_;
  std::unique_ptr<transport::PeerTransport> transport_;
  std::thread ioThread_;

  mutable std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Input> inputs_;
  bool stopping_ = false;
  std::thread driver_;

  // Driver-thread state.
  std::vector<paxos::Ready> readies_;  // produced this turn, persisted together
  std::uint64_t nextRequest_ = 1;
  std::map<std::uint64_t, PendingWrite> writes_;  // by request id, for writes received here
  std::uint64_t nextRead_ = 1;
  std::map<std::uint64_t, PendingRead> reads_;
  std::map<std::uint64_t, ForwardedRead> forwardedReads_;  // by the replica's read id
  std::set<std::uint64_t> probedEmpty_;  // peers that answered a probe without history
  struct IncomingSnapshot {
    std::uint64_t id = 0;
    std::uint64_t applied = 0;
    std::uint64_t nextChunk = 0;
    std::size_t bytes = 0;
    std::vector<StateMachine::Row> rows;
  };
  std::map<std::uint64_t, IncomingSnapshot> incoming_;  // by sender
  std::map<std::uint64_t, std::uint64_t> lastSnapshotUs_;  // by receiver
  std::uint64_t nextSnapshotId_ = 1;
  std::uint64_t lastProbeUs_ = 0;
  std::uint64_t applied_ = 0;
  std::uint64_t lastTimestampMs_ = 0;
  std::map<std::uint64_t, std::uint64_t> lastHeardUs_;
  // The keeper is the driver's, but keepalive() may use it from other threads while the leader
  // serves sessions (until servingUntilUs_, its lease's end): hence the lock.
  std::mutex keeperMutex_;
  session::Keeper keeper_;
  std::atomic<std::uint64_t> servingUntilUs_{0};
  bool serving_ = false;  // leader with a lease that has applied everything before its term and its epoch
  paxos::Ballot epoch_;   // the state machine's session epoch, as last applied
  paxos::Ballot epochProposed_;
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
  std::map<std::uint64_t, std::string> peerHttp_;
};

}  // namespace warden::coordinator
