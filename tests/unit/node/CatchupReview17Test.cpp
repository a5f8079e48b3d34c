// review17: adversarial review of b6591af (the review15 fix: the snapshot sender's turn ends once
// the receiver has caught up to Replica::highestLeaderCommit_, the highest commit index a leader's
// message has carried in this process).
//
// The fix covers a late leader message only when a HIGHER one was heard before the install. When
// the install itself is the first thing to take the receiver past every commit index heard so far
// (the snapshot's sender compacted after the last leader message that reached the receiver, e.g.
// the leader->receiver link is slow, in order, while the sender's stream is fast), the first
// leader message after the install still carries a commit index the snapshot covers, ends the
// sender's turn, and the next one sends the receiver to the leader, which has most likely
// compacted the slots the sender kept: a second snapshot, the cost review15 set out to remove.
// Efficiency only: safety is untouched (highestLeaderCommit_ is read only in learnCommit) and the
// receiver still catches up (from the leader's snapshot).
// [review17] fail on b6591af. Fix (the next commit): installSnapshot raises the commit index heard
// to one past the snapshot (its slots are chosen: the leader had committed them).

#include <catch2/catch.hpp>

#include <vector>

#include "tests/unit/node/CatchupScenario.h"

using namespace warden::tests::node;

namespace {
using Core = CatchupCore;
}  // namespace

// Replica 3 heard leader 1 only up to commit 0 (its heartbeats to 3 run seconds behind, in order);
// it installs node 2's snapshot up to 100 (node 2 compacted at 100, the leader since beyond).
// The leader's heartbeat sent before node 2 compacted (commit 90) arrives now; node 2 holds
// 101..300; the next heartbeat carries 300.
TEST_CASE("review17: an install above every commit index heard, then a lower heartbeat, ends the sender's turn", "[review17]") {
  Core x;
  x.heartbeat(0);
  x.handle(x.r->installSnapshot(100, x.now, 2));
  REQUIRE(x.r->commitIndex() == 100);
  x.now += 1'000;
  CHECK(x.heartbeat(90).empty());
  x.now += 1'000;
  CHECK(x.heartbeat(300) == std::vector<NodeId>{2});  // on b6591af: {1}
}

// The same for a learner (a wiped replica), and for a second install: replica 3 heard 600, then
// installs node 2's newer snapshot up to 700; a heartbeat sent before that (commit 650) arrives.
TEST_CASE("review17: a second install above the highest commit index heard, then a lower heartbeat", "[review17]") {
  Core x(true);
  REQUIRE(x.r->isLearner());
  x.heartbeat(0);
  x.r->beginInstall();
  x.handle(x.r->installSnapshot(100, x.now, 2));
  x.now += 1'000;
  REQUIRE(x.heartbeat(600) == std::vector<NodeId>{2});
  x.now += 1'000;
  x.step(2, Core::snapshotNeeded(700));  // node 2 compacted past 101: passed over, it streams 700
  x.r->beginInstall();
  x.now += 1'000'000;
  x.handle(x.r->installSnapshot(700, x.now, 2));
  REQUIRE(x.r->commitIndex() == 700);
  x.now += 1'000;
  CHECK(x.heartbeat(650).empty());
  x.now += 1'000;
  CHECK(x.heartbeat(900) == std::vector<NodeId>{2});  // on b6591af: {1}
}
