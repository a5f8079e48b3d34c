// Adversarial review of cb4a2c7 (the fixes of Review9: a min_revision wait for a revision the node
// applied but has not committed lasts at least the commit delay + 1 s, NodeCore::appliedRevision;
// /readyz goes by ClusterView::appliedPending). These run the default delay (50 ms).

#include <catch2/catch.hpp>

#include <chrono>
#include <string>
#include <thread>

#include "tests/cluster/TestCluster.h"

using namespace warden::tests;
using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

// Not from cb4a2c7 (the same before it): /readyz says "200 once the node knows a leader". A
// follower cut off from every peer keeps the leader hint of the last leader it heard
// (Replica::leaderHint_ survives its pre-votes, which nobody answers), and its commit index is
// what it knows, so it says ready for as long as the partition lasts, while the rest of the
// cluster moves on: a load balancer keeps sending it reads, which answer from a state missing
// every write since the cut (stale) or 503 (linearizable).
TEST_CASE("readyz on a follower cut off from every peer does not stay 200 while the cluster moves on", "[review10]") {
  TestCluster cluster(3);
  const auto leader = cluster.waitForLeader();
  REQUIRE(leader);
  const std::uint64_t follower = *leader % 3 + 1;
  REQUIRE(cluster.request(*leader, "POST", "/v1/nodes/cut", R"({"data": "before"})").status == 201);
  REQUIRE(cluster.waitConverged());
  REQUIRE(cluster.request(follower, "GET", "/readyz").status == 200);

  cluster.partition({follower});
  // The majority goes on writing.
  for (int i = 1; i <= 10; ++i) {
    REQUIRE(cluster.request(*leader, "PUT", "/v1/nodes/cut", json{{"data", "after-" + std::to_string(i)}}.dump()).status == 200);
  }
  // Several election timeouts, and a few seconds more.
  std::this_thread::sleep_for(std::chrono::seconds(5));
  auto stale = cluster.request(follower, "GET", "/v1/nodes/cut?consistency=stale");
  REQUIRE(stale.status == 200);
  CHECK(stale.json()["data"] == "before");  // what a client sent there is served
  auto ready = cluster.request(follower, "GET", "/readyz");
  INFO("readyz on the cut-off follower: " << ready.status << " " << ready.body);
  CHECK(ready.status == 503);
  cluster.heal();
}

// The same for a leader cut off from both followers: whether or not it has stepped down yet, it
// heard no majority lately, and the majority elects another leader without it.
TEST_CASE("readyz on a leader cut off from every peer turns 503 within a second or two", "[review10]") {
  TestCluster cluster(3);
  const auto leader = cluster.waitForLeader();
  REQUIRE(leader);
  REQUIRE(cluster.request(*leader, "POST", "/v1/nodes/cut", R"({"data": "before"})").status == 201);
  REQUIRE(cluster.waitConverged());
  REQUIRE(cluster.request(*leader, "GET", "/readyz").status == 200);
  cluster.partition({*leader});
  int status = 0;
  for (int i = 0; i < 40 && status != 503; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    status = cluster.request(*leader, "GET", "/readyz").status;
  }
  CHECK(status == 503);
  cluster.heal();
  REQUIRE(cluster.waitConverged());
  status = 0;
  for (int i = 0; i < 100 && status != 200; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
    status = cluster.request(*leader, "GET", "/readyz").status;
  }
  CHECK(status == 200);  // and ready again once healed
}

// A probe of cb4a2c7 (passes on main): a follower killed, behind the compacted log, restarted
// and caught up by a snapshot install; then read-your-writes with wait_ms=0 of writes it answered
// itself (appliedRevision set by the install, then by applyInto) answers each, from a state
// holding it, never 503.
TEST_CASE("after a restart and a snapshot install a follower answers min_revision wait_ms=0 reads of its own writes", "[review10][probe]") {
  TestCluster cluster(3, {"--retained-slots", "5"});
  const auto leader = cluster.waitForLeader();
  REQUIRE(leader);
  const std::uint64_t follower = *leader % 3 + 1;
  REQUIRE(cluster.request(*leader, "POST", "/v1/nodes/p", R"({"data": "0"})").status == 201);
  REQUIRE(cluster.waitConverged());
  cluster.kill9(follower);
  for (int i = 1; i <= 40; ++i) {
    REQUIRE(cluster.request(*leader, "PUT", "/v1/nodes/p", json{{"data", std::to_string(i)}}.dump()).status == 200);
  }
  // The leader restarts too: its link to the dead follower queues every slot it pushes the
  // follower once chosen (thrifty phase 2), and delivered on reconnection they would catch the
  // follower up without the snapshot this probe is about.
  REQUIRE(cluster.stop(*leader) == 0);
  cluster.start(*leader);
  cluster.start(follower);
  REQUIRE(cluster.waitConverged());
  CHECK_THAT(cluster.log(follower), Catch::Contains("installed a snapshot"));
  int refused = 0;
  for (int i = 41; i <= 60; ++i) {
    auto write = cluster.request(follower, "PUT", "/v1/nodes/p", json{{"data", std::to_string(i)}}.dump());
    REQUIRE(write.status == 200);
    REQUIRE(write.revision);
    auto read = cluster.request(follower, "GET", "/v1/nodes/p?wait_ms=0&min_revision=" + std::to_string(*write.revision));
    if (read.status != 200) {
      refused++;
      continue;
    }
    CHECK(read.json()["data"] == std::to_string(i));
    CHECK(*read.revision >= *write.revision);
    std::this_thread::sleep_for(std::chrono::milliseconds(60));
  }
  CHECK(refused == 0);
}
