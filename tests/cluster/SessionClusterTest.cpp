// Sessions on a real 3-node cluster: the leader alone decides expiry, followers relay
// keepalives, and a failover never expires a session that its client keeps alive.

#include <catch2/catch.hpp>

#include <chrono>
#include <thread>

#include "tests/cluster/TestCluster.h"

using namespace warden::tests;
using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;
using std::chrono::milliseconds;

namespace {

std::uint64_t follower(std::uint64_t leader, std::uint64_t skip = 0) {
  for (std::uint64_t id = 1; id <= 3; ++id) {
    if (id != leader && id != skip) return id;
  }
  return 0;
}

std::string createSession(TestCluster& cluster, std::uint64_t via, int ttlMs) {
  auto r = cluster.request(via, "POST", "/v1/sessions", json{{"ttl_ms", ttlMs}}.dump());
  INFO(r.body);
  REQUIRE(r.status == 201);
  return r.json()["id"];
}

void createEphemeral(TestCluster& cluster, std::uint64_t via, const std::string& path, const std::string& session) {
  auto r = cluster.request(via, "POST", "/v1/nodes" + path, json{{"ephemeral", true}, {"session", session}}.dump());
  INFO(r.body);
  REQUIRE(r.status == 201);
}

bool exists(TestCluster& cluster, std::uint64_t id, const std::string& path, bool stale = false) {
  return cluster.request(id, "HEAD", "/v1/nodes" + path + (stale ? "?consistency=stale" : "")).status == 200;
}

// Every running node has applied the expiry: neither the node nor the session is left.
void requireGoneEverywhere(TestCluster& cluster, const std::string& path, const std::string& session) {
  REQUIRE(cluster.waitConverged());
  for (std::uint64_t id = 1; id <= 3; ++id) {
    if (!cluster.running(id)) continue;
    INFO("node " << id);
    CHECK_FALSE(exists(cluster, id, path, true));
    CHECK(cluster.request(id, "GET", "/v1/sessions/" + session + "?consistency=stale").status == 404);
  }
}

}  // namespace

TEST_CASE("a session expires between ttl and ttl + 1 s after its last keepalive on every node") {
  TestCluster cluster;
  auto leader = cluster.waitForLeader();
  REQUIRE(leader);
  const auto f = follower(*leader);
  const int ttl = 2000;
  const std::string session = createSession(cluster, f, ttl);
  createEphemeral(cluster, f, "/worker", session);

  Clock::time_point lastSent, lastAnswered;
  for (int i = 0; i < 4; ++i) {
    std::this_thread::sleep_for(milliseconds(ttl / 3));
    lastSent = Clock::now();
    // Alternately straight to the leader (answered on its HTTP thread) and relayed by a follower.
    auto r = cluster.request(i % 2 ? *leader : f, "POST", "/v1/sessions/" + session + "/keepalive");
    REQUIRE(r.status == 200);
    CHECK(r.json()["ttl_ms"] == ttl);
    lastAnswered = Clock::now();
  }
  // The leader applies the expiry first; poll its own state.
  Clock::time_point goneAt;
  for (;;) {
    REQUIRE(Clock::now() - lastAnswered < milliseconds(ttl + 3000));
    if (!exists(cluster, *leader, "/worker", true)) {
      goneAt = Clock::now();
      break;
    }
    std::this_thread::sleep_for(milliseconds(10));
  }
  const auto afterSent = std::chrono::duration_cast<milliseconds>(goneAt - lastSent).count();
  const auto afterAnswered = std::chrono::duration_cast<milliseconds>(goneAt - lastAnswered).count();
  INFO("gone " << afterSent << " ms after the last keepalive was sent");
  CHECK(afterSent >= ttl);
  CHECK(afterAnswered <= ttl + 1000);
  requireGoneEverywhere(cluster, "/worker", session);
}

TEST_CASE("keepalives sent only to a follower keep a session alive") {
  TestCluster cluster;
  auto leader = cluster.waitForLeader();
  REQUIRE(leader);
  const auto f = follower(*leader);
  const int ttl = 1500;
  const std::string session = createSession(cluster, f, ttl);
  createEphemeral(cluster, f, "/member", session);
  const auto start = Clock::now();
  while (Clock::now() - start < milliseconds(4 * ttl)) {
    std::this_thread::sleep_for(milliseconds(ttl / 3));
    auto r = cluster.request(f, "POST", "/v1/sessions/" + session + "/keepalive");
    REQUIRE(r.status == 200);
    CHECK(r.json()["ttl_ms"] == ttl);
  }
  CHECK(exists(cluster, *leader, "/member"));
  CHECK(cluster.request(*leader, "GET", "/v1/sessions/" + session).status == 200);
  // Once the keepalives stop, the session goes.
  std::this_thread::sleep_for(milliseconds(ttl + 1000));
  CHECK_FALSE(exists(cluster, *leader, "/member"));
  requireGoneEverywhere(cluster, "/member", session);
}

TEST_CASE("a session kept alive through a kill -9 of the leader keeps its ephemeral node") {
  TestCluster cluster;
  auto leader = cluster.waitForLeader();
  REQUIRE(leader);
  const auto f = follower(*leader), g = follower(*leader, f);
  const int ttl = 3000;
  const std::string session = createSession(cluster, f, ttl);
  createEphemeral(cluster, f, "/lock-holder", session);
  // A session nobody keeps alive: the new leader grants it a fresh ttl too, then expires it.
  const std::string abandoned = createSession(cluster, g, ttl);
  createEphemeral(cluster, g, "/abandoned", abandoned);

  bool killed = false;
  const auto start = Clock::now();
  while (Clock::now() - start < milliseconds(3 * ttl)) {
    std::this_thread::sleep_for(milliseconds(ttl / 3));
    if (!killed && Clock::now() - start > milliseconds(ttl / 2)) {
      cluster.kill9(*leader);
      killed = true;
    }
    // The follower holds a keepalive until a new leader answers it, well within the deadline.
    auto r = cluster.request(f, "POST", "/v1/sessions/" + session + "/keepalive");
    INFO(r.body);
    REQUIRE(r.status == 200);
  }
  auto next = cluster.waitForLeader(10000, {f, g});
  REQUIRE(next);
  CHECK(exists(cluster, f, "/lock-holder"));
  CHECK(exists(cluster, g, "/lock-holder"));
  CHECK(cluster.request(g, "GET", "/v1/sessions/" + session).status == 200);
  // The abandoned one went: at most its ttl after the takeover, which came within 3 s of the kill.
  CHECK_FALSE(exists(cluster, g, "/abandoned"));
  requireGoneEverywhere(cluster, "/abandoned", abandoned);
}

TEST_CASE("after a restart of the whole cluster sessions get a fresh ttl and then expire") {
  TestCluster cluster;
  auto leader = cluster.waitForLeader();
  REQUIRE(leader);
  const int ttl = 2000;
  const std::string session = createSession(cluster, *leader, ttl);
  createEphemeral(cluster, *leader, "/survivor", session);
  for (std::uint64_t id = 1; id <= 3; ++id) REQUIRE(cluster.stop(id) == 0);
  std::this_thread::sleep_for(milliseconds(ttl + 500));  // longer than the ttl, all down
  for (std::uint64_t id = 1; id <= 3; ++id) cluster.start(id);
  auto next = cluster.waitForLeader();
  REQUIRE(next);
  const auto restarted = Clock::now();
  CHECK(exists(cluster, *next, "/survivor"));
  CHECK(cluster.request(follower(*next), "POST", "/v1/sessions/" + session + "/keepalive").status == 200);
  // Nobody keeps it alive from here: gone one ttl after the last keepalive, everywhere.
  while (exists(cluster, *next, "/survivor", true)) {
    REQUIRE(Clock::now() - restarted < milliseconds(ttl + 4000));
    std::this_thread::sleep_for(milliseconds(20));
  }
  CHECK(Clock::now() - restarted >= milliseconds(ttl));
  requireGoneEverywhere(cluster, "/survivor", session);
}
