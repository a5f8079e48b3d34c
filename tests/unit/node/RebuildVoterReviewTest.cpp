// Review of 8d9affe and 28aab60 (a rebuilt member's learned slots are applied into the commit
// that makes it a voter): schedules of crashes, power losses, wipes and held or reordered frames
// around the end of a rebuild, each a test. Every one asks the same question as
// PowerLossScenarioTest: once the rebuilt member W is a voter, do the acknowledged writes survive
// while a majority does, when the other member holding them (the leader) is gone and the third
// member never voted on them?
//
// In each, node 3 is down while the "old" writes are chosen by {1, 2} (W's pre-wipe votes), so
// after W's rebuild only the leader and W hold them; then the leader's machine fails and {W, 3}
// must still have them.

#include <catch2/catch.hpp>

#include <optional>

#include "tests/unit/node/NodeNetHelpers.h"

using namespace warden::tests::node;
using Kind = warden::coordinator::node::Frame;

namespace {

// `n` writes through `leader`, one at a time, each acknowledged, with only `up` ticking (frames
// to a node that is down are lost).
void writeAll(NodeNet& net, NodeId leader, const std::string& prefix, int n, const std::vector<NodeId>& up) {
  for (int i = 1; i <= n; ++i) {
    bool done = false;
    net.core(leader).submit(createCommand(prefix + std::to_string(i), 40), [&](CommandResult r) {
      CHECK(r.status == Status::Ok);
      done = true;
    });
    net.runUntil(up, all, [&] { return done; });
    REQUIRE(done);
  }
}

int lost(NodeNet& net, NodeId at, const std::string& prefix, int n) {
  int missing = 0;
  for (int i = 1; i <= n; ++i) missing += !has(net, at, prefix + std::to_string(i));
  return missing;
}

// The leader `gone`'s machine fails (its frames in flight die with it); the other two elect a
// leader, which writes once more. Returns how many of the `n` old writes that leader lacks.
int lostWithout(NodeNet& net, NodeId gone, const std::string& prefix, int n) {
  net.crash(gone);
  net.take([gone](const Frame& f) { return f.from == gone; });
  std::vector<NodeId> rest;
  for (NodeId id : {NodeId{1}, NodeId{2}, NodeId{3}}) {
    if (id != gone) rest.push_back(id);
  }
  const NodeId leader = net.servingLeader(rest);
  REQUIRE(leader != 0);
  bool after = false;
  net.core(leader).submit(createCommand("/after", 40), [&](CommandResult r) { after = r.status == Status::Ok; });
  net.runUntil(rest, all, [&] { return after; });
  REQUIRE(after);
  return lost(net, leader, prefix, n);
}

std::optional<paxos::CatchupReply> catchupReply(const Frame& f) {
  auto m = f.paxos();
  if (!m) return std::nullopt;
  if (const auto* r = std::get_if<paxos::CatchupReply>(&m->payload)) return *r;
  return std::nullopt;
}

bool isChunk(const Frame& f) { return f.isKind(Kind::SnapshotChunk); }

}  // namespace

// ---- 1. a power loss between catching up and turning voter -------------------------------------

TEST_CASE("review4: a rebuilding learner that loses power after learning most slots rebuilds again and keeps them") {
  NodeNet net(3);
  elect(net, 1);
  const NodeId W = 2;
  net.crash(3);
  const int kOld = 200;
  writeAll(net, 1, "/old-", kOld, {1, 2});
  const paxos::Slot oldEnd = net.replica(1)->commitIndex();
  net.wipe(W);
  net.restart(W);
  net.restart(3);
  // W learns 64 slots per answer; stop it at 128 or more applied, still a learner.
  net.runUntil({1, 2, 3}, all, [&] { return net.replica(W) && net.core(W).applied() >= 128; });
  REQUIRE(net.replica(W));
  REQUIRE(net.replica(W)->isLearner());
  REQUIRE(net.core(W).applied() < oldEnd);
  // Power loss (W and node 3, one rack): W's applies were never flushed on their own.
  net.powerLoss(W);
  net.powerLoss(3);
  net.take([W](const Frame& f) { return f.to == W || f.from == W || f.to == 3 || f.from == 3; });
  net.restart(W);
  net.restart(3);
  REQUIRE(net.replica(W) != nullptr);
  CHECK(net.replica(W)->isLearner());  // its LearnerRecord{true} was durable
  net.runUntil({1, 2, 3}, all, [&] { return net.replica(W) && !net.replica(W)->isLearner(); });
  REQUIRE_FALSE(net.replica(W)->isLearner());
  REQUIRE(net.core(W).applied() > oldEnd);
  // Now the voter loses power at once, with node 3.
  net.powerLoss(W);
  net.powerLoss(3);
  net.restart(W);
  net.restart(3);
  CHECK(net.core(W).applied() > oldEnd);
  CHECK(lostWithout(net, 1, "/old-", kOld) == 0);
}

// ---- 2. several Readies in the turn that makes W a voter, and a compaction in the batch ----------

// W catches up from the leader, but node 3's answers to W's rebuild requests (its promise) are
// held, so W stays a learner; the leader's last catch-up answer (slots past the old writes) is
// held too. Both reach W in one turn, the leader's first: its slots come in Readies before the
// voter mark's (the case of 28aab60). With `shortLog` W keeps a short log (retainedSlots 10),
// so each round that applies is followed by a compaction round (a CompactRecord in the batch
// after the voter's). Then W and node 3 lose power, the leader fails.
static int lostAfterVoterInASecondReady(ClusterOptions::Bugs bugs, bool shortLog) {
  const NodeId W = 2;
  NodeNet net(3, bugs, [W, shortLog](NodeId id, ClusterOptions& o) {
    if (id == W && shortLog) o.retainedSlots = 10;
  });
  elect(net, 1);
  net.crash(3);
  const int kOld = 100;
  writeAll(net, 1, "/old-", kOld, {1, 2});
  const paxos::Slot oldEnd = net.replica(1)->commitIndex();
  net.wipe(W);
  net.restart(W);
  net.restart(3);
  auto from3 = [&](const Frame& f) { return f.from == 3 && f.to == W && f.is("CatchupReply"); };
  auto fromLeader = [&](const Frame& f) { return f.from == 1 && f.to == W && f.is("CatchupReply"); };
  std::vector<Frame> held3, heldLeader;
  // W learns the first 64 slots; from then on the leader's answers are held as well.
  auto deliver = [&](const Frame& f) { return !from3(f) && (net.core(W).applied() < 64 || !fromLeader(f)); };
  auto hold = [&] {
    for (auto& f : net.take(from3)) held3.push_back(f);
    if (net.core(W).applied() >= 64) {
      for (auto& f : net.take(fromLeader)) heldLeader.push_back(f);
    }
  };
  net.runUntil({1, 2, 3}, deliver, [&] {
    hold();
    if (net.replica(1)->commitIndex() <= oldEnd) return false;
    for (const auto& f : heldLeader) {
      auto r = catchupReply(f);
      if (r && !r->entries.empty() && r->entries.back().slot > oldEnd) return !held3.empty();
    }
    return false;
  });
  // Two heartbeats more (frames held alike), so that W hears from the leader that the slot it
  // waits for is chosen (thrifty, that slot's push may reach W before any heartbeat says so).
  net.runUntil({1, 2, 3}, deliver, [&] { return hold(), false; }, [](const Frame&) { return false; }, 10);
  REQUIRE(net.replica(W)->isLearner());
  REQUIRE_FALSE(held3.empty());
  REQUIRE_FALSE(heldLeader.empty());
  const auto appliedBefore = net.core(W).applied();
  REQUIRE(appliedBefore < oldEnd);
  // One turn: the leader's answers held, then node 3's promise. (Thrifty, the slot past the old
  // writes may come alone, pushed once chosen, after the answer that brings the old ones.)
  for (const auto& f : heldLeader) net.core(W).peerFrame(1, f.bytes);
  net.core(W).peerFrame(3, held3.front().bytes);
  net.core(W).endTurn();
  REQUIRE_FALSE(net.replica(W)->isLearner());
  REQUIRE(net.core(W).applied() > oldEnd);
  net.powerLoss(W);
  net.powerLoss(3);
  net.restart(W);
  net.restart(3);
  UNSCOPED_INFO("W applied " << net.core(W).applied() << " after the power loss (" << appliedBefore
                             << " before the voter turn, old slots end at " << oldEnd << ")");
  return lostWithout(net, 1, "/old-", kOld);
}

TEST_CASE("review4: the voter mark in the second Ready of a batch keeps the learned slots") {
  CHECK(lostAfterVoterInASecondReady({}, false) == 0);
}

TEST_CASE("review4: the voter mark in the second Ready of a batch with a compaction round keeps the learned slots") {
  CHECK(lostAfterVoterInASecondReady({}, true) == 0);
}

TEST_CASE("review4: with voterBeforeLearnedDurable the voter mark in a second Ready loses acknowledged writes") {
  ClusterOptions::Bugs bugs;
  bugs.voterBeforeLearnedDurable = true;
  CHECK(lostAfterVoterInASecondReady(bugs, false) > 0);
  // (With a compaction round after it the CompactRecord's commit carries the late apply: nothing
  // is lost even with the switch, so the planted defect needs no compaction to show.)
  CHECK(lostAfterVoterInASecondReady(bugs, true) == 0);
}

// ---- 3. the voter mark in the batch that finishes a snapshot install ----------------------------

// The leader compacts (retainedSlots 5 everywhere); W rebuilds from a snapshot. Its first stream
// (cut before the rebuild target was chosen) is dropped until the leader abandons it, so the one
// W installs covers the target: W turns voter in the Ready of the install itself
// (Replica::installSnapshot). W and node 3 then lose power at once, and the leader fails.
TEST_CASE("review4: a member rebuilt from a snapshot that covers its target keeps it through a power loss") {
  const NodeId W = 2;
  NodeNet net(3, {}, [](NodeId, ClusterOptions& o) {
    o.retainedSlots = 5;
    o.snapshotChunkBytes = 400;
    o.installStepBytes = 60;
  });
  elect(net, 1);
  net.crash(3);
  const int kOld = 60;
  writeAll(net, 1, "/old-", kOld, {1, 2});
  const paxos::Slot oldEnd = net.replica(1)->commitIndex();
  REQUIRE(net.replica(1)->compactedUpTo() > 10);
  net.wipe(W);
  net.restart(W);
  net.restart(3);
  auto chunkToW = [&](const Frame& f) { return isChunk(f) && f.to == W; };
  net.runUntil({1, 2, 3}, [&](const Frame& f) { return !chunkToW(f); },
               [&] { return net.replica(1)->commitIndex() > oldEnd && count(net, 1, "abandoned a snapshot for node 2") > 0; },
               chunkToW, 1'000);
  REQUIRE(count(net, 1, "abandoned a snapshot for node 2") > 0);
  REQUIRE(net.replica(W)->isLearner());
  bool installedAsVoter = false;  // the step where W turned voter also installed its snapshot
  net.runUntil({1, 2, 3}, all, [&] {
    if (!net.replica(W) || net.replica(W)->isLearner()) return false;
    installedAsVoter = count(net, W, "installed a snapshot") > 0;
    return true;
  });
  REQUIRE_FALSE(net.replica(W)->isLearner());
  CHECK(installedAsVoter);
  CHECK(net.core(W).applied() > oldEnd);
  net.powerLoss(W);
  net.powerLoss(3);
  net.restart(W);
  net.restart(3);
  UNSCOPED_INFO("W applied " << net.core(W).applied() << " after the power loss; old slots end at " << oldEnd);
  CHECK(lostWithout(net, 1, "/old-", kOld) == 0);
}

// ---- 4. a second power loss right after the first ------------------------------------------------

TEST_CASE("review4: a rebuilt voter that loses power twice in a row keeps the slots it learned") {
  const NodeId W = 2;
  NodeNet net(3);
  elect(net, 1);
  net.crash(3);
  const int kOld = 200;
  writeAll(net, 1, "/old-", kOld, {1, 2});
  const paxos::Slot oldEnd = net.replica(1)->commitIndex();
  net.wipe(W);
  net.restart(W);
  net.restart(3);
  net.runUntil({1, 2, 3}, all, [&] { return net.replica(W) && !net.replica(W)->isLearner(); });
  REQUIRE_FALSE(net.replica(W)->isLearner());
  net.powerLoss(W);
  net.take([W](const Frame& f) { return f.to == W || f.from == W; });
  net.restart(W);
  CHECK(net.core(W).applied() > oldEnd);
  // A few turns of W alone (its frames go nowhere), then the second power loss, with node 3's.
  for (int i = 0; i < 5; ++i) {
    net.now += 10'000;
    net.turn(W);
  }
  net.take([W](const Frame& f) { return f.from == W; });
  net.powerLoss(W);
  net.powerLoss(3);
  net.restart(W);
  net.restart(3);
  CHECK_FALSE(net.replica(W)->isLearner());
  CHECK(net.core(W).applied() > oldEnd);
  CHECK(lostWithout(net, 1, "/old-", kOld) == 0);
}

// ---- 5. the leader is the member that lost its disk ---------------------------------------------

// Leader 1 loses its disk after the old writes; {2, 3} go on under leader 2 (node 3's catch-up
// answers held: it never learns the old slots). Node 1 rebuilds and turns voter, then leader 2
// fails: node 1 and node 3 elect a leader (node 1 may lead), write once more, and both lose power.
TEST_CASE("review4: a wiped leader that rebuilds, turns voter and loses power keeps the old writes") {
  NodeNet net(3);
  elect(net, 1);
  net.crash(3);
  const int kOld = 150;
  writeAll(net, 1, "/old-", kOld, {1, 2});
  const paxos::Slot oldEnd = net.replica(1)->commitIndex();
  net.wipe(1);
  net.take([](const Frame& f) { return f.from == 1; });
  net.restart(3);
  // Node 3 never learns the old slots: its catch-up answers are lost, and it does not campaign
  // (a candidate would learn them from node 2's promise).
  auto slowTo3 = [](const Frame& f) {
    return (f.to == 3 && f.is("CatchupReply")) || (f.from == 3 && (f.is("PreVote") || f.is("Prepare")));
  };
  net.runUntil({2, 3}, [&](const Frame& f) { return !slowTo3(f); },
               [&] { return net.leads(2) && net.core(2).servesSessions(); }, slowTo3, 3'000);
  REQUIRE(net.leads(2));
  net.restart(1);
  net.runUntil({1, 2, 3}, [&](const Frame& f) { return !slowTo3(f); },
               [&] { return net.replica(1) && !net.replica(1)->isLearner(); }, slowTo3, 3'000);
  REQUIRE(net.replica(1));
  REQUIRE_FALSE(net.replica(1)->isLearner());
  REQUIRE(net.core(1).applied() > oldEnd);
  CHECK(net.core(3).applied() < oldEnd);
  // Leader 2 fails; {1, 3} go on.
  net.crash(2);
  net.take([](const Frame& f) { return f.from == 2; });
  const NodeId leader = net.servingLeader({1, 3});
  REQUIRE(leader != 0);
  UNSCOPED_INFO("the new leader is node " << leader);
  bool written = false;
  net.core(leader).submit(createCommand("/new", 40), [&](CommandResult r) { written = r.status == Status::Ok; });
  net.runUntil({1, 3}, all, [&] { return written; });
  REQUIRE(written);
  CHECK(lost(net, leader, "/old-", kOld) == 0);
  // Both lose power; whoever leads {1, 3} next must hold the old writes and /new.
  net.powerLoss(1);
  net.powerLoss(3);
  net.take([](const Frame&) { return true; });
  net.restart(1);
  net.restart(3);
  const NodeId again = net.servingLeader({1, 3});
  REQUIRE(again != 0);
  bool after = false;
  net.core(again).submit(createCommand("/after", 40), [&](CommandResult r) { after = r.status == Status::Ok; });
  net.runUntil({1, 3}, all, [&] { return after; });
  REQUIRE(after);
  CHECK(lost(net, again, "/old-", kOld) == 0);
  CHECK(has(net, again, "/new"));
}

// ---- 6. the voter mark while a snapshot install is under way -------------------------------------

// W is rebuilding. Node 3, down while the old writes were chosen and restarted since (its
// compacted index is its applied one), answers W's rebuild request with a snapshot of its own,
// older state; the leader's catch-up answers to W are slow (held). W starts installing node 3's
// snapshot; the leader's answers arrive during the install and bring W to its rebuild target, and
// W turns voter then: its voter mark (and raised promise) are made durable while the slots it
// just learned sit in heldChosen_, in memory, until the install ends (NodeCore::applyInto). The
// fix of 8d9affe/28aab60 applies them "first", but applyInto holds them while installing_.
// `powerLossAfterInstall`: W finishes the install (applying the held slots without a flush) and
// then loses power; otherwise W's process is killed mid-install (no power loss at all).
// Returns how many old writes the leader of {W, 3} lacks once leader 1 has failed.
// With the fix (Replica::beginInstall) W stays a learner until the install is in and turns voter
// in the Ready that ends it, after the held slots are applied; `plant` (the paxos bug switch
// voterWhileInstalling) brings the finding back.
static int lostAfterVoterMidInstall(bool powerLossAfterInstall, bool plant) {
  const NodeId W = 2, B = 3;
  NodeNet net(3, {}, [plant](NodeId, ClusterOptions& o) {
    o.snapshotChunkBytes = 400;
    o.installStepBytes = 8;
    o.paxos.bugs.voterWhileInstalling = plant;
  });
  elect(net, 1);
  // Early writes everyone holds: 20 slots of 5 nodes each (a state worth many install steps).
  for (int i = 1; i <= 20; ++i) {
    bool done = false;
    std::vector<Op> ops;
    for (int j = 0; j < 5; ++j) ops.push_back(warden::tests::createOp("/early-" + std::to_string(i) + "-" + std::to_string(j), "e"));
    net.core(1).submit(txnCommand(ops), [&](CommandResult r) { done = r.status == Status::Ok; });
    net.runUntil({1, 2, 3}, all, [&] { return done; });
    REQUIRE(done);
  }
  net.runUntil({1, 2, 3}, all, [&] { return net.core(B).applied() == net.core(1).applied(); });
  net.crash(B);
  const int kOld = 25;
  writeAll(net, 1, "/old-", kOld, {1, 2});
  const paxos::Slot oldEnd = net.replica(1)->commitIndex();
  REQUIRE(oldEnd < 64);  // the leader's one answer holds every slot
  net.wipe(W);
  net.restart(W);
  net.restart(B);
  const auto snapshotSlot = net.core(B).applied();
  REQUIRE(snapshotSlot > 0);
  REQUIRE(snapshotSlot < oldEnd);

  auto fromLeader = [&](const Frame& f) { return f.from == 1 && f.to == W && f.is("CatchupReply"); };
  auto slowToB = [&](const Frame& f) { return f.to == B && f.is("CatchupReply"); };  // B never catches up
  auto chunkToW = [&](const Frame& f) { return isChunk(f) && f.to == W; };
  std::vector<Frame> heldLeader, chunks;
  net.runUntil({1, 2, 3}, [&](const Frame& f) { return !fromLeader(f) && !chunkToW(f); },
               [&] {
                 for (auto& f : net.take(fromLeader)) heldLeader.push_back(f);
                 for (auto& f : net.take(chunkToW)) chunks.push_back(f);
                 if (net.replica(1)->commitIndex() <= oldEnd || chunks.empty()) return false;
                 for (const auto& f : heldLeader) {
                   auto r = catchupReply(f);
                   if (r && !r->entries.empty() && r->entries.back().slot > oldEnd) return true;
                 }
                 return false;
               },
               slowToB, 300);
  REQUIRE_FALSE(chunks.empty());
  REQUIRE(net.replica(W)->isLearner());
  REQUIRE(net.core(W).applied() == 0);

  // Node 3's snapshot reaches W: it begins a stepped install.
  for (auto& f : chunks) {
    net.core(W).peerFrame(f.from, f.bytes);
    net.core(W).endTurn();
  }
  auto snapshotLink = [&](const Frame& f) {
    return (chunkToW(f) && f.from == B) || (f.isKind(Kind::SnapshotAck) && f.from == W && f.to == B);
  };
  net.runUntil({B}, snapshotLink, [&] { return installing(net, W); }, none, 100);
  REQUIRE(installing(net, W));

  // The leader's slow answers arrive, then its heartbeats (the rebuild target is chosen).
  for (auto& f : heldLeader) {
    net.core(W).peerFrame(f.from, f.bytes);
    net.core(W).endTurn();
  }
  for (int i = 0; i < 20 && net.replica(W)->isLearner(); ++i) {
    net.now += 10'000;
    net.turn(1);
    for (auto& f : net.take([&](const Frame& f) { return f.from == 1 && f.to == W && !f.is("CatchupReply"); })) {
      net.core(W).peerFrame(f.from, f.bytes);
      net.core(W).endTurn();
    }
  }
  // The precondition of the finding: a voter whose learned slots are not applied yet; fixed, a
  // learner still.
  REQUIRE(net.replica(W)->isLearner() != plant);
  REQUIRE(installing(net, W));
  CHECK(count(net, W, "chosen slots during an install") > 0);

  if (powerLossAfterInstall) {
    for (int i = 0; i < 5000 && installing(net, W); ++i) net.turn(W);
    REQUIRE_FALSE(installing(net, W));
    CHECK(net.core(W).applied() > oldEnd);  // the held slots, applied without a flush
    CHECK_FALSE(net.replica(W)->isLearner());  // in the Ready that ended the install
    net.powerLoss(W);
  } else {
    net.crash(W);
  }
  net.take([W](const Frame& f) { return f.from == W || f.to == W; });
  net.restart(W);
  UNSCOPED_INFO("W applied " << net.core(W).applied() << " after restarting (snapshot at " << snapshotSlot
                             << ", old slots end at " << oldEnd << "), a voter: " << !net.replica(W)->isLearner());
  // A learner again (killed before it turned voter): it finishes its rebuild while leader 1 lives.
  net.runUntil({1, 2, 3}, all, [&] { return !net.replica(W)->isLearner() && !installing(net, W); });
  REQUIRE_FALSE(net.replica(W)->isLearner());
  return lostWithout(net, 1, "/old-", kOld);
}

// The finding of this review, fixed by Replica::beginInstall.
TEST_CASE("review4: a rebuilt member killed mid-install keeps the slots it learned") {
  CHECK(lostAfterVoterMidInstall(false, false) == 0);
}

TEST_CASE("review4: a rebuilt member that turns voter at the end of an install and loses power keeps the slots it learned") {
  CHECK(lostAfterVoterMidInstall(true, false) == 0);
}

TEST_CASE("review4: with voterWhileInstalling a rebuilt member killed mid-install loses acknowledged writes") {
  CHECK(lostAfterVoterMidInstall(false, true) > 0);
}

TEST_CASE("review4: with voterWhileInstalling a rebuilt member that loses power after the install loses acknowledged writes") {
  CHECK(lostAfterVoterMidInstall(true, true) > 0);
}
