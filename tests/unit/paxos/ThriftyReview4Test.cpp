// Fourth review of thrifty phase 2 (93de8a1: each slot in flight resent a heartbeat after it was
// last sent, voters that left it unanswered passed over; d511895: a refactor). Adversarial
// schedules: crashes, restarts, pauses, partitions, lost and late messages, a learner, clocks from
// 0. The tests that fail on 93de8a1/d511895 say so in their comment (each also runs with its bug
// planted back, and fails the same way); the others are regression tests for schedules found
// handled.
//
// Found:
// 1. Two values chosen for one slot (PAXOS.md 1-4), five members or more: a leader (or a
//    candidate) of ballot b takes, from a push of a leader of a higher ballot, a slot chosen there
//    with another value than its own proposal; its commit index, sent in ballot b, then makes an
//    acceptor that voted for the proposal in b take that vote as chosen (learnCommit). The
//    "paused leader" and "candidate" cases below. Fixed: a candidate or leader never takes
//    chosen slots from a CatchupReply (it steps down first when the reply shows a higher ballot,
//    in promised or leaderBallot, and ignores the entries otherwise), nor installs a snapshot
//    past its commit index without stepping down.
// 2. Latency (liveness): tick marks slow every *current* voter without a vote on a slot resent,
//    also one never asked that slot; with a gray follower and a steady stream of writes the
//    healthy follower is marked again and again and the gray one keeps being picked: a third to
//    half of the writes wait for a resend, for good. Fixed: each slot remembers whom it was
//    asked of (proposeSlot) and only those are marked.
//
// This file: finding 1 and the schedules on the hand-cranked network (ScriptedNet); finding 2
// and the schedules with latencies and a stream of writes are in ThriftyReview4TimedTest.cpp.

#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "tests/unit/paxos/ScriptedNet.h"

using namespace warden::coordinator::paxos;
using warden::tests::paxos::ScriptedNet;
using warden::tests::paxos::all;
using warden::tests::paxos::command;
using warden::tests::paxos::idsOf;
using warden::tests::paxos::isAccept;
using warden::tests::paxos::none;

namespace {

std::string describe(const std::vector<Value>& values) {
  std::string out;
  for (const auto& v : values) {
    out += v.noop ? std::string("<noop>") : (v.commands.empty() ? std::string("<empty>") : v.commands[0]);
    out += " ";
  }
  return out;
}

}  // namespace

// ---- 1. A leader of an old ballot takes a push from its successor ------------------------------
//
// Five members. Leader A (ballot b) proposes v for slot s; thrifty, it asks A, B and C. A and B
// vote; the Accept to C is lost, so v has 2 votes of 5 and is not chosen. A pauses (GC, SIGSTOP:
// PAXOS.md "a long pause of the leader"); B is cut off from C, D and E. C, D and E elect one of
// them (ballot b2 > b), whose phase 1 finds nothing in s, and choose the client's write w there.
// Thrifty, the new leader pushes slot s = w to the followers it did not ask: A and B. The push to
// B is late; the one to A arrives as A wakes, before anything of ballot b2 (the Prepare to A was
// lost). A is still Leader of b (it has not ticked since its pause; onCatchupReply ignores the
// push's leaderBallot and promised), marks s chosen with w and moves its commit index over s.
// Then A answers a queued read: its read-index round sends Heartbeat{b, commitIndex >= s} to
// every member. B has v accepted in ballot b, so learnCommit ("a slot accepted here in the
// leader's own ballot holds the one value that ballot proposed") takes s as chosen with v.
// B applies v at s, everyone else w.
namespace {

struct PushedLeader {
  NodeId a = 0, b = 0, newLeader = 0;
  Slot s = 0;
  bool aLearnedS = false;
  bool aStillLeads = false;  // after the push
};

// `install`: the pushes to A are lost too, and A's node installs instead a snapshot of the new
// leader's state up to s, one it asked for as a follower before it led (NodeCore installs a staged
// stream whatever the role; the replica is not ticked meanwhile).
PushedLeader pushToAPausedLeader(ScriptedNet& net, bool thrifty, bool install = false) {
  PushedLeader r;
  r.a = net.electAndSettle();
  REQUIRE(r.a != 0);
  r.s = net.replica(r.a).commitIndex() + 1;
  net.propose(r.a, "v");
  const std::vector<NodeId> asked = net.askedOf(r.a, r.s);
  REQUIRE(asked.size() == (thrifty ? 2u : 4u));
  r.b = asked.front();
  // Only A and B vote for v.
  const NodeId a = r.a, b = r.b;
  const Slot s = r.s;
  net.settle(all, [&](const Message& m) { return isAccept(m, s) && m.to != a && m.to != b; });
  REQUIRE(net.replica(a).commitIndex() == s - 1);
  REQUIRE(net.durable(b).accepted.count(s) == 1);

  // A pauses; {A, B} | {the other three}. Messages to A are lost while it is paused, and so is
  // whatever crosses the cut, except the new leader's pushes, which are late.
  std::vector<NodeId> majority;
  for (NodeId id = 1; id <= 5; ++id) {
    if (id != a && id != b) majority.push_back(id);
  }
  auto inMajority = [&](NodeId id) { return std::find(majority.begin(), majority.end(), id) != majority.end(); };
  auto cross = [&](const Message& m) { return inMajority(m.from) != inMajority(m.to); };
  auto push = [&](const Message& m) {
    const auto* r = std::get_if<CatchupReply>(&m.payload);
    return r && r->nonce == 0 && inMajority(m.from) && !inMajority(m.to) && !(install && m.to == a);
  };
  auto deliver = [&](const Message& m) { return !cross(m) && m.to != a; };
  auto drop = [&](const Message& m) { return (cross(m) || m.to == a) && !push(m); };
  std::vector<NodeId> ticking = majority;
  ticking.push_back(b);  // B runs on; A does not tick
  net.runUntil(ticking, deliver,
               [&] { return std::any_of(majority.begin(), majority.end(), [&](NodeId id) { return net.replica(id).isLeader(); }); },
               drop);
  for (NodeId id : majority) {
    if (net.replica(id).isLeader()) r.newLeader = id;
  }
  REQUIRE(r.newLeader != 0);
  REQUIRE(net.replica(r.newLeader).ballot() > net.replica(a).ballot());
  REQUIRE(net.replica(r.newLeader).commitIndex() == s - 1);
  net.propose(r.newLeader, "w");
  net.settle(deliver, drop);
  REQUIRE(net.replica(r.newLeader).commitIndex() >= s);
  REQUIRE(net.chosen().at(s) == std::vector<Value>{command("w")});

  // A wakes; the push to it arrives first (or the snapshot is installed). (On 93de8a1 A is still
  // Leader of b after it.)
  REQUIRE(net.replica(a).isLeader());
  if (install) {
    REQUIRE(net.replica(a).commitIndex() == s - 1);
    REQUIRE_FALSE(net.replica(a).installSnapshot(s, net.now, r.newLeader).hasMessages());
  } else {
    net.settle([&](const Message& m) { return push(m) && m.to == a; }, none);
  }
  r.aStillLeads = net.replica(a).isLeader();
  r.aLearnedS = net.replica(a).commitIndex() >= s;
  return r;
}

}  // namespace

// Fails on 93de8a1/d511895: slot s is chosen with w (the three others, and A from the push) and
// with v (B, from the old leader's read-index heartbeat).
TEST_CASE("review4: a paused leader that takes its successor's push makes a follower learn its own unchosen value (read index)", "[thrifty][review4]") {
  ScriptedNet net(5);
  const PushedLeader r = pushToAPausedLeader(net, true);
  INFO("after the push the old leader leads: " << r.aStillLeads << ", knows s: " << r.aLearnedS);
  net.requestRead(r.a, 1);
  // Everything is delivered now, save the late push to B.
  net.settle([&](const Message& m) { return !(m.to == r.b && std::holds_alternative<CatchupReply>(m.payload) && m.from != r.a); });
  INFO("old leader " << r.a << ", its voter " << r.b << ", new leader " << r.newLeader << ", slot " << r.s
                     << ": chosen as " << describe(net.chosen().at(r.s)));
  CHECK(net.conflict() == 0);
  CHECK_FALSE(net.replica(r.a).isLeader());  // deposed by the refusals of the read's round
}

// The same with a client write queued at the old leader instead of a read: the Accept of the next
// slot carries the commit index. Fails on 93de8a1/d511895 like the read.
TEST_CASE("review4: a paused leader that takes its successor's push makes a follower learn its own unchosen value (write)", "[thrifty][review4]") {
  ScriptedNet net(5);
  const PushedLeader r = pushToAPausedLeader(net, true);
  INFO("after the push the old leader leads: " << r.aStillLeads << ", knows s: " << r.aLearnedS);
  net.propose(r.a, "x");
  net.settle([&](const Message& m) { return !(m.to == r.b && std::holds_alternative<CatchupReply>(m.payload) && m.from != r.a); });
  INFO("old leader " << r.a << ", its voter " << r.b << ", new leader " << r.newLeader << ", slot " << r.s
                     << ": chosen as " << describe(net.chosen().at(r.s)));
  CHECK(net.conflict() == 0);
}

// The agreement check above catches the old rule planted back (leaderTakesPushes): the old
// leader takes the push, its read round carries the commit index past s, and B takes v as chosen.
TEST_CASE("review4: planted, a leader that takes its successor's push makes two values chosen", "[thrifty][review4][planted]") {
  ReplicaConfig::Bugs bugs;
  bugs.leaderTakesPushes = true;
  ScriptedNet net(5, bugs);
  const PushedLeader r = pushToAPausedLeader(net, true);
  CHECK(r.aStillLeads);
  CHECK(r.aLearnedS);
  net.requestRead(r.a, 1);
  net.settle([&](const Message& m) { return !(m.to == r.b && std::holds_alternative<CatchupReply>(m.payload) && m.from != r.a); });
  CHECK(net.conflict() > 0);
}

// Review 5: the same schedule, A's node installing the successor's snapshot up to s instead of
// taking its push. If A kept leading with its commit index at s, its read-index round would make
// B take its own vote v as chosen; installSnapshot steps it down first. Passes on 98463ec.
TEST_CASE("review5: a paused leader that installs its successor's snapshot steps down before its read round", "[thrifty][review5]") {
  ScriptedNet net(5);
  const PushedLeader r = pushToAPausedLeader(net, true, true);
  CHECK_FALSE(r.aStillLeads);
  CHECK(net.replica(r.a).commitIndex() == r.s);
  net.requestRead(r.a, 1);
  net.settle([&](const Message& m) { return !(m.to == r.b && std::holds_alternative<CatchupReply>(m.payload) && m.from != r.a); });
  CHECK(net.conflict() == 0);
}

// The check above catches the old rule planted back (leaderTakesPushes also lets a leader install
// without stepping down): A leads on with its commit index at s, and B takes v as chosen.
TEST_CASE("review5: planted, a leader that installs its successor's snapshot makes two values chosen", "[thrifty][review5][planted]") {
  ReplicaConfig::Bugs bugs;
  bugs.leaderTakesPushes = true;
  ScriptedNet net(5, bugs);
  const PushedLeader r = pushToAPausedLeader(net, true, true);
  CHECK(r.aStillLeads);
  net.requestRead(r.a, 1);
  net.settle([&](const Message& m) { return !(m.to == r.b && std::holds_alternative<CatchupReply>(m.payload) && m.from != r.a); });
  CHECK(net.conflict() == r.s);
}

// Every member asked (thrifty off): nobody pushes, the old leader never learns s from the new
// one, and its read-index round carries a commit index below s. Passes: the pushes are what
// carry a higher ballot's chosen value into a leader of a lower one.
TEST_CASE("review4: the paused-leader schedule without pushes (thrifty off) keeps one value per slot", "[thrifty][review4]") {
  ScriptedNet net(5, {}, false);
  const PushedLeader r = pushToAPausedLeader(net, false);
  CHECK_FALSE(r.aLearnedS);
  net.requestRead(r.a, 1);
  net.settle(all);
  CHECK(net.conflict() == 0);
}

// The same flaw through a candidate: a candidate of ballot bK takes the push of a leader of a
// higher ballot, then completes its phase 1 with promises sent before that leader's Prepare, and
// proposes the value phase 1 found with its commit index already past the slot. Seven members:
// L0 (ballot b0) has v accepted by itself and B only. L0 is cut off. K campaigns (ballot bK);
// B, Q, S promise, but their promises are slow. H campaigns with bH > bK; Q, S, T promise it
// (K and B do not hear of it), and H chooses w for s with Q, S, T, then pushes s = w to L0, B
// and K. K takes the push (commit index over s), then the slow promises arrive: K leads, phase
// 1 gives v for s (B's vote in b0), and K's Accept{bK, s, v, commitIndex >= s} makes B accept v
// in bK and take it as chosen at once (learnCommit).
// Fails on 93de8a1/d511895: slot s is chosen with w and with v.
TEST_CASE("review4: a candidate that takes a higher ballot's push makes a follower learn a value phase 1 found (seven members)", "[thrifty][review4]") {
  ScriptedNet net(7);
  const NodeId l0 = net.electAndSettle();
  REQUIRE(l0 != 0);
  const Slot s = net.replica(l0).commitIndex() + 1;
  net.propose(l0, "v");
  const std::vector<NodeId> asked = net.askedOf(l0, s);
  REQUIRE(asked.size() == 3);
  const NodeId b = asked.front();
  net.settle(all, [&](const Message& m) { return isAccept(m, s) && m.to != l0 && m.to != b; });
  REQUIRE(net.replica(l0).commitIndex() == s - 1);
  std::vector<NodeId> rest;
  for (NodeId id = 1; id <= 7; ++id) {
    if (id != l0 && id != b) rest.push_back(id);
  }
  const NodeId k = rest.front(), h = rest.back();
  const NodeId q = rest[1], sNode = rest[2], t = rest[3];
  auto in = [](NodeId id, std::initializer_list<NodeId> group) {
    return std::find(group.begin(), group.end(), id) != group.end();
  };
  // L0 is cut off for good; a second and a half passes.
  net.now += 1'500'000;
  // K campaigns: its pre-vote and Prepare reach B, Q, S; their promises wait in flight.
  auto kPhase = [&](const Message& m) {
    if (m.from == l0 || m.to == l0) return false;
    if (std::holds_alternative<PreVote>(m.payload) || std::holds_alternative<PreVoteReply>(m.payload)) {
      return m.from == k || m.to == k;
    }
    if (std::holds_alternative<Prepare>(m.payload)) return m.from == k && in(m.to, {k, b, q, sNode});
    if (std::holds_alternative<Promise>(m.payload)) return m.to == k && m.from == k;
    return false;
  };
  net.runUntil({k}, kPhase, [&] { return net.replica(k).role() == Replica::Role::Candidate; },
               [&](const Message& m) { return m.from == l0 || m.to == l0; });
  REQUIRE(net.replica(k).role() == Replica::Role::Candidate);
  const Ballot bK = net.replica(k).ballot();
  // H campaigns among H, Q, S, T (until its ballot is above what Q and S promised) and chooses w.
  auto hGroup = [&](const Message& m) { return in(m.from, {h, q, sNode, t}) && in(m.to, {h, q, sNode, t}); };
  auto hDrop = [&](const Message& m) {
    if (m.from == l0 || m.to == l0) return true;
    if (m.from == k && !std::holds_alternative<Promise>(m.payload)) return false;  // K's frames: leave them
    return (in(m.from, {h, q, sNode, t}) && in(m.to, {k, b})) && !std::holds_alternative<CatchupReply>(m.payload) &&
           !std::holds_alternative<Promise>(m.payload);
  };
  net.runUntil({h}, hGroup, [&] { return net.replica(h).isLeader(); }, hDrop);
  REQUIRE(net.replica(h).isLeader());
  REQUIRE(net.replica(h).ballot() > bK);
  REQUIRE(net.replica(h).commitIndex() == s - 1);
  net.propose(h, "w");
  net.settle(hGroup, hDrop);
  REQUIRE(net.replica(h).commitIndex() >= s);
  // The push reaches K, still a candidate; then the promises of B, Q and S.
  auto pushToK = [&](const Message& m) {
    const auto* r = std::get_if<CatchupReply>(&m.payload);
    return r && m.from == h && m.to == k;
  };
  REQUIRE(net.inflight(pushToK) >= 1);
  net.settle(pushToK, none);
  // On 93de8a1 K is still a candidate, its commit index past s; then it leads in bK.
  const bool kCandidate = net.replica(k).role() == Replica::Role::Candidate;
  const bool kKnowsS = net.replica(k).commitIndex() >= s;
  net.settle([&](const Message& m) { return std::holds_alternative<Promise>(m.payload) && m.to == k; }, none);
  INFO("after the push K is a candidate: " << kCandidate << ", knows s: " << kKnowsS << "; then leads in bK: "
                                           << (net.replica(k).isLeader() && net.replica(k).ballot() == bK));
  // K's frames to B (its Accept of slot s among them).
  net.settle([&](const Message& m) { return (m.from == k && m.to == b) || (m.from == k && m.to == k); }, none);
  INFO("L0 " << l0 << " B " << b << " K " << k << " H " << h << ", slot " << s << ": chosen as " << describe(net.chosen().at(s)));
  CHECK(net.conflict() == 0);
}

// Slot s is asked of B at t+40 ms (B was heard from at the heartbeat at t; C also answered a
// read's heartbeat at t+30 ms, whose answer from B was lost); B's vote is slow. At t+52 ms the
// next write finds B quiet for more than a heartbeat and is asked of C instead. B's vote for s
// then arrives: s and s+1 are chosen, and pushed to the follower not asked now (B), so C was
// neither asked s nor pushed it. C learns it from the leader's next commit index (a catch-up) at
// the next heartbeat. Passes.
TEST_CASE("review4: a follower that became the voter after a slot was asked of another learns that slot", "[thrifty][review4]") {
  ScriptedNet net(3);
  const NodeId leader = net.electAndSettle();
  REQUIRE(leader != 0);
  // One heartbeat round at t (the leader's own).
  net.runUntil({1, 2, 3}, all, [&] { return net.inflight(all) == 0 && net.now % 50'000 == 0; });
  net.now += 10'000;
  for (NodeId id = 1; id <= 3; ++id) net.tick(id);
  net.settle(all);
  const Time t = net.now;
  const Slot s = net.replica(leader).commitIndex() + 1;
  net.propose(leader, "probe-voter");
  const NodeId b = net.askedOf(leader, s).front();
  const NodeId c = 6 - leader - b;
  net.settle(all);
  const Slot s1 = s + 1;
  // t+30: a read's heartbeat round; B's answer is lost.
  net.now = t + 30'000;
  net.requestRead(leader, 1);
  net.settle(all, [&](const Message& m) { return m.from == b && std::holds_alternative<HeartbeatReply>(m.payload); });
  // t+40: s1 asked of B; its vote is held.
  net.now = t + 40'000;
  net.propose(leader, "asked of B");
  REQUIRE(net.askedOf(leader, s1) == std::vector<NodeId>{b});
  auto bVote = [&](const Message& m) { return m.from == b && std::holds_alternative<Accepted>(m.payload); };
  net.settle([&](const Message& m) { return !bVote(m); });
  // t+52: the next write goes to C.
  net.now = t + 52'000;
  net.propose(leader, "asked of C");
  REQUIRE(net.askedOf(leader, s1 + 1) == std::vector<NodeId>{c});
  net.settle([&](const Message& m) { return !bVote(m); });
  CHECK(net.replica(leader).commitIndex() == s);
  // t+53: B's vote arrives.
  net.now = t + 53'000;
  net.settle(all);
  REQUIRE(net.replica(leader).commitIndex() == s1 + 1);
  CHECK(net.replica(b).commitIndex() == s1 + 1);  // pushed
  CHECK(net.replica(c).commitIndex() < s1);       // neither asked s1 nor pushed it
  net.runUntil({1, 2, 3}, all, [&] { return net.replica(c).commitIndex() >= s1 + 1; });
  CHECK(net.replica(c).commitIndex() == s1 + 1);
  CHECK(net.now - t <= 120'000);
  CHECK(net.conflict() == 0);
}

// Three members. Leader A (ballot b) has s = v chosen with B's vote; its push to C is late. A is
// cut off; C and B elect C (ballot b2), whose phase 1 finds v in B's vote and proposes it again.
// C's Accept of s to B is lost, and A's late push of s = v reaches C: on 93de8a1 C takes s as
// chosen from the push (and no longer resends it; its proposal stays in proposed_ for as long as
// it leads). Every member still learns s, writes go on, one value per slot. Passes.
TEST_CASE("review4: a new leader pushed the slot it proposes again by its deposed predecessor", "[thrifty][review4]") {
  ScriptedNet net(3);
  const NodeId a = net.electAndSettle();
  REQUIRE(a != 0);
  const Slot s = net.replica(a).commitIndex() + 1;
  net.propose(a, "v");
  const NodeId b = net.askedOf(a, s).front();
  const NodeId c = 6 - a - b;
  auto pushToC = [&](const Message& m) { return m.from == a && m.to == c && std::holds_alternative<CatchupReply>(m.payload); };
  net.settle([&](const Message& m) { return !pushToC(m); });
  REQUIRE(net.replica(a).commitIndex() == s);
  REQUIRE(net.replica(c).commitIndex() < s);
  // A is cut off (its late push excepted); C and B elect C, not knowing s chosen.
  auto cutA = [&](const Message& m) { return (m.from == a || m.to == a) && !pushToC(m); };
  auto lostAcceptToB = [&](const Message& m) { return m.to == b && isAccept(m, s) && m.from == c; };
  net.runUntil({b, c}, [&](const Message& m) { return !pushToC(m); }, [&] { return net.replica(c).isLeader() || net.replica(b).isLeader(); },
               [&](const Message& m) { return cutA(m) || lostAcceptToB(m); });
  if (!net.replica(c).isLeader()) {
    SUCCEED("B was elected: the schedule needs C to lead");  // not with this seed
    return;
  }
  REQUIRE(net.replica(c).ballot() > net.replica(a).ballot());
  net.settle(pushToC, none);  // the late push
  const bool takenFromPush = net.replica(c).commitIndex() >= s;  // 93de8a1: yes
  INFO("the new leader took s from the push: " << takenFromPush);
  CHECK(net.replica(c).isLeader());
  // Writes go on; A comes back.
  for (int i = 0; i < 3; ++i) {
    const Slot want = net.replica(c).commitIndex() + 1;
    net.propose(c, "w" + std::to_string(i));
    net.runUntil({a, b, c}, all, [&] { return net.replica(c).commitIndex() >= want; }, lostAcceptToB);
  }
  net.runUntil({a, b, c}, all, [&] {
    return net.replica(a).commitIndex() == net.replica(c).commitIndex() && net.replica(b).commitIndex() == net.replica(c).commitIndex();
  });
  for (NodeId id : {a, b, c}) CHECK(net.replica(id).commitIndex() >= s + 3);
  CHECK(net.chosen().at(s) == std::vector<Value>{command("v")});
  CHECK(net.conflict() == 0);
}

// Five members. Leader A proposes v for s, asked of B and C; only B votes. A is cut off but
// keeps ticking: its resends of s (a heartbeat apart, to every member without a vote) are held
// in the links. The others elect a new leader, which chooses s (v, if B promised to it, else its
// own write). The held resends then arrive: refused (a higher promise), they depose A; one value
// per slot. Passes.
TEST_CASE("review4: a deposed leader's late resends of a slot its successor decided", "[thrifty][review4]") {
  ScriptedNet net(5);
  const NodeId a = net.electAndSettle();
  REQUIRE(a != 0);
  const Slot s = net.replica(a).commitIndex() + 1;
  net.propose(a, "v");
  const std::vector<NodeId> asked = net.askedOf(a, s);
  REQUIRE(asked.size() == 2);
  net.settle(all, [&](const Message& m) { return isAccept(m, s) && m.to == asked[1]; });
  std::vector<NodeId> others;
  for (NodeId id = 1; id <= 5; ++id) {
    if (id != a) others.push_back(id);
  }
  // A's frames are held (late), frames to A lost, for 1.5 s; A ticks on.
  auto fromA = [&](const Message& m) { return m.from == a && m.to != a; };
  net.runUntil(idsOf(5), [&](const Message& m) { return !fromA(m) && m.to != a; }, [&] { return net.now > 10'000'000; },
               [&](const Message& m) { return m.to == a && m.from != a; });
  NodeId newLeader = 0;
  for (NodeId id : others) {
    if (net.replica(id).isLeader()) newLeader = id;
  }
  REQUIRE(newLeader != 0);
  CHECK_FALSE(net.replica(a).isLeader());  // stepped down: no majority heard for an election timeout
  net.propose(newLeader, "w");
  net.runUntil(others, [&](const Message& m) { return !fromA(m) && m.to != a; }, [&] { return net.replica(newLeader).commitIndex() >= s + 1; },
               [&](const Message& m) { return m.to == a && m.from != a; });
  REQUIRE(net.replica(newLeader).commitIndex() >= s + 1);
  const std::size_t late = net.inflight([&](const Message& m) { return fromA(m) && isAccept(m, s); });
  CHECK(late >= 2);
  net.settle(all);  // the late resends, then everything
  net.runUntil(idsOf(5), all, [&] { return net.replica(a).commitIndex() >= s + 1; });
  CHECK(net.replica(a).commitIndex() >= s + 1);
  CHECK(net.conflict() == 0);
}
