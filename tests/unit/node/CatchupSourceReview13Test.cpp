// Review of 67e9506 (after installing a snapshot received from peer X, the replica sends its
// catch-up requests to X, Replica::catchupSource_, and goes back to the leader when X answers a
// nonce-0 request with nothing new, or "leaves a request unanswered for a heartbeat").
//
// No safety fault was found: a catch-up reply carries only slots at or below its sender's commit
// index, which are chosen whoever sends them (the rebuild's nonce replies already took entries
// from any member), and catchupSource_ decides only where a request goes, not what is learned,
// what a learner's target is, or when it votes.
//
// Liveness fault: the "unanswered for a heartbeat" fallback (Replica::catchupTarget) tests
// catchupRequested_, but Replica::tick clears that very flag at the very same deadline
// (lastCatchupRequest_ + heartbeatInterval: "the answer was lost; the next commit index asks
// again"), and the node ticks its replica every 10 ms: whenever that tick runs before the next
// heartbeat's (or Accept's) learnCommit, as it always does when both fall due in one step here,
// the fallback is not taken and the request goes to X again. Any CatchupReply from anyone (a late
// one from the leader, a rebuild nonce reply) clears the flag as well. So catchupSource_ is in
// effect cleared only by an answer from X: a receiver whose sender crashed, or whose link to it is
// cut, asks X every heartbeat and never the leader, and never catches up while X stays away.
// Nor does a successful catch-up clear catchupSource_: the next catch-up the node needs, however
// long after the install, goes to X too.
//
// Every scenario: leader 1 of 3, node 3's disk wiped under steady writes; node 3 rebuilds from
// FOLLOWER 2's stream (node 1's stream to it is lost), as in SnapshotHoldReview12Test.
// [review13] fail on 67e9506 (the fault above); [review13-probe] pass (the controls, with the
// commit's own planted bug catchupFromLeaderAfterInstall = the old leader path, and a restart of
// the sender); [review13-open] fails before and after the commit (a pre-existing gap, beyond the
// one-failure budget). A repair that clears catchupSource_ where tick() gives a request up, and
// once the commit index reaches the leader's, makes the three scenario tests pass (and the
// review12 tests still pass); the core test's third section also needs a reply to clear
// catchupRequested_ only when it answers the outstanding request.

#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <set>

#include "tests/unit/node/CatchupScenario.h"

using namespace warden::tests::node;

namespace {

// Schedule A: the snapshot's sender crashes (for good: a machine lost) while the receiver
// installs its snapshot, once every chunk is acknowledged. Node 3 already has every member's
// promise (node 2 answered its rebuild request) and the leader's target; it needs only the slots
// after the snapshot, which leader 1 holds, to turn voter, and then 1 and 3 are a majority.
// On 67e9506 node 3 asks dead node 2 every heartbeat and never leader 1; leader 1, hearing no
// majority for an election timeout (node 3's acks as a learner do not count), steps down, and
// with no leader left node 3 asks nobody: no write is chosen again while node 2 stays down.
void senderCrashesWhileReceiverInstalls(bool leaderPath) {
  CatchupScenario s({.leaderPath = leaderPath});
  s.rebuildFromFollower(Until::Installed);
  NodeNet& n = *s.net;
  n.crash(2);
  s.counting = true;
  s.run({1, 3}, 10, [&] { return !n.replica(3)->isLearner() && s.caughtUp(3, 1); }, 1'500);  // 15 s
  INFO(s.describe());
  CHECK(s.requests[1] > 0);
  CHECK_FALSE(n.replica(3)->isLearner());
  CHECK(s.caughtUp(3, 1));
  // and a write goes through (1 and 3 are the majority)
  const int before = s.answered;
  s.submit(1);
  n.runUntil({1, 3}, all, [&] { return s.answered > before; }, none, 300);
  CHECK(s.answered > before);
}

// Schedule B: both alive, the link between the sender and the receiver cut while the receiver
// installs (1-2 and 1-3 fine; 1 and 2 a majority, writes go on). Node 3 should catch up from
// leader 1; on 67e9506 it asks node 2, unreachable, every heartbeat, for as long as the link is
// down, and never applies again (as a learner: one more failure and no majority is left).
void senderCutOffWhileReceiverInstalls(bool leaderPath) {
  CatchupScenario s({.leaderPath = leaderPath});
  s.rebuildFromFollower(Until::InstallBegun);
  NodeNet& n = *s.net;
  s.counting = true;
  const auto cut = [&](const Frame& f) {
    if (!between(f, 2, 3)) return false;
    if (f.from == 3 && f.is("CatchupRequest") && nonceOf(f) == 0) ++s.requestsCut;
    return true;
  };
  s.run({1, 2, 3}, 4, [&] { return !n.replica(3)->isLearner() && s.caughtUp(3, 1); }, 1'500, cut);
  INFO(s.describe());
  CHECK(s.requests[1] > 0);
  CHECK_FALSE(n.replica(3)->isLearner());
  CHECK(s.caughtUp(3, 1));
}

}  // namespace

TEST_CASE("review13: a receiver whose snapshot sender crashed while it installed asks the leader", "[review13]") {
  senderCrashesWhileReceiverInstalls(false);
}

TEST_CASE("review13: a receiver cut off from its snapshot sender while it installed asks the leader", "[review13]") {
  senderCutOffWhileReceiverInstalls(false);
}

// The same schedules with the requests going to the leader (the planted bug of 67e9506, i.e. the
// behaviour before it): node 3 catches up, so what fails above is the choice of the target.
TEST_CASE("review13-probe: with catch-up from the leader the sender crash does not stall node 3", "[review13-probe]") {
  senderCrashesWhileReceiverInstalls(true);
}

TEST_CASE("review13-probe: with catch-up from the leader a cut link to the sender does not stall node 3", "[review13-probe]") {
  senderCutOffWhileReceiverInstalls(true);
}

namespace {

// Schedule C: node 3 rebuilds from node 2 and catches up with every member up (it turns voter).
// Later its link to leader 1 is down for 300 ms while writes go on (1 and 2 choose them), and
// node 2 crashes just as the link comes back. Node 3 then needs the slots it missed, long after
// its install: it should ask leader 1. catchupSource_ is still node 2 (a catch-up that gave
// something never clears it), so on 67e9506 node 3 asks dead node 2 forever. (1 and 3 are the
// majority: writes go on with node 3's vote, but node 3 never applies again.)
void laterCatchupAfterSenderCrash(bool leaderPath) {
  CatchupScenario s({.leaderPath = leaderPath});
  s.rebuildFromFollower(Until::Installed);
  NodeNet& n = *s.net;
  s.run({1, 2, 3}, 4, [&] { return !n.replica(3)->isLearner() && s.caughtUp(3, 1) && s.answered + s.failed == s.written; }, 1'000);
  REQUIRE_FALSE(n.replica(3)->isLearner());
  REQUIRE(s.caughtUp(3, 1));
  s.run({1, 2, 3}, 1'000'000, [] { return false; }, 100);  // quiet: whatever node 3 asked is answered
  s.counting = true;
  s.run({1, 2, 3}, 2, [] { return false; }, 30, [](const Frame& f) { return between(f, 1, 3); });
  REQUIRE(n.replica(1)->commitIndex() > n.replica(3)->commitIndex() + 5);
  n.crash(2);
  s.run({1, 3}, 10, [&] { return s.caughtUp(3, 1); }, 800);
  INFO(s.describe());
  CHECK(s.requests[1] > 0);
  CHECK(s.caughtUp(3, 1));
}

}  // namespace

TEST_CASE("review13: a member rebuilt from a follower's snapshot catches up from the leader once that follower is gone", "[review13]") {
  laterCatchupAfterSenderCrash(false);
}

TEST_CASE("review13-probe: with catch-up from the leader a later catch-up does not need the gone follower", "[review13-probe]") {
  laterCatchupAfterSenderCrash(true);
}

// Not this commit's (it fails with catch-up from the leader too, and before 67e9506): node 2
// crashes while node 3, a learner, installs node 2's snapshot. Leader 1 then hears no majority
// (a learner's acks do not count), steps down after an election timeout, and nobody can lead
// again (node 3 refuses every Prepare while it learns); node 3 learns only from a leader's
// messages and turns voter only once the leader that named its target confirms it, so it waits
// for good, with every promise it needs in hand and its missing slots on node 1. Two of three
// nodes are up and no write is chosen until node 2 returns. (Two nodes out at once in a 3-node
// cluster: beyond what the design promises, so open, not a fault of this review.)
TEST_CASE("review13-open: a learner whose install outlasts the leader's lone leadership waits for the dead member", "[.][review13-open]") {
  CatchupScenario s({.leaderPath = true});
  s.rebuildFromFollower(Until::InstallBegun);
  NodeNet& n = *s.net;
  n.crash(2);
  s.counting = true;
  s.run({1, 3}, 10, [&] { return !n.replica(3)->isLearner() && s.caughtUp(3, 1); }, 1'500);
  INFO(s.describe());
  CHECK_FALSE(n.replica(3)->isLearner());
  CHECK(s.caughtUp(3, 1));
}

// Probe D: the sender restarts (disk kept) right after node 3 installed its snapshot. A restart
// counts everything applied as compacted (Replica's constructor), so node 2 answers node 3's
// request for the slots after the snapshot with "snapshot needed" (and a new stream): node 3
// passes it over (nothing new from its source) and catches up, at the cost of a second snapshot
// (the hold of NodeCore::compactionPoint does not survive the sender's restart). Passes on 67e9506.
TEST_CASE("review13-probe: a receiver whose snapshot sender restarted after sending catches up", "[review13-probe]") {
  CatchupScenario s;
  s.rebuildFromFollower(Until::Installed);
  NodeNet& n = *s.net;
  n.crash(2);
  n.restart(2);
  s.counting = true;
  s.run({1, 2, 3}, 4, [&] { return !n.replica(3)->isLearner() && s.caughtUp(3, 1); }, 1'500);
  INFO(s.describe());
  CHECK_FALSE(n.replica(3)->isLearner());
  CHECK(s.caughtUp(3, 1));
}

// ---- the same fault in the Paxos core alone ---------------------------------------------------

namespace {

namespace px = warden::coordinator::paxos;

// Replica 3 of 3, following leader 1, installs a snapshot up to slot 100 from node 2; heartbeats
// then say slot 150 is committed. Returns where each ordinary catch-up request went.
struct Receiver {
  warden::tests::SplitMixRandom random;
  warden::tests::MemoryLogStore store;
  std::unique_ptr<px::Replica> r;
  px::Time now = 1'000'000;
  const px::Ballot leader{1, 1};
  px::ReplicaConfig config;

  Receiver() {
    config.id = 3;
    config.members = {1, 2, 3};
    r = std::make_unique<px::Replica>(config, px::DurableState{}, 0, false, random, now);
    heartbeat(0);
    std::vector<NodeId> sent = handle(r->installSnapshot(100, now, 2));
    REQUIRE(sent.empty());
    REQUIRE(r->commitIndex() == 100);
  }

  // The nonce-0 catch-up requests a Ready sends, by destination.
  std::vector<NodeId> handle(px::Ready ready) {
    auto proof = store.persist(ready);
    std::vector<NodeId> to;
    for (auto& m : ready.release(proof)) {
      if (const auto* c = std::get_if<px::CatchupRequest>(&m.payload); c && c->nonce == 0) to.push_back(m.to);
    }
    return to;
  }
  std::vector<NodeId> heartbeat(px::Slot commit) {
    return handle(r->step(px::Message{1, 3, px::Heartbeat{leader, commit, commit + 1, now}}, now));
  }
  std::vector<NodeId> tick() { return handle(r->tick(now)); }
};

}  // namespace

// The mechanism, without a node around it. The commit's promise: "a sender that does not answer
// within a heartbeat is passed over". Node 2 never answers.
TEST_CASE("review13: the core passes over a silent snapshot sender even when its tick comes first", "[review13]") {
  Receiver x;
  x.now += 1'000;
  CHECK(x.heartbeat(150) == std::vector<NodeId>{2});  // the first request goes to the sender
  SECTION("the next heartbeat lands just before the replica's tick: passed over (passes)") {
    x.now += x.config.heartbeatInterval;
    // Since review14 a sender is passed over at its second unanswered request, not its first
    // (one lost or slow answer cost a second snapshot).
    CHECK(x.heartbeat(150) == std::vector<NodeId>{2});
    x.now += x.config.heartbeatInterval;
    CHECK(x.heartbeat(150) == std::vector<NodeId>{1});
  }
  SECTION("the replica ticks first (the node ticks every 10 ms), then the heartbeat (fails on 67e9506)") {
    std::vector<NodeId> to;  // a second of heartbeats, each after a tick at the same instant
    for (int i = 0; i < 20; ++i) {
      x.now += x.config.heartbeatInterval;
      x.tick();
      for (NodeId id : x.heartbeat(150)) to.push_back(id);
    }
    CHECK(std::count(to.begin(), to.end(), NodeId{1}) > 0);  // on 67e9506: 20 requests, all to node 2
  }
  SECTION("any catch-up reply from another peer in between (a late one from the leader) (fails on 67e9506)") {
    x.now += 10'000;
    px::CatchupReply late;  // an answer the leader sent before the install, say
    x.handle(x.r->step(px::Message{1, 3, late}, x.now));
    x.now += x.config.heartbeatInterval;
    CHECK(x.heartbeat(150) == std::vector<NodeId>{2});  // (review14: asked again once)
    x.now += x.config.heartbeatInterval;
    CHECK(x.heartbeat(150) == std::vector<NodeId>{1});
  }
}
