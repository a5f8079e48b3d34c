// The simulator as a test suite: thousands of seeded fault schedules must pass every check, the
// same seed must replay the same run, and deliberately broken replicas must be caught.

#include <catch2/catch.hpp>

#include <functional>
#include <optional>
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
  std::uint64_t seed;
  std::string violation;
};

// The first run, up to `limit` seeds (3 and 5 replicas each), whose violation names `check`
// (several checks may catch one bug; "" takes any).
std::optional<Caught> firstCaughtBy(const std::function<void(SimOptions&)>& breakIt, std::uint64_t limit,
                                    const std::string& check) {
  for (std::uint64_t seed = 1; seed <= limit; ++seed) {
    for (std::size_t replicas : {3, 5}) {
      SimOptions options;
      options.seed = seed;
      options.replicas = replicas;
      breakIt(options);
      const SimResult result = runSimulation(options);
      if (!result.ok && result.violation.find(check) != std::string::npos) return Caught{seed, result.violation};
    }
  }
  return std::nullopt;
}

// The first seed, up to `limit`, on which the broken variant is caught (by any check).
std::optional<std::uint64_t> firstCaught(const std::function<void(SimOptions&)>& breakIt, std::uint64_t limit) {
  auto caught = firstCaughtBy(breakIt, limit, "");
  return caught ? std::optional<std::uint64_t>(caught->seed) : std::nullopt;
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

TEST_CASE("the checker catches a leader that skips phase 1") {
  auto seed = firstCaught([](SimOptions& o) { o.bugs.skipPhase1 = true; }, 50);
  REQUIRE(seed.has_value());
}

TEST_CASE("the checker catches an acceptor that forgets its promises and votes on restart") {
  auto seed = firstCaught([](SimOptions& o) { o.forgetStateOnRestart = true; }, 200);
  REQUIRE(seed.has_value());
}

TEST_CASE("the checker catches a wiped replica that votes before it has rebuilt") {
  auto seed = firstCaught([](SimOptions& o) { o.wipedVotesAtOnce = true; }, 400);
  REQUIRE(seed.has_value());
}

// Pre-vote alone keeps candidates away from a leader whose lease is alive (a grant needs an
// election timeout of silence, longer than a lease), so it would hide this bug: turn it off too.
TEST_CASE("the checker catches an acceptor that promises a new ballot while it grants a lease") {
  auto seed = firstCaught(
      [](SimOptions& o) {
        o.bugs.ignoreLeaseOnPrepare = true;
        o.bugs.noPreVote = true;
      },
      400);
  REQUIRE(seed.has_value());
}

TEST_CASE("the checker catches a leader that speaks for sessions before it may") {
  auto seed = firstCaught([](SimOptions& o) { o.sessionsWithoutLease = true; }, 200);
  REQUIRE(seed.has_value());
}

TEST_CASE("the checker catches a new leader that does not grant every session a fresh ttl") {
  auto seed = firstCaught([](SimOptions& o) { o.staleTtlOnTakeover = true; }, 50);
  REQUIRE(seed.has_value());
}

TEST_CASE("the stale lease read check catches a leader that reads before re-choosing what phase 1 found") {
  auto caught = firstCaughtBy([](SimOptions& o) { o.bugs.leaseReadBeforeRecovery = true; }, 300, "stale lease read");
  REQUIRE(caught);
}

TEST_CASE("the stale read-index check catches a leader that answers a read index without a round") {
  auto caught = firstCaughtBy([](SimOptions& o) { o.bugs.readIndexWithoutRound = true; }, 300, "stale read-index read");
  REQUIRE(caught);
}
