// Review of 2f3c2e1 (the fix of review13: Replica::expireCatchupRequest passes over the snapshot's
// sender X, catchupSource_, when the request that timed out had gone to X, catchupAsked_; only the
// peer asked clears catchupRequested_; catching up to the leader's commit index clears
// catchupSource_).
//
// No safety fault: catchupSource_, catchupAsked_ and catchupRequested_ decide only where and when
// a request goes; a catch-up reply carries slots at or below its sender's commit index, which are
// chosen whoever sends them, and none of the three touches a learner's target, promises or vote.
//
// Nor does the "only the peer asked" rule stall anyone: every path that leaves
// catchupRequested_ set ends in expireCatchupRequest, called from every follower/candidate tick
// and before every request learnCommit makes (a node that installs does not tick, but learnCommit
// still expires), so a request is never held back more than a heartbeat: a follower whose request
// went to a leader that crashed or was deposed asks the new leader at that leader's first
// heartbeat (an election takes an election timeout, ten heartbeats), and a lagging follower under
// steady writes still asks once per reply, not once per heartbeat ([review14-probe] below).
//
// Liveness fault (what 67e9506 was for: "a wiped member that took a follower's stream needed a
// second snapshot"): the sender is passed over as soon as ONE request to it is unanswered for a
// heartbeat (50 ms), and, independently, as soon as one nonce-0 reply from it brings nothing
// new, even when that reply answers an older request than the one outstanding:
//  - a single catch-up reply from X lost (a reconnect drops what its link queue held), or
//  - a link to X whose round trip exceeds a heartbeat (60 ms here; a catch-up reply of 4 MiB
//    takes about that at 500 Mbit/s), or
//  - two answers from X to requests for the same slot (a reply to a rebuild request that clears
//    catchupRequested_, "asked peer answers an older request late"), the second of which then
//    brings "nothing new",
// and the receiver asks the leader, which has compacted those slots (that is why the snapshot was
// needed) and answers with another snapshot stream, while X, alive and holding the slots
// (NodeCore::compactionPoint), is never asked again. Here (an install of a few seconds under
// steady writes) node 3 had not even caught up 15 s later: the second snapshot, a larger state,
// was still being installed. (Argued, not run: on 67e9506 the first two schedules cost no second
// snapshot, since its tick forgot the lost request and the next heartbeat asked X again.)
// [review14] fail on 2f3c2e1; [review14-probe] pass (controls and the probes above).
//
// Fix (the commit after the one adding these tests): the sender is passed over at its second
// request in a row left unanswered for a heartbeat (any answer of its resets the count), and
// an answer of its passes it over only when it holds no slot at all (a reply whose slots are all
// known already answers an older request). A dead or cut-off sender costs a heartbeat more than
// on 2f3c2e1 (review13's tests still pass). Planted: ReplicaConfig::Bugs::catchupSourceOneMiss
// ([review14-planted]).

#include <catch2/catch.hpp>

#include <algorithm>
#include <functional>
#include <map>
#include <memory>
#include <set>

#include "tests/unit/node/CatchupScenario.h"

using namespace warden::tests::node;

namespace {

// A row a turn: an install takes a few seconds, the leader compacts meanwhile.
CatchupOptions slowInstall(bool leaderPath = false, bool oneMiss = false) { return {leaderPath, oneMiss, 20}; }

void loseOneReply(CatchupScenario& s) {
  // That one frame only: a later answer to a request for the same slots has the same bytes.
  // (settle asks twice about the frame it drops: once to find it, once to drop it.)
  std::string lostReply;
  int asked = 0;
  s.catchUp([&](const Frame& f) {
    if (lostReply.empty() && f.from == 2 && f.to == 3 && f.is("CatchupReply") && nonceOf(f) == 0) lostReply = keyOf(f);
    return !lostReply.empty() && asked < 2 && keyOf(f) == lostReply && ++asked > 0;
  });
  REQUIRE_FALSE(lostReply.empty());
}
}  // namespace

// Schedule 1: node 3 has installed node 2's snapshot; the first catch-up reply node 2 sends it
// is lost (one frame: a reconnect drops what the link queue held). Node 2 is up, reachable and
// holds every slot node 3 needs. On 2f3c2e1 the request times out after one heartbeat, node 2 is
// passed over for good, node 3 asks leader 1, which compacted those slots, and is sent (and
// installs) a second snapshot. (Argued: on 67e9506 the next heartbeat asked node 2 again.)
TEST_CASE("review14: one lost catch-up reply from the snapshot's sender costs a second snapshot", "[review14]") {
  CatchupScenario s(slowInstall());
  s.rebuildFromFollower();
  loseOneReply(s);
  s.checkOneSnapshot();
}

// The fix's planted bug (ReplicaConfig::Bugs::catchupSourceOneMiss, 2f3c2e1's rule back): the
// same lost reply makes the leader stream again.
TEST_CASE("review14-planted: passing over the sender at its first miss costs a second snapshot", "[review14-planted]") {
  CatchupScenario s(slowInstall(false, true));
  s.rebuildFromFollower();
  loseOneReply(s);
  INFO(s.describe());
  CHECK(count(*s.net, 3, "installed a snapshot") + s.laterStreams.size() > 1);
}

// Schedule 2: from the install on, frames between nodes 2 and 3 take 30 ms each way (a round
// trip of 60 ms, above the 50 ms heartbeat; nothing is lost). Every request to node 2 "times out"
// before its answer arrives: on 2f3c2e1 node 2 is passed over at the first, node 3 asks leader 1
// and is streamed a second snapshot; node 2's answer, arriving 10 ms later, cannot bring it back.
TEST_CASE("review14: a round trip to the snapshot's sender above one heartbeat costs a second snapshot", "[review14]") {
  CatchupScenario s(slowInstall());
  s.rebuildFromFollower();
  s.delayOf = [](const Frame& f) { return between(f, 2, 3) ? std::uint64_t{30'000} : std::uint64_t{0}; };
  s.catchUp();
  s.checkOneSnapshot();
}

// Control: the same scenario with nothing lost or slow after the install: node 3 catches up from
// node 2 with the one snapshot (passes on 2f3c2e1).
TEST_CASE("review14-probe: with every reply in time the sender's slots suffice", "[review14-probe]") {
  CatchupScenario s(slowInstall());
  s.rebuildFromFollower();
  s.catchUp();
  s.checkOneSnapshot();
}

// Control: the same scenario with catch-up from the leader after an install (the planted
// bug of 67e9506, i.e. the behaviour before it), nothing lost: a second snapshot, so what the two
// tests above count is what 67e9506 set out to save.
TEST_CASE("review14-probe: with catch-up from the leader, the install is followed by a second snapshot", "[review14-probe]") {
  CatchupScenario s(slowInstall(true));
  s.rebuildFromFollower();
  s.catchUp();
  INFO(s.describe());
  CHECK(count(*s.net, 3, "installed a snapshot") + s.laterStreams.size() > 1);
}

// ---- the Paxos core alone -------------------------------------------------------------------

namespace {
namespace px = warden::coordinator::paxos;
using Core = CatchupCore;
}  // namespace

// Schedule 1 in the core: replica 3 installed slots up to 100 from node 2, heartbeats say 300 is
// committed. Node 2's answer to the first request is lost. On 2f3c2e1 the next request, a
// heartbeat later, goes to leader 1 and node 2 is never asked again, though it answers at once.
TEST_CASE("review14: the core asks the snapshot's sender again after one lost answer", "[review14]") {
  Core x;
  REQUIRE(x.installFromNode2(100, 300) == std::vector<NodeId>{2});
  // (lost)
  x.now += x.config.heartbeatInterval;
  x.tick();
  const auto second = x.heartbeat(300);
  CHECK(second == std::vector<NodeId>{2});
  if (!second.empty() && second.front() == 2) {
    x.now += 1'000;
    x.step(2, Core::reply(101, 164));
    REQUIRE(x.r->commitIndex() == 164);
    x.now += 1'000;
    CHECK(x.heartbeat(300) == std::vector<NodeId>{2});  // node 2 keeps its turn: it gave something
  }
}

// Schedule 3 in the core (out of step): a wiped replica 3 (a learner) installed slots up to 100
// from node 2 without node 2's promise (its answers to the rebuild requests were lost or are
// late). Its ordinary request (slots from 101) goes to node 2; its rebuild tick asks node 2 again
// (nonce, also from 101). Node 2 answers the rebuild request first: that clears
// catchupRequested_ (node 2 is the peer asked) and brings 101..164; then its answer to the
// ordinary request arrives, the same slots, "nothing new": on 2f3c2e1 node 2 is passed over, and
// the next request goes to leader 1 though node 2 holds 165..300. The same happens when the first
// of the two answers is a late one to an older ordinary request (any reply from the asked peer
// clears the flag, so a second request for the same slot goes out while the first is answered).
TEST_CASE("review14: two answers of the snapshot's sender for the same slot do not pass it over", "[review14]") {
  Core x(true);
  REQUIRE(x.r->isLearner());
  x.heartbeat(0);
  x.now += x.config.heartbeatInterval;
  x.tick();  // rebuild requests to nodes 1 and 2
  const std::uint64_t nonce = x.nonceSentTo(1);
  REQUIRE(nonce != 0);
  {
    px::CatchupReply fromLeader = Core::reply(1, 0, nonce);  // node 1: target and promise
    fromLeader.leaderBallot = x.leader;
    fromLeader.nextSlot = 1;
    fromLeader.snapshotNeeded = true;
    x.step(1, fromLeader);
  }
  // node 2's answer (snapshot needed, its promise) is lost; its stream comes through:
  x.r->beginInstall();
  x.now += 1'000;
  x.handle(x.r->installSnapshot(100, x.now, 2));
  REQUIRE(x.r->commitIndex() == 100);
  x.now += 20'000;
  REQUIRE(x.heartbeat(300) == std::vector<NodeId>{2});  // ordinary request, from 101
  x.now += x.config.heartbeatInterval - 20'000;
  x.tick();  // still within the heartbeat of the ordinary request: a rebuild request to node 2
  REQUIRE(x.nonceSentTo(2) == nonce);
  x.now += 1'000;
  x.step(2, Core::reply(101, 164, nonce));  // the rebuild request's answer first
  REQUIRE(x.r->commitIndex() == 164);
  x.step(2, Core::reply(101, 164));  // then the ordinary one's: the same slots
  x.now += 1'000;
  CHECK(x.heartbeat(300) == std::vector<NodeId>{2});  // on 2f3c2e1: {1}
}

// Probe: a follower whose request went to a leader that then crashed asks the new leader at its
// first heartbeat (the request expired long before an election could end), and a follower whose
// request went to a leader deposed while it answered asks the new one within a heartbeat even
// when the new leader's first heartbeat comes at once. Passes on 2f3c2e1.
TEST_CASE("review14-probe: a follower that asked a leader that crashed or was deposed asks the next one within a heartbeat", "[review14-probe]") {
  Core x;
  x.heartbeat(0);
  x.now += 1'000;
  REQUIRE(x.heartbeat(500) == std::vector<NodeId>{1});
  SECTION("the leader crashed: node 2 leads an election timeout later") {
    for (int i = 0; i < 10; ++i) {  // ticks, no leader
      x.now += 10'000;
      CHECK(x.tick().empty());
    }
    x.leader = {2, 2};
    x.leaderId = 2;
    CHECK(x.heartbeat(600) == std::vector<NodeId>{2});
  }
  SECTION("node 2 took over at once (node 1 deposed, silent): its heartbeats every 50 ms from 5 ms on") {
    const px::Time asked = x.now;
    x.leader = {2, 2};
    x.leaderId = 2;
    x.now += 5'000;
    std::vector<NodeId> to = x.heartbeat(600);
    CHECK(to.empty());  // within the heartbeat of the request to node 1
    px::Time nextBeat = x.now + x.config.heartbeatInterval;
    while (to.empty() && x.now < asked + 1'000'000) {
      x.now += 10'000;
      for (NodeId id : x.tick()) to.push_back(id);
      if (x.now >= nextBeat) {
        nextBeat += x.config.heartbeatInterval;
        for (NodeId id : x.heartbeat(600)) to.push_back(id);
      }
    }
    CHECK(to == std::vector<NodeId>{2});
    CHECK(x.now <= asked + 2 * x.config.heartbeatInterval);
  }
  SECTION("node 2 took over at once; node 1's late answer clears the request, node 2 is asked at once") {
    x.leader = {2, 2};
    x.leaderId = 2;
    x.now += 5'000;
    CHECK(x.heartbeat(600).empty());
    x.step(1, Core::reply(1, 64));  // node 1, deposed, answers: it was the peer asked
    CHECK(x.r->commitIndex() == 64);
    x.now += 1'000;
    CHECK(x.heartbeat(600) == std::vector<NodeId>{2});
  }
}

// Probe: a follower far behind under steady writes asks again on the first Accept after each
// answer, not once per heartbeat. Passes on 2f3c2e1.
TEST_CASE("review14-probe: a lagging follower under steady writes asks once per answer", "[review14-probe]") {
  Core x;
  x.heartbeat(0);
  x.now += 1'000;
  REQUIRE(x.heartbeat(1'000) == std::vector<NodeId>{1});
  px::Slot next = 1'001;
  px::Slot have = 0;
  int requests = 1;
  const px::Time start = x.now;
  while (x.r->commitIndex() < 1'000 && x.now < start + 1'000'000) {
    x.now += 1'000;  // an answer a millisecond after the request
    x.step(1, Core::reply(have + 1, std::min<px::Slot>(have + 64, 1'000)));
    have = x.r->commitIndex();
    x.now += 1'000;  // the next Accept a millisecond later
    const auto to = x.accept(next++, 1'000);
    requests += static_cast<int>(to.size());
    if (x.r->commitIndex() < 1'000) REQUIRE(to == std::vector<NodeId>{1});
  }
  CHECK(x.r->commitIndex() == 1'000);
  CHECK(x.now - start < 2 * x.config.heartbeatInterval);  // 16 answers, 2 ms each
  CHECK(requests == 16);
}
