#pragma once
// The rebuilt-member scenario the catch-up reviews (review13, 14 and 15) share: leader 1 of 3
// under steady writes, node 3's disk wiped; node 3 rebuilds from FOLLOWER 2's stream (node 1's
// rebuild stream to it is lost for good), then catches up. The reviews differ in how slowly the
// install goes and in which frames they hold back or cut afterwards. CatchupCore, below, is the
// Paxos core alone in the same part (replica 3, a snapshot from node 2).

#include <catch2/catch.hpp>

#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <set>
#include <string>
#include <variant>
#include <vector>

#include "tests/unit/node/NodeNetHelpers.h"

namespace warden::tests::node {

inline bool between(const Frame& f, NodeId a, NodeId b) { return (f.from == a && f.to == b) || (f.from == b && f.to == a); }

// The nonce of a catch-up request or reply (0: an ordinary one; any other frame: 0).
inline std::uint64_t nonceOf(const Frame& f) {
  const auto m = f.paxos();
  if (!m) return 0;
  if (const auto* r = std::get_if<paxos::CatchupRequest>(&m->payload)) return r->nonce;
  if (const auto* r = std::get_if<paxos::CatchupReply>(&m->payload)) return r->nonce;
  return 0;
}

// Names one frame: a later frame with the same ends and bytes is the same frame to a test.
inline std::string keyOf(const Frame& f) { return std::to_string(f.from) + ">" + std::to_string(f.to) + ":" + f.bytes; }

struct CatchupOptions {
  bool leaderPath = false;             // the planted catchupFromLeaderAfterInstall
  bool oneMiss = false;                // the planted catchupSourceOneMiss
  std::size_t installStepBytes = 200;  // 200: an install takes about a second; 20: a few seconds
  bool thrifty = false;                // ReplicaConfig::thrifty
};

enum class Until { InstallBegun, Installed };

struct CatchupScenario {
  std::unique_ptr<NodeNet> net;
  int written = 0, answered = 0, failed = 0;
  bool counting = false;
  std::map<NodeId, std::size_t> requests;   // node 3's nonce-0 catch-up requests by destination, once counting
  std::size_t requestsCut = 0;              // node 3's nonce-0 requests lost on a cut link (a test counts them)
  std::set<std::uint64_t> lostStreams;      // node 1's rebuild streams to node 3: lost for good
  std::set<std::uint64_t> laterStreams;     // node 1's streams to node 3 that node 3 staged, once counting
  // Held: a frame is handed over only once `delayOf` it has passed since it was first seen.
  std::function<std::uint64_t(const Frame&)> delayOf = [](const Frame&) { return std::uint64_t{0}; };
  std::map<std::string, std::uint64_t> firstSeen;

  explicit CatchupScenario(CatchupOptions options = {}) {
    net = std::make_unique<NodeNet>(3, ClusterOptions::Bugs{}, [options](NodeId, ClusterOptions& o) {
      o.retainedSlots = 10;
      o.snapshotChunkBytes = 400;
      o.installStepBytes = options.installStepBytes;
      o.paxos.bugs.catchupFromLeaderAfterInstall = options.leaderPath;
      o.paxos.bugs.catchupSourceOneMiss = options.oneMiss;
      // Phase 2 to every member, as the reviews found these: thrifty, the leader pushes the
      // rebuilt node each chosen slot, and the catch-up paths pinned here are seldom taken.
      o.paxos.thrifty = options.thrifty;
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

  // True when the frame is handed over now (settle asks again about a frame it holds back, and
  // hands over a frame the first time this says true: count only then).
  bool see(const Frame& f) {
    if (const std::uint64_t d = delayOf(f); d > 0) {
      auto [it, fresh] = firstSeen.emplace(keyOf(f), net->now);
      if (net->now < it->second + d) return false;
      firstSeen.erase(it);
    }
    if (counting && f.from == 3 && f.is("CatchupRequest") && nonceOf(f) == 0) ++requests[f.to];
    if (counting && isAckFrom(f, 3) && f.to == 1) laterStreams.insert(streamOf(f));
    return true;
  }
  bool lost(const Frame& f) { return isChunkTo(f, 3) && f.from == 1 && lostStreams.count(streamOf(f)); }

  // Runs `ticking` (writes through leader 1 every `every` steps) until `done`, for up to `steps`
  // steps, dropping what `cut` names.
  void run(const std::vector<NodeId>& ticking, int every, const std::function<bool()>& done, int steps,
           const std::function<bool(const Frame&)>& cut = none) {
    int step = 0;
    net->runUntil(ticking, [&](const Frame& f) { return see(f); }, [&] {
      if (step++ % every == 0 && written < 3'000) submit(1);
      return done();
    }, [&](const Frame& f) { return lost(f) || cut(f); }, steps);
  }

  // Leader 1, 400 writes (then `beforeWipe`), node 3 wiped and rebuilt from node 2's stream under
  // a write every other step (node 1's stream to it is lost); returns once node 3 has begun
  // installing it, or has installed it.
  void rebuildFromFollower(Until until = Until::Installed, const std::function<void()>& beforeWipe = {}) {
    NodeNet& n = *net;
    elect(n, 1);
    for (int i = 0; i < 400; ++i) {
      const int before = answered;
      submit(1);
      n.runUntil({1, 2, 3}, all, [&] { return answered > before; });
      REQUIRE(answered > before);
    }
    if (beforeWipe) beforeWipe();
    REQUIRE(n.replica(1)->compactedUpTo() > 1);
    REQUIRE(n.replica(2)->compactedUpTo() > 1);
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
      return until == Until::InstallBegun ? taken && installing(n, 3) : count(n, 3, "installed a snapshot") > 0;
    }, drop, 3'000);
    REQUIRE(taken == 2);
    if (until == Until::InstallBegun) {
      REQUIRE(installing(n, 3));
    } else {
      REQUIRE(count(n, 3, "installed a snapshot from node 2") == 1);
    }
  }

  bool caughtUp(NodeId id, NodeId leader) {
    return !installing(*net, id) && net->core(id).applied() == net->core(leader).applied() &&
           revisionOf(*net, id) == revisionOf(*net, leader);
  }

  // After the install: writes every 4th step until node 3 has caught up and voted (or 15 s).
  void catchUp(const std::function<bool(const Frame&)>& cut = none) {
    counting = true;
    run({1, 2, 3}, 4, [&] { return !net->replica(3)->isLearner() && caughtUp(3, 1); }, 1'500, cut);
  }

  // The single-snapshot property of review12/67e9506, after the install: node 3 caught up and
  // votes, from the one snapshot, with node 2 asked and the leader never made to stream again.
  void checkOneSnapshot() {
    INFO(describe());
    CHECK(caughtUp(3, 1));
    CHECK_FALSE(net->replica(3)->isLearner());
    CHECK(count(*net, 3, "installed a snapshot") == 1);
    CHECK(laterStreams.empty());
    CHECK(requests[2] > 0);
  }

  std::string describe() {
    std::string text = "node 3's nonce-0 catch-up requests after the install:";
    for (auto [to, k] : requests) text += " " + std::to_string(k) + " to node " + std::to_string(to) + ";";
    text += " " + std::to_string(requestsCut / 2) + " lost on a cut link;";
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
    text += "\n  node 1 leads: " + std::to_string(net->leads(1)) + ", node 3 leader hint: " +
            std::to_string(net->replica(3) ? net->replica(3)->leaderHint() : 0);
    return text;
  }
};

// The Paxos core alone, as the catch-up reviews drive it: replica 3 of 3 following leader 1
// (ballot {1,1}); `wiped`: it starts as a learner.
struct CatchupCore {
  warden::tests::SplitMixRandom random;
  warden::tests::MemoryLogStore store;
  std::unique_ptr<paxos::Replica> r;
  paxos::Time now = 1'000'000;
  paxos::Ballot leader{1, 1};
  NodeId leaderId = 1;
  paxos::ReplicaConfig config;
  std::vector<paxos::Message> sent;  // everything the last call sent

  explicit CatchupCore(bool wiped = false, paxos::ReplicaConfig::Bugs bugs = {}) {
    config.bugs = bugs;
    config.id = 3;
    config.members = {1, 2, 3};
    r = std::make_unique<paxos::Replica>(config, paxos::DurableState{}, 0, wiped, random, now);
  }

  // The nonce-0 catch-up requests a Ready sends, by destination.
  std::vector<NodeId> handle(paxos::Ready ready) {
    auto proof = store.persist(ready);
    sent = ready.release(proof);
    std::vector<NodeId> to;
    for (auto& m : sent) {
      if (const auto* c = std::get_if<paxos::CatchupRequest>(&m.payload); c && c->nonce == 0) to.push_back(m.to);
    }
    return to;
  }
  std::vector<NodeId> step(NodeId from, paxos::Payload p) { return handle(r->step(paxos::Message{from, 3, std::move(p)}, now)); }
  std::vector<NodeId> heartbeat(paxos::Slot commit) { return step(leaderId, paxos::Heartbeat{leader, commit, commit + 1, now}); }
  std::vector<NodeId> accept(paxos::Slot slot, paxos::Slot commit) {
    return step(leaderId, paxos::Accept{leader, slot, paxos::Value{false, {"c"}}, commit, now});
  }
  std::vector<NodeId> tick() { return handle(r->tick(now)); }
  // Installs slots up to `upTo` from node 2, then hears from the leader that `commit` is
  // committed: the nonce-0 requests that sends (to node 2, the snapshot's sender).
  std::vector<NodeId> installFromNode2(paxos::Slot upTo, paxos::Slot commit) {
    heartbeat(0);
    handle(r->installSnapshot(upTo, now, 2));
    now += 1'000;
    return heartbeat(commit);
  }
  // A reply holding slots first..last (none when last < first).
  static paxos::CatchupReply reply(paxos::Slot first, paxos::Slot last, std::uint64_t nonce = 0) {
    paxos::CatchupReply m;
    m.nonce = nonce;
    for (paxos::Slot s = first; s <= last; ++s) m.entries.push_back(paxos::ChosenEntry{s, paxos::Value{false, {"c"}}});
    return m;
  }
  static paxos::CatchupReply snapshotNeeded(paxos::Slot compactedUpTo) {
    paxos::CatchupReply m;
    m.snapshotNeeded = true;
    m.compactedUpTo = compactedUpTo;
    return m;
  }
  // The nonce of the rebuild request the last call sent to `to` (0: none).
  std::uint64_t nonceSentTo(NodeId to) const {
    for (const auto& m : sent) {
      if (const auto* c = std::get_if<paxos::CatchupRequest>(&m.payload); c && c->nonce != 0 && m.to == to) return c->nonce;
    }
    return 0;
  }
};

}  // namespace warden::tests::node
