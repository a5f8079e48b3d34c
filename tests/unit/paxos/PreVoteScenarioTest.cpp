// Pre-vote (PAXOS.md 10), step by step: a node that comes back from a partition must not depose
// a leader that kept working while it was away.

#include <catch2/catch.hpp>

#include "tests/unit/paxos/ScriptedNet.h"

using namespace warden::tests::paxos;

namespace {

// Three nodes elect a leader; a follower, `away`, is cut off from the others for three seconds while
// everyone ticks; then the partition heals. Returns whether the first leader still leads in
// the ballot it was elected in.
bool leaderSurvivesHeal(ReplicaConfig::Bugs bugs) {
  ScriptedNet net(3, bugs);
  auto all = [](const Message&) { return true; };
  NodeId leader = 0;
  net.runUntil({1, 2, 3}, all, [&] {
    for (NodeId id : {1, 2, 3}) {
      if (net.replica(id).isLeader()) leader = id;
    }
    return leader != 0;
  });
  REQUIRE(leader != 0);
  const NodeId away = leader == 3 ? 1 : 3;
  REQUIRE(net.replica(leader).isLeader());
  const Ballot ballot = net.replica(leader).ballot();

  auto cut = [&](const Message& m) { return m.from == away || m.to == away; };
  for (int i = 0; i < 300; ++i) {  // 3 s: several election timeouts of the isolated node
    net.now += 10'000;
    for (NodeId id : {1, 2, 3}) net.tick(id);
    net.settle([&](const Message& m) { return !cut(m); }, cut);
  }
  REQUIRE(net.replica(leader).isLeader());
  for (int i = 0; i < 200; ++i) {  // healed for 2 s
    net.now += 10'000;
    for (NodeId id : {1, 2, 3}) net.tick(id);
    net.settle(all);
  }
  return net.replica(leader).isLeader() && net.replica(leader).ballot() == ballot;
}

}  // namespace

TEST_CASE("a node back from a partition does not depose a working leader") {
  CHECK(leaderSurvivesHeal({}));
}

TEST_CASE("without pre-vote the returning node's inflated ballot deposes the leader") {
  ReplicaConfig::Bugs bugs;
  bugs.noPreVote = true;
  CHECK_FALSE(leaderSurvivesHeal(bugs));
}
