// RevisionWaiters (reads with ?min_revision=R): each caller hears once, reached or not; and the
// lowest revision still awaited, which has the node commit an apply that reached it at once
// instead of after its delay (ClusterOptions::appliesWanted).

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdint>
#include <thread>

#include "coordinator/RevisionWaiters.h"

using warden::coordinator::RevisionWaiters;
using namespace std::chrono_literals;

TEST_CASE("the lowest awaited revision follows the waiters as they come, are reached and time out") {
  RevisionWaiters waiters;
  CHECK(waiters.lowestWaited() == UINT64_MAX);
  int reached = 0, missed = 0;
  auto count = [&](bool ok) { (ok ? reached : missed)++; };
  waiters.applied(5);
  REQUIRE(waiters.wait(3, 60s, count));  // reached already: answered at once, nobody waits
  CHECK(reached == 1);
  CHECK(waiters.lowestWaited() == UINT64_MAX);
  REQUIRE(waiters.wait(9, 60s, count));
  REQUIRE(waiters.wait(7, 60s, count));
  CHECK(waiters.lowestWaited() == 7);
  waiters.applied(8);
  CHECK(reached == 2);
  CHECK(waiters.lowestWaited() == 9);

  std::atomic<bool> timedOut{false};
  REQUIRE(waiters.wait(6'000, 1ms, [&](bool ok) { timedOut = !ok; }));
  for (int i = 0; i < 2000 && !timedOut; ++i) std::this_thread::sleep_for(1ms);
  CHECK(timedOut);
  CHECK(waiters.lowestWaited() == 9);  // the one that timed out is not awaited any more
  waiters.applied(9);
  CHECK(waiters.lowestWaited() == UINT64_MAX);
  CHECK(missed == 0);
}
