// The driver-free lease read (NodeCore::fastRead, called on HTTP threads while the driver is
// mid-turn) probed at the instants that matter inside the leader's turn, which neither the
// whole-node simulator (its clients call fastRead between turns only) nor NodeNet (frames wait
// until the test delivers them) can reach:
//  - whenever a frame carrying a commit index c leaves the leader, a fast read answered at that
//    instant must read a state with slot c applied (a follower may apply c and acknowledge a
//    write in it before the leader's turn ends);
//  - whenever a write is acknowledged, by the leader or by a follower that learnt its slot from
//    such a frame, a fast read at the leader at that instant must see it.
// Here frames from the leader reach the followers at once, inside the leader's send (a fast
// network and fast followers while the leader's driver is still in its persist rounds), and the
// followers' answers queue for the leader's next turn.
#include <catch2/catch.hpp>

#include <deque>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "coordinator/StateMachine.h"
#include "coordinator/node/Frames.h"
#include "coordinator/node/NodeCore.h"
#include "coordinator/paxos/MessageCodec.h"
#include "tests/SplitMixRandom.h"
#include "tests/TempDir.h"
#include "tests/sim/MemoryLogStore.h"
#include "tests/unit/StoreFixture.h"

namespace {

using namespace warden;
using namespace warden::coordinator;
using coordinator::node::ClusterOptions;
using coordinator::node::NodeCore;
using paxos::NodeId;

class FastNet {
 public:
  struct Probe {
    std::size_t fast = 0;     // fast reads that said yes at a probed instant
    std::size_t refused = 0;  // ...and that said "take the driver's path"
  };

  explicit FastNet(std::size_t n) : n_(n) {
    for (NodeId id = 1; id <= n; ++id) {
      auto m = std::make_unique<Member>(*this, id);
      m->env = std::make_unique<storage::Env>(m->dir.path(), storage::EnvOptions{std::size_t{64} << 20, 16, false});
      storage::Txn txn = storage::Txn::write(*m->env);
      m->stateMachine = std::make_unique<StateMachine>(StateMachine::openDbs(txn));
      m->stateMachine->initialize(txn);
      txn.commit();
      ClusterOptions options;
      options.id = id;
      for (NodeId other = 1; other <= n; ++other) options.members[other] = "node" + std::to_string(other);
      options.pingUs = 0;
      m->random.reseed(id * 7919);
      m->core = std::make_unique<NodeCore>(*m->env, *m->stateMachine, options,
                                           NodeCore::Ports{*m, *m, m->random, m->store, [](const std::string&) {}},
                                           [](watch::Applied&) {});
      members_[id] = std::move(m);
    }
  }

  NodeCore& core(NodeId id) { return *members_.at(id)->core; }
  bool leads(NodeId id) { return core(id).replica() && core(id).replica()->isLeader(); }

  std::uint64_t appliedIndex(NodeId id) {
    storage::Txn txn = storage::Txn::read(*members_.at(id)->env);
    return members_.at(id)->stateMachine->appliedIndex(txn);
  }
  std::optional<std::string> value(NodeId id, const std::string& path) {
    storage::Txn txn = storage::Txn::read(*members_.at(id)->env);
    auto record = members_.at(id)->stateMachine->tree().get(txn, path);
    if (!record) return std::nullopt;
    return record->data;
  }

  // As a driver does: every frame queued for a node, then `inputs` (client writes, say), then
  // one turn each. A leader's turn thus learns new commits (its followers' votes) and proposes
  // and sends in the same persist round.
  void step(const std::function<void()>& inputs = {}) {
    now += 10'000;
    std::deque<Queued> queued = std::move(queued_);
    queued_.clear();
    for (auto& q : queued) core(q.to).peerFrame(q.from, q.frame);
    if (inputs) inputs();
    for (NodeId id = 1; id <= n_; ++id) core(id).endTurn();
  }

  // Called at the instant the leader sends a frame carrying commit index `commit`.
  std::function<void(NodeId leader, std::uint64_t commit)> onLeaderSends;
  std::uint64_t now = 10'000'000;

 private:
  struct Member : coordinator::node::Outbox, coordinator::node::Clock {
    Member(FastNet& net, NodeId id) : net(net), id(id) {}
    void send(std::uint64_t to, std::string frame) override { net.sent(id, to, std::move(frame)); }
    bool connected(std::uint64_t) const override { return true; }
    std::uint64_t nowUs() const override { return net.now; }
    std::uint64_t wallMs() const override { return 1'800'000'000'000 + net.now / 1000; }
    FastNet& net;
    NodeId id;
    tests::TempDir dir;
    std::unique_ptr<storage::Env> env;
    std::unique_ptr<StateMachine> stateMachine;
    tests::MemoryLogStore store;
    tests::SplitMixRandom random;
    std::unique_ptr<NodeCore> core;
  };
  struct Queued {
    NodeId from, to;
    std::string frame;
  };

  static std::optional<std::uint64_t> commitCarried(const std::string& frame) {
    if (frame.empty() || frame[0] != static_cast<char>(coordinator::node::Frame::Paxos)) return std::nullopt;
    const paxos::Message m = paxos::decodeMessage(std::string_view(frame).substr(1));
    if (const auto* a = std::get_if<paxos::Accept>(&m.payload)) return a->commitIndex;
    if (const auto* h = std::get_if<paxos::Heartbeat>(&m.payload)) return h->commitIndex;
    if (const auto* c = std::get_if<paxos::CatchupReply>(&m.payload)) {
      if (!c->entries.empty()) return c->entries.back().slot;
    }
    return std::nullopt;
  }

  void sent(NodeId from, NodeId to, std::string frame) {
    if (from == to) return;
    if (leads(from) && !inLeaderSend_) {
      if (auto commit = commitCarried(frame); commit && onLeaderSends) onLeaderSends(from, *commit);
      // The follower takes it at once, and its own turn runs, while the leader is mid-turn.
      inLeaderSend_ = true;
      core(to).peerFrame(from, frame);
      core(to).endTurn();
      inLeaderSend_ = false;
      return;
    }
    queued_.push_back(Queued{from, to, std::move(frame)});
  }

  std::size_t n_;
  bool inLeaderSend_ = false;
  std::map<NodeId, std::unique_ptr<Member>> members_;
  std::deque<Queued> queued_;
};

NodeId electOne(FastNet& net) {
  for (int i = 0; i < 1'000; ++i) {
    net.step();
    for (NodeId id = 1; id <= 3; ++id) {
      if (net.leads(id) && net.core(id).servesSessions()) return id;
    }
  }
  return 0;
}

}  // namespace

TEST_CASE("a fast read at the leader mid-turn covers every commit index that has left it and every write answered") {
  FastNet net(3);
  const NodeId leader = electOne(net);
  REQUIRE(leader != 0);
  const NodeId follower = leader == 1 ? 2 : 1;

  FastNet::Probe atSend, atAnswer;
  net.onLeaderSends = [&](NodeId l, std::uint64_t commit) {
    if (!net.core(l).fastRead()) {
      atSend.refused++;
      return;
    }
    atSend.fast++;
    CHECK(net.appliedIndex(l) >= commit);
  };

  std::size_t answered = 0;
  // Values are a letter and a sequence number; a key's later writes may be applied in the same
  // batch, so "sees it" is "holds it or a later one".
  auto number = [](const std::optional<std::string>& v) { return v ? std::stoi(v->substr(1)) : -1; };
  auto write = [&](NodeId at, const std::string& path, const std::string& data) {
    coordinator::Op op = tests::setOp(path, data);
    op.createIfMissing = true;
    net.core(at).submit(txnCommand({op}), [&, path, data](CommandResult r) {
      if (r.status != Status::Ok) return;
      ++answered;
      // The client hears "done" now and at once reads at the leader.
      if (!net.core(leader).fastRead()) {
        atAnswer.refused++;
        return;
      }
      atAnswer.fast++;
      CHECK(number(net.value(leader, path)) >= number(data));
    });
  };
  // Create the keys first, then overwrite them from both nodes, a write each per step.
  write(leader, "/a", "L0");
  write(follower, "/b", "F0");
  for (int i = 0; i < 30; ++i) net.step();
  for (int i = 1; i <= 200; ++i) {
    net.step([&] {
      write(leader, "/a", "L" + std::to_string(i));
      write(follower, "/b", "F" + std::to_string(i));
    });
  }
  for (int i = 0; i < 30; ++i) net.step();
  REQUIRE(net.leads(leader));
  CHECK(answered == 402);
  // The probes met both answers: fast reads taken, and refused while the leader's applied index
  // trailed the commit index it had published.
  CHECK(atSend.fast > 0);
  CHECK(atSend.refused > 0);
  CHECK(atAnswer.refused > 0);
  INFO("at send: " << atSend.fast << " fast, " << atSend.refused << " refused; at answer: " << atAnswer.fast
                   << " fast, " << atAnswer.refused << " refused");
  CHECK(atSend.fast + atAnswer.fast > 0);
}
