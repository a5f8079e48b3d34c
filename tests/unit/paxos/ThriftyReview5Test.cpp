// Fifth review of thrifty phase 2 (98463ec: a leader or candidate takes no chosen slot from a push
// or a catch-up answer, and steps down first when the answer shows a higher ballot; it steps down
// before it installs a snapshot past its commit index; a resend passes over only the followers
// a slot was asked of, askedOf_). Adversarial schedules against both rules, for safety (another
// door through which a leader of ballot b learns a slot chosen in a higher ballot) and liveness
// (an answer or a snapshot a candidate or leader now drops, that it needed).
//
// Found: nothing that fails on 98463ec. Every test below is a regression test for a schedule
// checked and found handled; review4's paused leader installing its successor's snapshot instead
// of taking its push (with its planted twin, which shows the check can fail) is in
// ThriftyReview4Test.cpp, which has that schedule.
// - A candidate or leader never needs the entries of a catch-up answer: it asks only as a
//   follower (learnCommit, onPromise after stepDown); its log holds every slot below
//   prepareFrom_, and a leader learns the rest from its own phase 2. A learner (the only replica
//   using rebuild nonces) never campaigns (tick, startPreVote), so memberPromises_ and
//   learnerTarget_ are never skipped. catchupRequested_ is reset before the new check (and a
//   request made as a follower is older than an election timeout by then anyway).
// - The other doors are closed: becomeLeader proposes a chosen value found in a promise again, it
//   marks nothing chosen; onAccept and onHeartbeat at a candidate or leader go through
//   followLeader (a lower ballot is refused, a higher one deposes it, only its own is taken);
//   learnCommit at a leader follows its own commit index; a slot learned as a follower before the
//   candidacy and chosen in a higher ballot c would need a majority promising b after c's majority
//   had accepted (impossible: they refuse b), so phase 1 of b recovers any chosen value.
// - askedOf_ is erased and cleared exactly where proposed_ and lastSentAt_ are (onAccepted,
//   becomeLeader, stepDown); it holds one entry per slot in flight. A slot phase 1 proposes again
//   while this replica already knows it chosen (a push before the candidacy) is never resent
//   (tick skips it) and stays in proposed_, lastSentAt_, votes_ and askedOf_ until the leadership
//   ends if its first Accepts are lost: bounded by one phase 1's range, as before 98463ec.

#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "tests/unit/paxos/ScriptedNet.h"

using namespace warden::coordinator::paxos;
using warden::tests::paxos::ScriptedNet;
using warden::tests::paxos::all;
using warden::tests::paxos::none;
using warden::tests::paxos::command;

namespace {

// ---- a follower behind, whose catch-up answer from the leader is late --------------------------
//
// Three members. Leader A asks A and B (thrifty); its pushes to C are lost, so C learns the
// commit index from A's next heartbeat and asks A for the slots. A's answer (leaderBallot b,
// three chosen slots) stays in flight. A is then cut off for good, and C campaigns (B grants
// its pre-vote and promises; the promises stay in flight).
struct BehindCandidate {
  NodeId a = 0, b = 0, c = 0;
  Slot top = 0;        // A's commit index
  Slot cCommit = 0;    // C's, below top
  Ballot aBallot;
};

bool answerFrom(const Message& m, NodeId from, NodeId to) {
  return std::holds_alternative<CatchupReply>(m.payload) && m.from == from && m.to == to;
}

BehindCandidate behindCandidate(ScriptedNet& net) {
  BehindCandidate r;
  r.a = net.electAndSettle();
  REQUIRE(r.a != 0);
  r.aBallot = net.replica(r.a).ballot();
  const Slot first = net.replica(r.a).commitIndex() + 1;
  net.propose(r.a, "v1");
  const std::vector<NodeId> asked = net.askedOf(r.a, first);
  REQUIRE(asked.size() == 1);
  r.b = asked.front();
  r.c = 6 - r.a - r.b;
  const NodeId a = r.a, c = r.c;
  auto toC = [&](const Message& m) { return answerFrom(m, a, c); };
  net.settle(all, toC);  // the pushes to C are lost
  net.propose(r.a, "v2");
  net.settle(all, toC);
  net.propose(r.a, "v3");
  net.settle(all, toC);
  r.top = net.replica(r.a).commitIndex();
  REQUIRE(r.top == first + 2);
  r.cCommit = net.replica(r.c).commitIndex();
  REQUIRE(r.cCommit < r.top);
  // C hears the commit index and asks A; A's answer is held.
  net.runUntil({r.a, r.b, r.c}, [&](const Message& m) { return !toC(m); }, [&] { return net.inflight(toC) > 0; });
  REQUIRE(net.inflight(toC) == 1);
  // A is cut off (its held answer aside); C campaigns, B's promise (and C's own) wait.
  auto cutA = [&](const Message& m) { return (m.from == a || m.to == a) && !toC(m); };
  auto promiseToC = [&](const Message& m) { return std::holds_alternative<Promise>(m.payload) && m.to == c; };
  net.runUntil({r.c}, [&](const Message& m) { return !cutA(m) && !promiseToC(m) && !toC(m); },
               [&] { return net.replica(c).role() == Replica::Role::Candidate; }, cutA);
  REQUIRE(net.replica(r.c).role() == Replica::Role::Candidate);
  REQUIRE(net.replica(r.c).ballot() > r.aBallot);
  REQUIRE(net.replica(r.c).commitIndex() == r.cCommit);
  return r;
}

// Runs B and C (A cut off) until one leads, writes "x" there, and settles; returns the leader.
NodeId writeAfter(ScriptedNet& net, const BehindCandidate& r) {
  auto cutA = [&](const Message& m) { return m.from == r.a || m.to == r.a; };
  auto leader = [&]() -> NodeId {
    for (NodeId id : {r.b, r.c}) {
      if (net.replica(id).isLeader()) return id;
    }
    return 0;
  };
  net.runUntil({r.b, r.c}, [&](const Message& m) { return !cutA(m); }, [&] { return leader() != 0; }, cutA);
  const NodeId l = leader();
  REQUIRE(l != 0);
  net.propose(l, "x");
  net.runUntil({r.b, r.c}, [&](const Message& m) { return !cutA(m); },
               [&] { return net.replica(r.b).commitIndex() > r.top && net.replica(r.c).commitIndex() > r.top; }, cutA);
  return l;
}

}  // namespace

// The late answer reaches C while it is a candidate (of a higher ballot than the answer's): C
// takes none of its slots and stays a candidate; B's promise then makes it leader, its phase 1
// proposes B's votes again, and every slot is learned with the one value chosen. Passes.
TEST_CASE("review5: a candidate ignores a lower ballot's late catch-up answer and learns the slots from phase 1", "[thrifty][review5]") {
  ScriptedNet net(3);
  const BehindCandidate r = behindCandidate(net);
  net.settle([&](const Message& m) { return answerFrom(m, r.a, r.c); }, none);
  CHECK(net.replica(r.c).role() == Replica::Role::Candidate);
  CHECK(net.replica(r.c).commitIndex() == r.cCommit);  // not taken
  net.settle([&](const Message& m) { return m.from != r.a && m.to != r.a; }, [&](const Message& m) { return m.from == r.a || m.to == r.a; });
  CHECK(net.replica(r.c).isLeader());
  CHECK(net.replica(r.c).commitIndex() >= r.top);  // phase 1 chose B's votes again
  writeAfter(net, r);
  for (Slot s = r.top - 2; s <= r.top; ++s) CHECK(net.chosen().at(s) == std::vector<Value>{command("v" + std::to_string(s - r.top + 3))});
  CHECK(net.conflict() == 0);
}

// The same answer reaches C once it leads (the promises first): ignored, C leads on. Passes.
TEST_CASE("review5: a new leader ignores the late catch-up answer it asked for as a follower", "[thrifty][review5]") {
  ScriptedNet net(3);
  const BehindCandidate r = behindCandidate(net);
  auto cutA = [&](const Message& m) { return (m.from == r.a || m.to == r.a) && !answerFrom(m, r.a, r.c); };
  net.settle([&](const Message& m) { return !cutA(m) && !answerFrom(m, r.a, r.c); }, cutA);
  REQUIRE(net.replica(r.c).isLeader());
  const Ballot ballot = net.replica(r.c).ballot();
  net.settle([&](const Message& m) { return answerFrom(m, r.a, r.c); }, none);
  CHECK(net.replica(r.c).isLeader());
  CHECK(net.replica(r.c).ballot() == ballot);
  CHECK(writeAfter(net, r) == r.c);
  CHECK(net.conflict() == 0);
}

// C, a candidate, finishes installing a snapshot (up to A's commit index) that it asked for as a
// follower (NodeCore installs whatever stream it staged, whatever the role): it steps down (its
// prepareFrom_ is stale anyway), its commit index is the snapshot's, and B and C still elect a
// leader and commit a write. Passes.
TEST_CASE("review5: a candidate handed a snapshot past its commit index steps down and the cluster goes on", "[thrifty][review5]") {
  ScriptedNet net(3);
  const BehindCandidate r = behindCandidate(net);
  net.settle(none, [&](const Message& m) { return answerFrom(m, r.a, r.c); });  // lost
  Ready ready = net.replica(r.c).installSnapshot(r.top, net.now, r.b);
  CHECK(ready.committed.empty());
  CHECK(net.replica(r.c).role() == Replica::Role::Follower);
  CHECK(net.replica(r.c).commitIndex() == r.top);
  writeAfter(net, r);
  CHECK(net.conflict() == 0);
}

// An install at or below a leader's commit index (NodeCore would not even begin it, but its
// commit index may pass the snapshot's while it installs) leaves it leading. Passes.
TEST_CASE("review5: an install a leader's commit index covers leaves it leading", "[thrifty][review5]") {
  ScriptedNet net(3);
  const NodeId a = net.electAndSettle();
  REQUIRE(a != 0);
  for (int i = 0; i < 3; ++i) {
    net.propose(a, "v" + std::to_string(i));
    net.settle(all);
  }
  const Slot top = net.replica(a).commitIndex();
  REQUIRE(top >= 3);
  { Ready ready = net.replica(a).installSnapshot(top - 1, net.now, 0); }
  CHECK(net.replica(a).isLeader());
  { Ready ready = net.replica(a).installSnapshot(top, net.now, 0); }
  CHECK(net.replica(a).isLeader());
  net.propose(a, "after");
  net.settle(all);
  CHECK(net.replica(a).commitIndex() == top + 1);
  CHECK(net.conflict() == 0);
}

// ---- the paused leader of review4, through the snapshot door ------------------------------------
//
