// The simulator as a test suite: thousands of seeded fault schedules must pass every check, the
// same seed must replay the same run, and deliberately broken replicas must be caught.

#include <catch2/catch.hpp>

#include <functional>
#include <optional>
#include <set>
#include <string>

#include "tests/sim/Simulation.h"

using namespace warden::tests::sim;

namespace {

void runSeeds(std::size_t replicas, std::uint64_t first, std::uint64_t count) {
  std::uint64_t chosen = 0, keepalives = 0, expiries = 0;
  for (std::uint64_t seed = first; seed < first + count; ++seed) {
    SimOptions options;
    options.seed = seed;
    options.replicas = replicas;
    SimResult result = runSimulation(options);
    if (!result.ok) FAIL(result.violation << "\n  replay: scripts/sim --seed " << seed << " --replicas " << replicas << " --trace");
    chosen += result.commandsChosen;
    keepalives += result.keepalivesAcked;
    expiries += result.expiries;
  }
  CHECK(chosen > count * 100);  // the workload really ran
  CHECK(keepalives > count * 50);
  CHECK(expiries > count * 2);
}

struct Caught {
  std::uint64_t seed = 0;
  std::size_t replicas = 0;
  std::string violation;
  std::set<std::string> before;  // checks that caught the defect in earlier runs
};

// The first run, up to `limit` seeds (3 and 5 replicas each), in which the check named `check`
// catches the planted defect. A defect breaks more than one rule, so other checks may catch it
// in earlier runs: their names are in `before`, for the test to say which are plausible.
std::optional<Caught> caughtBy(const std::function<void(SimOptions&)>& plant, std::uint64_t limit,
                               const std::string& check) {
  std::set<std::string> before;
  for (std::uint64_t seed = 1; seed <= limit; ++seed) {
    for (std::size_t replicas : {3, 5}) {
      SimOptions options;
      options.seed = seed;
      options.replicas = replicas;
      plant(options);
      const SimResult result = runSimulation(options);
      if (result.ok) continue;
      if (result.check == check) return Caught{seed, replicas, result.violation, before};
      before.insert(result.check);
    }
  }
  return std::nullopt;
}

// `check` catches the defect within `limit` seeds, and any check that caught it first is one of
// `plausible` (those that see the same broken state from another side).
void requireCaught(const std::function<void(SimOptions&)>& plant, std::uint64_t limit, const std::string& check,
                   const std::set<std::string>& plausible = {}) {
  const auto caught = caughtBy(plant, limit, check);
  REQUIRE(caught);
  INFO(check << " caught it at seed " << caught->seed << " (" << caught->replicas << " replicas): " << caught->violation);
  for (const auto& other : caught->before) {
    INFO("caught earlier by " << other);
    CHECK(plausible.count(other) == 1);
  }
}

}  // namespace

TEST_CASE("three replicas keep every invariant under seeds 1 to 500") { runSeeds(3, 1, 500); }
TEST_CASE("three replicas keep every invariant under seeds 501 to 1000") { runSeeds(3, 501, 500); }
TEST_CASE("five replicas keep every invariant under seeds 1 to 500") { runSeeds(5, 1, 500); }
TEST_CASE("five replicas keep every invariant under seeds 501 to 1000") { runSeeds(5, 501, 500); }

TEST_CASE("a seed replays exactly") {
  for (std::uint64_t seed : {7, 4242}) {
    SimOptions options;
    options.seed = seed;
    options.replicas = 5;
    SimResult a = runSimulation(options);
    SimResult b = runSimulation(options);
    CHECK(a.events == b.events);
    CHECK(a.digest == b.digest);
    CHECK(a.crashes == b.crashes);
    options.seed = seed + 1;
    CHECK(runSimulation(options).digest != a.digest);
  }
}

// Each planted defect lives in the code under test (ReplicaConfig::Bugs, Keeper::Bugs); each test
// names the check that must catch it, and the other checks that may see it first. The seed
// each is caught at is in the README's simulator section.

// Its leader proposes over values already chosen: a read may miss one, and logs that disagree may
// never converge.
TEST_CASE("agreement catches a replica that leads without running phase 1", "[planted]") {
  requireCaught([](SimOptions& o) { o.bugs.skipPhase1 = true; }, 50, "agreement", {"liveness", "stale-lease-read"});
}

// A replica that answers before its vote is on disk is what a disk that lies on fsync looks like.
TEST_CASE("agreement catches an acceptor whose promises and votes are not recorded before it answers", "[planted]") {
  requireCaught([](SimOptions& o) { o.bugs.votesInMemoryOnly = true; }, 100, "agreement",
                {"session-lost", "stale-read-index"});
}

// Values chosen with its forgotten votes are lost, and with them session creates and writes a
// read had already seen.
TEST_CASE("agreement catches a wiped replica that votes before it has rebuilt", "[planted]") {
  requireCaught([](SimOptions& o) { o.bugs.wipedVotesAtOnce = true; }, 100, "agreement",
                {"keepalive-refused", "stale-read-index"});
}

// Pre-vote alone keeps candidates away from a leader whose lease is alive (a grant needs an
// election timeout of silence, longer than a lease), so it would hide this bug: turn it off too.
TEST_CASE("two-leases catches an acceptor that promises a new ballot while it grants a lease", "[planted]") {
  requireCaught(
      [](SimOptions& o) {
        o.bugs.ignoreLeaseOnPrepare = true;
        o.bugs.noPreVote = true;
      },
      200, "two-leases");
}

// A deposed leader that still believes in its lease also answers keepalives and lease reads.
TEST_CASE("two-leases catches a leader that counts its lease from when the acks arrived", "[planted]") {
  requireCaught([](SimOptions& o) { o.bugs.leaseFromReceipt = true; }, 250, "two-leases",
                {"keepalive-refused", "stale-lease-read"});
}

// Thrifty phase 2 (odd seeds): a follower not asked to vote takes what the leader pushes it as
// chosen. Pushed before it is chosen, a slot the leader then loses is applied there all the same:
// that follower, leading later, answers reads from a history nobody chose.
TEST_CASE("stale-read-index catches a leader that pushes followers slots not yet chosen", "[planted]") {
  requireCaught([](SimOptions& o) { o.bugs.pushUnchosen = true; }, 100, "stale-read-index",
                {"keepalive-refused", "stale-lease-read"});
}

TEST_CASE("expiry-early catches a keeper that leads again with the deadlines of its last term", "[planted]") {
  requireCaught([](SimOptions& o) { o.keeperBugs.keepDeadlinesOnTakeover = true; }, 60, "expiry-early");
}

TEST_CASE("validity catches a leader that fills a hole with an empty batch instead of a no-op", "[planted]") {
  requireCaught([](SimOptions& o) { o.bugs.holeAsEmptyBatch = true; }, 100, "validity");
}

TEST_CASE("in-order-apply catches a restarted replica that hands over slots the node had applied", "[planted]") {
  requireCaught([](SimOptions& o) { o.bugs.restartForgetsApplied = true; }, 20, "in-order-apply");
}

// Agreement sees every divergence first, at the apply that diverges: with it left out, the
// snapshot check is the one that meets a snapshot built from the divergent state; a divergent
// state also loses sessions and writes, which the session, liveness and read checks see.
TEST_CASE("snapshot-prefix catches a candidate that counts a promise missing the slots its acceptor compacted", "[planted]") {
  requireCaught(
      [](SimOptions& o) {
        o.bugs.ignoreCompactedPromise = true;
        o.skipChecks = {"agreement"};
      },
      100, "snapshot-prefix", {"keepalive-refused", "session-lost", "liveness", "stale-read-index", "stale-lease-read"});
}

// A leader speaking for sessions before it re-chose what phase 1 found may miss a session.
TEST_CASE("stale-lease-read catches a leader that reads before re-choosing what phase 1 found", "[planted]") {
  requireCaught([](SimOptions& o) { o.bugs.leaseReadBeforeRecovery = true; }, 300, "stale-lease-read",
                {"keepalive-refused"});
}

TEST_CASE("stale-read-index catches a leader that answers a read index without a round", "[planted]") {
  requireCaught([](SimOptions& o) { o.bugs.readIndexWithoutRound = true; }, 350, "stale-read-index");
}
