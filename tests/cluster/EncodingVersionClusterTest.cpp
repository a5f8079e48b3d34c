// Members of different encoding versions (coordinator/EncodingVersion.h) on real processes:
// a member restarted as a binary of another version is refused by the others and refuses them,
// so it never applies an entry it might decode differently; back on the cluster's version it
// catches up. With the refusal planted away, the same member is let in (the test's signal).

#include <catch2/catch.hpp>

#include <chrono>
#include <set>
#include <string>
#include <thread>

#include "coordinator/EncodingVersion.h"
#include "tests/cluster/TestCluster.h"

using namespace warden::tests;
using json = nlohmann::ordered_json;
using warden::coordinator::kEncodingVersion;

namespace {

// Bounded: whether `done` holds within `ms`.
template <typename Done>
bool within(int ms, Done done) {
  const auto until = std::chrono::steady_clock::now() + std::chrono::milliseconds(ms);
  while (std::chrono::steady_clock::now() < until) {
    if (done()) return true;
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
  }
  return done();
}

// A write through `via`, tried again while a leader is being elected (bounded).
bool put(TestCluster& cluster, std::uint64_t via, const std::string& path) {
  for (int attempt = 0; attempt < 10; ++attempt) {
    auto r = cluster.request(via, "PUT", "/v1/nodes" + path, json{{"data", path}, {"create", true}}.dump());
    if (r.status < 300) return true;
    UNSCOPED_INFO("PUT " << path << " via node " << via << ": " << r.status << " " << r.body);
    std::this_thread::sleep_for(std::chrono::milliseconds(500));
  }
  return false;
}

int staleGet(TestCluster& cluster, std::uint64_t id, const std::string& path) {
  return cluster.request(id, "GET", "/v1/nodes" + path + "?consistency=stale").status;
}

}  // namespace

TEST_CASE("a member of another encoding version is refused both ways and applies nothing until it is back") {
  const bool planted = GENERATE(false, true);
  TestCluster cluster(3, planted ? std::vector<std::string>{"--test-bug", "any-encoding-version"}
                                 : std::vector<std::string>{});
  auto leader = cluster.waitForLeader();
  REQUIRE(leader);
  const std::uint64_t odd = 3;  // the member restarted as another version's binary
  REQUIRE(put(cluster, *leader, "/before"));
  REQUIRE(cluster.waitConverged(15000));

  cluster.stop(odd);
  const std::string other = "1000";  // the lowest --test-encoding-version: no release speaks it
  cluster.setNodeArgs(odd, {"--test-encoding-version", other});
  cluster.start(odd);
  // Refused, it cannot lead; let in (planted), it may lead again (it led before, say).
  leader = cluster.waitForLeader(30000, planted ? std::set<std::uint64_t>{} : std::set<std::uint64_t>{1, 2});
  REQUIRE(leader);
  // Writes go on through the two members of the cluster's version.
  REQUIRE(put(cluster, *leader, "/after"));

  if (planted) {
    // Let in, it applies what the others wrote: exactly what the refusal exists to prevent.
    CHECK(within(15000, [&] { return staleGet(cluster, odd, "/after") == 200; }));
    for (std::uint64_t id = 1; id <= 3; ++id) CHECK(cluster.log(id).find("refused node") == std::string::npos);
    return;
  }
  // Each side says whom it refused and why, once.
  const std::string toLeader = "refused node " + std::to_string(odd) + ": it speaks encoding version " + other;
  CHECK(within(10000, [&] { return cluster.log(*leader).find(toLeader) != std::string::npos; }));
  CHECK(within(10000, [&] {
    return cluster.log(odd).find("it speaks encoding version " + std::to_string(kEncodingVersion)) != std::string::npos;
  }));
  // It never learns the entry written meanwhile, and sees no healthy peer.
  std::this_thread::sleep_for(std::chrono::seconds(2));
  CHECK(staleGet(cluster, odd, "/before") == 200);
  CHECK(staleGet(cluster, odd, "/after") == 404);
  for (const auto& member : cluster.request(odd, "GET", "/v1/status").json()["members"]) {
    if (member["id"] != odd) CHECK(member["healthy"] == false);
  }
  for (const auto& member : cluster.request(*leader, "GET", "/v1/status").json()["members"]) {
    if (member["id"] == odd) CHECK(member["healthy"] == false);
  }
  const std::string log = cluster.log(*leader);
  CHECK(log.find(toLeader) == log.rfind(toLeader));  // said once, though the peer redials

  // Back on the cluster's version, it is let in and catches up.
  cluster.stop(odd);
  cluster.setNodeArgs(odd, {});
  cluster.start(odd);
  CHECK(within(15000, [&] { return staleGet(cluster, odd, "/after") == 200; }));
  CHECK(cluster.waitConverged(15000));
}
