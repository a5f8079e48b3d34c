// Adversarial review of 31c2758 ("Votes flushed behind the driver"): crash, power-loss, delay,
// duplication and flush-order schedules against ClusterOptions::flushBehind.
//
// Part 1 is storage: the write-ahead log written behind its flushes (LogStore::writeBehind) and
// a power loss in the middle of a change of segment, imaged with the crash-consistency harness
// of tests/FlushTracker.h (interposed flushes: with no Tracking alive they only pass through).
//
// Part 2 is the node (NodeNet): the schedules tried against the held answers, kept as regression
// tests.

#include <catch2/catch.hpp>

#include <filesystem>
#include <functional>
#include <map>

#include "coordinator/LmdbLogStore.h"
#include "coordinator/node/Frames.h"
#include "coordinator/storage/Wal.h"
#include "tests/FlushTracker.h"
#include "tests/TempDir.h"
#include "tests/unit/node/NodeNetHelpers.h"

namespace {

namespace fs = std::filesystem;
using namespace warden::coordinator;
using warden::tests::powerLossImage;
using warden::tests::TempDir;
using warden::tests::Tracking;

const storage::EnvOptions kSynced{std::size_t{1} << 26, 16, true};
const storage::EnvOptions kUnsynced{std::size_t{1} << 26, 16, false};
constexpr std::size_t kTinySegments = 64;  // a header, a promise and an accept; the next batch rolls over

paxos::Value valueFor(paxos::Slot slot) { return paxos::Value{false, {"v" + std::to_string(slot)}}; }
paxos::AcceptRecord acceptOf(paxos::Slot slot, paxos::Ballot ballot = paxos::Ballot{3, 1}) {
  return paxos::AcceptRecord{slot, ballot, valueFor(slot)};
}
std::string segmentName(std::uint64_t firstSeq) {
  char name[32];
  std::snprintf(name, sizeof name, "%016llx.wal", static_cast<unsigned long long>(firstSeq));
  return name;
}
// One Ready of `records`, written behind (NodeCore::finishReadyBatch with flushBehind): its
// messages would wait in held_ until store.durable() reaches the ticket.
std::uint64_t writeBehind(paxos::LogStore& store, std::vector<paxos::Record> records) {
  std::vector<paxos::Ready> batch(1);
  batch[0].records = std::move(records);
  return store.writeBehind(batch);
}

}  // namespace

// ---- 1. storage: a change of segment with batches not yet flushed --------------------------------

// The schedule: a promise is flushed (acknowledged); two votes are written behind, their answers
// held while the flusher has not reached them; the second write fills the segment and
// Wal::append begins a new one. As reviewed, Wal::startSegment made the new segment durable (its
// header flushed, wal/ fsynced) and only then Wal::useFile flushed the old one (fixed since: the
// old one is flushed first, and this test failed before the fix). A power loss between the
// two left segment 3 on disk after a segment 1 that ends at batch 1: replay takes that for
// acknowledged batches lost ("batches 2 to 2 are missing") and the node refuses to start, though
// nothing it acknowledged is missing. Before the change every append was flushed before it
// returned, so the old segment was always whole when the next one was made. It stays down until
// its disk is wiped (and then it rebuilds as a wiped member, one lost disk at a time assumed): a
// power cut of the whole cluster during the rollovers of a majority stops the cluster.
TEST_CASE("flush-behind review: a power loss in a change of segment before the old "
          "segment's flush leaves a log that refuses to open",
          "[flushbehind-review]") {
  TempDir dir;
  TempDir images;
  const std::string image = images.path() + "/power";
  bool taken = false;
  {
    Tracking tracking(dir.path());
    storage::Env env(dir.path(), kSynced);
    LmdbLogStore store(env, kTinySegments);
    (void)store.load();
    {
      paxos::Ready promise;
      promise.records = {paxos::PromiseRecord{paxos::Ballot{3, 1}}};
      (void)promise.release(store.persist(promise));  // flushed: its Promise may leave
    }
    const std::uint64_t first = writeBehind(store, {acceptOf(1)});  // seq 2, in segment 1
    REQUIRE(first > store.durable());                                // its Accepted is held
    const std::string oldSegment = tracking.t.root + "/wal/" + segmentName(1);
    tracking.t.before = [&](const std::string& path) {
      if (path == oldSegment && !taken) {  // the power fails just before the old segment's flush
        powerLossImage(tracking.t, image);
        taken = true;
      }
    };
    (void)writeBehind(store, {acceptOf(2)});  // seq 3: begins segment 3
    tracking.t.before = nullptr;
    REQUIRE(fs::exists(fs::path(dir.path()) / "wal" / segmentName(3)));
  }
  REQUIRE(taken);
  // Wal::startSegment now flushes the old segment first: the new one does not exist yet.
  CHECK_FALSE(fs::exists(fs::path(image) / "wal" / segmentName(3)));
  storage::Env env(image, kUnsynced);
  LmdbLogStore store(env, kTinySegments);
  paxos::DurableState state;
  // Nothing acknowledged was lost: the votes' answers never left. The node must start.
  REQUIRE_NOTHROW(state = store.load());
  CHECK(state.promised == paxos::Ballot{3, 1});
}

// The same as a sweep: votes written behind, a flush now and then (the flusher), rollovers and
// compactions; a power-loss image after every flush the store makes. Every image must open and
// hold every record whose ticket was durable (whose answers could have left) when it was taken.
TEST_CASE("flush-behind review: a power loss after any flush of a run written behind keeps "
          "every record whose answers could leave",
          "[flushbehind-review]") {
  TempDir dir;
  TempDir images;
  struct Image {
    std::string dir;
    std::uint64_t durable;  // store.durable() when taken
  };
  std::vector<Image> taken;
  std::map<std::uint64_t, paxos::DurableState> byTicket;  // the records up to each ticket
  {
    Tracking tracking(dir.path());
    storage::Env env(dir.path(), kSynced);
    LmdbLogStore store(env, 200);
    tracking.t.after = [&](const std::string&) {
      const std::string into = images.path() + "/" + std::to_string(taken.size());
      powerLossImage(tracking.t, into);
      taken.push_back({into, store.durable()});
    };
    (void)store.load();
    paxos::DurableState state;
    byTicket[0] = state;
    auto write = [&](std::vector<paxos::Record> records) {
      for (const auto& r : records) paxos::applyRecord(state, r);
      byTicket[writeBehind(store, std::move(records))] = state;
    };
    write({paxos::LearnerRecord{false}});
    store.flushNow();
    write({paxos::PromiseRecord{paxos::Ballot{3, 1}}});
    for (paxos::Slot s = 1; s <= 48; ++s) {
      write({acceptOf(s)});
      if (s % 5 == 0) store.flushNow();  // the flusher caught up
      if (s % 16 == 0) {
        write({paxos::CompactRecord{s - 2}});  // flushed as it is written, like NodeCore's
        store.flushNow();
      }
    }
  }
  INFO("images: " << taken.size());
  REQUIRE(taken.size() > 20);
  std::size_t refused = 0;
  std::string why;
  for (const auto& image : taken) {
    INFO("image " << image.dir << " with tickets up to " << image.durable << " durable");
    storage::Env env(image.dir, kUnsynced);
    LmdbLogStore store(env, 200);
    paxos::DurableState state;
    try {
      state = store.load();
    } catch (const storage::LmdbError& e) {
      why += "\n" + image.dir + ": " + e.what();
      ++refused;
      continue;
    }
    const paxos::DurableState& acked = std::prev(byTicket.upper_bound(image.durable))->second;
    CHECK(state.promised >= acked.promised);
    for (const auto& [slot, value] : acked.accepted) {
      if (slot <= state.compactedUpTo) continue;
      CHECK(state.accepted.count(slot) == 1);
    }
  }
  INFO("refused:" << why);
  CHECK(refused == 0);
}

// ---- 2. the node: schedules that held ------------------------------------------------------------

using namespace warden::tests::node;

namespace {

void flushBehindAllVote(NodeId, ClusterOptions& options) {
  options.flushBehind = true;
  options.paxos.thrifty = false;  // every member is sent each Accept: the schedules pick who votes
}

std::string paxosFrame(const paxos::Message& m) {
  return warden::coordinator::node::frame(warden::coordinator::node::Frame::Paxos, paxos::encodeMessage(m));
}

template <typename T>
std::size_t inflightFrom(NodeNet& net, NodeId from, NodeId to) {
  return net.inflight([&](const Frame& f) {
    auto m = f.paxos();
    return f.from == from && f.to == to && m && std::holds_alternative<T>(m->payload);
  });
}

template <typename T>
std::vector<T> takeFrom(NodeNet& net, NodeId from, NodeId to) {
  std::vector<T> out;
  for (const auto& f : net.take([&](const Frame& f) {
         auto m = f.paxos();
         return f.from == from && f.to == to && m && std::holds_alternative<T>(m->payload);
       })) {
    out.push_back(std::get<T>(f.paxos()->payload));
  }
  return out;
}

// Hands `frames` to `to`, one turn each.
void hand(NodeNet& net, NodeId to, const std::vector<Frame>& frames) {
  for (const auto& f : frames) {
    net.core(to).peerFrame(f.from, f.bytes);
    net.core(to).endTurn();
  }
}

bool isAcceptTo(const Frame& f, NodeId to) { return f.to == to && f.is("Accept"); }

// Node 1 leads; node 2's flushes are held (`asked` collects the tickets it was asked to flush);
// a write submitted at node 1; node 1's Accept for it handed to node 2, nothing else delivered.
// Returns the Accept frame node 2 was handed.
struct HeldVote {
  std::vector<std::uint64_t> asked;
  bool acked = false;
  Frame accept;
};
void voteHeldAtTwo(NodeNet& net, HeldVote& v, const std::string& path) {
  net.store(2).onFlushBehind = [&] { v.asked.push_back(net.store(2).written()); };
  net.core(1).submit(
      createCommand(path), [&](CommandResult r) { v.acked = r.status == Status::Ok; }, AnswerWhen::Applied);
  net.turn(1);
  auto accepts = net.take([](const Frame& f) { return isAcceptTo(f, 2); });
  REQUIRE(accepts.size() == 1);
  v.accept = accepts[0];
  hand(net, 2, accepts);
  REQUIRE(!v.asked.empty());
}

}  // namespace

// (1) A Promise reports the acceptor's votes. A late copy of the Prepare of the ballot the
// acceptor already promised needs no new record, so its Promise would leave at once were it not
// for the ticket of the last write: it must wait for the vote it reports. Crash before the flush:
// the vote is gone and nothing ever said it existed.
TEST_CASE("flush-behind review: a Promise to a late copy of the promised ballot's Prepare "
          "waits for the vote it reports",
          "[flushbehind-review]") {
  for (const bool crashFirst : {false, true}) {
    INFO("crash before the flush: " << crashFirst);
    NodeNet net(3, {}, flushBehindAllVote);
    elect(net, 1);
    const paxos::Ballot ballot = net.replica(1)->ballot();
    REQUIRE(net.replica(2)->promised() == ballot);
    net.take(all);  // the rest of the election's traffic is lost
    HeldVote v;
    voteHeldAtTwo(net, v, "/w");
    const paxos::Slot slot = std::get<paxos::Accept>(v.accept.paxos()->payload).slot;
    CHECK(inflightFrom<paxos::Accepted>(net, 2, 1) == 0);
    hand(net, 2, {Frame{1, 2, paxosFrame(paxos::Message{1, 2, paxos::Prepare{ballot, 1}})}});
    CHECK(inflightFrom<paxos::Promise>(net, 2, 1) == 0);
    CHECK(inflightFrom<paxos::Accepted>(net, 2, 1) == 0);
    if (crashFirst) {
      net.crash(2);
      net.restart(2);
      CHECK(net.store(2).state.accepted.count(slot) == 0);
      CHECK(inflightFrom<paxos::Promise>(net, 2, 1) == 0);
      CHECK(inflightFrom<paxos::Accepted>(net, 2, 1) == 0);
      continue;
    }
    net.store(2).endFlush(net.store(2).written());
    net.turn(2);
    auto promises = takeFrom<paxos::Promise>(net, 2, 1);
    REQUIRE(promises.size() == 1);
    CHECK(promises[0].ok);
    bool reported = false;
    for (const auto& e : promises[0].entries) reported |= e.slot == slot && e.ballot == ballot;
    CHECK(reported);
    CHECK(net.store(2).state.accepted.count(slot) == 1);
    CHECK(inflightFrom<paxos::Accepted>(net, 2, 1) == 1);
  }
}

// (1) A re-sent Accept finds the vote made already, in memory only: no record, and its answer
// still waits for the first one's flush. With node 3 cut off, the write needs node 2's vote: it is
// not acknowledged before that flush, and a crash that loses the vote costs only a resend.
TEST_CASE("flush-behind review: an Accept re-sent before the vote's flush is answered only "
          "after it", "[flushbehind-review]") {
  NodeNet net(3, {}, flushBehindAllVote);
  elect(net, 1);
  net.take(all);
  HeldVote v;
  voteHeldAtTwo(net, v, "/w");
  hand(net, 2, {v.accept, v.accept});  // two copies, late
  CHECK(inflightFrom<paxos::Accepted>(net, 2, 1) == 0);
  auto cut3 = [](const Frame& f) { return f.to == 3 || f.from == 3; };
  // The leader resends; node 2 answers none of it while the flush is held.
  net.runUntil({1, 2}, all, [&] { return v.acked; }, cut3, 30);
  CHECK_FALSE(v.acked);
  // Node 2 dies with its vote unflushed; its next process votes again and the write goes through.
  net.crash(2);
  net.store(2).onFlushBehind = nullptr;
  net.restart(2);
  net.runUntil({1, 2}, all, [&] { return v.acked && has(net, 2, "/w"); }, cut3, 300);
  CHECK(v.acked);
  CHECK(has(net, 1, "/w"));
  CHECK(has(net, 2, "/w"));
}

// Flushes may end in any order: a later one covers every write before it. The answers then leave
// in the order they were made, and the earlier flush's late end changes nothing.
TEST_CASE("flush-behind review: flushes ending in reverse order release the held answers "
          "once, in order", "[flushbehind-review]") {
  NodeNet net(3, {}, flushBehindAllVote);
  elect(net, 1);
  net.take(all);
  HeldVote a;
  voteHeldAtTwo(net, a, "/a");
  HeldVote b;
  voteHeldAtTwo(net, b, "/b");
  REQUIRE(a.asked.size() == 1);
  REQUIRE(b.asked.size() == 1);
  REQUIRE(a.asked[0] < b.asked[0]);
  CHECK(inflightFrom<paxos::Accepted>(net, 2, 1) == 0);
  net.store(2).endFlush(b.asked[0]);  // the second flush ends first
  net.turn(2);
  auto answers = takeFrom<paxos::Accepted>(net, 2, 1);
  REQUIRE(answers.size() == 2);
  CHECK(answers[0].slot < answers[1].slot);
  net.store(2).endFlush(a.asked[0]);  // the first ends late
  net.turn(2);
  CHECK(inflightFrom<paxos::Accepted>(net, 2, 1) == 0);
}

// (2) and "after stepping down": the leader's Accept left, its own vote is unflushed, and a
// higher Prepare reaches it (after the lease it gave itself ran out). It steps down; its Promise,
// which reports that vote, waits for the flush. A power loss first: the vote and the promise are
// gone, nothing said they existed, nothing was acknowledged, and the others go on consistently.
// The flush first: the new leader learns the vote and chooses that value; the old leader's
// client hears it was applied, once.
TEST_CASE("flush-behind review: a leader deposed with its own vote unflushed promises it "
          "only once flushed", "[flushbehind-review]") {
  for (const bool powerLoss : {false, true}) {
    INFO("power loss before the flush: " << powerLoss);
    NodeNet net(3, {}, flushBehindAllVote);
    elect(net, 1);
    const paxos::Ballot ballot = net.replica(1)->ballot();
    net.take(all);
    std::vector<std::uint64_t> asked;
    net.store(1).onFlushBehind = [&] { asked.push_back(net.store(1).written()); };
    int answers = 0;
    bool acked = false;
    net.core(1).submit(
        createCommand("/w"),
        [&](CommandResult r) {
          ++answers;
          acked = r.status == Status::Ok;
        },
        AnswerWhen::Applied);
    net.turn(1);
    // Its Accepts are lost on the way; its own vote is written, not flushed.
    const auto lost = net.take([](const Frame& f) { return f.is("Accept"); });
    REQUIRE(lost.size() == 2);
    const paxos::Slot slot = std::get<paxos::Accept>(lost[0].paxos()->payload).slot;
    REQUIRE(!asked.empty());
    net.now += 400'000;  // its own lease ran out (heartbeats to itself are held too)
    const paxos::Ballot higher{ballot.round + 1, 2};
    hand(net, 1, {Frame{2, 1, paxosFrame(paxos::Message{2, 1, paxos::Prepare{higher, 1}})}});
    CHECK_FALSE(net.leads(1));
    CHECK(inflightFrom<paxos::Promise>(net, 1, 2) == 0);
    net.take([](const Frame& f) { return f.is("Accept"); });  // resends from its last turn as leader
    if (powerLoss) {
      net.powerLoss(1);
      net.store(1).onFlushBehind = nullptr;
      net.restart(1);
      CHECK(net.store(1).state.promised < higher);
      CHECK(net.store(1).state.accepted.count(slot) == 0);
      const NodeId leader = net.servingLeader({1, 2, 3});
      REQUIRE(leader != 0);
      bool after = false;
      net.core(leader).submit(createCommand("/after"), [&](CommandResult r) { after = r.status == Status::Ok; });
      net.runUntil({1, 2, 3}, all, [&] {
        return after && has(net, 1, "/after") && has(net, 2, "/after") && has(net, 3, "/after");
      });
      REQUIRE(after);
      CHECK(answers == 0);  // the process that took the write is gone
      CHECK(has(net, 2, "/w") == has(net, 3, "/w"));
      CHECK(has(net, 1, "/w") == has(net, 2, "/w"));
      continue;
    }
    net.store(1).endFlush(net.store(1).written());
    net.store(1).onFlushBehind = nullptr;
    net.turn(1);
    auto promises = takeFrom<paxos::Promise>(net, 1, 2);
    REQUIRE(promises.size() == 1);
    bool reported = false;
    for (const auto& e : promises[0].entries) reported |= e.slot == slot && e.ballot == ballot;
    CHECK(reported);
    // The election runs its course (node 2 never sent that Prepare: it campaigns on its own).
    net.runUntil({1, 2, 3}, all, [&] { return acked && has(net, 2, "/w") && has(net, 3, "/w"); }, none, 3'000);
    CHECK(acked);
    CHECK(answers == 1);
  }
}

// (1) A follower that never promised the leader's ballot (cut off during the election) raises its
// promise on the leader's heartbeat. The acknowledgement counts toward the leader's lease and read
// rounds, so it waits for that promise's flush; a crash first loses the promise unseen.
TEST_CASE("flush-behind review: a heartbeat's acknowledgement waits for the promise it "
          "raised", "[flushbehind-review]") {
  NodeNet net(3, {}, flushBehindAllVote);
  auto cut3 = [](const Frame& f) { return f.to == 3 || f.from == 3; };
  net.runUntil({1, 2, 3}, all, [&] { return net.replica(1) && net.replica(2) && net.replica(3); }, none, 20);
  NodeId leader = 0;
  net.runUntil({1, 2}, all, [&] {
    for (NodeId id : {NodeId{1}, NodeId{2}}) {
      if (net.leads(id) && net.core(id).servesSessions()) leader = id;
    }
    return leader != 0;
  }, cut3, 1'000);
  REQUIRE(leader != 0);
  const paxos::Ballot ballot = net.replica(leader)->ballot();
  REQUIRE(net.replica(3)->promised() < ballot);
  net.take(cut3);
  std::vector<std::uint64_t> asked;
  net.store(3).onFlushBehind = [&] { asked.push_back(net.store(3).written()); };
  hand(net, 3, {Frame{leader, 3, paxosFrame(paxos::Message{leader, 3, paxos::Heartbeat{ballot, 0, 1, net.now}})}});
  CHECK(net.replica(3)->promised() == ballot);
  REQUIRE(!asked.empty());
  CHECK(inflightFrom<paxos::HeartbeatReply>(net, 3, leader) == 0);
  net.crash(3);
  net.restart(3);
  CHECK(net.store(3).state.promised < ballot);
  CHECK(inflightFrom<paxos::HeartbeatReply>(net, 3, leader) == 0);
}

// (3) Chosen slots are applied at once, even one this follower learned from its own unflushed
// vote (its vote was not counted: the leader and node 3 chose it). A power loss then takes the
// vote and maybe the apply; the restarted node learns the slot again and applies it once.
TEST_CASE("flush-behind review: a follower applies a slot chosen without its unflushed "
          "vote and keeps it across a power loss",
          "[flushbehind-review]") {
  NodeNet net(3, {}, flushBehindAllVote);
  elect(net, 1);
  net.take(all);
  HeldVote v;
  voteHeldAtTwo(net, v, "/w");
  // Node 3 votes and flushes; the leader chooses the slot with its own vote and node 3's.
  net.runUntil(
      {1, 2, 3}, [](const Frame& f) { return f.from != 2; }, [&] { return v.acked && has(net, 2, "/w"); }, none, 50);
  REQUIRE(v.acked);
  CHECK(has(net, 2, "/w"));  // applied from node 2's own, unflushed vote
  CHECK(inflightFrom<paxos::Accepted>(net, 2, 1) == 0);
  net.powerLoss(2);
  net.store(2).onFlushBehind = nullptr;
  net.restart(2);
  bool after = false;
  net.core(1).submit(createCommand("/after"), [&](CommandResult r) { after = r.status == Status::Ok; });
  net.runUntil({1, 2, 3}, all, [&] { return after && has(net, 2, "/after"); }, none, 1'000);
  REQUIRE(after);
  CHECK(has(net, 2, "/w"));
  CHECK(revisionOf(net, 2) == revisionOf(net, 1));
}
