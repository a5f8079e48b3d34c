#include "tests/sim/NodeSimulation.h"

#include <cstdio>
#include <filesystem>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <random>
#include <set>
#include <tuple>
#include <vector>

#include <unistd.h>

#include "coordinator/StateMachine.h"
#include "coordinator/node/Frames.h"
#include "coordinator/node/NodeCore.h"
#include "coordinator/paxos/MessageCodec.h"
#include "tests/sim/Linearizability.h"
#include "tests/sim/MemoryLogStore.h"

namespace warden::tests::sim {

namespace {

using namespace coordinator;
using node::NodeCore;
using paxos::NodeId;
using Time = std::uint64_t;

constexpr Time kTurnUs = 10'000;
constexpr std::int64_t kMaxDriftPpm = 9'000;  // below the replicas' stated bound of 1%
// Far below the transport's 64 MiB: the byte caps below are shrunk too, so that split batches
// and catch-up replies happen here, and every frame must stay under it. (Promises keep a cap
// above the longest unchosen tail, window x the largest slot, as they must: see
// coordinator/node/SAFETY.md.)
constexpr std::size_t kFrameLimit = 16u << 20;
constexpr std::uint64_t kWriteTimeoutMs = 1'500;
constexpr Time kLateHealUs = 2'000'000;  // how long one node stays cut off after the rest heals
const char* const kKeys[] = {"/a", "/b", "/c"};

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
// clock (only stamped into commands) may jump.
class SimClock : public node::Clock {
 public:
  SimClock(const Time& trueNow, std::int64_t driftPpm, Time base) : trueNow_(trueNow), driftPpm_(driftPpm), base_(base) {}
  std::uint64_t nowUs() const override {
    const auto t = static_cast<std::int64_t>(trueNow_);
    return base_ + static_cast<std::uint64_t>(t + t * driftPpm_ / 1'000'000);
  }
  std::uint64_t wallMs() const override {
    return static_cast<std::uint64_t>(1'800'000'000'000 + static_cast<std::int64_t>(trueNow_ / 1000) + wallJumpMs);
  }
  std::int64_t wallJumpMs = 0;

 private:
  const Time& trueNow_;
  std::int64_t driftPpm_;
  Time base_;
};

std::uint64_t mix(std::uint64_t h, std::uint64_t v) { return (h ^ v) * 0x100000001b3ull + 0x9e3779b97f4a7c15ull; }

std::uint64_t hashBytes(const std::string& s) { return std::hash<std::string>{}(s); }

std::uint64_t valueHash(const paxos::Value& v) {
  Encoder out;
  paxos::encodeValue(out, v);
  return hashBytes(out.data());
}

class NodeSim {
 public:
  explicit NodeSim(const NodeSimOptions& options) : options_(options), rng_(options.seed * 7919 + options.replicas) {
    for (NodeId id = 1; id <= options_.replicas; ++id) {
      auto n = std::make_unique<SimNode>();
      n->id = id;
      n->clock = std::make_unique<SimClock>(now_, static_cast<std::int64_t>(rng_.range(0, 2 * kMaxDriftPpm)) - kMaxDriftPpm,
                                            rng_.range(1'000'000, 100'000'000));
      n->outbox = std::make_unique<Outbox>(*this, id);
      nodes_[id] = std::move(n);
    }
    root_ = (std::filesystem::exists("/dev/shm") ? std::filesystem::path("/dev/shm") : std::filesystem::temp_directory_path()) /
            ("warden-nodesim-" + std::to_string(::getpid()) + "-" + std::to_string(options_.seed) + "-" +
             std::to_string(options_.replicas));
    std::filesystem::remove_all(root_);
    for (auto& [id, n] : nodes_) {
      freshDisk(*n);
      startProcess(*n);
    }
  }

  ~NodeSim() {
    for (auto& [id, n] : nodes_) closeDisk(*n);
    std::error_code ignored;
    std::filesystem::remove_all(root_, ignored);
  }

  NodeSimResult run() {
    const Time faultyEnd = options_.faultyForUs;
    const Time end = faultyEnd + options_.healedForUs;
    for (auto& [id, n] : nodes_) schedule(rng_.range(0, kTurnUs), Event{Kind::Turn, id});
    for (std::size_t c = 0; c < 3; ++c) {
      clients_.push_back(Client{});
      schedule(rng_.range(10'000, 50'000), Event{Kind::ClientStep, 0, 0, {}, c});
    }
    schedule(20'000, Event{Kind::SessionStep});
    schedule(rng_.range(100'000, 400'000), Event{Kind::Fault});
    schedule(faultyEnd, Event{Kind::Heal});
    clientsStopAt_ = end - 2'000'000;
    loop([&] { return now_ >= end; });
    if (result_.ok) checkEnd();
    if (result_.ok) {
      const auto verdict = checkLinearizable(history_);
      if (!verdict.ok) fail("linearizability", verdict.explanation);
    }
    result_.digest = mix(result_.digest, result_.events);
    return result_;
  }

 private:
  enum class Kind { Deliver, Wake, Turn, Restart, Resume, ClientStep, SessionStep, Fault, Heal, LateHeal };
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
    std::unique_ptr<SimRandom> random;
    std::unique_ptr<NodeCore> core;  // null while down
    std::uint64_t disk = 0;          // how many disks it had (wipes)
    std::uint64_t process = 0;       // how many processes it ran
    Time pausedUntil = 0;
    bool wakeScheduled = false;
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

  // ---- the event loop ---------------------------------------------------------------------

  void schedule(Time at, Event e) { events_.emplace(std::make_pair(at, seq_++), std::move(e)); }

  void loop(const std::function<bool()>& done) {
    while (result_.ok && !events_.empty() && !done()) {
      auto it = events_.begin();
      now_ = it->first.first;
      Event e = std::move(it->second);
      events_.erase(it);
      result_.events++;
      handle(e);
    }
  }

  void handle(Event& e) {
    switch (e.kind) {
      case Kind::Deliver: deliver(e.from, e.node, std::move(e.frame)); break;
      case Kind::Wake: wake(*nodes_[e.node]); break;
      case Kind::Turn: {
        SimNode& n = *nodes_[e.node];
        if (runs(n)) n.core->endTurn();
        if (e.node == 1) noteServing();
        if (options_.trace && e.node == 1 && now_ / 500'000 != lastStatus_) {
          lastStatus_ = now_ / 500'000;
          traceStatus();
        }
        schedule(now_ + kTurnUs, Event{Kind::Turn, e.node});
        break;
      }
      case Kind::Restart: restart(*nodes_[e.node]); break;
      case Kind::Resume: resume(*nodes_[e.node]); break;
      case Kind::ClientStep: clientStep(e.client); break;
      case Kind::SessionStep: sessionStep(); break;
      case Kind::Fault: fault(); break;
      case Kind::Heal: heal(); break;
      case Kind::LateHeal: lateHeal(); break;
    }
  }

  // Since when some leader has spoken for sessions without a break (0: nobody does now).
  void noteServing() {
    bool serving = false;
    for (const auto& [id, n] : nodes_) {
      if (!runs(*n) || !n->core->servesSessions()) continue;
      serving = true;
      // Once healed and settled (a leader served for a second, every node voting), nothing
      // should cost an election: a node back from a partition must not depose the leader.
      const paxos::Ballot ballot = n->core->replica()->ballot();
      if (healed_ && servingSince_ != 0 && now_ > servingSince_ + 1'000'000 && settledBallot_.isZero() &&
          n->id != lateNode_) {
        settledBallot_ = ballot;
      }
      if (!settledBallot_.isZero() && ballot != settledBallot_ && latePromiseAtCut_ < settledBallot_) {
        fail("stable-leader", "the leader changed from " + paxos::toString(settledBallot_) + " to " +
                                  paxos::toString(ballot) + " in a healed, settled cluster");
      }
    }
    if (!serving) servingSince_ = 0;
    if (serving && servingSince_ == 0) servingSince_ = now_;
  }

  void traceStatus() {
    std::string line = "status:";
    for (const auto& [id, n] : nodes_) {
      line += " [" + std::to_string(id) + " ";
      const auto* r = n->core ? n->core->replica() : nullptr;
      if (!n->core) {
        line += "down]";
        continue;
      }
      if (!r) {
        line += "probing]";
        continue;
      }
      line += r->isLeader() ? "L" : r->role() == paxos::Replica::Role::Candidate ? "C" : "F";
      if (r->isLearner()) line += " learner";
      line += " b" + paxos::toString(r->ballot()) + " p" + paxos::toString(r->promised()) + " hint " +
              std::to_string(r->leaderHint()) + " commit " + std::to_string(r->commitIndex()) + " applied " +
              std::to_string(n->core->applied()) + (n->core->servesSessions() ? " serving" : "") + "]";
    }
    trace(line);
  }

  static std::string describe(const std::string& frame) {
    if (frame.empty()) return "empty";
    if (frame[0] != static_cast<char>(node::Frame::Paxos)) return "frame kind " + std::to_string(static_cast<int>(frame[0]));
    try {
      const auto m = paxos::decodeMessage(std::string_view(frame).substr(1));
      std::string what = paxos::messageName(m.payload);
      std::visit(
          [&](const auto& p) {
            if constexpr (requires { p.ballot; }) what += " " + paxos::toString(p.ballot);
            if constexpr (requires { p.ok; }) what += p.ok ? " ok" : " refused";
            if constexpr (requires { p.promised; }) what += " promised " + paxos::toString(p.promised);
            if constexpr (requires { p.granted; }) what += p.granted ? " granted" : " denied";
          },
          m.payload);
      return what;
    } catch (const DecodeError&) {
      return "undecodable";
    }
  }

  bool runs(const SimNode& n) const { return n.core && now_ >= n.pausedUntil; }

  void trace(const std::string& what) {
    if (options_.trace) std::printf("%10.3f ms  %s\n", static_cast<double>(now_) / 1000.0, what.c_str());
  }

  void fail(const std::string& check, const std::string& what) {
    if (!result_.ok || options_.skipChecks.count(check)) return;
    result_.ok = false;
    result_.check = check;
    result_.violation = check + ": " + what + " (seed " + std::to_string(options_.seed) + ", " +
                        std::to_string(options_.replicas) + " nodes, at " + std::to_string(now_ / 1000) + " ms)";
  }

  // ---- the network ------------------------------------------------------------------------

  void post(NodeId from, NodeId to, std::string frame) {
    if (frame.size() > kFrameLimit) fail("frame-limit", "a frame of " + std::to_string(frame.size()) + " bytes");
    if (blocked_.count({from, to})) {
      // A cut link: most frames are lost; some sit in a queue and arrive long after.
      if (!healed_ && rng_.chance(0.3)) late_.emplace_back(from, to, std::move(frame));
      return;
    }
    Time& linkClear = linkClear_[{from, to}];
    if (healed_) {
      linkClear = std::max(linkClear, now_ + rng_.range(100, 2'000));
      schedule(linkClear, Event{Kind::Deliver, to, from, std::move(frame)});
      return;
    }
    if (rng_.chance(0.03)) return;
    if (rng_.chance(0.005)) {
      // Seconds late, across reconnects and restarts, overtaken by everything after it.
      result_.lateFrames++;
      schedule(now_ + rng_.range(500'000, 3'000'000), Event{Kind::Deliver, to, from, std::move(frame)});
      return;
    }
    if (rng_.chance(0.02)) {
      // A frame resent on a new connection after the old one carried it: it comes again, later.
      schedule(now_ + rng_.range(1'000, 50'000), Event{Kind::Deliver, to, from, frame});
    }
    // Otherwise a link delivers in order, as TCP does: a slow frame holds up those behind it.
    Time delay = rng_.range(100, 3'000);
    if (rng_.chance(0.05)) delay = rng_.range(10'000, 100'000);
    linkClear = std::max(linkClear, now_ + delay);
    schedule(linkClear, Event{Kind::Deliver, to, from, std::move(frame)});
  }

  void deliver(NodeId from, NodeId to, std::string frame) {
    if (blocked_.count({from, to})) return;  // the link was cut while the frame was on it
    SimNode& n = *nodes_[to];
    if (!runs(n)) {
      // Down: the sender's link queue keeps some for the next process. Paused: TCP buffers it.
      if (n.core || rng_.chance(0.5)) n.held.emplace_back(from, std::move(frame));
      return;
    }
    // Frames wait in the node's input queue until its driver's next turn takes them all, as in
    // the shell: several frames (a Paxos step and a snapshot chunk, say) share one turn.
    n.inbox.emplace_back(from, std::move(frame));
    if (!n.wakeScheduled) {
      n.wakeScheduled = true;
      schedule(now_ + rng_.range(0, 1'000), Event{Kind::Wake, n.id});
    }
  }

  void wake(SimNode& n) {
    n.wakeScheduled = false;
    if (!runs(n)) {
      for (auto& f : n.inbox) n.held.push_back(std::move(f));
      n.inbox.clear();
      return;
    }
    auto inbox = std::move(n.inbox);
    n.inbox.clear();
    for (auto& [from, frame] : inbox) {
      if (options_.traceFrames) trace("node " + std::to_string(n.id) + " <- " + std::to_string(from) + " " + describe(frame));
      n.core->peerFrame(from, frame);
    }
    n.core->endTurn();
  }

  void releaseHeld(SimNode& n) {
    auto held = std::move(n.held);
    n.held.clear();
    for (auto& [from, frame] : held) schedule(now_ + rng_.range(100, 5'000), Event{Kind::Deliver, n.id, from, std::move(frame)});
  }

  // ---- processes and disks ----------------------------------------------------------------

  void freshDisk(SimNode& n) {
    closeDisk(n);
    const auto dir = root_ / ("node" + std::to_string(n.id) + "-disk" + std::to_string(++n.disk));
    std::filesystem::create_directories(dir);
    n.env = std::make_unique<storage::Env>(dir.string(), storage::EnvOptions{std::size_t{256} << 20, 16, false});
    storage::Txn txn = storage::Txn::write(*n.env);
    n.stateMachine = std::make_unique<StateMachine>(StateMachine::openDbs(txn));
    n.stateMachine->initialize(txn);
    txn.commit();
    n.store = std::make_unique<MemoryLogStore>();
  }

  void closeDisk(SimNode& n) {
    n.core.reset();
    n.stateMachine.reset();
    n.env.reset();
  }

  void startProcess(SimNode& n) {
    node::ClusterOptions options;
    options.id = n.id;
    for (NodeId id = 1; id <= options_.replicas; ++id) options.members[id] = "sim:" + std::to_string(id);
    options.http = "sim:" + std::to_string(n.id);
    options.writeTimeoutMs = kWriteTimeoutMs;
    options.retainedSlots = 40;
    options.snapshotChunkBytes = 300;  // many chunks: the stream's flow control is exercised
    options.paxos.maxBatchBytes = 256u << 10;
    options.paxos.catchupBytes = 512u << 10;
    options.paxos.promiseBytes = 12u << 20;
    options.paxos.bugs = options_.paxosBugs;
    options.bugs = options_.nodeBugs;
    n.random = std::make_unique<SimRandom>(rng_.next());
    n.process++;
    n.core = std::make_unique<NodeCore>(
        *n.env, *n.stateMachine, options,
        NodeCore::Ports{*n.outbox, *n.clock, *n.random, *n.store,
                        [this, id = n.id](const std::string& line) {
                          if (line.rfind("installed a snapshot", 0) == 0) result_.snapshots++;
                          trace("node " + std::to_string(id) + ": " + line);
                        }},
        [](std::uint64_t) {},
        [this, id = n.id](std::uint64_t slot, const paxos::Value& value, const Entry& entry,
                          const std::vector<CommandResult>& results) { onApplied(id, slot, value, entry, results); });
    trace("node " + std::to_string(n.id) + " starts process " + std::to_string(n.process));
  }

  void crash(SimNode& n) {
    if (!n.core) return;
    n.core.reset();  // kill -9: nobody is answered, and what waited in its input queue is gone
    n.inbox.clear();
    n.pausedUntil = 0;
    result_.crashes++;
    for (std::size_t c = 0; c < clients_.size(); ++c) {
      Client& client = clients_[c];
      if (client.busy && client.node == n.id) finishOp(c, Operation::Outcome::Unknown, std::nullopt, false);
    }
    for (auto& s : sessionClients_) {
      if (s.pending && pendingNode_[s.id] == n.id) sessionGaveNoAnswer(s);
    }
    trace("node " + std::to_string(n.id) + " crashes");
  }

  void restart(SimNode& n) {
    if (n.core) return;
    startProcess(n);
    releaseHeld(n);
  }

  void resume(SimNode& n) {
    if (!n.core || now_ < n.pausedUntil) return;
    trace("node " + std::to_string(n.id) + " resumes");
    releaseHeld(n);
  }

  // A disk that does not hold a voter's state (lost, or never got past the bootstrap: the node
  // cannot tell the two apart) counts until its node votes again, whether it is up or down.
  bool someoneRebuilding() {
    for (auto& [id, n] : nodes_) {
      if (!n->store->state.started || n->store->state.learner) return true;
    }
    return false;
  }

  // ---- faults -----------------------------------------------------------------------------

  void fault() {
    if (healed_) return;
    schedule(now_ + rng_.range(100'000, 600'000), Event{Kind::Fault});
    // Leaders get half of the faults: their hand-overs are where the node's rules are tested.
    NodeId id = static_cast<NodeId>(rng_.range(1, options_.replicas));
    if (rng_.chance(0.5)) {
      for (auto& [other, m] : nodes_) {
        if (m->core && m->core->replica() && m->core->replica()->isLeader()) id = other;
      }
    }
    SimNode& n = *nodes_[id];
    switch (rng_.range(0, 6)) {
      case 0:
      case 1: {
        crash(n);
        schedule(now_ + rng_.range(50'000, 1'500'000), Event{Kind::Restart, id});
        break;
      }
      case 2: {
        // One lost disk at a time: the rebuild's argument assumes it.
        if (!n.core || someoneRebuilding()) break;
        crash(n);
        freshDisk(n);
        n.held.clear();
        result_.wipes++;
        trace("node " + std::to_string(id) + " loses its disk");
        schedule(now_ + rng_.range(50'000, 800'000), Event{Kind::Restart, id});
        break;
      }
      case 3: {
        if (!n.core) break;
        n.pausedUntil = now_ + rng_.range(100'000, 1'500'000);
        result_.pauses++;
        trace("node " + std::to_string(id) + " pauses until " + std::to_string(n.pausedUntil / 1000) + " ms");
        schedule(n.pausedUntil, Event{Kind::Resume, id});
        break;
      }
      case 4: {
        blocked_.clear();
        const bool oneWay = rng_.chance(0.3);
        for (NodeId other = 1; other <= options_.replicas; ++other) {
          if (other == id) continue;
          blocked_.insert({id, other});
          if (!oneWay) blocked_.insert({other, id});
        }
        result_.partitions++;
        trace("node " + std::to_string(id) + (oneWay ? " cannot send" : " is cut off"));
        break;
      }
      case 5: {
        blocked_.clear();
        releaseLate();
        trace("the network heals");
        break;
      }
      case 6: {
        n.clock->wallJumpMs += static_cast<std::int64_t>(rng_.range(0, 4'000)) - 2'000;
        break;
      }
    }
  }

  void releaseLate() {
    for (auto& [from, to, frame] : late_) schedule(now_ + rng_.range(1'000, 2'000'000), Event{Kind::Deliver, to, from, std::move(frame)});
    late_.clear();
  }

  void heal() {
    healed_ = true;
    blocked_.clear();
    releaseLate();
    for (auto& [id, n] : nodes_) {
      n->pausedUntil = 0;
      if (!n->core) restart(*n);
      releaseHeld(*n);
    }
    // One node stays cut off for longer than an election timeout, then comes back to a settled
    // cluster: that must cost no election (the stable-leader check).
    lateNode_ = static_cast<NodeId>(rng_.range(1, options_.replicas));
    for (NodeId other = 1; other <= options_.replicas; ++other) {
      if (other == lateNode_) continue;
      blocked_.insert({lateNode_, other});
      blocked_.insert({other, lateNode_});
    }
    // (A campaign it began before it was cut off may still depose the leader when it returns:
    // its promise is higher. Pre-vote cannot help there, so that run does not check.)
    const auto* replica = nodes_[lateNode_]->core ? nodes_[lateNode_]->core->replica() : nullptr;
    latePromiseAtCut_ = replica ? replica->promised() : paxos::Ballot{};
    schedule(now_ + kLateHealUs, Event{Kind::LateHeal});
    trace("healed, but node " + std::to_string(lateNode_) + " stays cut off a while");
  }

  void lateHeal() {
    blocked_.clear();
    trace("node " + std::to_string(lateNode_) + " is back");
  }

  // ---- register clients -------------------------------------------------------------------

  SimNode* pickNode() {
    std::vector<SimNode*> live;
    for (auto& [id, n] : nodes_) {
      if (runs(*n)) live.push_back(n.get());
    }
    if (live.empty()) return nullptr;
    return live[rng_.range(0, live.size() - 1)];
  }

  void clientStep(std::size_t c) {
    Client& client = clients_[c];
    if (client.busy || now_ >= clientsStopAt_) return;
    SimNode* n = pickNode();
    if (!n) {
      schedule(now_ + 20'000, Event{Kind::ClientStep, 0, 0, {}, c});
      return;
    }
    const std::string key = kKeys[rng_.range(0, 2)];
    Operation op;
    op.client = c;
    op.key = key;
    op.invokedAt = now_;
    client.busy = true;
    client.node = n->id;
    client.process = n->process;
    client.op = history_.size();
    const std::uint64_t roll = rng_.range(0, 99);
    if (roll < 35) {
      op.kind = Operation::Kind::Read;
      history_.push_back(op);
      result_.reads++;
      n->core->readBarrier([this, c, n, key](Status status) {
        if (status != Status::Ok) return finishOp(c, Operation::Outcome::Failed, std::nullopt, false);
        storage::Txn txn = storage::Txn::read(*n->env);
        auto record = n->stateMachine->tree().get(txn, key);
        if (record) clients_[c].seen[key] = {record->data, record->stat.version};
        finishOp(c, Operation::Outcome::Ok, record ? std::optional<std::string>(record->data) : std::nullopt, false);
      });
    } else {
      Op set;
      set.type = OpType::Set;
      set.path = key;
      std::string value = "c" + std::to_string(c) + "-" + std::to_string(++client.written);
      if (rng_.chance(0.01)) value += std::string(rng_.range(100'000, 900'000), 'v');  // near the limits
      set.data = value;
      const bool cas = roll < 55 && client.seen.count(key);
      if (cas) {
        op.kind = Operation::Kind::Cas;
        op.expected = client.seen[key].first;
        set.version = client.seen[key].second;
      } else {
        op.kind = Operation::Kind::Write;
        set.createIfMissing = true;
      }
      op.value = value;
      history_.push_back(op);
      n->core->submit(txnCommand({set}), [this, c, cas](CommandResult r) {
        if (r.status == Status::Ok) return finishOp(c, Operation::Outcome::Ok, std::nullopt, true);
        if (cas && (r.status == Status::BadVersion || r.status == Status::NotFound)) {
          return finishOp(c, Operation::Outcome::Ok, std::nullopt, false);
        }
        const bool refused = r.status == Status::Overloaded || r.status == Status::InvalidArgument;
        finishOp(c, refused ? Operation::Outcome::Failed : Operation::Outcome::Unknown, std::nullopt, false);
      });
    }
    n->core->endTurn();
  }

  void finishOp(std::size_t c, Operation::Outcome outcome, std::optional<std::string> observed, bool casSucceeded) {
    Client& client = clients_[c];
    if (!client.busy) return;
    Operation& op = history_[client.op];
    op.outcome = outcome;
    op.observed = std::move(observed);
    op.casSucceeded = casSucceeded;
    op.returnedAt = now_;
    client.busy = false;
    if (options_.trace) {
      static const char* kinds[] = {"read", "write", "cas"};
      static const char* outcomes[] = {"ok", "failed", "unknown"};
      std::string v = op.kind == Operation::Kind::Read ? (op.observed ? op.observed->substr(0, 20) : "absent")
                                                        : op.value->substr(0, 20);
      trace("client " + std::to_string(c) + " " + kinds[static_cast<int>(op.kind)] + " " + op.key + " " + v + " at node " +
            std::to_string(client.node) + ": " + outcomes[static_cast<int>(outcome)] +
            (op.kind == Operation::Kind::Cas ? (casSucceeded ? " (swapped)" : " (no swap)") : ""));
    }
    result_.operations++;
    if (outcome == Operation::Outcome::Ok) result_.okOperations++;
    if (outcome == Operation::Outcome::Unknown) result_.unknownOperations++;
    schedule(now_ + rng_.range(0, 20'000), Event{Kind::ClientStep, 0, 0, {}, c});
  }

  // ---- session clients --------------------------------------------------------------------

  void sessionStep() {
    schedule(now_ + rng_.range(10'000, 40'000), Event{Kind::SessionStep});
    std::size_t kept = 0;
    for (const auto& s : sessionClients_) kept += s.keep && s.phase != SessionClient::Phase::Gone;
    if (!healed_ && kept < 8 && rng_.chance(0.3)) {
      SessionClient s;
      s.id = rng_.next() | 1;
      s.ttlMs = rng_.range(1'000, 2'500);
      if (rng_.chance(0.2)) abandon(s);
      sessionClients_.push_back(s);
      result_.sessions++;
    }
    for (auto& s : sessionClients_) {
      if (s.pending || s.phase == SessionClient::Phase::Gone || now_ < s.nextAt) continue;
      if (!s.keep && s.phase != SessionClient::Phase::Creating) continue;  // walked away once created
      if (!healed_ && s.phase == SessionClient::Phase::Keeping && rng_.chance(0.002)) {
        abandon(s);
        continue;
      }
      sessionAct(s);
    }
  }

  void abandon(SessionClient& s) {
    s.keep = false;
    s.abandonedAt = now_;
    trace("client abandons session " + std::to_string(s.id));
  }

  void sessionAct(SessionClient& s) {
    SimNode* n = pickNode();
    if (!n) return;
    const std::uint64_t id = s.id;
    pendingNode_[id] = n->id;
    auto find = [this, id]() -> SessionClient* {
      for (auto& x : sessionClients_) {
        if (x.id == id) return &x;
      }
      return nullptr;
    };
    if (s.phase == SessionClient::Phase::Creating) {
      Command create = sessionCommand(CommandType::SessionCreate, id);
      create.ttlMs = s.ttlMs;
      s.pending = true;
      const Time invoked = now_;
      n->core->submit(create, [this, find, invoked](CommandResult r) {
        SessionClient* x = find();
        x->pending = false;
        if (r.status == Status::Ok) {
          x->created = true;
          x->phase = SessionClient::Phase::Ephemeral;
          x->ackedInvoke = invoked;
          x->lastAckAt = now_;
          if (!x->keep) x->abandonedAt = now_;
        } else {
          sessionGaveNoAnswer(*x);  // it may exist: nobody keeps it, so it must expire
        }
      });
    } else if (s.phase == SessionClient::Phase::Ephemeral) {
      Op e;
      e.type = OpType::Create;
      e.path = "/e" + std::to_string(id);
      e.ephemeral = true;
      e.session = id;
      s.pending = true;
      n->core->submit(txnCommand({e}), [this, find](CommandResult r) {
        SessionClient* x = find();
        x->pending = false;
        if (r.status == Status::Ok) x->ephemeral = true;
        // Created by an earlier try whose answer was lost, or the session is gone: move on.
        x->phase = r.status == Status::SessionNotFound ? SessionClient::Phase::Gone : SessionClient::Phase::Keeping;
      });
    } else {
      const Time invoked = now_;
      auto done = [this, find, invoked](Status status, std::uint64_t) {
        SessionClient* x = find();
        x->pending = false;
        keepaliveAnswered(*x, status, invoked);
      };
      s.pending = true;
      if (auto ttl = n->core->fastKeepalive(id)) {
        done(Status::Ok, *ttl);
      } else {
        n->core->keepalive(id, done);
      }
    }
    n->core->endTurn();
  }

  void keepaliveAnswered(SessionClient& s, Status status, Time invoked) {
    trace("keepalive of session " + std::to_string(s.id) + " invoked at " + std::to_string(invoked / 1000) +
          " ms: " + (status == Status::Ok ? "ok" : status == Status::SessionNotFound ? "not found" : "no answer"));
    if (status == Status::Ok) {
      result_.keepalivesAcked++;
      auto gone = expiredAt_.find(s.id);
      if (gone != expiredAt_.end() && invoked > gone->second) {
        fail("keepalive-late", "a keepalive of session " + std::to_string(s.id) + " invoked at " +
                                   std::to_string(invoked / 1000) + " ms was acknowledged; its expiry took effect at " +
                                   std::to_string(gone->second / 1000) + " ms");
      }
      s.ackedInvoke = std::max(s.ackedInvoke, invoked);
      s.lastAckAt = now_;
      s.failedSinceAck = 0;
      s.nextAt = now_ + s.ttlMs * 1000 / 3;
    } else if (status == Status::SessionNotFound) {
      trace("client lost session " + std::to_string(s.id));
      s.phase = SessionClient::Phase::Gone;
    } else {
      s.failedSinceAck++;
      s.nextAt = now_ + 100'000;  // try again soon, maybe elsewhere
    }
  }

  void sessionGaveNoAnswer(SessionClient& s) {
    s.pending = false;
    if (s.phase == SessionClient::Phase::Creating) {
      // Its create may or may not have been applied: nobody keeps it alive now.
      s.phase = SessionClient::Phase::Gone;
      if (s.keep) abandon(s);
    } else {
      s.failedSinceAck++;
      s.nextAt = now_ + 100'000;
    }
  }

  // ---- what apply did ---------------------------------------------------------------------

  void onApplied(NodeId id, std::uint64_t slot, const paxos::Value& value, const Entry& entry,
                 const std::vector<CommandResult>& results) {
    const std::uint64_t h = valueHash(value);
    auto [it, first] = chosen_.emplace(slot, h);
    if (first) {
      result_.slots++;
      result_.digest = mix(result_.digest, h);
    } else if (it->second != h) {
      fail("agreement", "node " + std::to_string(id) + " applied a second value for slot " + std::to_string(slot));
      return;
    }
    for (std::size_t i = 0; i < entry.commands.size() && i < results.size(); ++i) {
      const Command& c = entry.commands[i];
      if (c.type != CommandType::SessionExpire || results[i].status != Status::Ok) continue;
      trace("node " + std::to_string(id) + " applies the expiry of session " + std::to_string(c.session) + " at slot " +
            std::to_string(slot) + " (epoch " + toString(c.epoch) + ")");
      if (expiredAt_.emplace(c.session, now_).second) {
        result_.expiries++;
        checkExpiry(c.session);
      }
    }
  }

  void checkExpiry(std::uint64_t id) {
    for (const auto& s : sessionClients_) {
      if (s.id != id || s.ackedInvoke == 0) continue;
      // The expiring leader's keeper waited a ttl on its own clock from a keepalive it answered
      // after its invocation, or from its takeover, which came later still.
      const Time minimum = s.ttlMs * 1000 * (1'000'000 - 2 * kMaxDriftPpm) / 1'000'000;
      if (now_ < s.ackedInvoke + minimum) {
        fail("expiry-early", "session " + std::to_string(id) + " (ttl " + std::to_string(s.ttlMs) +
                                 " ms) expired at " + std::to_string(now_ / 1000) + " ms; its latest acknowledged keepalive was invoked at " +
                                 std::to_string(s.ackedInvoke / 1000) + " ms");
      }
    }
  }

  // ---- after healing ----------------------------------------------------------------------

  std::uint64_t stateDigest(SimNode& n) {
    storage::Txn txn = storage::Txn::read(*n.env);
    std::uint64_t h = n.stateMachine->appliedIndex(txn);
    n.stateMachine->exportState(txn, [&](StateMachine::Row row) {
      h = mix(h, row.table);
      h = mix(h, hashBytes(row.key));
      h = mix(h, hashBytes(row.value));
    });
    return h;
  }

  bool converged() {
    std::optional<std::uint64_t> first;
    for (auto& [id, n] : nodes_) {
      if (!n->core) return false;
      const std::uint64_t d = stateDigest(*n);
      if (first && *first != d) return false;
      first = d;
    }
    return true;
  }

  void checkEnd() {
    // Every node applies the same state (bounded: another simulated second at most).
    const Time limit = now_ + 3'000'000;
    bool same = false;
    for (Time probe = now_; probe < limit && result_.ok; probe += 100'000) {
      loop([&] { return now_ >= probe; });
      if ((same = converged())) break;
    }
    if (!result_.ok) return;
    if (!same) return fail("liveness", "the nodes did not converge after healing");
    // A write through each node succeeds.
    for (auto& [id, n] : nodes_) {
      std::optional<Status> answer;
      Op set;
      set.type = OpType::Set;
      set.path = "/final";
      set.data = std::to_string(id);
      set.createIfMissing = true;
      n->core->submit(txnCommand({set}), [&answer](CommandResult r) { answer = r.status; });
      n->core->endTurn();
      const Time deadline = now_ + 3'000'000;
      loop([&] { return answer.has_value() || now_ >= deadline; });
      if (!result_.ok) return;
      if (answer != Status::Ok) return fail("liveness", "a write through node " + std::to_string(id) + " failed after healing");
    }
    checkSessionsAtEnd();
  }

  void checkSessionsAtEnd() {
    for (auto& [id, n] : nodes_) {
      storage::Txn txn = storage::Txn::read(*n->env);
      for (const auto& s : sessionClients_) {
        const bool exists = n->stateMachine->sessions().get(txn, s.id).has_value();
        const bool keptToTheEnd = s.keep && s.phase == SessionClient::Phase::Keeping && s.failedSinceAck == 0 &&
                                  now_ < s.lastAckAt + s.ttlMs * 1000 / 2;
        if (keptToTheEnd && !exists) {
          return fail("liveness", "node " + std::to_string(id) + " lost session " + std::to_string(s.id) +
                                      ", which its client keeps alive");
        }
        if (keptToTheEnd && s.ephemeral && !n->stateMachine->tree().get(txn, "/e" + std::to_string(s.id))) {
          return fail("liveness", "node " + std::to_string(id) + " lost the ephemeral node of live session " +
                                      std::to_string(s.id));
        }
        // Gone a ttl (and some slack) after it was abandoned, once some leader has been
        // speaking for sessions all that time.
        const Time from = std::max(s.abandonedAt, servingSince_);
        const Time gone = from + s.ttlMs * 1000 + 2'500'000;
        if (!s.keep && servingSince_ != 0 && now_ > gone && exists) {
          return fail("liveness", "node " + std::to_string(id) + " still has session " + std::to_string(s.id) +
                                      ", abandoned at " + std::to_string(s.abandonedAt / 1000) + " ms");
        }
      }
    }
  }

  NodeSimOptions options_;
  Rng rng_;
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
  paxos::Ballot latePromiseAtCut_;
  std::vector<Client> clients_;
  std::vector<Operation> history_;
  std::vector<SessionClient> sessionClients_;
  std::map<std::uint64_t, NodeId> pendingNode_;  // session -> node its pending call went to
  std::map<std::uint64_t, Time> expiredAt_;      // session -> when its expiry first took effect
  std::map<std::uint64_t, std::uint64_t> chosen_;  // slot -> hash of its value
  NodeSimResult result_;
};

}  // namespace

NodeSimResult runNodeSimulation(const NodeSimOptions& options) {
  NodeSim sim(options);
  return sim.run();
}

}  // namespace warden::tests::sim
