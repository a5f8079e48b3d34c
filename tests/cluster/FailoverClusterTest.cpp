// Issue 10 on real 3- and 5-node clusters: writes ride through the leader's failure. Writes
// through followers keep coming while the leader is killed (on 5 nodes a follower with it: a
// majority still survives); each is a sequential create with its own data, so the number of
// nodes holding that data is the number of times it was applied. The killed nodes come back at
// the end, and every node must then hold the same state.

#include <catch2/catch.hpp>

#include <atomic>
#include <chrono>
#include <cstdio>
#include <functional>
#include <map>
#include <mutex>
#include <set>
#include <thread>
#include <vector>

#include "api/HttpClient.h"
#include "tests/cluster/ClusterLoad.h"
#include "tests/cluster/TestCluster.h"

using namespace warden::tests;
using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

namespace {

// Waits for `done` up to a generous deadline: the phases of these tests end on what happened
// (so many writes acknowledged), not on how much wall time went by, which a slow machine
// (ASan, 2 cores) stretches.
bool waitUntil(const std::function<bool()>& done, std::chrono::milliseconds limit = std::chrono::seconds(30)) {
  const auto deadline = Clock::now() + limit;
  while (!done()) {
    if (Clock::now() > deadline) return false;
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return true;
}

std::int64_t msSince(Clock::time_point t) {
  return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - t).count();
}

// The nodes a test kills at once: the leader, and on 5 nodes also the last of `followers` (the
// bigger fault a majority of 3 of 5 survives).
std::vector<std::uint64_t> victims(std::uint64_t leader, const std::vector<std::uint64_t>& followers, std::size_t size) {
  std::vector<std::uint64_t> out{leader};
  if (size >= 5) out.push_back(followers.back());
  return out;
}

}  // namespace

namespace {

void writeBurstThroughLeaderKill(std::size_t size) {
  TestCluster cluster(size);
  auto leader = cluster.waitForLeader();
  REQUIRE(leader);
  std::vector<std::uint64_t> followers;
  for (std::uint64_t id = 1; id <= size; ++id) {
    if (id != *leader) followers.push_back(id);
  }
  // The writers go through the first two followers; on 5 nodes the last one dies with the leader.
  const auto killed = victims(*leader, followers, size);
  REQUIRE(cluster.request(followers[0], "PUT", "/v1/nodes/burst", json{{"data", ""}, {"create", true}}.dump()).status == 200);

  std::mutex mutex;
  std::map<int, int> statusOf;  // write number -> HTTP status (0: no reply)
  std::atomic<int> next{0};
  std::atomic<bool> stop{false};
  std::atomic<std::int64_t> killedAtUs{0};
  std::atomic<int> firstAfterKill{-1};
  std::atomic<std::int64_t> firstAfterKillLatencyUs{0};
  std::atomic<int> acknowledged{0}, acknowledgedAfterKill{0};
  auto writer = [&](std::uint64_t via) {
    while (!stop) {
      const int n = next++;
      const auto sent = Clock::now();
      const bool afterKill = killedAtUs != 0;
      // 30 s: a write sent during the election waits for the new leader, however slow.
      auto r = cluster.request(via, "POST", "/v1/nodes/burst/w-", json{{"data", std::to_string(n)}, {"sequential", true}}.dump(), 30000);
      const auto took = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - sent).count();
      std::lock_guard lock(mutex);
      statusOf[n] = r.status;
      if (r.status == 201) {
        acknowledged++;
        if (afterKill) acknowledgedAfterKill++;
      }
      int expected = -1;
      if (afterKill && firstAfterKill.compare_exchange_strong(expected, n)) firstAfterKillLatencyUs = took;
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) threads.emplace_back(writer, followers[t % 2]);
  // The kill comes once writes are flowing, and the burst ends once enough writes sent after it
  // were acknowledged by the new leader: however long either takes on this machine.
  const bool flowing = waitUntil([&] { return acknowledged >= 60; });
  bool resumed = false;
  Clock::time_point killedAt;
  if (flowing) {
    for (auto id : killed) cluster.kill9(id);
    killedAt = Clock::now();
    killedAtUs = std::chrono::duration_cast<std::chrono::microseconds>(Clock::now().time_since_epoch()).count();
    resumed = waitUntil([&] { return acknowledgedAfterKill >= 60; });
    WARN(size << " nodes, " << killed.size() << " killed: 60 writes acknowledged after the kill within " << msSince(killedAt)
              << " ms");
  }
  stop = true;
  for (auto& t : threads) t.join();
  REQUIRE(flowing);
  REQUIRE(resumed);

  std::set<std::uint64_t> survivors(followers.begin(), followers.end());
  for (auto id : killed) survivors.erase(id);
  REQUIRE(cluster.waitForLeader(30000, survivors));
  // The killed nodes come back: every node, the old leader too, ends with the same state.
  for (auto id : killed) cluster.start(id);
  REQUIRE(cluster.waitConverged());
  auto list = cluster.request(followers[0], "GET", "/v1/nodes/burst?children");
  REQUIRE(list.status == 200);
  std::map<int, int> applied;
  const json children = list.json()["children"];
  REQUIRE(children.size() > 100);
  for (const auto& name : children) {
    auto node = cluster.request(followers[0], "GET", "/v1/nodes/burst/" + name.get<std::string>() + "?consistency=stale");
    REQUIRE(node.status == 200);
    applied[std::stoi(node.json()["data"].get<std::string>())]++;
  }
  int ok = 0, refused = 0, unknown = 0;
  for (const auto& [n, status] : statusOf) {
    INFO("write " << n << " answered " << status << ", applied " << applied[n] << " times");
    if (status == 201) {
      ++ok;
      CHECK(applied[n] == 1);
    } else if (status == 503) {
      ++refused;
      CHECK(applied[n] == 0);
    } else {
      ++unknown;  // 504 (outcome unknown) or no reply: at most once
      CHECK(applied[n] <= 1);
    }
  }
  std::printf("failover burst on %zu nodes: %d writes acknowledged, %d refused (503), %d unknown; first write sent after the kill "
              "answered %d in %.0f ms\n",
              size, ok, refused, unknown, statusOf[firstAfterKill.load()], firstAfterKillLatencyUs.load() / 1000.0);
  CHECK(ok >= 120);  // 60 before the kill and 60 after, by construction of the phases
  // A write sent right after the kill goes through once the new leader is elected.
  REQUIRE(firstAfterKill >= 0);
  CHECK(statusOf[firstAfterKill.load()] == 201);
}

}  // namespace

TEST_CASE("writes through followers ride through a kill of the leader on 3 nodes with 503 meaning never applied and 201 exactly once") {
  writeBurstThroughLeaderKill(3);
}

TEST_CASE("writes through followers ride through a kill of the leader and a follower on 5 nodes with 503 meaning never applied and 201 exactly once") {
  writeBurstThroughLeaderKill(5);
}

namespace {

void keyedWritesThroughLeaderKill(std::size_t size) {
  TestCluster cluster(size);
  auto leader = cluster.waitForLeader();
  REQUIRE(leader);
  // Through the leader first: its kill cuts requests in flight, some of them already chosen, and
  // the client repeats them on a follower with the same key (on 5 nodes the last follower dies
  // with the leader: a client that moves on to it moves on again).
  std::vector<std::uint64_t> followers;
  for (std::uint64_t id = 1; id <= size; ++id) {
    if (id != *leader) followers.push_back(id);
  }
  const auto killed = victims(*leader, followers, size);
  auto endpointOf = [&](std::uint64_t id) { return "http://127.0.0.1:" + std::to_string(cluster.httpPort(id)); };
  REQUIRE(cluster.request(1, "PUT", "/v1/nodes/keyed", json{{"data", ""}, {"create", true}}.dump()).status == 200);

  std::atomic<int> next{0};
  std::atomic<bool> stop{false};
  std::atomic<int> acknowledged{0}, acknowledgedAfterKill{0};
  std::atomic<bool> afterKill{false};
  std::mutex mutex;
  std::vector<int> failed;
  auto writer = [&](int t) {
    warden::api::RetryPolicy policy;
    policy.failoverOnUnavailable = true;
    // The leader, then every follower, starting at a different one for each thread.
    std::vector<std::string> endpoints{endpointOf(*leader)};
    for (std::size_t i = 0; i < followers.size(); ++i) endpoints.push_back(endpointOf(followers[(t + i) % followers.size()]));
    warden::api::HttpClient client(endpoints, std::chrono::milliseconds(3000), policy);
    while (!stop) {
      const int n = next++;
      warden::api::HttpRequest request{"POST", "/v1/nodes/keyed/w-", json{{"data", std::to_string(n)}, {"sequential", true}}.dump(),
                                       "application/json", warden::api::HttpClient::newIdempotencyKey()};
      bool done = false;
      // The client moves to the next endpoint by itself (same key); beyond that, try again, for
      // as long as an election may take on a slow machine (not a count of quick 503s).
      const auto giveUp = Clock::now() + std::chrono::seconds(30);
      while (!done && Clock::now() < giveUp) {
        try {
          done = client.send(request).status == 201;
        } catch (const warden::api::HttpClientError&) {
        }
        if (!done) std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
      if (done) {
        acknowledged++;
        if (afterKill) acknowledgedAfterKill++;
      } else {
        std::lock_guard lock(mutex);
        failed.push_back(n);
      }
    }
  };
  std::vector<std::thread> threads;
  for (int t = 0; t < 4; ++t) threads.emplace_back(writer, t);
  // Phases end on writes acknowledged, not on wall time (see waitUntil).
  const bool flowing = waitUntil([&] { return acknowledged >= 60; });
  bool resumed = false;
  if (flowing) {
    for (auto id : killed) cluster.kill9(id);
    const auto killedAt = Clock::now();
    afterKill = true;
    resumed = waitUntil([&] { return acknowledgedAfterKill >= 60; });
    WARN(size << " nodes, " << killed.size() << " killed: 60 keyed writes acknowledged after the kill within "
              << msSince(killedAt) << " ms");
  }
  stop = true;
  for (auto& t : threads) t.join();
  REQUIRE(flowing);
  REQUIRE(resumed);
  CHECK(failed.empty());

  // The killed nodes come back: every node ends with the same state.
  for (auto id : killed) cluster.start(id);
  REQUIRE(cluster.waitConverged());
  const std::uint64_t survivor = followers.front();
  auto list = cluster.request(survivor, "GET", "/v1/nodes/keyed?children");
  REQUIRE(list.status == 200);
  const json children = list.json()["children"];
  std::map<int, int> applied;
  for (const auto& name : children) {
    auto node = cluster.request(survivor, "GET", "/v1/nodes/keyed/" + name.get<std::string>() + "?consistency=stale");
    REQUIRE(node.status == 200);
    applied[std::stoi(node.json()["data"].get<std::string>())]++;
  }
  const int written = next.load();
  for (int n = 0; n < written; ++n) {
    INFO("write " << n);
    CHECK(applied[n] == 1);
  }
  std::printf("keyed failover burst on %zu nodes: %d writes, each applied once\n", size, written);
  CHECK(acknowledged >= 120);  // by construction of the phases
}

}  // namespace

TEST_CASE("writes to the leader retried elsewhere with their Idempotency-Key when it is killed apply exactly once each on 3 nodes") {
  keyedWritesThroughLeaderKill(3);
}

TEST_CASE("writes to the leader retried elsewhere with their Idempotency-Key when it and a follower are killed apply exactly once each on 5 nodes") {
  keyedWritesThroughLeaderKill(5);
}

TEST_CASE("every node reports a killed member unhealthy and healthy again once it is back") {
  TestCluster cluster(3);
  auto leader = cluster.waitForLeader();
  REQUIRE(leader);
  const std::uint64_t victim = *leader == 3 ? 2 : 3;  // a follower: the other follower never talks to it otherwise
  // Writes through every node in turn go on across the kill and the restart.
  BackgroundWriter load(cluster, "/bg");
  REQUIRE(load.waitMore(20));
  auto healthOf = [&](std::uint64_t viewer, std::uint64_t member) -> std::optional<bool> {
    auto r = cluster.request(viewer, "GET", "/v1/status", {}, 2000);
    if (r.status != 200) return std::nullopt;
    const json members = r.json()["members"];
    for (const auto& m : members) {
      if (m["id"] == member) return m["healthy"].get<bool>();
    }
    return std::nullopt;
  };
  for (std::uint64_t viewer = 1; viewer <= 3; ++viewer) CHECK(healthOf(viewer, victim) == true);
  // Each view must change (within a generous deadline); how soon is printed, not asserted.
  auto everyViewIs = [&](bool healthy) {
    for (std::uint64_t viewer = 1; viewer <= 3; ++viewer) {
      if (cluster.running(viewer) && healthOf(viewer, victim) != healthy) return false;
    }
    return true;
  };
  cluster.kill9(victim);
  const auto killed = Clock::now();
  const bool unhealthy = waitUntil([&] { return everyViewIs(false); });
  WARN("the killed member reported unhealthy everywhere "
       << std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killed).count() << " ms after the kill");
  for (std::uint64_t viewer = 1; viewer <= 3; ++viewer) {
    if (viewer == victim) continue;
    INFO("node " << viewer << "'s view of node " << victim);
    CHECK(healthOf(viewer, victim) == false);
  }
  CHECK(unhealthy);
  CHECK(load.waitMore(20));  // the writes went on without it
  cluster.start(victim);
  const auto restarted = Clock::now();
  CHECK(waitUntil([&] { return everyViewIs(true); }));
  WARN("the member reported healthy everywhere "
       << std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - restarted).count() << " ms after its restart");
  for (std::uint64_t viewer = 1; viewer <= 3; ++viewer) CHECK(healthOf(viewer, victim) == true);
  CHECK(load.waitMore(20));
  load.stop();
  REQUIRE(cluster.waitConverged());
  load.requireEverywhere();  // nothing acknowledged lost, on any node (the restarted one too)
  WARN(load.acknowledged() << " of " << load.sent() << " background writes acknowledged");
}
