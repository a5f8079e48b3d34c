#pragma once
// A hand-cranked network of whole node cores (coordinator/node) for step-by-step scenarios: the
// real NodeCore, Paxos replica and StateMachine on a temporary LMDB per node, one shared manual
// clock, and frames the test delivers, holds or drops one by one. Crashes lose the process (no
// callback runs), keep the disk; wipes lose the disk too; a power loss (powerLoss) keeps only what
// reached the disk: the LMDB file as of the node's last durable commit.

#include <algorithm>
#include <deque>
#include <filesystem>
#include <fstream>
#include <functional>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "coordinator/StateMachine.h"
#include "coordinator/node/Frames.h"
#include "coordinator/node/NodeCore.h"
#include "coordinator/paxos/MessageCodec.h"
#include "tests/SplitMixRandom.h"
#include "tests/TempDir.h"
#include "tests/sim/MemoryLogStore.h"

namespace warden::tests::node {

using namespace coordinator;
using coordinator::node::ClusterOptions;
using coordinator::node::NodeCore;
using paxos::NodeId;

struct Frame {
  NodeId from = 0;
  NodeId to = 0;
  std::string bytes;

  // The Paxos message inside, if this is one.
  std::optional<paxos::Message> paxos() const {
    if (bytes.empty() || bytes[0] != static_cast<char>(coordinator::node::Frame::Paxos)) return std::nullopt;
    return paxos::decodeMessage(std::string_view(bytes).substr(1));
  }
  bool is(const char* name) const {
    auto m = paxos();
    return m && std::string(paxos::messageName(m->payload)) == name;
  }
  bool isKind(coordinator::node::Frame kind) const { return !bytes.empty() && bytes[0] == static_cast<char>(kind); }
};

class NodeNet {
 public:
  using Filter = std::function<bool(const Frame&)>;

  // `tune` may adjust each member's options (timing, say) before it starts.
  using Tune = std::function<void(NodeId, ClusterOptions&)>;

  std::map<NodeId, std::int64_t> wallOffsetMs;  // a node's wall clock, stepped by a test
  std::map<NodeId, std::vector<std::string>> logs;  // each node's log lines, in order

  explicit NodeNet(std::size_t n, ClusterOptions::Bugs bugs = {}, Tune tune = {}) : n_(n), bugs_(bugs), tune_(std::move(tune)) {
    for (NodeId id = 1; id <= n; ++id) {
      nodes_[id] = std::make_unique<Member>(*this, id);
      freshDisk(id);
      start(id);
    }
  }

  NodeCore& core(NodeId id) { return *nodes_.at(id)->core; }
  bool up(NodeId id) const { return nodes_.at(id)->core != nullptr; }
  const paxos::Replica* replica(NodeId id) { return up(id) ? core(id).replica() : nullptr; }
  bool leads(NodeId id) { return replica(id) && replica(id)->isLeader(); }

  // (Either crash loses the records the node wrote behind and had not flushed: what a power loss
  // does, and what no rule may count on; ClusterOptions::flushBehind.)
  void crash(NodeId id) {
    crashKeepingQueued(id);
    std::erase_if(inflight_, [id](const Frame& f) { return f.to == id; });
  }
  // A crash after which the frames already on their way to the node stay queued and reach its
  // next process (its peers' link queues kept them across the reconnect).
  void crashKeepingQueued(NodeId id) {
    nodes_.at(id)->core.reset();
    nodes_.at(id)->store.loseUnflushed();
  }
  // The node's acceptor store: a test may hold its flushes behind (onFlushBehind) and end them.
  MemoryLogStore& store(NodeId id) { return nodes_.at(id)->store; }
  void restart(NodeId id) { start(id); }
  void wipe(NodeId id) {
    crash(id);
    freshDisk(id);
  }
  // A machine crash (power loss): the process dies and the page cache is lost. In production the
  // acceptor state is in a write-ahead log flushed before anything leaves (here MemoryLogStore,
  // kept), and the state machine in LMDB opened with MDB_NOMETASYNC: what survives of it is its
  // last durable commit (a compaction's or voter mark's flush, a snapshot install step), or the
  // commit after it, made without a flush, whose pages are durable but whose meta page may not
  // be. Here the worse: the node's LMDB file as of its last durable commit, imaged by
  // Env::afterCommit (a commit without a flush makes the one before it durable).
  void powerLoss(NodeId id) {
    crash(id);
    Member& m = *nodes_.at(id);
    m.stateMachine.reset();
    m.env.reset();
    m.dir = std::make_unique<TempDir>();
    {
      std::ofstream out(std::filesystem::path(m.dir->path()) / "data.mdb", std::ios::binary);
      out.write(m.image.data(), static_cast<std::streamsize>(m.image.size()));
    }
    openDisk(m);
  }

  // A turn of `id` (ticks when due).
  void turn(NodeId id) {
    if (up(id)) core(id).endTurn();
  }

  // Delivers, oldest first, every frame `deliver` accepts (each followed by its receiver's turn),
  // drops those `drop` names, keeps the rest in flight. Bounded.
  void settle(const Filter& deliver, const Filter& drop = [](const Frame&) { return false; }) {
    for (int i = 0; i < 100'000; ++i) {
      auto it = std::find_if(inflight_.begin(), inflight_.end(), [&](const Frame& f) { return drop(f) || deliver(f); });
      if (it == inflight_.end()) return;
      Frame f = std::move(*it);
      inflight_.erase(it);
      if (drop(f) || !up(f.to)) continue;
      core(f.to).peerFrame(f.from, f.bytes);
      core(f.to).endTurn();
    }
  }

  // Advances the clock 10 ms at a time, giving `ticking` a turn each step and settling, until
  // `done` or a bound.
  void runUntil(const std::vector<NodeId>& ticking, const Filter& deliver, const std::function<bool()>& done,
                const Filter& drop = [](const Frame&) { return false; }, int steps = 1'000) {
    for (int i = 0; i < steps && !done(); ++i) {
      now += 10'000;
      for (NodeId id : ticking) turn(id);
      settle(deliver, drop);
    }
  }

  // Runs `among` (every frame delivered) until one of them leads and serves sessions, for up to
  // `steps` steps; that node, or 0.
  NodeId servingLeader(const std::vector<NodeId>& among, int steps = 3'000) {
    NodeId leader = 0;
    runUntil(among, [](const Frame&) { return true; }, [&] {
      for (NodeId id : among) {
        if (leads(id) && core(id).servesSessions()) leader = id;
      }
      return leader != 0;
    }, [](const Frame&) { return false; }, steps);
    return leader;
  }

  // Takes the frames `f` names out of flight, oldest first: the test hands them over itself
  // (several in one turn of their receiver, say).
  std::vector<Frame> take(const Filter& f) {
    std::vector<Frame> out;
    std::copy_if(inflight_.begin(), inflight_.end(), std::back_inserter(out), f);
    std::erase_if(inflight_, f);
    return out;
  }

  std::size_t inflight(const Filter& f) const {
    return static_cast<std::size_t>(std::count_if(inflight_.begin(), inflight_.end(), f));
  }

  // Reads a node's applied state.
  template <typename Read>
  auto read(NodeId id, Read read) {
    storage::Txn txn = storage::Txn::read(*nodes_.at(id)->env);
    return read(*nodes_.at(id)->stateMachine, txn);
  }

  std::uint64_t now = 10'000'000;

 private:
  struct Member : coordinator::node::Outbox, coordinator::node::Clock {
    Member(NodeNet& net, NodeId id) : net(net), id(id) {}
    void takeImage(bool synced) {
      std::ifstream in(std::filesystem::path(dir->path()) / "data.mdb", std::ios::binary);
      std::string now{std::istreambuf_iterator<char>(in), std::istreambuf_iterator<char>()};
      image = synced ? now : std::move(lastImage);
      lastImage = std::move(now);
    }
    void send(std::uint64_t to, std::string frame) override { net.inflight_.push_back(Frame{id, to, std::move(frame)}); }
    bool connected(std::uint64_t) const override { return true; }
    std::uint64_t nowUs() const override { return net.now; }
    std::uint64_t wallMs() const override {
      return static_cast<std::uint64_t>(static_cast<std::int64_t>(1'800'000'000'000 + net.now / 1000) + net.wallOffsetMs[id]);
    }

    NodeNet& net;
    NodeId id;
    std::unique_ptr<TempDir> dir;
    std::unique_ptr<storage::Env> env;
    std::unique_ptr<StateMachine> stateMachine;
    MemoryLogStore store;
    std::string image;      // the LMDB file as of the last durable commit
    std::string lastImage;  // as of the last commit
    SplitMixRandom random;
    std::unique_ptr<NodeCore> core;
  };

  void freshDisk(NodeId id) {
    Member& m = *nodes_.at(id);
    m.stateMachine.reset();
    m.env.reset();
    m.dir = std::make_unique<TempDir>();
    openDisk(m);
    m.store.state = {};  // nothing is carried between turns
  }

  // Opens the member's directory as a process starting does (Node's constructor); that commit
  // is durable.
  void openDisk(Member& m) {
    m.env = std::make_unique<storage::Env>(m.dir->path(), storage::EnvOptions{std::size_t{64} << 20, 16, false});
    storage::Txn txn = storage::Txn::write(*m.env);
    m.stateMachine = std::make_unique<StateMachine>(StateMachine::openDbs(txn));
    m.stateMachine->initialize(txn);
    txn.commit();
    m.takeImage(true);
    m.store.env = m.env.get();
    m.env->afterCommit = [&m](bool synced) { m.takeImage(synced); };
  }

  void start(NodeId id) {
    Member& m = *nodes_.at(id);
    ClusterOptions options;
    options.id = id;
    for (NodeId other = 1; other <= n_; ++other) options.members[other] = "node" + std::to_string(other);
    options.bugs = bugs_;
    options.pingUs = 0;  // the scenarios count frames; pings feed only the health view
    // The scenarios read a node's state as soon as it has applied a slot: commit every turn
    // (the lazy commit has scenarios of its own, and the whole-node simulator varies it).
    options.applyCommitDelayUs = 0;
    if (tune_) tune_(id, options);
    m.random.reseed(id * 1000 + ++processes_);
    m.core = std::make_unique<NodeCore>(*m.env, *m.stateMachine, options,
                                        NodeCore::Ports{m, m, m.random, m.store,
                                                        [this, id](const std::string& line) { logs[id].push_back(line); }},
                                        [](coordinator::watch::Applied&) {});
  }

  std::size_t n_;
  ClusterOptions::Bugs bugs_;
  Tune tune_;
  std::uint64_t processes_ = 0;
  std::map<NodeId, std::unique_ptr<Member>> nodes_;
  std::deque<Frame> inflight_;
};

inline bool all(const Frame&) { return true; }
inline bool none(const Frame&) { return false; }

// A member of a 3-node net that is neither `a` nor `b`.
inline NodeId other(NodeId a, NodeId b = 0) {
  for (NodeId id : {NodeId{1}, NodeId{2}, NodeId{3}}) {
    if (id != a && id != b) return id;
  }
  return 0;
}

}  // namespace warden::tests::node
