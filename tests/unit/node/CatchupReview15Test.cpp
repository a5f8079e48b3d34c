// Review of 469b5b6 (review14's fix: Replica::expireCatchupRequest passes over the snapshot's
// sender, catchupSource_, only at its second request in a row left unanswered for a heartbeat,
// catchupSourceMisses_, which any answer of the sender resets; Replica::onCatchupReply passes it
// over only at a nonce-0 answer that holds no slot at all).
//
// No safety fault: the counter, like catchupSource_ and catchupAsked_, decides only where and when
// a request goes. A catch-up reply carries slots at or below its sender's commit index, which are
// chosen whoever sends them, stale or not; none of the three touches a learner's target, its
// promises or its vote (advanceCommit), nor the order of apply (commitIndex_ only grows, one slot
// at a time). Nor a liveness fault of the counter itself: a sender that is down or cut off is
// passed over after two requests (each expires after a heartbeat, in tick() too, so a delayed
// heartbeat delays the count but cannot stop it); a stale answer resets the count, but each
// answer answers one request, so it cannot keep a dead sender in its turn for long; a sender
// whose answers all come too late (round trip above two heartbeats) is passed over, at the cost
// of a second snapshot, which is where 67e9506 started. [review15-probe] pins these (they pass).
//
// Two schedules still end the sender's turn while it holds every slot the receiver needs, and the
// leader (which compacted them, that is why a snapshot was needed) streams a second snapshot:
//  A (2f3c2e1's rule "caught up to the leader's commit index ends the sender's turn"): a heartbeat
//    (or Accept) of the leader that was sent before the snapshot was taken, delivered after the
//    install (frames seconds late are in the fault model, PAXOS.md), carries a commit index the
//    snapshot already covers: learnCommit takes the receiver for caught up and clears
//    catchupSource_ before a single slot after the snapshot has been asked for. A wiped member (a
//    learner) follows any ballot, so a deposed leader's late heartbeat does it as well.
//  B (469b5b6's "an answer with no slot at all passes the sender over"): the sender answers two
//    requests for the same slot with "snapshot needed" (it restarted, so it counts everything
//    applied as compacted); the first passes it over and makes it stream a new snapshot, which
//    the receiver installs (catchupSource_ = the sender again); the second answer, seconds late,
//    arrives after that install and passes the sender over again, though its compacted point is
//    now below the slot the receiver needs. Core test only.
// [review15] fail on 469b5b6 and pass with the fix (the commit after the one adding them):
// learnCommit ends the sender's turn once the receiver has caught up to the highest commit index
// a leader's message has carried (Replica::highestLeaderCommit_), not the message's own; and a
// "snapshot needed" whose compacted point is at or below the receiver's commit index answers an
// older request and passes nobody over. Planted: ReplicaConfig::Bugs::catchupSourceLateAnswers
// ([review15-planted]). Left as is: an EMPTY answer (no "snapshot needed") that is late is
// indistinguishable from a current one (a CatchupReply does not say which slot was asked for);
// it can only come from a sender that had nothing beyond the receiver's commit index then, and
// costs the same at most.

#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>

#include "tests/unit/node/NodeNetHelpers.h"

using namespace warden::tests::node;

// ---- the Paxos core alone -------------------------------------------------------------------

namespace {

namespace px = warden::coordinator::paxos;

// Replica 3 of 3 following leader 1 (ballot {1,1}); `wiped`: it starts as a learner.
struct Core {
  warden::tests::SplitMixRandom random;
  warden::tests::MemoryLogStore store;
  std::unique_ptr<px::Replica> r;
  px::Time now = 1'000'000;
  px::Ballot leader{1, 1};
  NodeId leaderId = 1;
  px::ReplicaConfig config;

  explicit Core(bool wiped = false, bool lateAnswers = false) {
    config.bugs.catchupSourceLateAnswers = lateAnswers;
    config.id = 3;
    config.members = {1, 2, 3};
    r = std::make_unique<px::Replica>(config, px::DurableState{}, 0, wiped, random, now);
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
  std::vector<NodeId> step(NodeId from, px::Payload p) { return handle(r->step(px::Message{from, 3, std::move(p)}, now)); }
  std::vector<NodeId> heartbeat(px::Slot commit) { return step(leaderId, px::Heartbeat{leader, commit, commit + 1, now}); }
  std::vector<NodeId> tick() { return handle(r->tick(now)); }
  static px::CatchupReply reply(px::Slot first, px::Slot last) {
    px::CatchupReply m;
    for (px::Slot s = first; s <= last; ++s) m.entries.push_back(px::ChosenEntry{s, px::Value{false, {"c"}}});
    return m;
  }
  static px::CatchupReply snapshotNeeded(px::Slot compactedUpTo) {
    px::CatchupReply m;
    m.snapshotNeeded = true;
    m.compactedUpTo = compactedUpTo;
    return m;
  }
};

}  // namespace

// Schedule A in the core. Replica 3 installed slots up to 100 from node 2 (the leader, 1, has
// compacted them). A heartbeat of leader 1 sent before node 2 took its snapshot (commit index 90)
// arrives only now; node 2 holds 101..300.
TEST_CASE("review15: a late heartbeat whose commit index the snapshot covers does not end the sender's turn", "[review15]") {
  Core x;
  x.heartbeat(0);
  x.now += 1'000;
  x.heartbeat(250);  // during the install (a node asks nobody then): the leader is at 250
  x.handle(x.r->installSnapshot(100, x.now, 2));
  REQUIRE(x.r->commitIndex() == 100);
  SECTION("before any request") {
    x.now += 1'000;
    CHECK(x.heartbeat(90).empty());  // late: sent before the snapshot was taken
    x.now += 1'000;
    CHECK(x.heartbeat(300) == std::vector<NodeId>{2});  // on 469b5b6: {1}
  }
  SECTION("after the sender's first answer") {
    x.now += 1'000;
    REQUIRE(x.heartbeat(300) == std::vector<NodeId>{2});
    x.now += 1'000;
    x.step(2, Core::reply(101, 164));
    REQUIRE(x.r->commitIndex() == 164);
    CHECK(x.heartbeat(150).empty());  // late: sent during the install
    x.now += 1'000;
    CHECK(x.heartbeat(300) == std::vector<NodeId>{2});  // on 469b5b6: {1}
  }
  SECTION("a deposed leader's late heartbeat to a learner") {
    // (the replica here is not wiped; a learner follows a lower ballot too: see below)
    x.now += 1'000;
    x.leader = {0, 2};  // a lower ballot: a voter refuses it
    x.leaderId = 2;
    CHECK(x.heartbeat(90).empty());
    x.leader = {1, 1};
    x.leaderId = 1;
    x.now += 1'000;
    CHECK(x.heartbeat(300) == std::vector<NodeId>{2});  // passes: a voter ignores a lower ballot
  }
}

// Schedule A for a learner: a wiped replica follows any ballot (it has forgotten its promises),
// so a deposed leader's heartbeat, commit index 90, ends node 2's turn as well.
TEST_CASE("review15: a deposed leader's heartbeat does not end a learner's sender's turn", "[review15]") {
  Core x(true);
  REQUIRE(x.r->isLearner());
  x.heartbeat(0);
  x.now += 1'000;
  x.heartbeat(250);
  x.r->beginInstall();
  x.handle(x.r->installSnapshot(100, x.now, 2));
  REQUIRE(x.r->commitIndex() == 100);
  x.now += 1'000;
  x.leader = {0, 2};  // node 2 itself led once, in a lower ballot: its late heartbeat
  x.leaderId = 2;
  CHECK(x.heartbeat(90).empty());
  x.leader = {1, 1};
  x.leaderId = 1;
  x.now += 1'000;
  CHECK(x.heartbeat(300) == std::vector<NodeId>{2});  // on 469b5b6: {1}
}

// Schedule B in the core. Replica 3 installed slots up to 100 from node 2; node 2 restarted
// meanwhile (it counts everything applied, 500, as compacted). Node 3 asks it for 101 twice (the
// first answer is slow); the first answer, "snapshot needed", passes node 2 over and node 2
// streams a snapshot up to 500, which node 3 installs: node 2 is its sender again, and holds
// 501.. . The second answer to a request for 101 arrives only now.
TEST_CASE("review15: a late 'snapshot needed' for a slot a later install covers does not pass the sender over", "[review15]") {
  Core x;
  x.heartbeat(0);
  x.handle(x.r->installSnapshot(100, x.now, 2));
  x.now += 1'000;
  REQUIRE(x.heartbeat(600) == std::vector<NodeId>{2});
  x.now += x.config.heartbeatInterval;
  x.tick();  // unanswered for a heartbeat: one miss
  REQUIRE(x.heartbeat(600) == std::vector<NodeId>{2});
  x.now += 5'000;
  x.step(2, Core::snapshotNeeded(500));  // the first answer: passed over (right: 101 is gone there)
  x.now += 1'000;
  REQUIRE(x.heartbeat(600) == std::vector<NodeId>{1});
  x.r->beginInstall();
  x.now += 1'000'000;
  x.handle(x.r->installSnapshot(500, x.now, 2));
  REQUIRE(x.r->commitIndex() == 500);
  x.step(2, Core::snapshotNeeded(500));  // seconds late: the answer to the second request for 101
  x.now += 1'000;
  CHECK(x.heartbeat(700) == std::vector<NodeId>{2});  // on 469b5b6: {1}
}

// The fix's planted bug (ReplicaConfig::Bugs::catchupSourceLateAnswers, 469b5b6's rules back):
// both late answers pass node 2 over again.
TEST_CASE("review15-planted: a late heartbeat or a late 'snapshot needed' ends the sender's turn", "[review15-planted]") {
  SECTION("the late heartbeat") {
    Core x(false, true);
    x.heartbeat(0);
    x.now += 1'000;
    x.heartbeat(250);
    x.handle(x.r->installSnapshot(100, x.now, 2));
    x.now += 1'000;
    CHECK(x.heartbeat(90).empty());
    x.now += 1'000;
    CHECK(x.heartbeat(300) == std::vector<NodeId>{1});
  }
  SECTION("the late 'snapshot needed'") {
    Core x(false, true);
    x.heartbeat(0);
    x.handle(x.r->installSnapshot(100, x.now, 2));
    x.now += 1'000;
    REQUIRE(x.heartbeat(600) == std::vector<NodeId>{2});
    x.now += 1'000;
    x.step(2, Core::snapshotNeeded(500));
    x.r->beginInstall();
    x.now += 1'000'000;
    x.handle(x.r->installSnapshot(500, x.now, 2));
    x.step(2, Core::snapshotNeeded(500));
    x.now += 1'000;
    CHECK(x.heartbeat(700) == std::vector<NodeId>{1});
  }
}

// Probes (pass on 469b5b6): the counter.
TEST_CASE("review15-probe: the two-miss counter", "[review15-probe]") {
  Core x;
  x.heartbeat(0);
  x.handle(x.r->installSnapshot(100, x.now, 2));
  x.now += 1'000;
  REQUIRE(x.heartbeat(300) == std::vector<NodeId>{2});
  SECTION("a dead sender under heartbeats delayed to three intervals apart: passed over at the second request") {
    std::vector<NodeId> to;
    for (int i = 0; i < 4; ++i) {
      for (int k = 0; k < 15; ++k) {  // the node ticks every 10 ms
        x.now += 10'000;
        x.tick();
      }
      for (NodeId id : x.heartbeat(300)) to.push_back(id);
    }
    CHECK(to == std::vector<NodeId>{2, 1, 1, 1});
  }
  SECTION("a stale answer with slots between two misses resets the count; two misses in a row pass over") {
    x.now += x.config.heartbeatInterval;
    x.tick();  // miss 1
    REQUIRE(x.heartbeat(300) == std::vector<NodeId>{2});
    x.step(2, Core::reply(101, 164));  // the first request's answer, late: progress
    REQUIRE(x.r->commitIndex() == 164);
    x.now += 1'000;
    REQUIRE(x.heartbeat(300) == std::vector<NodeId>{2});  // the peer asked answered: ask again (from 165)
    x.step(2, Core::reply(101, 164));  // the second request's answer: stale, nothing new, kept
    x.now += 1'000;
    REQUIRE(x.heartbeat(300) == std::vector<NodeId>{2});  // it cleared the outstanding flag: from 165 again
    x.now += x.config.heartbeatInterval;
    x.tick();  // miss 1
    REQUIRE(x.heartbeat(300) == std::vector<NodeId>{2});
    x.now += x.config.heartbeatInterval;
    x.tick();  // miss 2: passed over
    CHECK(x.heartbeat(300) == std::vector<NodeId>{1});
  }
  SECTION("an empty answer passes over at once") {
    x.now += 1'000;
    x.step(2, Core::reply(1, 0));
    x.now += 1'000;
    CHECK(x.heartbeat(300) == std::vector<NodeId>{1});
  }
}

// ---- schedule A on whole nodes --------------------------------------------------------------

namespace {

std::uint64_t nonceOf(const Frame& f) {
  const auto m = f.paxos();
  if (!m) return 0;
  if (const auto* r = std::get_if<paxos::CatchupRequest>(&m->payload)) return r->nonce;
  return 0;
}

// Leader 1 of 3 under steady writes, node 3's disk wiped; node 3 rebuilds from FOLLOWER 2's
// stream (node 1's rebuild stream to it is lost), as in CatchupReview14Test.
struct Scenario {
  std::unique_ptr<NodeNet> net;
  int written = 0, answered = 0, failed = 0;
  bool counting = false;
  std::map<NodeId, std::size_t> requests;   // node 3's nonce-0 catch-up requests, once counting
  std::set<std::uint64_t> lostStreams;      // node 1's rebuild streams to node 3: lost for good
  std::set<std::uint64_t> laterStreams;     // node 1's streams to node 3 that node 3 staged, once counting
  std::optional<Frame> held;                // a heartbeat of node 1 to node 3, held back

  Scenario() {
    net = std::make_unique<NodeNet>(3, ClusterOptions::Bugs{}, [](NodeId, ClusterOptions& o) {
      o.retainedSlots = 10;
      o.snapshotChunkBytes = 400;
      o.installStepBytes = 20;  // a row a turn: an install takes a few seconds, the leader compacts meanwhile
    });
  }

  void submit(NodeId via) {
    net->core(via).submit(createCommand("/w" + std::to_string(written++), 40), [this](CommandResult r) {
      if (r.status == Status::Ok) {
        ++answered;
      } else {
        ++failed;
      }
    });
  }

  bool see(const Frame& f) {
    if (counting && f.from == 3 && f.is("CatchupRequest") && nonceOf(f) == 0) ++requests[f.to];
    if (counting && isAckFrom(f, 3) && f.to == 1) laterStreams.insert(streamOf(f));
    return true;
  }
  bool lost(const Frame& f) { return isChunkTo(f, 3) && f.from == 1 && lostStreams.count(streamOf(f)); }

  void run(const std::vector<NodeId>& ticking, int every, const std::function<bool()>& done, int steps) {
    int step = 0;
    net->runUntil(ticking, [&](const Frame& f) { return see(f); }, [&] {
      if (step++ % every == 0 && written < 3'000) submit(1);
      return done();
    }, [&](const Frame& f) { return lost(f); }, steps);
  }

  // 400 writes, then quiet until every node has applied them; a heartbeat of leader 1 to node 3
  // is held back (its commit index: every write so far); node 3 wiped; node 3 rebuilds from node
  // 2's stream under a write every other step. Returns the held heartbeat's commit index.
  std::uint64_t rebuildFromFollowerHoldingAHeartbeat() {
    NodeNet& n = *net;
    elect(n, 1);
    for (int i = 0; i < 400; ++i) {
      const int before = answered;
      submit(1);
      n.runUntil({1, 2, 3}, all, [&] { return answered > before; });
      REQUIRE(answered > before);
    }
    n.runUntil({1, 2, 3}, all, [&] { return n.core(2).applied() == n.core(1).applied() && n.core(3).applied() == n.core(1).applied(); });
    const auto heartbeatTo3 = [](const Frame& f) { return f.from == 1 && f.to == 3 && f.is("Heartbeat"); };
    n.runUntil({1, 2, 3}, [&](const Frame& f) { return !heartbeatTo3(f); }, [&] { return n.inflight(heartbeatTo3) > 0; });
    auto taken1 = n.take(heartbeatTo3);
    REQUIRE(!taken1.empty());
    held = taken1.front();
    const std::uint64_t heldCommit = std::get<paxos::Heartbeat>(held->paxos()->payload).commitIndex;
    REQUIRE(n.core(2).applied() >= heldCommit);
    REQUIRE(n.replica(1)->compactedUpTo() > 1);
    n.wipe(3);
    n.restart(3);
    NodeId taken = 0;
    auto deliver = [&](const Frame& f) {
      if (isAckFrom(f, 3) && !taken) taken = f.to;
      return see(f);
    };
    auto drop = [&](const Frame& f) {
      if (!taken && isChunkTo(f, 3) && f.from == 1) lostStreams.insert(streamOf(f));
      return lost(f);
    };
    int step = 0;
    n.runUntil({1, 2, 3}, deliver, [&] {
      if (step++ % 2 == 0) submit(1);
      return count(n, 3, "installed a snapshot") > 0;
    }, drop, 3'000);
    REQUIRE(taken == 2);
    REQUIRE(count(n, 3, "installed a snapshot from node 2") == 1);
    REQUIRE(heldCommit <= n.replica(3)->commitIndex());
    return heldCommit;
  }

  // Hands the held heartbeat over now (to node 3's new process: frames outlive a restart).
  void release() {
    REQUIRE(held);
    net->core(held->to).peerFrame(held->from, held->bytes);
    net->core(held->to).endTurn();
    held.reset();
  }

  bool caughtUp(NodeId id, NodeId leader) {
    return !installing(*net, id) && net->core(id).applied() == net->core(leader).applied() &&
           revisionOf(*net, id) == revisionOf(*net, leader);
  }

  std::string describe() {
    std::string text = "node 3's nonce-0 catch-up requests after the install:";
    for (auto [to, k] : requests) text += " " + std::to_string(k) + " to node " + std::to_string(to) + ";";
    text += " streams of node 1 node 3 staged after it: " + std::to_string(laterStreams.size());
    text += "; node 3 learner: " + std::to_string(net->replica(3) ? net->replica(3)->isLearner() : -1);
    text += ", commit index 3/1: " + std::to_string(net->replica(3) ? net->replica(3)->commitIndex() : 0) + "/" +
            std::to_string(net->replica(1)->commitIndex()) + ", node 1 compacted up to " +
            std::to_string(net->replica(1)->compactedUpTo());
    text += "; writes " + std::to_string(written) + " answered " + std::to_string(answered) + " failed " + std::to_string(failed);
    for (NodeId id : {1, 2, 3}) {
      for (const auto& line : net->logs[id]) {
        if (line.find("snapshot") != std::string::npos) text += "\n  " + std::to_string(id) + ": " + line;
      }
    }
    return text;
  }
};

}  // namespace

// Schedule A on whole nodes: a heartbeat of leader 1 to node 3, sent before node 3 was wiped, is
// delayed until node 3's new process has installed node 2's snapshot (a few seconds; frames
// outlive a reconnect in a peer's link queue). Its commit index is covered by the snapshot:
// on 469b5b6 node 3 takes itself for caught up, clears catchupSource_, asks leader 1 (compacted)
// and is streamed a second snapshot; node 2, holding every slot after its snapshot, is never
// asked.
TEST_CASE("review15: a heartbeat delayed past the install does not cost a second snapshot", "[review15]") {
  Scenario s;
  s.rebuildFromFollowerHoldingAHeartbeat();
  s.release();
  s.counting = true;
  s.run({1, 2, 3}, 4, [&] { return !s.net->replica(3)->isLearner() && s.caughtUp(3, 1); }, 1'500);
  INFO(s.describe());
  CHECK(s.caughtUp(3, 1));
  CHECK_FALSE(s.net->replica(3)->isLearner());
  CHECK(count(*s.net, 3, "installed a snapshot") == 1);
  CHECK(s.laterStreams.empty());  // the leader was never made to stream again
  CHECK(s.requests[2] > 0);
}

// Probe (passes on 469b5b6): the sender crashes after its first answer of the catch-up; node 3
// passes it over after two requests, catches up from leader 1 (a second snapshot: the leader
// compacted), turns voter, and 1 and 3 choose a write.
TEST_CASE("review15-probe: the sender crashing mid catch-up", "[review15-probe]") {
  Scenario s;
  s.rebuildFromFollowerHoldingAHeartbeat();
  NodeNet& n = *s.net;
  s.held.reset();  // the held heartbeat: lost
  s.counting = true;
  const std::uint64_t installed = n.replica(3)->commitIndex();
  s.run({1, 2, 3}, 4, [&] { return n.replica(3)->commitIndex() > installed; }, 200);
  REQUIRE(n.replica(3)->commitIndex() > installed);
  n.crash(2);
  s.requests.clear();
  // (the second snapshot installs a row a turn: give it 40 s)
  s.run({1, 3}, 10, [&] { return !n.replica(3)->isLearner() && s.caughtUp(3, 1); }, 4'000);
  INFO(s.describe());
  CHECK(s.requests[2] <= 2);
  CHECK(s.requests[1] > 0);
  CHECK(s.caughtUp(3, 1));
  CHECK_FALSE(n.replica(3)->isLearner());
  const int before = s.answered;
  s.submit(1);
  n.runUntil({1, 3}, all, [&] { return s.answered > before; }, none, 300);
  CHECK(s.answered > before);
}
