// Votes flushed behind the driver (ClusterOptions::flushBehind, SAFETY.md 9): a node writes a
// turn's records and goes on while its store flushes them; whatever rests on them, above all a
// vote's answer, waits until the flush covering them ends. Here a test holds a member's flushes
// (MemoryLogStore::onFlushBehind) and ends them by hand, and a crash loses what was not flushed.
// The planted votesBeforeFlush lets the answers go with the leader's Accepts, before the flush:
// an acknowledged write is then lost with a follower's unflushed vote.

#include <catch2/catch.hpp>

#include "tests/unit/node/NodeNetHelpers.h"

using namespace warden::tests::node;

namespace {

ClusterOptions::Bugs planted(bool votesBeforeFlush) {
  ClusterOptions::Bugs bugs;
  bugs.votesBeforeFlush = votesBeforeFlush;
  return bugs;
}

void flushBehind(NodeId, ClusterOptions& options) { options.flushBehind = true; }

bool cut3(const Frame& f) { return f.to == 3 || f.from == 3; }

// Node 1 leads, node 3 is cut off, and `held` (1 or 2) flushes nothing until the test says so.
// A write at the leader: whether it was acknowledged while the flush was held. It must be
// acknowledged once the flush ends.
bool ackedWhileHeld(NodeId held, bool bug) {
  NodeNet net(3, planted(bug), flushBehind);
  elect(net, 1);
  bool asked = false;
  net.store(held).onFlushBehind = [&] { asked = true; };
  bool acked = false;
  net.core(1).submit(
      createCommand("/w"), [&](CommandResult r) { acked = r.status == Status::Ok; }, AnswerWhen::Applied);
  net.runUntil({1, 2}, all, [&] { return acked; }, cut3, 100);
  CHECK(asked);
  const bool early = acked;
  net.store(held).onFlushBehind = nullptr;
  net.store(held).endFlush(net.store(held).written());
  net.runUntil({1, 2}, all, [&] { return acked; }, cut3, 300);
  CHECK(acked);
  CHECK(has(net, 1, "/w"));
  return early;
}

// As above with node 2's flushes held: once the leader has answered (if it does), nothing more
// reaches node 2; nodes 1 and 2 crash, losing what they did not flush, and {2, 3} elect a
// leader that takes a write. Returns whether the leader's acknowledged write is lost.
bool acknowledgedWriteLost(bool bug) {
  NodeNet net(3, planted(bug), flushBehind);
  elect(net, 1);
  net.store(2).onFlushBehind = [] {};
  bool acked = false;
  net.core(1).submit(
      createCommand("/w"), [&](CommandResult r) { acked = r.status == Status::Ok; }, AnswerWhen::Applied);
  // Once the write is answered, node 2 hears nothing more: not that its slot was chosen.
  net.runUntil({1, 2}, [&](const Frame& f) { return !acked || f.to != 2; }, [&] { return acked; }, cut3, 100);
  net.crash(2);
  net.crash(1);
  net.store(2).onFlushBehind = nullptr;
  net.restart(2);
  const NodeId leader = net.servingLeader({2, 3});
  REQUIRE(leader != 0);
  bool after = false;
  net.core(leader).submit(createCommand("/after"), [&](CommandResult r) { after = r.status == Status::Ok; });
  net.runUntil({2, 3}, all, [&] { return after && has(net, 2, "/after") && has(net, 3, "/after"); });
  REQUIRE(after);
  return acked && !has(net, leader, "/w");
}

}  // namespace

TEST_CASE("flush behind: a follower's vote is answered only once its flush ends", "[flushbehind]") {
  CHECK_FALSE(ackedWhileHeld(2, false));
}

TEST_CASE("flush behind: the leader counts its own vote only once its flush ends", "[flushbehind]") {
  CHECK_FALSE(ackedWhileHeld(1, false));
}

TEST_CASE("flush behind: a vote lost with its unflushed record was never counted", "[flushbehind]") {
  CHECK_FALSE(acknowledgedWriteLost(false));
}

TEST_CASE("planted votesBeforeFlush: votes are answered before their flush", "[flushbehind]") {
  CHECK(ackedWhileHeld(2, true));
  CHECK(ackedWhileHeld(1, true));
}

TEST_CASE("planted votesBeforeFlush: an acknowledged write is lost with a follower's unflushed vote",
          "[flushbehind]") {
  CHECK(acknowledgedWriteLost(true));
}
