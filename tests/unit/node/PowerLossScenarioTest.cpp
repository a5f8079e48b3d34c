// Review of issue 14 (b0827f3, f9da5c8): applies commit without a flush of their own, so a power
// loss undoes them back to the node's last durable commit (NodeNet::powerLoss models it). The
// claim (SAFETY.md 5) is that this is the same as a process crash just before those applies.
// It is, but a process crash just before one particular apply was never safe: a rebuilt member
// (PAXOS.md 5) turns voter in the same Ready that delivers the last slots it learned
// (ReplicaLearning.cpp advanceCommit): its LearnerRecord{false} and raised promise are persisted
// (durable) first, the slots it learned by catch-up are applied afterwards, and nothing else holds
// them on that disk (a learner votes on nothing; catch-up values live in memory). Before b0827f3
// that apply was a durable commit microseconds later; now it stays unflushed until the node's next
// acceptor commit (or the kernel's writeback), which on a quiet cluster may be tens of seconds. A
// power loss in between leaves a voter that has forgotten values chosen with its own pre-wipe
// vote: a lost disk that does not know it is one. The same change leaves a member that caught up
// by catch-up after its last vote with unflushed applies too, so one rack's power loss (W and
// node 3) while node 1 is down lets {2, 3} choose no-ops over acknowledged writes.
//
// These tests assert the guarantee (acknowledged writes survive while a majority does). On
// f9da5c8 the three "keep" cases without a vote in between failed (37, 37 and 9 acknowledged
// writes lost); NodeCore::finishReadyBatch now applies a rebuild's last slots into the commit
// that makes the member a voter, and the planted voterBeforeLearnedDurable brings the loss back.

#include <catch2/catch.hpp>

#include <optional>

#include "tests/unit/node/NodeNetHelpers.h"

using namespace warden::tests::node;

namespace {

std::optional<paxos::CatchupRequest> catchupRequest(const Frame& f) {
  auto m = f.paxos();
  if (!m) return std::nullopt;
  if (const auto* r = std::get_if<paxos::CatchupRequest>(&m->payload)) return *r;
  return std::nullopt;
}

// Writes /old-1 ... /old-`count` through leader 1 while node 3 is down: chosen by {1, 2}, each
// acknowledged.
void writeOld(NodeNet& net, int count) {
  for (int i = 1; i <= count; ++i) {
    bool done = false;
    net.core(1).submit(createCommand("/old-" + std::to_string(i)), [&](CommandResult r) {
      CHECK(r.status == Status::Ok);
      done = true;
    });
    net.runUntil({1, 2}, all, [&] { return done; });
    REQUIRE(done);
  }
}

// With node 1 gone, {2, 3} is a majority: whoever leads it takes a write, and then says how many
// of the acknowledged /old-* writes it lacks.
int lostUnderNewLeader(NodeNet& net, int count) {
  const NodeId leader = net.servingLeader({2, 3});
  REQUIRE(leader != 0);
  bool after = false;
  net.core(leader).submit(createCommand("/after"), [&](CommandResult r) { after = r.status == Status::Ok; });
  net.runUntil({2, 3}, all, [&] { return after && has(net, 2, "/after") && has(net, 3, "/after"); });
  REQUIRE(after);
  int lost = 0;
  for (int i = 1; i <= count; ++i) {
    if (!has(net, leader, "/old-" + std::to_string(i))) ++lost;
  }
  return lost;
}

}  // namespace

// Returns how many acknowledged writes the new leader of {2, 3} lacks. `slow3`: node 3's catch-up
// answers are held (it votes, but does not learn the old slots); otherwise node 3 catches up
// freely and loses power together with W (one rack). `voteFirst`: W votes on one more write (an
// acceptor commit, which flushes its applies) before the power loss.
static int lostAfterRebuild(bool slow3, bool voteFirst) {
  NodeNet net(3);
  elect(net, 1);
  const NodeId W = 2;

  // Node 3 is down while 100 writes are chosen by {1, 2}, one slot each, all acknowledged.
  net.crash(3);
  const int kWrites = 100;
  writeOld(net, kWrites);
  const paxos::Slot oldEnd = net.replica(1)->commitIndex();
  REQUIRE(oldEnd > 64 + 20);

  // W's disk is replaced; node 3 comes back. W rebuilds as a learner (it needs every member's
  // promise, and the leader's no-op for slot oldEnd + 1, which {1, 3} choose). Node 3's own
  // catch-up answers are slow (held on the link): it votes, but has not learned the old slots.
  // W's first answer from the leader carries 64 slots (catchupBatch); its further catch-up
  // requests reach the leader only once the no-op is chosen.
  net.wipe(W);
  net.restart(W);
  net.restart(3);
  auto slowTo3 = [&](const Frame& f) { return slow3 && f.to == 3 && f.from != 3 && f.is("CatchupReply"); };
  auto heldFromW = [&](const Frame& f) {
    auto r = catchupRequest(f);
    return f.from == W && f.to == 1 && r && r->nonce == 0;
  };
  net.runUntil({1, 2, 3}, [&](const Frame& f) { return !slowTo3(f) && !heldFromW(f); },
               [&] { return net.replica(1)->commitIndex() > oldEnd; });
  REQUIRE(net.replica(1)->commitIndex() == oldEnd + 1);
  // The leader's heartbeats tell W the no-op is chosen (its rebuild target).
  net.runUntil({1, 2, 3}, [&](const Frame& f) { return !slowTo3(f) && !heldFromW(f); }, [] { return false; }, none, 20);
  REQUIRE(net.replica(W));
  REQUIRE(net.replica(W)->isLearner());
  REQUIRE(net.replica(W)->commitIndex() == 64);
  const auto appliedAsLearner = net.core(W).applied();

  // W's held requests reach the leader; its answer carries slots 65 to oldEnd + 1, and W turns
  // voter in the turn that applies them.
  for (auto& f : net.take(heldFromW)) {
    net.core(1).peerFrame(f.from, f.bytes);
    net.core(1).endTurn();
  }
  for (auto& f : net.take([&](const Frame& f) { return f.from == 1 && f.to == W && f.is("CatchupReply"); })) {
    net.core(W).peerFrame(f.from, f.bytes);
    net.core(W).endTurn();
    if (!net.replica(W)->isLearner()) break;
  }
  REQUIRE_FALSE(net.replica(W)->isLearner());
  REQUIRE(net.core(W).applied() == oldEnd + 1);

  if (voteFirst) {
    bool done = false;
    net.core(1).submit(createCommand("/flush"), [&](CommandResult r) { done = r.status == Status::Ok; });
    net.runUntil({1, 2, 3}, [&](const Frame& f) { return !slowTo3(f); }, [&] { return done && net.core(W).applied() > oldEnd + 1; });
    REQUIRE(done);
  }
  // Before W's next acceptor commit: a power loss at W (and node 3, unless its catch-up was
  // held), and node 1's machine fails too (its frames in flight are lost with it).
  const auto applied3 = net.core(3).applied();
  net.powerLoss(W);
  if (!slow3) net.powerLoss(3);
  net.crash(1);
  net.take([](const Frame& f) { return f.from == 1; });
  net.restart(W);
  if (!slow3) {
    net.restart(3);
    // Node 3 had applied the old slots (learned by catch-up, after its vote on the no-op): unflushed.
    CHECK(applied3 > oldEnd);
    CHECK(net.core(3).applied() < oldEnd);
  }
  // On f9da5c8 the power loss took the applies made after the voter mark: W is back at
  // appliedAsLearner (64), a voter that no longer holds slots 65 to oldEnd anywhere on its disk.
  UNSCOPED_INFO("W applied " << net.core(W).applied() << " after the power loss (" << appliedAsLearner
                             << " as a learner, " << oldEnd << " old slots)");

  // {2, 3} is a majority; whoever leads, the acknowledged writes must be there.
  return lostUnderNewLeader(net, kWrites);
}

TEST_CASE("a rebuilt member that loses power right after it turns voter keeps the slots it learned") {
  CHECK(lostAfterRebuild(true, false) == 0);
}

TEST_CASE("a rebuilt member and a caught-up member that lose power together keep the slots they learned") {
  CHECK(lostAfterRebuild(false, false) == 0);
}

TEST_CASE("a rebuilt member that votes once more before it loses power keeps the slots it learned") {
  CHECK(lostAfterRebuild(true, true) == 0);
}

// The same without any frame held: 200 slots behind, W learns them 64 at a time (catchupBatch),
// so the answer that brings its rebuild target also brings the last old slots, applied in the
// turn that makes it a voter. Then one rack (W and node 3) loses power while node 1 is down.
// `thrifty`: ReplicaConfig::thrifty.
static int lostAfterNaturalRebuild(ClusterOptions::Bugs bugs, bool thrifty) {
  NodeNet net(3, bugs, [thrifty](NodeId, ClusterOptions& o) { o.paxos.thrifty = thrifty; });
  elect(net, 1);
  const NodeId W = 2;
  net.crash(3);
  const int kWrites = 200;
  writeOld(net, kWrites);
  const paxos::Slot oldEnd = net.replica(1)->commitIndex();
  net.wipe(W);
  net.restart(W);
  net.restart(3);
  net.runUntil({1, 2, 3}, all, [&] { return net.replica(W) && !net.replica(W)->isLearner(); });
  REQUIRE(net.replica(W));
  REQUIRE_FALSE(net.replica(W)->isLearner());
  REQUIRE(net.core(W).applied() > oldEnd);
  net.powerLoss(W);
  net.powerLoss(3);
  net.crash(1);
  net.take([](const Frame& f) { return f.from == 1; });
  net.restart(W);
  net.restart(3);
  UNSCOPED_INFO("after the power loss: W applied " << net.core(W).applied() << ", node 3 applied "
                                                  << net.core(3).applied() << ", old slots end at " << oldEnd);
  return lostUnderNewLeader(net, kWrites);
}

TEST_CASE("a rebuilt member 200 slots behind and a caught-up member that lose power together keep every acknowledged write") {
  CHECK(lostAfterNaturalRebuild({}, true) == 0);
  CHECK(lostAfterNaturalRebuild({}, false) == 0);
}

TEST_CASE("with voterBeforeLearnedDurable a rebuilt member that loses power loses acknowledged writes") {
  // The defect the fix removes (NodeCore::finishReadyBatch applies a rebuild's last slots into
  // the commit that makes it a voter): persisted first, applied unflushed after.
  ClusterOptions::Bugs bugs;
  bugs.voterBeforeLearnedDurable = true;
  // Phase 2 to every member: thrifty, the leader pushes W the slots it chooses while W rebuilds,
  // so the answer that makes W a voter may bring only the fresh slot (one node 3 voted on) and
  // the old slots are already durable from an earlier turn.
  CHECK(lostAfterNaturalRebuild(bugs, false) > 0);
}
