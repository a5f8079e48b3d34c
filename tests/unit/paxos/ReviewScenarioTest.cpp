// Schedules found by the adversarial review of the node-safety work (issue 9), each replayed
// step by step against the real Replica.

#include <catch2/catch.hpp>

#include "tests/unit/paxos/ScriptedNet.h"

using namespace warden::tests::paxos;

namespace {

bool isPrepare(const Message& m) { return named(m, "Prepare"); }
Slot prepareFrom(const Message& m) { return std::get<Prepare>(m.payload).fromSlot; }

struct ReuseOutcome {
  bool reused = false;  // the rebuilt node campaigned again in the very ballot it had before the wipe
  Slot conflict = 0;    // a slot chosen with two values
};

// Three nodes: L leads, C and O follow. L pauses; C campaigns (O grants the pre-vote), and C's
// Prepares to L and O sit in link queues. C's disk is wiped before any of them arrive: nobody but
// C's lost self ever promised C's ballot. L resumes and C rebuilds against L, so C's rebuilt
// promise is L's ballot, below its old one: when L pauses again C campaigns in its old ballot a
// second time. The old Prepares then arrive and their promises count for the new candidacy.
ReuseOutcome wipedCandidateReusesItsBallot() {
  constexpr NodeId L = 1;
  ScriptedNet net(3);
  net.now += 2'000'000;
  auto all = [](const Message&) { return true; };
  net.runUntil({L}, all, [&] { return net.replica(L).isLeader(); });
  REQUIRE(net.replica(L).isLeader());
  const Ballot leaderBallot = net.replica(L).ballot();
  net.propose(L, "a");
  net.runUntil({1, 2, 3}, all, [&] {
    return net.replica(1).commitIndex() >= 1 && net.replica(2).commitIndex() >= 1 && net.replica(3).commitIndex() >= 1;
  });
  REQUIRE(net.replica(2).commitIndex() >= 1);

  // L sends one more round of heartbeats, then pauses: that round stays in the link queues.
  net.now += 60'000;
  net.tick(L);
  auto touchesL = [&](const Message& m) { return m.from == L || m.to == L; };
  // C is whichever follower campaigns first; its Prepares to the others are held.
  auto heldPrepare = [&](const Message& m) { return isPrepare(m) && m.from != m.to; };
  net.runUntil({2, 3}, [&](const Message& m) { return !touchesL(m) && !heldPrepare(m); },
               [&] { return net.replica(2).role() == Replica::Role::Candidate || net.replica(3).role() == Replica::Role::Candidate; });
  const NodeId C = net.replica(2).role() == Replica::Role::Candidate ? 2 : 3;
  const NodeId O = C == 2 ? 3 : 2;
  REQUIRE(net.replica(C).role() == Replica::Role::Candidate);
  const Ballot oldBallot = net.replica(C).ballot();
  const Slot oldFrom = net.replica(C).commitIndex() + 1;
  REQUIRE(oldBallot > leaderBallot);
  REQUIRE(net.replica(O).promised() == leaderBallot);  // O never saw C's Prepare

  net.wipe(C);
  auto oldPrepare = [&](const Message& m) { return m.from == C && isPrepare(m) && prepareFrom(m) == oldFrom; };
  // L resumes: its queued heartbeats reach O first, so it still hears a majority.
  net.settle([&](const Message& m) { return !oldPrepare(m); });
  net.runUntil({1, 2, 3}, [&](const Message& m) { return !oldPrepare(m); },
               [&] { return !net.replica(C).isLearner(); });
  REQUIRE(!net.replica(C).isLearner());
  REQUIRE(net.replica(L).isLeader());
  REQUIRE(net.replica(L).ballot() == leaderBallot);
  net.propose(L, "v");
  const Slot vSlot = net.replica(L).commitIndex() + 1;
  net.runUntil({1, 2, 3}, [&](const Message& m) { return !oldPrepare(m); },
               [&] { return net.replica(L).commitIndex() >= vSlot && net.replica(O).commitIndex() >= vSlot; });
  REQUIRE(net.replica(O).commitIndex() >= vSlot);

  // L pauses again (one more round queued); only C's timer runs now.
  net.now += 60'000;
  net.tick(L);
  net.runUntil({C}, [&](const Message& m) { return !touchesL(m) && !oldPrepare(m) && !(isPrepare(m) && m.from != m.to); },
               [&] { return net.replica(C).role() == Replica::Role::Candidate; });
  REQUIRE(net.replica(C).role() == Replica::Role::Candidate);
  ReuseOutcome out;
  out.reused = net.replica(C).ballot() == oldBallot;

  // The old Prepares arrive first, then everything; C leads and writes w; L is back too.
  net.settle([&](const Message& m) { return oldPrepare(m); });
  net.runUntil({C, O}, [&](const Message& m) { return !touchesL(m); },
               [&] { return net.replica(C).isLeader() || net.replica(O).isLeader(); });
  const NodeId next = net.replica(C).isLeader() ? C : O;
  REQUIRE(net.replica(next).isLeader());
  net.propose(next, "w");
  net.runUntil({1, 2, 3}, all, [&] { return net.replica(next).commitIndex() >= vSlot + 1; });
  out.conflict = net.conflict();
  return out;
}

}  // namespace

TEST_CASE("a wiped candidate that campaigns again in its forgotten ballot chooses no slot twice", "[review]") {
  const ReuseOutcome outcome = wipedCandidateReusesItsBallot();
  // The schedule reaches a reuse of C's old ballot (it never reached phase 2, so that is harmless:
  // every promise for it is one a member gave, and a member that had promised it would have told
  // the rebuild). If a change stops the reuse, this stays a plain rebuild regression.
  INFO("ballot reused: " << (outcome.reused ? "yes" : "no"));
  CHECK(outcome.conflict == 0);
}

namespace {

struct OverChosenOutcome {
  bool acknowledged = false;  // node 2 answered the second value's Accept with a yes
  Slot conflict = 0;          // a slot chosen with two values
};

// Issue 9 ("also found"): an acceptor acknowledged an Accept for a slot it knew chosen with
// another value. Paxos never proposes one, so only a defective leader can: here one that skips
// phase 1 (the skipPhase1 switch, on every node). Three nodes: 1 leads and chooses "a" at slot 1
// with 2; node 3 never hears of it. Node 1 pauses; 3 is elected without a phase 1, so it knows
// nothing of slot 1 and proposes "b" there. Node 2 knows slot 1 chosen with "a": its answer
// decides whether "b" is chosen too.
OverChosenOutcome acceptForAChosenSlot(ReplicaConfig::Bugs bugs) {
  bugs.skipPhase1 = true;
  ScriptedNet net(3, bugs);
  net.now += 2'000'000;
  auto to3 = [](const Message& m) { return m.to == 3 && m.from != 3; };
  auto from3 = [](const Message& m) { return m.from == 3 && m.to != 3; };
  auto notTouching3 = [&](const Message& m) { return !to3(m) && !from3(m); };
  net.runUntil({1}, notTouching3, [&] { return net.replica(1).isLeader(); }, [&](const Message& m) { return to3(m) || from3(m); });
  REQUIRE(net.replica(1).isLeader());
  net.propose(1, "a");
  net.runUntil({1}, notTouching3, [&] { return net.replica(2).commitIndex() >= 1; }, [&](const Message& m) { return to3(m) || from3(m); });
  REQUIRE(net.replica(2).commitIndex() >= 1);
  REQUIRE(net.replica(3).commitIndex() == 0);

  // Node 1 pauses (what it sends is lost). Only node 3's timer runs; catch-up, which would teach
  // it slot 1, is lost too.
  auto lost = [](const Message& m) {
    return ((m.from == 1 || m.to == 1) && m.from != m.to) || named(m, "CatchupRequest") || named(m, "CatchupReply");
  };
  net.runUntil({3}, [](const Message&) { return true; }, [&] { return net.replica(3).isLeader(); }, lost);
  REQUIRE(net.replica(3).isLeader());
  REQUIRE(net.replica(3).commitIndex() == 0);

  // Node 3 proposes "b"; with no phase 1 it lands in slot 1.
  OverChosenOutcome out;
  net.propose(3, "b");
  net.settle([](const Message&) { return true; }, [&](const Message& m) {
    if (named(m, "Accepted") && m.from == 2 && m.to == 3 && std::get<Accepted>(m.payload).slot == 1 &&
        std::get<Accepted>(m.payload).ok) {
      out.acknowledged = true;
    }
    return lost(m);
  });
  out.conflict = net.conflict();
  return out;
}

}  // namespace

TEST_CASE("an acceptor refuses an Accept for a slot it knows chosen with another value", "[review]") {
  const OverChosenOutcome outcome = acceptForAChosenSlot({});
  CHECK_FALSE(outcome.acknowledged);
  CHECK(outcome.conflict == 0);
}

TEST_CASE("an acceptor that acknowledges an Accept over a chosen slot lets a faulty leader choose it twice", "[review]") {
  ReplicaConfig::Bugs bugs;
  bugs.acceptOverChosen = true;
  const OverChosenOutcome outcome = acceptForAChosenSlot(bugs);
  CHECK(outcome.acknowledged);
  CHECK(outcome.conflict == 1);
}
