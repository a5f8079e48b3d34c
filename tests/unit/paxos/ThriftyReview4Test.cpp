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

#include <catch2/catch.hpp>

#include <algorithm>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "tests/SplitMixRandom.h"
#include "tests/sim/MemoryLogStore.h"
#include "tests/unit/paxos/ScriptedNet.h"

using namespace warden::coordinator::paxos;
using warden::tests::paxos::ScriptedNet;

namespace {

bool all(const Message&) { return true; }
bool none(const Message&) { return false; }

std::vector<NodeId> idsOf(std::size_t n) {
  std::vector<NodeId> ids;
  for (NodeId id = 1; id <= n; ++id) ids.push_back(id);
  return ids;
}


bool isAccept(const Message& m, Slot slot) {
  const auto* a = std::get_if<Accept>(&m.payload);
  return a && a->slot == slot;
}

std::string describe(const std::vector<Value>& values) {
  std::string out;
  for (const auto& v : values) {
    out += v.noop ? std::string("<noop>") : (v.commands.empty() ? std::string("<empty>") : v.commands[0]);
    out += " ";
  }
  return out;
}

Value command(const std::string& c) {
  Value v;
  v.commands.push_back(c);
  return v;
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

// ---- a network with time: latencies, jitter, ticks every 10 ms, writes at any instant ---------
namespace {

using warden::tests::MemoryLogStore;
using warden::tests::SplitMixRandom;

// Replicas on links with a latency each (FIFO per link, as TCP), every replica ticking every
// 10 ms (on the same grid), writes proposed whenever the test says. It records when each command
// was first known chosen (by any replica), how many Accepts each member was sent, and how many
// times each member made a vote durable.
class TimedNet {
 public:
  // When `m`, sent now, arrives (after how long); nullopt: lost.
  using Latency = std::function<std::optional<Time>(const Message&)>;

  TimedNet(std::size_t n, bool thrifty, Time start = 1'000'000, std::uint64_t seed = 7, ReplicaConfig::Bugs bugs = {})
      : now(start), n_(n), thrifty_(thrifty), bugs_(bugs), random_(seed), jitter_(seed * 31 + 1) {
    nextTick_ = (start / kTick + 1) * kTick;
    for (NodeId id = 1; id <= n; ++id) {
      stores_[id] = std::make_unique<MemoryLogStore>();
      replicas_[id] = std::make_unique<Replica>(config(id), DurableState{}, 0, false, random_, now);
    }
  }

  ReplicaConfig config(NodeId id) const {
    ReplicaConfig c;
    c.id = id;
    c.thrifty = thrifty_;
    c.bugs = bugs_;
    for (NodeId m = 1; m <= n_; ++m) c.members.push_back(m);
    return c;
  }

  Replica& replica(NodeId id) { return *replicas_.at(id); }
  const DurableState& durable(NodeId id) const { return stores_.at(id)->state; }

  // The process of `id` restarts: from its disk, or (wipe) from an empty one. Messages in
  // flight to it are lost; applied state is not kept (as after a power loss).
  void restart(NodeId id, bool wipe) {
    if (wipe) stores_[id] = std::make_unique<MemoryLogStore>();
    replicas_[id] = std::make_unique<Replica>(config(id), wipe ? DurableState{} : stores_[id]->load(), 0, wipe, random_, now);
    std::erase_if(queue_, [id](const auto& e) { return e.second.to == id; });
  }

  NodeId leader() {
    NodeId l = 0;
    for (NodeId id = 1; id <= n_; ++id) {
      if (replica(id).isLeader() && (l == 0 || replica(id).ballot() > replica(l).ballot())) l = id;
    }
    return l;
  }

  void propose(NodeId id, const std::string& c) {
    proposedAt.emplace(c, now);
    handle(id, replica(id).propose({c}, now));
  }
  void requestRead(NodeId id, std::uint64_t readId) { handle(id, replica(id).requestRead(readId, now)); }

  // Runs until `until`: deliveries in time order, every replica not in `paused` ticking at each
  // multiple of 10 ms. A paused replica receives nothing: its messages wait until it runs again.
  void runTo(Time until) {
    while (true) {
      auto next = std::find_if(queue_.begin(), queue_.end(), [&](const auto& e) { return !paused.count(e.second.to); });
      const Time msgAt = next == queue_.end() ? UINT64_MAX : next->first.first;
      if (std::min(msgAt, nextTick_) > until) break;
      if (msgAt <= nextTick_) {
        now = std::max(now, msgAt);
        Message m = std::move(next->second);
        queue_.erase(next);
        handle(m.to, replica(m.to).step(m, now));
      } else {
        now = nextTick_;
        nextTick_ += kTick;
        for (NodeId id = 1; id <= n_; ++id) {
          if (!paused.count(id)) handle(id, replica(id).tick(now));
        }
      }
    }
    now = std::max(now, until);
  }

  std::size_t inflight(const std::function<bool(const Message&)>& f) const {
    std::size_t k = 0;
    for (const auto& e : queue_) k += f(e.second);
    return k;
  }

  Slot conflict() const {
    for (const auto& [slot, values] : chosen_) {
      for (const auto& v : values) {
        if (v != values.front()) return slot;
      }
    }
    return 0;
  }

  // Latency of links: 200 to 400 us (self: 0) unless the test says otherwise.
  Latency latency;
  std::set<NodeId> paused;
  std::map<std::string, Time> proposedAt, chosenAt;
  std::map<NodeId, std::size_t> acceptsTo, voteFlushes;
  Time now;

 private:
  static constexpr Time kTick = 10'000;

  void handle(NodeId id, Ready ready) {
    const bool votes = std::any_of(ready.records.begin(), ready.records.end(),
                                   [](const Record& r) { return std::holds_alternative<AcceptRecord>(r); });
    if (votes) ++voteFlushes[id];
    auto proof = stores_.at(id)->persist(ready);
    for (auto& e : ready.committed) {
      auto& seen = chosen_[e.slot];
      if (seen.empty() || seen.back() != e.value) seen.push_back(e.value);
      for (const auto& c : e.value.commands) chosenAt.emplace(c, now);
    }
    for (auto& m : ready.release(proof)) {
      if (std::holds_alternative<Accept>(m.payload) && m.to != m.from) ++acceptsTo[m.to];
      std::optional<Time> after;
      if (latency) {
        after = latency(m);
      } else {
        after = m.from == m.to ? 0 : 200 + jitter_.below(201);
      }
      if (!after) continue;
      Time at = now + *after;
      Time& last = lastOnLink_[{m.from, m.to}];
      at = std::max(at, last);  // FIFO per link
      last = at;
      queue_.emplace(std::make_pair(at, seq_++), std::move(m));
    }
  }

  std::size_t n_;
  bool thrifty_;
  ReplicaConfig::Bugs bugs_;
  SplitMixRandom random_;
  SplitMixRandom jitter_;
  std::map<NodeId, std::unique_ptr<MemoryLogStore>> stores_;
  std::map<NodeId, std::unique_ptr<Replica>> replicas_;
  std::map<std::pair<Time, std::uint64_t>, Message> queue_;
  std::map<std::pair<NodeId, NodeId>, Time> lastOnLink_;
  std::map<Slot, std::vector<Value>> chosen_;
  std::uint64_t seq_ = 0;
  Time nextTick_;

 public:
  SplitMixRandom& jitter() { return jitter_; }
};

// The default latency of TimedNet, for tests that change it for some messages only.
std::optional<Time> usual(TimedNet& net, const Message& m) {
  return m.from == m.to ? Time{0} : Time{200 + net.jitter().below(201)};
}

// Elects a leader and lets heartbeats run until `until`.
NodeId electTimed(TimedNet& net, Time until) {
  net.runTo(until);
  return net.leader();
}

// The follower a leader asks first: the one its next write's Accept goes to.
NodeId firstVoter(TimedNet& net, NodeId leader, const std::string& probe) {
  const Slot slot = net.replica(leader).commitIndex() + 1;
  net.propose(leader, probe);
  NodeId to = 0;
  net.inflight([&](const Message& m) {
    if (isAccept(m, slot) && m.to != leader && to == 0) to = m.to;
    return false;
  });
  return to;
}

struct WriteStats {
  std::size_t writes = 0, slow = 0, unchosen = 0;
  Time worst = 0;
};

// Writes "<prefix><i>" to the leader every `every` us from now for `span`, then lets them settle.
// Counts, among those proposed after `from`, the writes that took more than `slowAfter`.
WriteStats openLoopWrites(TimedNet& net, NodeId leader, const std::string& prefix, Time every, Time span, Time from,
                          Time slowAfter) {
  const Time start = net.now;
  std::vector<std::string> written;
  for (Time t = start; t < start + span; t += every) {
    net.runTo(t);
    const std::string c = prefix + std::to_string(written.size());
    net.propose(leader, c);
    written.push_back(c);
  }
  net.runTo(net.now + 1'000'000);
  WriteStats s;
  for (const auto& c : written) {
    const Time at = net.proposedAt.at(c);
    if (at < from) continue;
    ++s.writes;
    auto it = net.chosenAt.find(c);
    if (it == net.chosenAt.end()) {
      ++s.unchosen;
      continue;
    }
    const Time took = it->second - at;
    s.worst = std::max(s.worst, took);
    if (took > slowAfter) ++s.slow;
  }
  return s;
}

}  // namespace

// ---- 2. A gray follower under a steady stream of writes ----------------------------------------
namespace {

// Three (or five) members; the follower asked first answers heartbeats but loses every Accept.
// A client writes every `every` us for 4 s; the writes of the last 3 s that took longer than 25 ms.
WriteStats grayFollowerStream(std::size_t n, bool thrifty, Time every, NodeId* grayOut = nullptr,
                              ReplicaConfig::Bugs bugs = {}) {
  TimedNet net(n, thrifty, 1'000'000, 7, bugs);
  const NodeId leader = electTimed(net, 3'000'000);
  REQUIRE(leader != 0);
  const NodeId gray = firstVoter(net, leader, "probe");
  REQUIRE(gray != 0);
  if (grayOut) *grayOut = gray;
  net.latency = [&](const Message& m) -> std::optional<Time> {
    if (m.to == gray && std::holds_alternative<Accept>(m.payload)) return std::nullopt;
    return usual(net, m);
  };
  const WriteStats s = openLoopWrites(net, leader, "w", every, 4'000'000, net.now + 1'000'000, 25'000);
  CHECK(net.leader() == leader);
  CHECK(net.conflict() == 0);
  return s;
}

}  // namespace


// A client writes every 3, 7 or 13 ms while the follower asked first (G) answers heartbeats but
// loses every Accept; the other follower (C) is healthy. Every member asked: no write waits.
// Thrifty, on 93de8a1/d511895, a third to nearly half of the writes wait for a resend (about 60
// ms), for as long as the stream lasts. The mechanism (timeline of the 3-member run, 7 ms):
// - G's slot s1 is resent a heartbeat after it was sent: G is marked slow, C votes, and the next
//   write picks C (voters_ = {C}).
// - G's later slot s2 (sent a few ms after s1, also to G only) comes to its own resend while C
//   is the voter: tick marks slow every voter without a vote on s2, so C, which was never asked
//   s2, is marked slow too.
// - With both marked (or, half a second later, G's mark lapsed and C's renewed), askedToVote
//   re-sorts at every write (keep is false while a voter is slow) and, among followers alike
//   alive and slow, takes the one heard from last: G, whenever its heartbeat reply came after
//   C's last answer. G's writes wait for their resend, which marks C again: the cycle never ends.
// Fails on 93de8a1/d511895 (e.g. 3 members every 7 ms: 165 of 429 writes slow; 5 members: 143).
TEST_CASE("review4: a gray follower stays passed over under a steady stream of writes (three members)", "[thrifty][review4]") {
  for (Time every : {3'000, 7'000, 13'000}) {
    const WriteStats off = grayFollowerStream(3, false, every);
    NodeId gray = 0;
    const WriteStats on = grayFollowerStream(3, true, every, &gray);
    INFO("a write every " << every << " us; every member asked: " << off.slow << " of " << off.writes
                          << " slow; thrifty: " << on.slow << " of " << on.writes << " slow (worst " << on.worst
                          << " us), gray " << gray);
    CHECK(off.slow == 0);
    CHECK(on.unchosen == 0);
    CHECK(on.slow * 50 <= on.writes);  // at most 2 %
  }
}

TEST_CASE("review4: a gray follower stays passed over under a steady stream of writes (five members)", "[thrifty][review4]") {
  for (Time every : {3'000, 7'000, 13'000}) {
    const WriteStats off = grayFollowerStream(5, false, every);
    NodeId gray = 0;
    const WriteStats on = grayFollowerStream(5, true, every, &gray);
    INFO("a write every " << every << " us; every member asked: " << off.slow << " of " << off.writes
                          << " slow; thrifty: " << on.slow << " of " << on.writes << " slow (worst " << on.worst
                          << " us), gray " << gray);
    CHECK(off.slow == 0);
    CHECK(on.unchosen == 0);
    CHECK(on.slow * 50 <= on.writes);
  }
}

// The check above catches the old rule planted back (slowMarksEveryVoter): a third or more of
// the writes wait for a resend.
TEST_CASE("review4: planted, a resend marking every current voter keeps the gray follower picked", "[thrifty][review4][planted]") {
  ReplicaConfig::Bugs bugs;
  bugs.slowMarksEveryVoter = true;
  const WriteStats on = grayFollowerStream(3, true, 7'000, nullptr, bugs);
  INFO(on.slow << " of " << on.writes << " slow");
  CHECK(on.slow * 50 > on.writes);
}

// Writes back to back (one every 1 ms): C answers so often that it is always heard from last and
// G is never picked again. Passes (the stream of writes at 3 ms or more is what breaks it).
TEST_CASE("review4: a gray follower under writes every millisecond", "[thrifty][review4]") {
  for (std::size_t n : {3u, 5u}) {
    const WriteStats on = grayFollowerStream(n, true, 1'000);
    INFO(n << " members: " << on.slow << " of " << on.writes << " slow");
    CHECK(on.unchosen == 0);
    CHECK(on.slow * 50 <= on.writes);
  }
}

// ---- 3. Regression tests: schedules checked and found handled --------------------------------

// Votes slower than a heartbeat (a disk whose flush takes 60 ms): every slot is resent at its
// heartbeat to the follower not asked, which then votes on every slot too, so thrifty saves no
// flush (it is every member asked, plus resends). It is no slower and sends no more Accepts than
// every member asked (which resends too). Passes; a limit of the fixed resend time, not a bug.
TEST_CASE("review4: votes slower than a heartbeat cost thrifty no latency and no extra Accepts", "[thrifty][review4]") {
  std::map<bool, std::size_t> accepts;
  std::map<bool, WriteStats> stats;
  for (bool thrifty : {false, true}) {
    TimedNet net(3, thrifty);
    const NodeId leader = electTimed(net, 3'000'000);
    REQUIRE(leader != 0);
    net.latency = [&](const Message& m) -> std::optional<Time> {
      if (std::holds_alternative<Accepted>(m.payload) && m.from != m.to) return 60'000 + usual(net, m).value();
      return usual(net, m);
    };
    net.acceptsTo.clear();
    stats[thrifty] = openLoopWrites(net, leader, "w", 10'000, 3'000'000, net.now, 90'000);
    for (const auto& [id, k] : net.acceptsTo) accepts[thrifty] += k;
    CHECK(net.conflict() == 0);
  }
  INFO("Accepts sent: every member " << accepts[false] << ", thrifty " << accepts[true] << "; worst write: every member "
                                     << stats[false].worst << " us, thrifty " << stats[true].worst << " us");
  CHECK(stats[true].unchosen == 0);
  CHECK(stats[true].slow == 0);
  CHECK(accepts[true] <= accepts[false]);
}

// A member restarts mid-stream, from its disk or wiped (a learner, rebuilt from the pushes), the
// follower asked or the other, or the leader: writes go on, none is lost, the wiped member turns
// voter again, one value per slot; a second after the restart no write waits for a resend.
TEST_CASE("review4: a restart or a wipe of any member under a stream of writes", "[thrifty][review4]") {
  for (std::size_t n : {3u, 5u}) {
    for (int what = 0; what < 5; ++what) {
      // 0: wipe the follower asked; 1: wipe one not asked; 2: restart the follower asked;
      // 3: restart the leader; 4: wipe the follower asked, then restart the leader
      TimedNet net(n, true);
      const NodeId leader = electTimed(net, 3'000'000);
      REQUIRE(leader != 0);
      const NodeId voter = firstVoter(net, leader, "probe");
      NodeId unasked = 0;
      for (NodeId id = 1; id <= n; ++id) {
        if (id != leader && id != voter) unasked = id;
      }
      const NodeId victim = what == 1 ? unasked : what == 3 ? leader : voter;
      const bool wipe = what == 0 || what == 1 || what == 4;
      std::vector<std::string> written;
      const Time start = net.now;
      bool restarted = false, leaderRestarted = false;
      for (Time t = start; t < start + 4'000'000; t += 5'000) {
        net.runTo(t);
        if (!restarted && t >= start + 500'000) {
          net.restart(victim, wipe);
          restarted = true;
        }
        if (what == 4 && !leaderRestarted && t >= start + 540'000) {
          net.restart(leader, false);  // while the wiped member rebuilds
          leaderRestarted = true;
        }
        const NodeId l = net.leader();
        if (l) {
          const std::string c = "w" + std::to_string(written.size());
          net.propose(l, c);
          written.push_back(c);
        }
      }
      net.runTo(net.now + 1'000'000);
      std::size_t slow = 0, lost = 0;
      for (const auto& c : written) {
        const Time at = net.proposedAt.at(c);
        if (at < start + 1'500'000) continue;
        auto it = net.chosenAt.find(c);
        if (it == net.chosenAt.end()) {
          ++lost;
          continue;
        }
        slow += it->second - at > 25'000;
      }
      INFO(n << " members, case " << what << ", victim " << victim);
      CHECK(net.conflict() == 0);
      CHECK(lost == 0);
      CHECK(slow == 0);
      CHECK_FALSE(net.replica(victim).isLearner());
      REQUIRE(net.leader() != 0);
      for (NodeId id = 1; id <= n; ++id) CHECK(net.replica(id).commitIndex() == net.replica(net.leader()).commitIndex());
    }
  }
}

// Clocks that start at 0 (now_ = 0 at construction): an election, writes, and the follower asked
// cut off mid-stream: it is replaced within a heartbeat or two.
TEST_CASE("review4: clocks from zero", "[thrifty][review4]") {
  for (std::size_t n : {3u, 5u}) {
    TimedNet net(n, true, 0);
    const NodeId leader = electTimed(net, 2'000'000);
    REQUIRE(leader != 0);
    const NodeId voter = firstVoter(net, leader, "probe");
    REQUIRE(voter != 0);
    net.latency = [&](const Message& m) -> std::optional<Time> {
      if (m.to == voter || m.from == voter) return std::nullopt;
      return usual(net, m);
    };
    const WriteStats s = openLoopWrites(net, leader, "w", 7'000, 2'000'000, net.now + 150'000, 25'000);
    INFO(n << " members: " << s.slow << " of " << s.writes << " slow, worst " << s.worst);
    CHECK(s.unchosen == 0);
    CHECK(s.slow == 0);
    CHECK(net.leader() == leader);
    CHECK(net.conflict() == 0);
  }
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
