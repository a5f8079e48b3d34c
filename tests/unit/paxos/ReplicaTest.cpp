// Scripted scenarios for the Paxos core, read like a lab notebook: each drives replicas by hand
// and looks at what they persist and send.

#include <catch2/catch.hpp>

#include <deque>
#include <memory>
#include <optional>

#include "coordinator/paxos/Replica.h"
#include "tests/SplitMixRandom.h"
#include "tests/sim/MemoryLogStore.h"

using namespace warden::coordinator::paxos;

namespace {

using CountingRandom = warden::tests::SplitMixRandom;

using MemoryStore = warden::tests::MemoryLogStore;

ReplicaConfig configFor(NodeId id, std::size_t n) {
  ReplicaConfig c;
  c.id = id;
  for (NodeId m = 1; m <= n; ++m) c.members.push_back(m);
  return c;
}

// A few replicas on a perfect, hand-cranked network with one shared clock.
class Cluster {
 public:
  explicit Cluster(std::size_t n) {
    for (NodeId id = 1; id <= n; ++id) {
      stores_.push_back(std::make_unique<MemoryStore>());
      replicas_.push_back(std::make_unique<Replica>(configFor(id, n), DurableState{}, 0, false, random_, now));
    }
    committed_.resize(n);
  }

  Replica& replica(NodeId id) { return *replicas_[id - 1]; }
  const std::vector<ChosenEntry>& committed(NodeId id) { return committed_[id - 1]; }

  void handle(NodeId id, Ready ready) {
    auto proof = stores_[id - 1]->persist(ready);
    for (auto& e : ready.committed) committed_[id - 1].push_back(e);
    for (auto& r : ready.reads) reads.push_back(r);
    for (auto& m : ready.release(proof)) inflight_.push_back(std::move(m));
  }

  // Delivers messages until none are left (bounded).
  void settle() {
    for (int i = 0; i < 10'000 && !inflight_.empty(); ++i) {
      Message m = std::move(inflight_.front());
      inflight_.pop_front();
      handle(m.to, replica(m.to).step(m, now));
    }
    REQUIRE(inflight_.empty());
  }

  // Advances the clock in steps, ticking everyone and delivering everything, until `done`.
  template <typename Done>
  void runUntil(Done done, Time limit = 10'000'000) {
    for (Time waited = 0; waited < limit && !done(); waited += 10'000) {
      now += 10'000;
      for (NodeId id = 1; id <= replicas_.size(); ++id) handle(id, replica(id).tick(now));
      settle();
    }
    REQUIRE(done());
  }

  NodeId leader() {
    for (NodeId id = 1; id <= replicas_.size(); ++id) {
      if (replica(id).isLeader()) return id;
    }
    return 0;
  }

  Time now = 1'000'000;
  std::vector<ReadReady> reads;  // answered read-index requests, from any replica

 private:
  CountingRandom random_;
  std::vector<std::unique_ptr<MemoryStore>> stores_;
  std::vector<std::unique_ptr<Replica>> replicas_;
  std::vector<std::vector<ChosenEntry>> committed_;
  std::deque<Message> inflight_;
};

// The one message sent, which must be a T (a copy: the vector is usually a temporary).
template <typename T>
std::optional<T> only(const std::vector<Message>& messages) {
  REQUIRE(messages.size() == 1);
  const T* payload = std::get_if<T>(&messages[0].payload);
  REQUIRE(payload);
  return *payload;
}

}  // namespace

TEST_CASE("a promise is recorded for persistence before its reply can leave") {
  CountingRandom random;
  MemoryStore store;
  Time now = 10'000'000;
  Replica acceptor(configFor(2, 3), DurableState{}, 0, false, random, now);
  now += 1'000'000;  // past the lease an acceptor holds after starting
  Ready ready = acceptor.step(Message{1, 2, Prepare{Ballot{1, 1}, 1}}, now);
  REQUIRE(ready.records.size() == 1);
  CHECK(std::get<PromiseRecord>(ready.records[0]).promised == Ballot{1, 1});
  CHECK(store.state.promised.isZero());
  auto proof = store.persist(ready);  // the only way to the messages
  CHECK(store.state.promised == Ballot{1, 1});
  const auto promise = only<Promise>(ready.release(proof));
  REQUIRE(promise);
  CHECK(promise->ok);
}

TEST_CASE("three replicas elect a leader and choose proposed commands in the same order") {
  Cluster cluster(3);
  cluster.runUntil([&] { return cluster.leader() != 0; });
  const NodeId leader = cluster.leader();
  cluster.handle(leader, cluster.replica(leader).propose({"a", "b"}, cluster.now));
  cluster.handle(leader, cluster.replica(leader).propose({"c"}, cluster.now));
  cluster.settle();
  cluster.runUntil([&] {
    for (NodeId id = 1; id <= 3; ++id) {
      if (cluster.replica(id).commitIndex() < 2) return false;
    }
    return true;
  });
  std::vector<std::string> seen;
  for (const auto& e : cluster.committed(1)) seen.insert(seen.end(), e.value.commands.begin(), e.value.commands.end());
  CHECK(seen == std::vector<std::string>{"a", "b", "c"});
  CHECK(cluster.committed(2) == cluster.committed(1));
  CHECK(cluster.committed(3) == cluster.committed(1));
}

TEST_CASE("a follower rejects proposals and names the leader") {
  Cluster cluster(3);
  cluster.runUntil([&] { return cluster.leader() != 0; });
  const NodeId follower = cluster.leader() % 3 + 1;
  Ready ready = cluster.replica(follower).propose({"x"}, cluster.now);
  REQUIRE(ready.rejected.size() == 1);
  CHECK(ready.rejected[0].leaderHint == cluster.leader());
  CHECK(ready.rejected[0].commands == std::vector<std::string>{"x"});
}

TEST_CASE("a new leader re-proposes the value a majority accepted and fills holes with no-ops") {
  CountingRandom random;
  Time now = 10'000'000;
  // Acceptors 2 and 3 accepted "x" for slot 2 in an old ballot; nobody accepted slot 1.
  DurableState accepted;
  accepted.promised = Ballot{1, 1};
  accepted.accepted[2] = AcceptedValue{Ballot{1, 1}, Value{false, {"x"}}};
  Replica candidate(configFor(3, 3), accepted, 0, false, random, now);
  Replica acceptor(configFor(2, 3), accepted, 0, false, random, now);
  MemoryStore s2, s3;
  now += 2'000'000;

  Ready start = candidate.tick(now);  // past its election timeout: asks for pre-votes
  std::vector<Message> toAcceptor;
  for (auto& m : start.release(s3.persist(start))) {
    if (m.to == 2) toAcceptor.push_back(m);
  }
  auto preVote = only<PreVote>(toAcceptor);
  Ready granted = acceptor.step(Message{3, 2, *preVote}, now);
  auto reply = only<PreVoteReply>(granted.release(s2.persist(granted)));
  REQUIRE(reply->granted);
  Ready campaign = candidate.step(Message{2, 3, *reply}, now);  // a majority: campaigns
  auto prepares = campaign.release(s3.persist(campaign));
  REQUIRE(prepares.size() == 3);
  // Its own promise and acceptor 2's make a majority.
  std::vector<Message> promises;
  for (auto& p : prepares) {
    if (p.to == 1) continue;
    Replica& target = p.to == 3 ? candidate : acceptor;
    MemoryStore& store = p.to == 3 ? s3 : s2;
    Ready r = target.step(p, now);
    for (auto& m : r.release(store.persist(r))) promises.push_back(m);
  }
  std::vector<Message> accepts;
  for (auto& m : promises) {
    Ready r = candidate.step(m, now);
    for (auto& out : r.release(s3.persist(r))) {
      if (std::holds_alternative<Accept>(out.payload)) accepts.push_back(out);
    }
  }
  REQUIRE(candidate.isLeader());
  std::map<Slot, Value> proposed;
  for (auto& m : accepts) proposed[std::get<Accept>(m.payload).slot] = std::get<Accept>(m.payload).value;
  REQUIRE(proposed.size() == 2);
  CHECK(proposed[1] == Value::makeNoop());
  CHECK(proposed[2] == (Value{false, {"x"}}));
}

TEST_CASE("an acceptor that granted a lease refuses another ballot until the lease ends") {
  CountingRandom random;
  Time now = 10'000'000;
  ReplicaConfig config = configFor(2, 3);
  Replica acceptor(config, DurableState{}, 0, false, random, now);
  MemoryStore store;
  now += config.leaseDuration + 1;
  Ready hb = acceptor.step(Message{1, 2, Heartbeat{Ballot{1, 1}, 0, 1, now}}, now);
  (void)hb.release(store.persist(hb));

  Ready early = acceptor.step(Message{3, 2, Prepare{Ballot{2, 3}, 1}}, now + config.leaseDuration / 2);
  const auto refused = only<Promise>(early.release(store.persist(early)));
  REQUIRE(refused);
  CHECK_FALSE(refused->ok);
  CHECK(refused->leaseHeld);

  Ready late = acceptor.step(Message{3, 2, Prepare{Ballot{2, 3}, 1}}, now + config.leaseDuration + 1);
  const auto granted = only<Promise>(late.release(store.persist(late)));
  REQUIRE(granted);
  CHECK(granted->ok);
}

TEST_CASE("a restarted acceptor refuses new ballots for one lease, since it forgot its grants") {
  CountingRandom random;
  MemoryStore store;
  const Time start = 50'000'000;
  ReplicaConfig config = configFor(2, 3);
  Replica restarted(config, DurableState{Ballot{4, 1}, {}, 0, false}, 0, false, random, start);
  Ready r = restarted.step(Message{3, 2, Prepare{Ballot{5, 3}, 1}}, start + 1'000);
  CHECK(only<Promise>(r.release(store.persist(r)))->leaseHeld);
  Ready later = restarted.step(Message{3, 2, Prepare{Ballot{5, 3}, 1}}, start + config.leaseDuration + 1);
  CHECK(only<Promise>(later.release(store.persist(later)))->ok);
}

TEST_CASE("a wiped replica neither promises nor accepts, and remembers that across restarts") {
  CountingRandom random;
  MemoryStore store;
  Time now = 10'000'000;
  ReplicaConfig config = configFor(2, 3);
  Replica wiped(config, DurableState{}, 0, true, random, now);
  now += config.leaseDuration + 1;
  Ready prepare = wiped.step(Message{1, 2, Prepare{Ballot{1, 1}, 1}}, now);
  CHECK_FALSE(only<Promise>(prepare.release(store.persist(prepare)))->ok);
  CHECK(store.state.learner);  // persisted with its first Ready

  Ready accept = wiped.step(Message{1, 2, Accept{Ballot{1, 1}, 1, Value{false, {"v"}}, 0, now}}, now);
  auto sent = accept.release(store.persist(accept));
  CHECK(sent.empty());  // no vote
  CHECK(store.state.accepted.empty());

  Replica again(config, store.load(), 0, false, random, now);
  CHECK(again.isLearner());
}

TEST_CASE("a leader holds a lease only while a majority's acks are fresh") {
  Cluster cluster(3);
  cluster.runUntil([&] { return cluster.leader() != 0; });
  const NodeId leader = cluster.leader();
  cluster.runUntil([&] { return cluster.replica(leader).leaseValid(cluster.now); });
  CHECK(cluster.replica(leader).leaseRead(cluster.now).has_value());
  // With no further heartbeats answered, the lease runs out before an acceptor's grant does.
  const ReplicaConfig config = configFor(leader, 3);
  CHECK_FALSE(cluster.replica(leader).leaseValid(cluster.now + config.leaseDuration));
  for (NodeId id = 1; id <= 3; ++id) {
    if (id != leader) CHECK_FALSE(cluster.replica(id).leaseValid(cluster.now));
  }
}

TEST_CASE("a read index is answered after a round of heartbeats confirms the leader") {
  Cluster cluster(3);
  cluster.runUntil([&] { return cluster.leader() != 0; });
  const NodeId leader = cluster.leader();
  cluster.handle(leader, cluster.replica(leader).propose({"w"}, cluster.now));
  cluster.settle();
  const Slot committed = cluster.replica(leader).commitIndex();
  REQUIRE(committed >= 1);
  cluster.now += 1'000;
  Ready ask = cluster.replica(leader).requestRead(77, cluster.now);
  CHECK(ask.reads.empty());  // not before the round
  CHECK(ask.hasMessages());
  cluster.handle(leader, std::move(ask));
  cluster.settle();
  REQUIRE(cluster.reads.size() == 1);
  CHECK(cluster.reads[0].id == 77);
  CHECK(cluster.reads[0].index >= committed);
  const NodeId follower = leader % 3 + 1;
  CHECK(cluster.replica(follower).requestRead(78, cluster.now).failedReads == std::vector<std::uint64_t>{78});
}
