// The whole-node simulator as a test suite: thousands of seeded runs of the real node core must
// pass every check; a seed replays exactly; and each check, with a defect planted back in the
// real node code, is the one that catches it.

#include <catch2/catch.hpp>

#include <functional>
#include <optional>

#include "tests/sim/NodeSimulation.h"

using namespace warden::tests::sim;

namespace {

void runNodeSeeds(std::size_t replicas, std::uint64_t first, std::uint64_t count) {
  std::uint64_t operations = 0, expiries = 0, wipes = 0, lockGrants = 0;
  for (std::uint64_t seed = first; seed < first + count; ++seed) {
    NodeSimOptions options;
    options.seed = seed;
    options.replicas = replicas;
    const NodeSimResult result = runNodeSimulation(options);
    if (!result.ok) {
      FAIL(result.violation << "\n  replay: scripts/sim --node --seed " << seed << " --replicas " << replicas << " --trace");
    }
    operations += result.okOperations;
    expiries += result.expiries;
    wipes += result.wipes;
    lockGrants += result.lockGrants;
  }
  CHECK(operations > count * 200);  // the workload really ran
  CHECK(expiries > count / 2);
  CHECK(wipes > count / 4);  // (fewer in the runs a nemesis schedule takes over)
  CHECK(lockGrants > count * 2);
}

// Seeds first to last, 3 and 5 nodes each, with a fifth of the writes large and the log
// compacted past 3,000 bytes of slots; `also` sees each passing run.
void compactByBytes(std::uint64_t first, std::uint64_t last,
                    const std::function<void(NodeSimOptions, const NodeSimResult&)>& also) {
  for (std::uint64_t seed = first; seed <= last; ++seed) {
    for (std::size_t replicas : {3, 5}) {
      NodeSimOptions options;
      options.seed = seed;
      options.replicas = replicas;
      options.largeWriteShare = 0.2;
      options.retainedBytes = 3'000;
      const NodeSimResult result = runNodeSimulation(options);
      if (!result.ok) {
        FAIL(result.violation << "\n  replay: build/warden_nodesim --seed " << seed << " --replicas " << replicas
                              << " --large-writes 0.2 --retained-bytes 3000 --trace");
      }
      also(options, result);
    }
  }
}

struct NodeCaught {
  std::uint64_t seed;
  std::string check;
};

// The first run, up to `limit` seeds (3 and 5 nodes each), in which the planted defect is caught.
std::optional<NodeCaught> firstCaught(const std::function<void(NodeSimOptions&)>& plant, std::uint64_t limit) {
  for (std::uint64_t seed = 1; seed <= limit; ++seed) {
    for (std::size_t replicas : {3, 5}) {
      NodeSimOptions options;
      options.seed = seed;
      options.replicas = replicas;
      plant(options);
      const NodeSimResult result = runNodeSimulation(options);
      if (!result.ok) return NodeCaught{seed, result.check};
    }
  }
  return std::nullopt;
}

}  // namespace

TEST_CASE("whole nodes of three keep every invariant under seeds 1 to 500") { runNodeSeeds(3, 1, 500); }
TEST_CASE("whole nodes of three keep every invariant under seeds 501 to 1000") { runNodeSeeds(3, 501, 500); }
TEST_CASE("whole nodes of five keep every invariant under seeds 1 to 500") { runNodeSeeds(5, 1, 500); }
TEST_CASE("whole nodes of five keep every invariant under seeds 501 to 1000") { runNodeSeeds(5, 501, 500); }

TEST_CASE("whole nodes keep every invariant under a few seeds") {
  // The short sweep the sanitizer pass runs.
  runNodeSeeds(3, 1, 15);
  runNodeSeeds(5, 1, 10);
}

TEST_CASE("whole nodes keep every invariant when large slots compact the log by bytes") {
  // retainedBytes below a few slots' worth (the production default is never reached here): the
  // log is compacted by bytes, so laggards and wiped members need snapshots more often. Seeds 1
  // to 3 here: the sanitizer pass runs this case, and its large values (100 to 900 KB, copied
  // and page-faulted at every hop) make a run about nine times slower under ASan. Seeds 4 to 30
  // below, in the normal pass only.
  std::uint64_t snapshots = 0;
  compactByBytes(1, 3, [&](NodeSimOptions, const NodeSimResult& result) { snapshots += result.snapshots; });
  CHECK(snapshots > 0);
}

TEST_CASE("whole nodes keep every invariant when large slots compact the log by bytes under seeds 4 to 30") {
  std::uint64_t snapshots = 0, snapshotsByBytes = 0, snapshotsBySlots = 0;
  compactByBytes(4, 30, [&](NodeSimOptions options, const NodeSimResult& result) {
    snapshots += result.snapshots;
    if (options.seed > 13) return;
    snapshotsByBytes += result.snapshots;
    options.retainedBytes = 0;
    snapshotsBySlots += runNodeSimulation(options).snapshots;
  });
  INFO("snapshots installed, seeds 4 to 13: " << snapshotsByBytes << " with the byte bound, " << snapshotsBySlots
                                                << " by slot count alone");
  CHECK(snapshotsByBytes > snapshotsBySlots);  // the byte bound really compacted
  INFO("snapshots installed, seeds 4 to 30: " << snapshots);
  CHECK(snapshots > 20);  // laggards and wiped members really were sent snapshots
}

TEST_CASE("a whole-node seed replays exactly") {
  for (std::uint64_t seed : {3, 77}) {
    NodeSimOptions options;
    options.seed = seed;
    options.replicas = 5;
    const NodeSimResult a = runNodeSimulation(options);
    const NodeSimResult b = runNodeSimulation(options);
    CHECK(a.events == b.events);
    CHECK(a.digest == b.digest);
    CHECK(a.operations == b.operations);
    options.seed = seed + 1;
    CHECK(runNodeSimulation(options).digest != a.digest);
  }
}

TEST_CASE("liveness catches a leader that never ends a lock-delay") {
  auto caught = firstCaught([](NodeSimOptions& o) { o.nodeBugs.neverEndLockDelays = true; }, 20);
  REQUIRE(caught);
  CHECK(caught->check == "liveness");
}

TEST_CASE("lock-exclusive catches a queue that grants every request as if shared") {
  auto caught = firstCaught([](NodeSimOptions& o) { o.lockBugs.grantEveryone = true; }, 10);
  REQUIRE(caught);
  CHECK(caught->check == "lock-exclusive");
}

TEST_CASE("lock-fifo catches a queue ordered by session instead of arrival") {
  // The newcomer named ahead of the holder is granted at once: lock-exclusive sees it first.
  auto caught = firstCaught(
      [](NodeSimOptions& o) {
        o.lockBugs.requestsBySession = true;
        o.skipChecks = {"lock-exclusive"};
      },
      20);
  REQUIRE(caught);
  CHECK(caught->check == "lock-fifo");
}

TEST_CASE("lock-tokens catches tokens that restart when a lock's node goes") {
  auto caught = firstCaught(
      [](NodeSimOptions& o) {
        o.lockBugs.tokenPerLockNode = true;
        o.skipChecks = {"lock-exclusive"};
      },
      60);
  REQUIRE(caught);
  CHECK(caught->check == "lock-tokens");
}

TEST_CASE("agreement catches a leader that skips phase 1") {
  // Logs that disagree may also never converge: the liveness check can see that first.
  auto caught = firstCaught(
      [](NodeSimOptions& o) {
        o.paxosBugs.skipPhase1 = true;
        o.skipChecks = {"liveness"};
      },
      20);
  REQUIRE(caught);
  CHECK(caught->check == "agreement");
}

TEST_CASE("linearizability catches replies matched by request id alone") {
  // A stale reply can also hand an acquire someone else's request: the lock checks may see
  // it first.
  auto caught = firstCaught(
      [](NodeSimOptions& o) {
        o.nodeBugs.ignoreIncarnation = true;
        o.skipChecks = {"lock-exclusive", "lock-tokens", "lock-fifo"};
      },
      300);
  REQUIRE(caught);
  CHECK(caught->check == "linearizability");
}

TEST_CASE("expiry-early catches a takeover that counts ttls from long ago") {
  auto caught = firstCaught([](NodeSimOptions& o) { o.nodeBugs.staleTtlOnTakeover = true; }, 20);
  REQUIRE(caught);
  CHECK(caught->check == "expiry-early");
}

TEST_CASE("keepalive-late catches followers that vouch for sessions from their own table") {
  // expiry-early would catch it first (such acknowledgements never reach the keeper), or the
  // liveness check (a session its client believes alive is gone).
  auto caught = firstCaught(
      [](NodeSimOptions& o) {
        o.nodeBugs.followersAnswerKeepalives = true;
        o.skipChecks = {"expiry-early", "liveness"};
      },
      50);
  REQUIRE(caught);
  CHECK(caught->check == "keepalive-late");
}

TEST_CASE("stable-leader catches a node that campaigns without a pre-vote") {
  auto caught = firstCaught([](NodeSimOptions& o) { o.paxosBugs.noPreVote = true; }, 20);
  REQUIRE(caught);
  CHECK(caught->check == "stable-leader");
}

TEST_CASE("stable-leader catches acceptors that promise a new ballot while they grant a lease") {
  // The switch (--bug ignore-lease) also campaigns without a pre-vote, so that a node's ballot can
  // reach acceptors still granting the leader a lease; a healed cluster then changes leader.
  // (With stable-leader left out, no other check caught it in seeds 1 to 150, 3 and 5 nodes.)
  auto caught = firstCaught(
      [](NodeSimOptions& o) {
        o.paxosBugs.ignoreLeaseOnPrepare = true;
        o.paxosBugs.noPreVote = true;
      },
      20);
  REQUIRE(caught);
  CHECK(caught->check == "stable-leader");
}

TEST_CASE("frame-limit catches catch-up replies capped by count instead of bytes") {
  // Every write large (100 to 900 KB): 64 slots of them overflow a frame, while the byte caps
  // keep every frame under it (warden_nodesim --large-writes 1: seeds 1 to 10 pass).
  auto caught = firstCaught(
      [](NodeSimOptions& o) {
        o.paxosBugs.catchupByCountOnly = true;
        o.largeWriteShare = 1.0;
      },
      10);
  REQUIRE(caught);
  CHECK(caught->check == "frame-limit");
}

TEST_CASE("liveness catches a keeper that never proposes an expiry") {
  auto caught = firstCaught([](NodeSimOptions& o) { o.nodeBugs.neverExpire = true; }, 20);
  REQUIRE(caught);
  CHECK(caught->check == "liveness");
}

// The rules below are each broken only by a precise schedule; the nemesis (NodeSimNemesis.cpp)
// plays families of such schedules in half of the runs.

TEST_CASE("expiry-early catches a leader that speaks for sessions before its epoch is applied") {
  auto caught = firstCaught([](NodeSimOptions& o) { o.nodeBugs.serveWithoutEpoch = true; }, 100);
  REQUIRE(caught);
  CHECK(caught->check == "expiry-early");
}

TEST_CASE("expiry-early catches a leader that takes the sessions over again in the same epoch after a lapse") {
  auto caught = firstCaught([](NodeSimOptions& o) { o.nodeBugs.sameEpochAfterLapse = true; }, 100);
  REQUIRE(caught);
  CHECK(caught->check == "expiry-early");
}

TEST_CASE("expiry-early catches a leader that speaks for sessions without a lease") {
  auto caught = firstCaught([](NodeSimOptions& o) { o.nodeBugs.serveWithoutLease = true; }, 200);
  REQUIRE(caught);
  CHECK(caught->check == "expiry-early");
}

TEST_CASE("agreement catches an empty disk that votes once a majority of peers say empty") {
  auto caught = firstCaught([](NodeSimOptions& o) { o.nodeBugs.bootstrapOnMajority = true; }, 300);
  REQUIRE(caught);
  CHECK(caught->check == "agreement");
}

TEST_CASE("agreement catches a rebuilt node that votes without every member's promised ballot") {
  // Rare: about one run in a thousand plays the schedule that catches it.
  auto caught = firstCaught([](NodeSimOptions& o) { o.paxosBugs.rebuildIgnoresPromises = true; }, 1000);
  REQUIRE(caught);
  CHECK(caught->check == "agreement");
}

TEST_CASE("rebuild catches a rebuild request paced by the catch-up timer") {
  auto caught = firstCaught([](NodeSimOptions& o) { o.paxosBugs.rebuildSharesCatchupTimer = true; }, 200);
  REQUIRE(caught);
  CHECK(caught->check == "rebuild");
}

// A write answered 503 is never applied (issue 10): its proposal's deadline, in leader time.
TEST_CASE("whole nodes keep every invariant under seeds 1 to 40 when a deposed leader resumes among readers") {
  // The deposed-reads schedule against the real lease check: the hunt below is not a schedule
  // that fails whatever the node does.
  std::uint64_t readsAtResume = 0;
  for (std::uint64_t seed = 1; seed <= 40; ++seed) {
    for (std::size_t replicas : {3, 5}) {
      NodeSimOptions options;
      options.seed = seed;
      options.replicas = replicas;
      options.deposedReads = true;
      const NodeSimResult result = runNodeSimulation(options);
      if (!result.ok) FAIL(result.violation << "\n  seed " << seed << ", " << replicas << " nodes, deposed reads");
      readsAtResume += result.readsAtResume;
    }
  }
  CHECK(readsAtResume > 200);  // the schedule ran: resumed leaders were read from
}

TEST_CASE("linearizability catches a write applied after its deadline, when its origin may have said 503") {
  auto caught = firstCaught([](NodeSimOptions& o) { o.nodeBugs.applyPastDeadline = true; }, 200);
  REQUIRE(caught);
  CHECK(caught->check == "linearizability");
}

TEST_CASE("linearizability catches a 503 given at the deadline before the applied time passed it") {
  auto caught = firstCaught([](NodeSimOptions& o) { o.nodeBugs.refuseOnDeadline = true; }, 100);
  REQUIRE(caught);
  CHECK(caught->check == "linearizability");
}

TEST_CASE("linearizability catches a read barrier answered while the apply it waited for is uncommitted") {
  // Writes answered as soon as applied (AnswerWhen::Applied) are visible only once the apply
  // commits: a read answered before that reads a state without them.
  auto caught = firstCaught([](NodeSimOptions& o) { o.nodeBugs.readsBeforeApplyCommitted = true; }, 300);
  REQUIRE(caught);
  CHECK(caught->check == "linearizability");
}

TEST_CASE("linearizability catches a leader that answers reads without the driver after its lease") {
  // The driver-free lease read (NodeCore::fastRead) with the lease check taken out: a deposed
  // leader cut off or paused answers from a state that newer writes have passed. The random
  // schedules reach it once in hundreds of seeds (first at 877, a 140 s hunt); the deposed-reads
  // schedule pauses a serving leader in every run and reads from it as it resumes.
  auto caught = firstCaught([](NodeSimOptions& o) {
    o.nodeBugs.fastReadWithoutLease = true;
    o.deposedReads = true;
  }, 20);
  REQUIRE(caught);
  CHECK(caught->check == "linearizability");
}
