// Snapshot installs in steps (issue 9), step by step: the schedules of the adversarial review of
// the stepped install, each a test. Node 3 is cut off while leader 1 writes and compacts; let
// back, it is rebuilt from a snapshot installed in tiny steps.
#include <catch2/catch.hpp>

#include <optional>
#include <set>

#include "tests/unit/node/NodeNetHelpers.h"

using namespace warden::tests::node;
using Kind = warden::coordinator::node::Frame;

namespace {


// Node 3 is cut off while leader 1 writes `writes` entries and compacts them away; then it is let
// back and rebuilt from a snapshot, installed in tiny steps.
struct Setup {
  NodeNet net;
  explicit Setup(std::size_t steps = 60, std::size_t stepBytes = 60, std::uint64_t retained2 = 5,
                 bool compactUnderSnapshot = false)
      : net(3, {}, [=](NodeId id, ClusterOptions& o) {
          o.retainedSlots = id == 2 ? retained2 : 5;
          o.bugs.compactUnderSnapshot = compactUnderSnapshot;
          o.snapshotChunkBytes = 400;
          o.installStepBytes = stepBytes;
        }) {
    elect(net, 1);
    auto cut3 = [](const Frame& f) { return (f.from == 3 || f.to == 3) && f.from != f.to; };
    int answered = 0;
    for (std::size_t i = 0; i < steps; ++i) {
      net.core(1).submit(createCommand("/k" + std::to_string(i), 40), [&](CommandResult r) {
        CHECK(r.status == Status::Ok);
        ++answered;
      });
      net.runUntil({1, 2}, [&](const warden::tests::node::Frame& f) { return !cut3(f); },
                   [&] { return answered == static_cast<int>(i + 1); }, cut3);
    }
    REQUIRE(answered == static_cast<int>(steps));
    REQUIRE(net.replica(1)->compactedUpTo() > net.replica(3)->commitIndex() + 1);
  }
};

bool isChunk(const warden::tests::node::Frame& f) { return f.isKind(Kind::SnapshotChunk); }

}  // namespace

TEST_CASE("a stepped install is fed one snapshot: no second stream while it installs or after") {
  Setup s;
  NodeNet& net = s.net;
  std::size_t chunksTo3 = 0;
  std::set<std::uint64_t> streamsStaged;  // stream ids node 3 acknowledged
  bool installedSeen = false;
  std::size_t chunksAfterInstall = 0;
  auto deliver = [&](const warden::tests::node::Frame& f) {
    if (isChunk(f) && f.to == 3) {
      ++chunksTo3;
      if (installedSeen) ++chunksAfterInstall;
    }
    if (f.isKind(Kind::SnapshotAck) && f.from == 3) {
      warden::coordinator::Decoder in(std::string_view(f.bytes).substr(1));
      streamsStaged.insert(in.varint());
    }
    return true;
  };
  net.runUntil({1, 2, 3}, deliver, [&] {
    if (!installedSeen && count(net, 3, "installed a snapshot") > 0) installedSeen = true;
    return false;
  }, none, 600);
  INFO("chunks to 3: " << chunksTo3 << " (after the install: " << chunksAfterInstall << ")");
  REQUIRE(installedSeen);
  CHECK(revisionOf(net, 3) == revisionOf(net, 1));
  // One snapshot is all node 3 needs (before the fix it staged a second one after the install,
  // and refused streams ran all through it).
  CHECK(streamsStaged.size() == 1);
  CHECK(chunksAfterInstall == 0);
  CHECK(count(net, 1, "abandoned a snapshot for node 3") == 0);
}

TEST_CASE("entries chosen during an install are held, then applied once") {
  Setup s;
  NodeNet& net = s.net;
  // Deliver until node 3 is installing.
  net.runUntil({1, 2, 3}, all, [&] { return installing(net, 3); }, none, 600);
  REQUIRE(installing(net, 3));
  int answered = 0;
  for (int i = 0; i < 5; ++i) {
    net.core(1).submit(createCommand("/during" + std::to_string(i), 40), [&](CommandResult r) {
      CHECK(r.status == Status::Ok);
      ++answered;
    });
  }
  net.runUntil({1, 2, 3}, all, [&] { return answered == 5 && !installing(net, 3) && net.core(3).applied() == net.core(1).applied(); },
               none, 600);
  CHECK(revisionOf(net, 3) == revisionOf(net, 1));
  CHECK(net.core(3).applied() == net.core(1).applied());
}

TEST_CASE("a crash between install steps finishes the install at restart") {
  for (int afterSteps : {0, 1, 3}) {
    Setup s;
    NodeNet& net = s.net;
    net.runUntil({1, 2, 3}, all, [&] { return installing(net, 3); }, none, 600);
    REQUIRE(installing(net, 3));
    for (int i = 0; i < afterSteps; ++i) net.turn(3);
    REQUIRE(installing(net, 3));
    net.crash(3);
    net.restart(3);
    CHECK_FALSE(installing(net, 3));
    net.runUntil({1, 2, 3}, all, [&] { return net.core(3).applied() == net.core(1).applied(); }, none, 600);
    CHECK(revisionOf(net, 3) == revisionOf(net, 1));
  }
}

TEST_CASE("a node installing a snapshot does not campaign, and slots chosen meanwhile are applied once") {
  Setup s(60, 8, 100'000);  // node 2 keeps its whole log
  NodeNet& net = s.net;
  net.runUntil({1, 2, 3}, all, [&] { return installing(net, 3); }, none, 600);
  REQUIRE(installing(net, 3));
  net.crash(1);
  int answered = 0;
  bool submitted = false;
  std::uint64_t leadAt3 = 0, doneAt = 0;
  bool installingWhenLed = false;
  net.runUntil({2, 3}, all, [&] {
    NodeId l = net.leads(2) ? 2 : net.leads(3) ? 3 : 0;
    if (l == 3 && !leadAt3) { leadAt3 = net.now; installingWhenLed = installing(net, 3); }
    if (leadAt3 && !installing(net, 3) && !doneAt) doneAt = net.now;
    if (!submitted && l && net.core(l).servesSessions()) {
      submitted = true;
      for (int i = 0; i < 3; ++i) net.core(l).submit(createCommand("/after" + std::to_string(i), 40), [&](CommandResult r) {
        CHECK(r.status == Status::Ok);
        ++answered;
      });
    }
    return answered == 3 && !installing(net, 3) && net.core(3).applied() == net.core(2).applied();
  }, none, 2000);
  INFO("node 3 led at " << leadAt3 << " us; its install was done at " << doneAt << " us");
  CHECK_FALSE(installingWhenLed);  // before the fix it could win an election mid-install
  CHECK(answered == 3);
  CHECK(revisionOf(net, 3) == revisionOf(net, 2));
}

TEST_CASE("a write sent during an install and chosen past the snapshot is answered with its result") {
  Setup s(60, 8, 100'000);
  NodeNet& net = s.net;
  net.runUntil({1, 2, 3}, all, [&] { return installing(net, 3); }, none, 600);
  REQUIRE(installing(net, 3));
  net.crash(1);
  std::optional<CommandResult> result;
  bool submitted = false;
  net.runUntil({2, 3}, all, [&] {
    NodeId l = net.leads(2) ? 2 : net.leads(3) ? 3 : 0;
    if (!submitted && l) {
      submitted = true;
      net.core(3).submit(createCommand("/during", 40), [&](CommandResult r) { result = std::move(r); });
    }
    return result.has_value() && !installing(net, 3);
  }, none, 2000);
  REQUIRE(result);
  const bool applied = net.read(3, [](const StateMachine& sm, auto& txn) { return sm.tree().get(txn, "/during").has_value(); });
  INFO(result->message);
  CHECK(applied);
  CHECK(result->status == Status::Ok);
}

namespace {

bool isLastChunk(const warden::tests::node::Frame& f) {
  if (!isChunk(f) || f.to != 3) return false;
  warden::coordinator::Decoder in(std::string_view(f.bytes).substr(1));
  in.varint();  // stream
  in.varint();  // chunk
  return in.boolean();
}

std::uint64_t chunkApplied(const warden::tests::node::Frame& f) {
  warden::coordinator::Decoder in(std::string_view(f.bytes).substr(1));
  in.varint();
  in.varint();
  in.boolean();
  return in.varint();
}

struct SameTurnOutcome {
  bool installed = false;      // node 3 installed the snapshot
  bool sameState = false;      // and ended with leader 1's state and applied index
};

// Issue 9 ("also found"): a snapshot arriving in the same turn as chosen entries that already
// cover it. Node 3, cut off while leader 1 wrote and compacted, is sent a snapshot; its last chunk
// is held. Node 2 (which keeps its whole log) answers a catch-up request of node 3 with entries
// past the snapshot's slot. Both frames reach node 3 in one turn, the entries first: they are
// delivered to the node but not applied yet when the last chunk asks for an install.
SameTurnOutcome snapshotInTheTurnOfItsEntries(ClusterOptions::Bugs bugs) {
  NodeNet net(3, bugs, [](NodeId id, ClusterOptions& o) {
    o.retainedSlots = id == 2 ? 100'000 : 5;
    o.snapshotChunkBytes = 400;
    o.installStepBytes = 60;
  });
  elect(net, 1);
  auto cut3 = [](const Frame& f) { return (f.from == 3 || f.to == 3) && f.from != f.to; };
  int answered = 0;
  for (int i = 0; i < 40; ++i) {
    net.core(1).submit(createCommand("/k" + std::to_string(i), 40), [&](CommandResult r) { answered += r.status == Status::Ok; });
    net.runUntil({1, 2}, [&](const Frame& f) { return !cut3(f); }, [&] { return answered == i + 1; }, cut3);
  }
  REQUIRE(answered == 40);
  REQUIRE(net.replica(1)->compactedUpTo() > net.replica(3)->commitIndex() + 1);

  // Node 3 is back; the snapshot streams to it until its last chunk, which is held.
  net.runUntil({1, 2, 3}, [](const Frame& f) { return !isLastChunk(f); }, [&] { return net.inflight(isLastChunk) > 0; },
               none, 600);
  std::vector<Frame> last = net.take(isLastChunk);
  REQUIRE(!last.empty());
  const std::uint64_t snapshotSlot = chunkApplied(last.front());
  REQUIRE(snapshotSlot > net.replica(3)->commitIndex());

  // Node 2 answers node 3's catch-up request (as a leader it once was would) with entries past it.
  paxos::Message request{3, 2, paxos::CatchupRequest{net.replica(3)->commitIndex() + 1}};
  net.core(2).peerFrame(3, warden::coordinator::node::frame(Kind::Paxos, paxos::encodeMessage(request)));
  net.core(2).endTurn();
  std::vector<Frame> entries = net.take([](const Frame& f) { return f.from == 2 && f.to == 3 && f.is("CatchupReply"); });
  REQUIRE(entries.size() == 1);
  const auto message = entries.front().paxos();  // (kept: a reference into the temporary would dangle)
  const auto& reply = std::get<paxos::CatchupReply>(message->payload);
  REQUIRE(!reply.entries.empty());
  REQUIRE(reply.entries.back().slot >= snapshotSlot);

  // One turn of node 3: the entries, then the last chunk.
  net.core(3).peerFrame(2, entries.front().bytes);
  net.core(3).peerFrame(1, last.front().bytes);
  net.core(3).endTurn();
  net.runUntil({1, 2, 3}, all, [&] { return !installing(net, 3) && net.core(3).applied() == net.core(1).applied(); }, none,
               600);
  SameTurnOutcome out;
  out.installed = count(net, 3, "installed a snapshot") > 0;
  out.sameState = !installing(net, 3) && net.core(3).applied() == net.core(1).applied() && revisionOf(net, 3) == revisionOf(net, 1);
  return out;
}

}  // namespace

TEST_CASE("a snapshot arriving in the turn of chosen entries that cover it is not installed over them") {
  const SameTurnOutcome outcome = snapshotInTheTurnOfItsEntries({});
  CHECK_FALSE(outcome.installed);
  CHECK(outcome.sameState);
}

TEST_CASE("with the install guard undone the covered snapshot is installed, and apply's skip still keeps the state right") {
  // The guard is no longer all that stands between this schedule and a wrong state: the entries
  // are held during the stepped install and apply skips those the snapshot covers. This shows
  // the switch does reach the install (so the test above tests the guard), not a failure.
  ClusterOptions::Bugs bugs;
  bugs.installOverUnapplied = true;
  const SameTurnOutcome outcome = snapshotInTheTurnOfItsEntries(bugs);
  CHECK(outcome.installed);
  CHECK(outcome.sameState);
}

namespace {

// The first chunk of a snapshot stream as its sender would cut it (no rows: the receiver only
// decides here whether to take the stream).
std::string firstChunk(std::uint64_t stream, std::uint64_t applied) {
  warden::coordinator::Encoder out;
  out.varint(stream);
  out.varint(0);  // chunk
  out.boolean(false);
  out.varint(applied);
  out.varint(0);  // rows
  return warden::coordinator::node::frame(Kind::SnapshotChunk, out.data());
}

bool ackFrom3To(const Frame& f, NodeId to) { return f.from == 3 && f.to == to && f.isKind(Kind::SnapshotAck); }

}  // namespace

// Found by the 200,000-run sweep (seed 1007743, 3 nodes): a wiped node had taken node 2's stream;
// node 2 gave it up, but a chunk of it delivered late made it look alive just as the leader's
// stream began, and the node turned the leader's stream away for 2 s more (twice the time its
// rebuild may take). A stream from the leader it follows now replaces another peer's once that
// one has been quiet for two resend intervals; a stream staging chunks is never displaced.
TEST_CASE("a snapshot stream from the leader replaces another peer's quiet stream that still looks alive") {
  Setup s;
  NodeNet& net = s.net;
  REQUIRE(net.replica(3)->leaderHint() == 1);
  const std::uint64_t ahead = net.core(1).applied();
  net.core(3).peerFrame(2, firstChunk(7, ahead));
  net.core(3).endTurn();
  REQUIRE(net.take([](const Frame& f) { return ackFrom3To(f, 2); }).size() == 1);  // node 2's stream taken
  net.now += 100'000;  // node 2's stream staged a chunk 0.1 s ago: live, kept even against the leader
  net.core(3).peerFrame(1, firstChunk(9, ahead));
  net.core(3).endTurn();
  CHECK(net.take([](const Frame& f) { return ackFrom3To(f, 1); }).empty());
  net.now += 900'000;  // quiet for 1 s: alive by the stall rule, but the leader may take over
  net.core(3).peerFrame(1, firstChunk(9, ahead));
  net.core(3).endTurn();
  CHECK(net.take([](const Frame& f) { return ackFrom3To(f, 1); }).size() == 1);  // the leader's taken

  // And not the other way round: the leader's stream, alive, is not given up for another peer's.
  net.now += 1'000'000;
  net.core(3).peerFrame(2, firstChunk(8, ahead));
  net.core(3).endTurn();
  CHECK(net.take([](const Frame& f) { return ackFrom3To(f, 2); }).empty());
}

namespace {
// Node 3 is let back and rebuilt while leader 1 goes on writing, a write a step, 60 in all (far
// more than the 5 retained slots): how far past the snapshot it sent node 1 compacted its log
// before node 3 had installed it (slots node 3 then asks for, and would need another snapshot).
std::int64_t compactedPastTheSnapshot(bool compactUnderSnapshot) {
  Setup s(60, 20, 5, compactUnderSnapshot);
  NodeNet& net = s.net;
  int written = 0, answered = 0;
  std::optional<std::uint64_t> sentUpTo;
  std::int64_t past = -1'000'000;
  net.runUntil({1, 2, 3}, all, [&] {
    if (written < 60) {
      net.core(1).submit(createCommand("/w" + std::to_string(written++), 40), [&](CommandResult r) {
        CHECK(r.status == Status::Ok);
        ++answered;
      });
    }
    for (const auto& line : net.logs[1]) {
      const std::string sent = "sent node 3 a snapshot up to slot ";
      if (!sentUpTo && line.rfind(sent, 0) == 0) sentUpTo = std::stoull(line.substr(sent.size()));
    }
    if (sentUpTo && count(net, 3, "installed a snapshot") == 0) {
      past = std::max(past, static_cast<std::int64_t>(net.replica(1)->compactedUpTo()) - static_cast<std::int64_t>(*sentUpTo));
    }
    return answered == 60 && revisionOf(net, 3) == revisionOf(net, 1);
  }, none, 3'000);
  REQUIRE(answered == 60);
  REQUIRE(sentUpTo);
  CHECK(revisionOf(net, 3) == revisionOf(net, 1));
  CHECK(count(net, 3, "installed a snapshot") >= 1);
  return past;
}
}  // namespace

TEST_CASE("a member rebuilt while writes go on finds the slots after its snapshot kept by the sender") {
  // Before, the slots after the snapshot were compacted while it streamed and installed, and the
  // member asked for them only to be sent a newer snapshot (three in a row at 10,000,000 nodes,
  // each install outlasting the retained slots).
  CHECK(compactedPastTheSnapshot(false) <= 0);
}

TEST_CASE("the rebuild check catches a sender that compacts under a snapshot it sent (planted)") {
  CHECK(compactedPastTheSnapshot(true) > 0);
}
