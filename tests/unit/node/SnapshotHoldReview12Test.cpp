// Review of ee05db8 (NodeCore::compactionPoint: a snapshot's sender keeps the log slots after the
// snapshot while it streams and while the receiver installs, so that the receiver catches up from
// the log instead of needing a newer snapshot).
//
// No safety fault was found: the point returned is never below compactedUpTo + 1, never above
// applied_ (so never past what is chosen and delivered), and a held log only delays the
// CompactRecord (and its LMDB flush and WAL fold). What these tests show is a liveness gap: the
// slots are kept by the node that SENT the snapshot, but a member that installed one asks the
// node it follows (the leader: learnCommit -> requestCatchup(leader)) for the slots after it. When
// those are different nodes, the hold is of no use and the member is sent another snapshot:
//  - a wiped member asks every peer (askRebuild), each peer answers with a stream, and the member
//    keeps whichever first chunk arrives first: a follower's stream wins as often as the
//    leader's (the case the commit was written for: a wiped member under steady writes);
//  - the sender loses its leadership while the member installs (a crash, a partition).
// The second schedule (leadership lost mid-install) is argued, not tested here. Each test: node 3
// should need a single snapshot. Both fail on ee05db8.

#include <catch2/catch.hpp>

#include <optional>
#include <set>

#include "tests/unit/node/NodeNetHelpers.h"

using namespace warden::tests::node;

namespace {




void tune(NodeId, ClusterOptions& o) {
  o.retainedSlots = 5;
  o.snapshotChunkBytes = 400;
  o.installStepBytes = 20;
}

void writeAll(NodeNet& net, NodeId leader, int n, const std::vector<NodeId>& up) {
  for (int i = 0; i < n; ++i) {
    bool done = false;
    net.core(leader).submit(createCommand("/k" + std::to_string(i), 40), [&](CommandResult r) {
      CHECK(r.status == Status::Ok);
      done = true;
    });
    net.runUntil(up, all, [&] { return done; });
    REQUIRE(done);
  }
}

struct Outcome {
  std::set<std::pair<NodeId, std::uint64_t>> streamsStaged;  // (sender, stream) node 3 acknowledged
  std::size_t installs = 0;
  std::set<std::uint64_t> staleRequests;  // catch-up requests sent after the install for slots it covers (from)
  bool caughtUp = false;
  std::vector<std::string> lines;  // the snapshot lines of every node
};

// Node 3's disk is wiped after 400 writes (retained slots 10 everywhere); while leader 1 goes on
// writing, a write every other step (20 ms), node 3 rebuilds. Its rebuild request reaches both
// peers and both stream a snapshot; the first chunk node 3 sees is `winner`'s (the other's chunks
// to it are lost until it has taken one). Its install takes a few seconds (a row a turn).
Outcome wipedMemberRebuiltFrom(NodeId winner, bool catchupFromLeader = false) {
  NodeNet net(3, {}, [catchupFromLeader](NodeId id, ClusterOptions& o) {
    tune(id, o);
    o.retainedSlots = 10;
    o.paxos.bugs.catchupFromLeaderAfterInstall = catchupFromLeader;
    o.paxos.thrifty = false;  // as found: with the leader's pushes, the rebuilt node rarely asks anyone
  });
  elect(net, 1);
  writeAll(net, 1, 400, {1, 2, 3});
  REQUIRE(net.replica(1)->compactedUpTo() > 1);
  REQUIRE(net.replica(2)->compactedUpTo() > 1);
  net.wipe(3);
  net.restart(3);

  Outcome out;
  NodeId taken = 0;
  int written = 0, answered = 0, step = 0;
  std::uint64_t takenAt = 0, installedAt = 0;
  std::optional<std::uint64_t> installedSlot;
  auto deliver = [&](const Frame& f) {
    // A catch-up request node 3 sends once a snapshot is in, for slots that snapshot covers.
    // (settle asks about each frame in flight more than once: counted as a set)
    if (!installedSlot) {
      const std::string installed = "installed a snapshot from node ";
      for (const auto& line : net.logs[3]) {
        if (line.rfind(installed, 0) == 0) installedSlot = std::stoull(line.substr(line.rfind(' ') + 1));
      }
    }
    if (f.from == 3 && f.is("CatchupRequest") && installedSlot) {
      const auto m = f.paxos();
      const auto& r = std::get<paxos::CatchupRequest>(m->payload);
      if (r.nonce == 0 && r.fromSlot <= *installedSlot) out.staleRequests.insert(r.fromSlot);
    }
    if (isAckFrom(f, 3)) {
      out.streamsStaged.insert({f.to, streamOf(f)});
      if (!taken) {
        taken = f.to;
        takenAt = net.now;
      }
    }
    return true;
  };
  auto drop = [&](const Frame& f) { return !taken && isChunkTo(f, 3) && f.from != winner; };
  net.runUntil({1, 2, 3}, deliver, [&] {
    if (!installedAt && count(net, 3, "installed a snapshot") > 0) installedAt = net.now;
    if (written < 1000 && step++ % 2 == 0) {
      net.core(1).submit(createCommand("/w" + std::to_string(written++), 40), [&](CommandResult r) {
        CHECK(r.status == Status::Ok);
        ++answered;
      });
    }
    return installedAt && answered == written && !installing(net, 3) && net.core(3).applied() == net.core(1).applied();
  }, drop, 3'000);
  INFO("stream taken at " << takenAt << " us, first install at " << installedAt << " us; writes " << written);
  REQUIRE(answered == written);
  REQUIRE(taken == winner);
  for (NodeId id : {1, 2, 3}) {
    for (const auto& l : net.logs[id]) {
      if (l.find("snapshot") != std::string::npos) out.lines.push_back(std::to_string(id) + ": " + l);
    }
  }
  out.installs = count(net, 3, "installed a snapshot");
  out.caughtUp = revisionOf(net, 3) == revisionOf(net, 1) && net.core(3).applied() == net.core(1).applied();
  return out;
}

}  // namespace

std::string describe(const Outcome& out) {
  std::string text = "streams staged: " + std::to_string(out.streamsStaged.size()) + ", installs: " +
                     std::to_string(out.installs) + ", stale catch-up requests after the install from:";
  for (auto from : out.staleRequests) text += " " + std::to_string(from);
  for (const auto& line : out.lines) text += "\n  " + line;
  return text;
}

// Finding 1. The member's replica asks its leader for catch-up (from its pre-install commit
// index + 1) in a turn whose install step then finishes the install: stepInstall runs before
// finishReadyBatch, so installing_ is already reset when that Ready is released and the request
// is sent. Its slots are below the leader's compaction (that is why a snapshot was needed), so the
// leader answers with a new stream at its current applied index, which the member takes (it is
// ahead of what it installed) and installs: the slots the sender kept go unused.
TEST_CASE("review12: a wiped member rebuilt from the leader's stream needs one snapshot", "[review12]") {
  const Outcome out = wipedMemberRebuiltFrom(1);
  INFO(describe(out));
  CHECK(out.caughtUp);
  CHECK(out.staleRequests.empty());
  CHECK(out.installs == 1);
  CHECK(out.streamsStaged.size() == 1);
}

// Finding 2. The slots are kept by the snapshot's sender, but the member caught up from its
// leader. A wiped member asks every peer (askRebuild) and keeps the first stream whose chunk 0
// arrives; when that is a follower's, the leader's own stream is abandoned 2 s later and the
// leader compacts normally, so after a longer install the member was sent another snapshot.
// Fixed: after an install the replica asks the snapshot's sender for the slots after it
// (Replica::catchupTarget), then the leader for the rest.
TEST_CASE("review12: a wiped member rebuilt from a follower's stream finds the slots after it kept", "[review12]") {
  const Outcome out = wipedMemberRebuiltFrom(2);
  INFO(describe(out));
  CHECK(out.caughtUp);
  CHECK(out.installs == 1);
  CHECK(out.streamsStaged.size() == 1);
}

// The planted bug: catching up from the leader after a follower's snapshot needs a second one.
TEST_CASE("review12: with catch-up from the leader after an install, a follower's snapshot is not enough", "[review12]") {
  const Outcome out = wipedMemberRebuiltFrom(2, true);
  INFO(describe(out));
  CHECK(out.installs > 1);  // (and it has not caught up when the writes end: a third is under way)
}
