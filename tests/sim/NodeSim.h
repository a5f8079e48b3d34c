#pragma once
// The whole-node simulator's private header, shared by its files (NodeSimulation.cpp and the
// NodeSim*.cpp beside it): class NodeSim and its small helpers. Only NodeSimulation.h is
// public.

#include <cstdint>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "coordinator/StateMachine.h"
#include "coordinator/node/NodeCore.h"
#include "coordinator/paxos/MessageCodec.h"
#include "tests/sim/Linearizability.h"
#include "tests/sim/MemoryLogStore.h"
#include "tests/sim/NodeSimulation.h"

namespace warden::tests::sim::detail {

using namespace coordinator;
using node::NodeCore;
using paxos::NodeId;
using Time = std::uint64_t;

inline constexpr Time kTurnUs = 10'000;
inline constexpr std::int64_t kMaxDriftPpm = 9'000;  // below the replicas' stated bound of 1%
// Far below the transport's 64 MiB: the byte caps below are shrunk too, so that split batches
// and catch-up replies happen here, and every frame must stay under it. (Promises keep a cap
// above the longest unchosen tail, window x the largest slot, as they must: see
// coordinator/node/SAFETY.md.)
inline constexpr std::size_t kFrameLimit = 16u << 20;
inline constexpr std::uint64_t kWriteTimeoutMs = 1'500;
inline constexpr Time kLateHealUs = 2'000'000;  // how long one node stays cut off after the rest heals
inline constexpr Time kRebuildUs = 1'500'000;   // every node votes this long after a leader serves a whole network
inline const char* const kKeys[] = {"/a", "/b", "/c"};

class Rng {
 public:
  explicit Rng(std::uint64_t seed) : engine_(seed) {}
  std::uint64_t next() { return engine_(); }
  std::uint64_t range(std::uint64_t lo, std::uint64_t hi) { return lo + engine_() % (hi - lo + 1); }
  bool chance(double p) { return static_cast<double>(engine_() % 1'000'000) < p * 1'000'000; }

 private:
  std::mt19937_64 engine_;
};

class SimRandom : public paxos::Random {
 public:
  explicit SimRandom(std::uint64_t seed) : engine_(seed) {}
  std::uint64_t next() override { return engine_(); }

 private:
  std::mt19937_64 engine_;
};

// A node's clocks: the monotonic one runs at its own rate within the drift bound; the wall
// clock (only stamped into commands) may jump either way, and may freeze for a while (a VM's
// clock held still by its host) and then go on from where it stood, behind by the freeze.
// A monotonic clock that stands still is what a paused process sees: the pauses cover it.
class SimClock : public node::Clock {
 public:
  SimClock(const Time& trueNow, std::int64_t driftPpm, Time base) : trueNow_(trueNow), driftPpm_(driftPpm), base_(base) {}
  std::uint64_t nowUs() const override {
    const auto t = static_cast<std::int64_t>(trueNow_);
    return base_ + static_cast<std::uint64_t>(t + t * driftPpm_ / 1'000'000);
  }
  std::uint64_t wallMs() const override {
    if (trueNow_ < frozenUntil) return frozenAtMs;
    return static_cast<std::uint64_t>(1'800'000'000'000 + static_cast<std::int64_t>(trueNow_ / 1000) + wallJumpMs);
  }
  // The wall clock stands still for `forUs` of true time, then runs on from that reading.
  void freezeWall(Time forUs) {
    frozenAtMs = wallMs();
    frozenUntil = trueNow_ + forUs;
    wallJumpMs -= static_cast<std::int64_t>(forUs / 1000);
  }
  std::int64_t wallJumpMs = 0;
  Time frozenUntil = 0;
  std::uint64_t frozenAtMs = 0;

 private:
  const Time& trueNow_;
  std::int64_t driftPpm_;
  Time base_;
};

inline std::uint64_t mix(std::uint64_t h, std::uint64_t v) { return (h ^ v) * 0x100000001b3ull + 0x9e3779b97f4a7c15ull; }

inline std::uint64_t hashBytes(const std::string& s) { return std::hash<std::string>{}(s); }

inline std::uint64_t valueHash(const paxos::Value& v) {
  Encoder out;
  paxos::encodeValue(out, v);
  return hashBytes(out.data());
}

class NodeSim {
 public:
  explicit NodeSim(const NodeSimOptions& options);
  ~NodeSim();
  NodeSimResult run();

  enum class Program { None, StrandedProposal, LeaseFlap, PromiseBeforeWipe, DeposedReads };

 private:
  enum class Kind {
    Deliver, Wake, Turn, Restart, Resume, ClientStep, SessionStep, Fault, Heal, LateHeal, NemesisStep, RebuildCheck,
    LockStep,
    Flushed  // a node's flush behind ends (`client`: the process that asked for it)
  };
  struct Event {
    Event(Kind k, NodeId n = 0, NodeId f = 0, std::string fr = {}, std::size_t c = 0)
        : kind(k), node(n), from(f), frame(std::move(fr)), client(c) {}
    Kind kind;
    NodeId node;
    NodeId from;
    std::string frame;
    std::size_t client;
  };

  class Outbox : public node::Outbox {
   public:
    Outbox(NodeSim& sim, NodeId self) : sim_(sim), self_(self) {}
    void send(std::uint64_t to, std::string frame) override { sim_.post(self_, to, std::move(frame)); }
    bool connected(std::uint64_t) const override { return true; }

   private:
    NodeSim& sim_;
    NodeId self_;
  };

  struct SimNode {
    NodeId id = 0;
    std::unique_ptr<SimClock> clock;
    std::unique_ptr<Outbox> outbox;
    std::unique_ptr<storage::Env> env;
    std::unique_ptr<StateMachine> stateMachine;
    std::unique_ptr<MemoryLogStore> store;
    std::string image;      // its LMDB file as of its last durable commit (for power losses)
    std::string lastImage;  // as of its last commit
    std::unique_ptr<SimRandom> random;
    std::unique_ptr<NodeCore> core;  // null while down
    std::uint64_t disk = 0;          // how many disks it had (wipes)
    std::uint64_t process = 0;       // how many processes it ran
    Time pausedUntil = 0;
    bool wakeScheduled = false;
    // Its flush behind (ClusterOptions::flushBehind): one at a time, covering what was written
    // when it began; another is asked for while one runs.
    bool flushing = false;
    bool flushAgain = false;
    std::uint64_t flushTicket = 0;
    std::vector<std::pair<NodeId, std::string>> inbox;  // for its next turn
    std::vector<std::pair<NodeId, std::string>> held;  // frames for it while it does not run
  };

  // One client of the registers: one operation at a time.
  struct Client {
    bool busy = false;
    std::size_t op = 0;  // index into history_ while busy
    NodeId node = 0;
    std::uint64_t process = 0;
    std::uint64_t written = 0;
    std::map<std::string, std::pair<std::string, std::int64_t>> seen;  // key -> (value, version) last read
  };

  struct SessionClient {
    std::uint64_t id = 0;
    std::uint64_t ttlMs = 0;
    enum class Phase { Creating, Ephemeral, Keeping, Gone } phase = Phase::Creating;
    bool pending = false;
    bool keep = true;
    bool created = false;    // its create was acknowledged
    bool ephemeral = false;  // its ephemeral node was acknowledged
    Time nextAt = 0;
    Time ackedInvoke = 0;  // invocation time of its latest acknowledged keepalive (or create)
    Time lastAckAt = 0;
    Time abandonedAt = 0;
    std::uint64_t failedSinceAck = 0;
  };

  // One client of the lock, with a session of its own (NodeSimLocks.cpp).
  struct LockClient {
    enum class Phase { NoSession, Creating, Idle, Waiting, Holding } phase = Phase::NoSession;
    std::uint64_t session = 0, ttlMs = 0;
    bool pending = false;            // a create, acquire, withdraw, read or release is out
    std::uint64_t generation = 0;    // of that call: answers to an abandoned one are ignored
    NodeId node = 0;                 // where it went
    bool keepalivePending = false;
    std::uint64_t keepaliveGeneration = 0;
    NodeId keepaliveNode = 0;
    Time nextAt = 0, keepaliveAt = 0, waitUntil = 0, holdUntil = 0;
    bool withdrawn = false;        // its waiting request was taken out (unless granted meanwhile)
    bool unknownAcquire = false;   // an acquire of this session got no answer: it may be queued
    std::size_t hold = 0;          // its current entry in lockHolds_
  };
  // One acquire, from its invocation to the grant it saw (if any).
  struct LockHold {
    std::size_t client = 0;
    std::string request;           // the request's path, once acknowledged
    Time acquireInvoked = 0, queuedAt = 0, grantSeenAt = 0;
    std::uint64_t token = 0;       // 0: never seen granted
    bool fifoJudged = true;        // its request is the one this acquire queued
  };
  // A linearizable read that found `token` held.
  struct LockSeen {
    std::uint64_t token;
    Time invoked, returned;
  };

  bool runs(const SimNode& n) const { return n.core && now_ >= n.pausedUntil; }

  // ---- NodeSimulation.cpp: the event loop, tracing ----------------------------------------

  void schedule(Time at, Event e);
  void loop(const std::function<bool()>& done);
  void handle(Event& e);
  void traceStatus();
  static std::string describe(const std::string& frame);
  void trace(const std::string& what);
  void fail(const std::string& check, const std::string& what);

  // ---- NodeSimNetwork.cpp: the network, processes and disks -------------------------------

  void post(NodeId from, NodeId to, std::string frame);
  void deliver(NodeId from, NodeId to, std::string frame);
  void wake(SimNode& n);
  void releaseHeld(SimNode& n);
  void freshDisk(SimNode& n);
  void closeDisk(SimNode& n);
  void openDisk(SimNode& n, const std::filesystem::path& dir);
  void powerLoss(SimNode& n);
  void startProcess(SimNode& n);
  void crash(SimNode& n);
  void restart(SimNode& n);
  void resume(SimNode& n);
  void beginFlush(SimNode& n);
  void endFlush(SimNode& n, std::uint64_t process);
  bool someoneRebuilding();

  // ---- NodeSimFaults.cpp: faults and healing ----------------------------------------------

  void fault();
  void releaseLate();
  void heal();
  void lateHeal();

  // ---- NodeSimNemesis.cpp: schedules aimed at the node's rules ----------------------------

  struct Nemesis {
    Program program = Program::None;
    int step = 0;         // 0: waiting for its moment
    Time giveUpAt = 0;    // a step still waiting then ends the schedule
    Time stepAt = 0;      // when a timed step moves on
    NodeId leader = 0, next = 0, candidate = 0, promiser = 0, starved = 0;
    NodeId dropAcceptsFrom = 0, holdAcceptsFrom = 0, dropRepliesTo = 0;
    NodeId isolated = 0, keepLink = 0;  // every frame to or from `isolated` is lost, but those with keepLink
    Time isolatedUntil = 0;             // 0: until the schedule ends
    Time starveUntil = 0;               // `starved` gets no Accept until then
    std::uint64_t commitBefore = 0;     // `leader`'s commit index when the starving began...
    bool muted = false;                 // ...and once it passed that, `leader` sends nothing
    bool fromStart = false;             // began before the cluster chose anything
    std::vector<std::tuple<NodeId, NodeId, std::string>> heldAccepts, heldPrepares;
  };

  void planNemesis();
  void nemesisStep();
  void nextStep(Time giveUpAfter);
  void silenceSessionsUnder(bool holdAccepts);
  void strandedProposalStep();
  void leaseFlapStep();
  void promiseBeforeWipeStep();
  void deposedReadsStep();
  void endNemesis(const std::string& why);
  bool nemesisTakes(NodeId from, NodeId to, std::string& frame);  // dropped or held it
  SimNode* servingLeader();
  SimNode* settledLeader();
  SimNode* servingLeaderOrLeading(NodeId than);
  bool everyNodeRuns() const;

  // ---- NodeSimClients.cpp: register clients and session clients ---------------------------

  SimNode* pickNode();
  void clientStep(std::size_t c, SimNode* aimedAt = nullptr);
  void finishOp(std::size_t c, Operation::Outcome outcome, std::optional<std::string> observed, bool casSucceeded);
  void sessionStep();
  void abandon(SessionClient& s);
  void sessionAct(SessionClient& s);
  void keepaliveAnswered(SessionClient& s, Status status, Time invoked);
  void sessionGaveNoAnswer(SessionClient& s);

  // ---- NodeSimLocks.cpp: lock clients and the lock checks ------------------------------

  void lockStep();
  SimNode* lockNode(std::size_t c);
  void lockKeepalive(std::size_t c);
  void lockSessionLost(LockClient& l);
  void lockAct(std::size_t c);
  void lockObserve(std::size_t c, SimNode& n, std::function<LockClient*()> mine);
  void lockGaveNoAnswer(NodeId node);
  void checkLocks();
  void checkLockDelaysEnded();

  // ---- NodeSimChecks.cpp: what apply did, and after healing -------------------------------

  void noteServing();
  void onApplied(NodeId id, std::uint64_t slot, const paxos::Value& value, const Entry& entry,
                 const std::vector<CommandResult>& results);
  void checkExpiry(std::uint64_t id);
  std::uint64_t stateDigest(SimNode& n);
  bool converged();
  void checkEnd();
  void checkSessionsAtEnd();
  void checkRebuilt();

  NodeSimOptions options_;
  Rng rng_;
  Rng flushRng_;  // the flushes' durations: a draw of its own, so that rng_'s draws stay as they were
  Time now_ = 0;
  std::uint64_t seq_ = 0;
  std::map<std::pair<Time, std::uint64_t>, Event> events_;
  std::filesystem::path root_;
  std::map<NodeId, std::unique_ptr<SimNode>> nodes_;
  std::set<std::pair<NodeId, NodeId>> blocked_;
  std::map<std::pair<NodeId, NodeId>, Time> linkClear_;  // when each link has delivered what it carries
  std::vector<std::tuple<NodeId, NodeId, std::string>> late_;
  bool healed_ = false;
  Time clientsStopAt_ = 0;
  Time lastStatus_ = 0;
  Time servingSince_ = 0;
  paxos::Ballot settledBallot_;
  NodeId lateNode_ = 0;
  // The late node's promise as of its cut, counting the frames that had reached its input queue
  // by then (its next turn takes them after the cut; see wake()).
  paxos::Ballot latePromiseAtCut_;
  bool lateFramesAtCut_ = false;  // its input queue held frames at the cut, not yet taken
  // Serving counts toward settling from here on: the heal, then the late node's return deposing
  // the settled leader, if it does (noteServing()).
  Time settleFrom_ = 0;
  std::vector<Client> clients_;  // the register clients, then kDeposedReaders more with deposedReads
  static constexpr std::size_t kDeposedReaders = 4;
  std::vector<Operation> history_;
  std::vector<SessionClient> sessionClients_;
  std::vector<LockClient> lockClients_;
  std::vector<LockHold> lockHolds_;
  std::vector<LockSeen> lockSeen_;
  std::map<std::uint64_t, NodeId> pendingNode_;  // session -> node its pending call went to
  std::map<std::uint64_t, Time> expiredAt_;      // session -> when its expiry first took effect
  std::map<std::uint64_t, std::uint64_t> chosen_;  // slot -> hash of its value
  Nemesis nemesis_;
  bool allLinksBack_ = false;  // the late node is back too: the rebuild check starts with the next leader
  bool rebuildCheckPlanned_ = false;
  Time sessionsQuietUntil_ = 0;  // session clients that keep their sessions send nothing until then
  NodeSimResult result_;
};

}  // namespace warden::tests::sim::detail
