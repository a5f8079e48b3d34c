// Issue 10 on a real 3-node cluster: one write touches a bounded number of nodes, and a full
// quota refuses only the writes that grow the state, alike on every node.

#include <catch2/catch.hpp>

#include <string>

#include "tests/cluster/TestCluster.h"

using namespace warden::tests;
using json = nlohmann::ordered_json;

namespace {

std::string deepPath(int depth) {
  std::string path;
  for (int i = 0; i < depth; ++i) path += "/p" + std::to_string(i);
  return path;
}

}  // namespace

TEST_CASE("a write touching more nodes than --max-txn-nodes gets 413 and changes nothing on any node") {
  TestCluster cluster(3, {"--max-txn-nodes", "100"});
  auto leader = cluster.waitForLeader();
  REQUIRE(leader);
  const std::uint64_t follower = *leader == 1 ? 2 : 1;
  const std::string tooDeep = deepPath(101);
  auto r = cluster.request(follower, "POST", "/v1/nodes" + tooDeep, json{{"make_parents", true}}.dump());
  CHECK(r.status == 413);
  CHECK(r.json()["error"] == "too_large");
  CHECK_THAT(r.json()["message"].get<std::string>(), Catch::Contains("more than 100 nodes"));
  CHECK(cluster.request(*leader, "HEAD", "/v1/nodes/p0").status == 404);
  REQUIRE(cluster.request(follower, "POST", "/v1/nodes" + deepPath(100), json{{"make_parents", true}}.dump()).status == 201);

  // A subtree of 101 nodes cannot go in one delete; in parts it can.
  REQUIRE(cluster.request(*leader, "POST", "/v1/nodes/p0/extra", "{}").status == 201);
  auto del = cluster.request(*leader, "DELETE", "/v1/nodes/p0?recursive");
  CHECK(del.status == 413);
  CHECK(cluster.request(follower, "HEAD", "/v1/nodes" + deepPath(100)).status == 200);
  CHECK(cluster.request(follower, "DELETE", "/v1/nodes/p0/p1?recursive").status == 204);
  CHECK(cluster.request(*leader, "DELETE", "/v1/nodes/p0?recursive").status == 204);
  REQUIRE(cluster.waitConverged());
  for (std::uint64_t id = 1; id <= 3; ++id) CHECK(cluster.status(id)["storage"]["used_bytes"] == 0);
}

TEST_CASE("a cluster at its quota refuses growing writes with 507 and takes reads and deletes") {
  const std::uint64_t quota = 1 << 20;
  TestCluster cluster(3, {"--quota-bytes", std::to_string(quota)});
  auto leader = cluster.waitForLeader();
  REQUIRE(leader);
  const std::string value(100 * 1024, 'q');
  int stored = 0;
  warden::api::HttpResponse refused;
  for (int i = 0; i < 20; ++i) {
    const std::uint64_t via = static_cast<std::uint64_t>(1 + i % 3);
    auto r = cluster.request(via, "PUT", "/v1/nodes/fill-" + std::to_string(i), json{{"data", value}, {"create", true}}.dump());
    if (r.status != 200) {
      refused = r;
      break;
    }
    ++stored;
  }
  CHECK(stored == 10);  // 10 x (100 KiB + path + 100) fits in 1 MiB; an 11th does not
  REQUIRE(refused.status == 507);
  CHECK(refused.json()["error"] == "no_space");
  REQUIRE(cluster.waitConverged());
  const json used = cluster.status(1)["storage"];
  CHECK(used["quota_bytes"] == quota);
  CHECK(used["used_bytes"].get<std::uint64_t>() <= quota);
  for (std::uint64_t id = 2; id <= 3; ++id) CHECK(cluster.status(id)["storage"] == used);
  CHECK_THAT(cluster.request(1, "GET", "/metrics").body, Catch::Contains("warden_storage_used_bytes " + used["used_bytes"].dump()));

  // Reads work; writes that do not grow the state work; deletes work and make room.
  for (std::uint64_t id = 1; id <= 3; ++id) CHECK(cluster.request(id, "GET", "/v1/nodes/fill-0").status == 200);
  CHECK(cluster.request(2, "PUT", "/v1/nodes/fill-0", json{{"data", "small"}}.dump()).status == 200);
  CHECK(cluster.request(3, "DELETE", "/v1/nodes/fill-1").status == 204);
  // Two values' room again (one shrunk, one deleted), then full.
  CHECK(cluster.request(1, "PUT", "/v1/nodes/fill-new1", json{{"data", value}, {"create", true}}.dump()).status == 200);
  CHECK(cluster.request(2, "PUT", "/v1/nodes/fill-new2", json{{"data", value}, {"create", true}}.dump()).status == 200);
  CHECK(cluster.request(3, "PUT", "/v1/nodes/fill-new3", json{{"data", value}, {"create", true}}.dump()).status == 507);
}
