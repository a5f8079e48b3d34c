// Issue 14: what apply did may stay uncommitted for applyCommitDelayUs (one commit then covers
// many turns' applies), and writes submitted with AnswerWhen::Applied are
// answered before that commit (coordinator/node/Apply.cpp). Their results are final, their
// slots chosen; what they wrote is visible only after the commit. These schedules hold the
// commit back (a long delay, no further writes) and check that: a read barrier begun after such
// an answer sees the write, at the leader and at a follower; the driver-free lease read refuses
// meanwhile; and a node killed, or losing power, before the commit applies the write again. The
// planted readsBeforeApplyCommitted answers a read barrier before the commit: the read misses
// the write.

#include <catch2/catch.hpp>

#include <algorithm>
#include <optional>

#include "tests/unit/StoreFixture.h"
#include "tests/unit/node/NodeNet.h"

using namespace warden::tests::node;

namespace {

constexpr std::uint64_t kCommitDelayUs = 200'000;  // 20 of NodeNet's steps

Command createCommand(const std::string& path) { return txnCommand({warden::tests::createOp(path)}); }

bool visible(NodeNet& net, NodeId id, const std::string& path) {
  return net.read(id, [&](const StateMachine& sm, auto& txn) { return sm.tree().get(txn, path).has_value(); });
}

NodeNet lazyNet(ClusterOptions::Bugs bugs = {}) {
  return NodeNet(3, bugs, [](NodeId, ClusterOptions& o) { o.applyCommitDelayUs = kCommitDelayUs; });
}

// Submits `path` at `at` answered as soon as applied; runs until answered. The answer must come
// before the node committed the apply (else the schedule shows nothing).
void writeAnsweredWhenApplied(NodeNet& net, NodeId at, const std::string& path) {
  std::optional<CommandResult> result;
  bool visibleAtAnswer = true;
  net.core(at).submit(createCommand(path), [&](CommandResult r) {
    result = std::move(r);
    visibleAtAnswer = visible(net, at, path);
  }, AnswerWhen::Applied);
  net.runUntil({1, 2, 3}, all, [&] { return result.has_value(); });
  REQUIRE(result);
  REQUIRE(result->status == Status::Ok);
  REQUIRE_FALSE(visibleAtAnswer);
}

// A read barrier at `at`, begun now; whether the state it releases holds `path`.
std::optional<bool> readSees(NodeNet& net, NodeId at, const std::string& path) {
  std::optional<bool> seen;
  net.core(at).readBarrier([&](Status s) {
    REQUIRE(s == Status::Ok);
    seen = visible(net, at, path);
  });
  net.runUntil({1, 2, 3}, all, [&] { return seen.has_value(); }, none, 100);
  return seen;
}

}  // namespace

TEST_CASE("a write answered as soon as applied is seen by a read barrier begun after it at the leader") {
  NodeNet net = lazyNet();
  const NodeId leader = net.servingLeader({1, 2, 3});
  REQUIRE(leader != 0);
  writeAnsweredWhenApplied(net, leader, "/a");
  // Leading under its lease, but the write it answered is not visible yet: no driver-free read.
  CHECK_FALSE(net.core(leader).fastRead());
  const auto seen = readSees(net, leader, "/a");
  REQUIRE(seen);
  CHECK(*seen);
  // Committed now: the driver-free read is back.
  net.turn(leader);
  CHECK(net.core(leader).fastRead());
}

TEST_CASE("a write answered as soon as applied at a follower is seen by a read barrier begun after it") {
  NodeNet net = lazyNet();
  const NodeId leader = net.servingLeader({1, 2, 3});
  REQUIRE(leader != 0);
  const NodeId follower = leader == 1 ? 2 : 1;
  writeAnsweredWhenApplied(net, follower, "/f");
  for (NodeId reader : {follower, leader}) {
    const auto seen = readSees(net, reader, "/f");
    REQUIRE(seen);
    CHECK(*seen);
  }
}

TEST_CASE("an uncommitted apply commits by itself once its delay has passed") {
  NodeNet net = lazyNet();
  const NodeId leader = net.servingLeader({1, 2, 3});
  REQUIRE(leader != 0);
  writeAnsweredWhenApplied(net, leader, "/later");
  CHECK(net.core(leader).wakeAtUs() <= net.now + kCommitDelayUs);
  net.runUntil({1, 2, 3}, all, [&] { return visible(net, leader, "/later"); }, none, 25);
  CHECK(visible(net, leader, "/later"));
}

TEST_CASE("an apply someone waits to see commits at the end of its turn instead of waiting out the delay") {
  for (bool wanted : {true, false}) {
    DYNAMIC_SECTION((wanted ? "wanted" : "not wanted")) {
      std::vector<std::string> seen;  // the pending events appliesWanted was shown
      NodeNet net(3, {}, [wanted, &seen](NodeId, ClusterOptions& o) {
        o.applyCommitDelayUs = kCommitDelayUs;
        o.appliesWanted = [wanted, &seen](const watch::Applied& pending, watch::PendingScan& scan) {
          for (; scan.events < pending.events.size(); ++scan.events) seen.push_back(pending.events[scan.events].path);
          return wanted;
        };
      });
      const NodeId leader = net.servingLeader({1, 2, 3});
      REQUIRE(leader != 0);
      writeAnsweredWhenApplied(net, leader, "/watched");
      // The turn that answered has ended: wanted (a watcher it concerns, a read waiting for its
      // revision), its apply is committed, so the event went out with it; otherwise it waits.
      CHECK(visible(net, leader, "/watched") == wanted);
      CHECK(std::count(seen.begin(), seen.end(), "/watched") >= 1);
    }
  }
}

TEST_CASE("a write answered before its commit survives the answering leader's crash and power loss") {
  for (bool powerLoss : {false, true}) {
    DYNAMIC_SECTION((powerLoss ? "power loss" : "kill -9")) {
      NodeNet net = lazyNet();
      const NodeId leader = net.servingLeader({1, 2, 3});
      REQUIRE(leader != 0);
      writeAnsweredWhenApplied(net, leader, "/kept");
      if (powerLoss) {
        net.powerLoss(leader);
      } else {
        net.crash(leader);
      }
      net.restart(leader);
      const NodeId next = net.servingLeader({1, 2, 3});
      REQUIRE(next != 0);
      for (NodeId reader : {NodeId{1}, NodeId{2}, NodeId{3}}) {
        const auto seen = readSees(net, reader, "/kept");
        REQUIRE(seen);
        CHECK(*seen);
      }
    }
  }
}

TEST_CASE("with readsBeforeApplyCommitted a read barrier misses a write answered before it") {
  ClusterOptions::Bugs bugs;
  bugs.readsBeforeApplyCommitted = true;
  NodeNet net = lazyNet(bugs);
  const NodeId leader = net.servingLeader({1, 2, 3});
  REQUIRE(leader != 0);
  writeAnsweredWhenApplied(net, leader, "/missed");
  const auto seen = readSees(net, leader, "/missed");
  REQUIRE(seen);
  CHECK_FALSE(*seen);
}
