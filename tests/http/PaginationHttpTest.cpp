// Lists come in pages (issue 10): ?children&limit=N&after=NAME and GET /v1/sessions?limit=N&after=ID,
// with the next cursor in the reply while more remain.

#include <catch2/catch.hpp>

#include <set>

#include "tests/http/Expect.h"

using namespace warden::tests;
using json = nlohmann::ordered_json;

TEST_CASE("a node's children come in pages that together list each child once") {
  TestServer server;
  REQUIRE(server.request("PUT", "/v1/nodes/p", json{{"data", ""}, {"create", true}}.dump()).status == 200);
  json ops = json::array();
  for (int i = 0; i < 25; ++i) ops.push_back(json{{"op", "create"}, {"path", "/p/c" + std::to_string(100 + i)}});
  REQUIRE(server.request("POST", "/v1/txn", json{{"ops", ops}}.dump()).status == 200);

  std::vector<std::string> seen;
  std::string after;
  int pages = 0;
  for (; pages < 10; ++pages) {
    auto r = server.request("GET", "/v1/nodes/p?children&limit=10" + (after.empty() ? "" : "&after=" + after));
    REQUIRE(r.status == 200);
    const json body = r.json();
    for (const auto& name : body["children"]) seen.push_back(name);
    if (!body.contains("next")) break;
    CHECK(body["children"].size() == 10);
    after = body["next"];
    CHECK(after == seen.back());
  }
  CHECK(pages == 2);
  REQUIRE(seen.size() == 25);
  CHECK(std::set<std::string>(seen.begin(), seen.end()).size() == 25);
  CHECK(std::is_sorted(seen.begin(), seen.end()));
  // Without limit, the whole list (up to 10,000) and no cursor.
  const json whole = server.request("GET", "/v1/nodes/p?children").json();
  CHECK(whole["children"].size() == 25);
  CHECK_FALSE(whole.contains("next"));

  requireError(server.request("GET", "/v1/nodes/p?children&limit=0"), 400, "invalid_argument");
  requireError(server.request("GET", "/v1/nodes/p?children&limit=10001"), 400, "invalid_argument");
  requireError(server.request("GET", "/v1/nodes/p?limit=5"), 400, "invalid_argument");
}

TEST_CASE("sessions come in pages in id order") {
  TestServer server;
  std::set<std::string> created;
  for (int i = 0; i < 5; ++i) {
    auto r = server.request("POST", "/v1/sessions", json{{"ttl_ms", 60000}}.dump());
    REQUIRE(r.status == 201);
    created.insert(r.json()["id"].get<std::string>());
  }
  std::vector<std::string> seen;
  std::string after;
  for (int page = 0; page < 10; ++page) {
    auto r = server.request("GET", "/v1/sessions?limit=2" + (after.empty() ? "" : "&after=" + after));
    REQUIRE(r.status == 200);
    const json body = r.json();
    for (const auto& s : body["sessions"]) seen.push_back(s["id"]);
    if (!body.contains("next")) break;
    after = body["next"];
  }
  CHECK(std::set<std::string>(seen.begin(), seen.end()) == created);
  CHECK(seen.size() == 5);
  requireError(server.request("GET", "/v1/sessions?after=zz"), 400, "invalid_argument");
}
