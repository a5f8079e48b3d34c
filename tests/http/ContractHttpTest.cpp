// Points of the contract (docs/API.md) that sit below the routes: an encoded '/' inside a path
// component is refused, and every reply carries X-Warden-Revision, including those the HTTP
// layer makes before a request reaches a route.

#include <catch2/catch.hpp>

#include "api/HttpClient.h"
#include "coordinator/StateMachine.h"
#include "tests/http/Expect.h"

using namespace warden::tests;
using json = nlohmann::ordered_json;

TEST_CASE("an encoded slash inside a path component is refused and changes nothing") {
  TestServer server;
  for (const char* target : {"/v1/nodes/a%2Fb", "/v1/nodes/a%2fb"}) {
    auto r = server.request("PUT", target, json{{"data", "x"}, {"create", true}}.dump());
    requireError(r, 400, "invalid_path");
  }
  CHECK(server.request("HEAD", "/v1/nodes/a").status == 404);
  // Other escapes still decode.
  CHECK(server.request("PUT", "/v1/nodes/a%20b", json{{"data", "x"}, {"create", true}}.dump()).status == 200);
  CHECK(server.request("GET", "/v1/nodes/a%20b").json()["path"] == "/a b");
}

TEST_CASE("replies made before a request reaches a route carry the revision too") {
  TestServer server;
  REQUIRE(server.request("PUT", "/v1/nodes/r", json{{"data", "x"}, {"create", true}}.dump()).status == 200);
  const std::string tooLarge = "PUT /v1/nodes/r HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: " +
                               std::to_string(2 << 20) + "\r\n\r\n";
  const std::string big = rawExchange(server.port(), tooLarge);
  CHECK_THAT(big, Catch::StartsWith("HTTP/1.1 413"));
  CHECK_THAT(big, Catch::Contains("X-Warden-Revision: 1"));
  const std::string malformed = rawExchange(server.port(), "NOT HTTP AT ALL\r\n\r\n");
  CHECK_THAT(malformed, Catch::StartsWith("HTTP/1.1 400"));
  CHECK_THAT(malformed, Catch::Contains("X-Warden-Revision: 1"));
}

TEST_CASE("a session create retried with its Idempotency-Key gets the same session") {
  TestServer server;
  auto create = [&](const std::string& key, int ttl) {
    warden::api::HttpClient client({server.endpoint()});
    return client.send(warden::api::HttpRequest{"POST", "/v1/sessions", json{{"ttl_ms", ttl}}.dump(), "application/json", key});
  };
  auto first = create("sess-key-1", 60000);
  REQUIRE(first.status == 201);
  auto again = create("sess-key-1", 60000);
  CHECK(again.status == 201);
  CHECK(again.json()["id"] == first.json()["id"]);
  CHECK(server.request("GET", "/v1/sessions").json()["sessions"].size() == 1);
  CHECK(create("sess-key-1", 30000).status == 409);
}

TEST_CASE("a session close retried with its Idempotency-Key answers 204 again") {
  TestServer server;
  const std::string id = server.request("POST", "/v1/sessions", R"({"ttl_ms":60000})").json()["id"];
  auto close = [&](const std::string& key) {
    warden::api::HttpClient client({server.endpoint()});
    return client.send(warden::api::HttpRequest{"DELETE", "/v1/sessions/" + id, {}, {}, key});
  };
  CHECK(close("close-key-1").status == 204);
  CHECK(close("close-key-1").status == 204);
  CHECK(server.request("GET", "/v1/sessions/" + id).status == 404);
  CHECK(close("close-key-2").status == 404);  // a new close of a session that is gone
  CHECK(close(std::string(129, 'k')).status == 400);  // a key longer than 128 characters
}

TEST_CASE("a node answers no read from a state it is installing a snapshot into") {
  TestServer server;
  REQUIRE(server.request("POST", "/v1/nodes/cfg", R"({"data":"v1"})").status == 201);
  // Another process marks an install in progress in the node's own store (LMDB allows it), as a
  // node does between a snapshot's last chunk and its last install step.
  using namespace warden::coordinator;
  storage::Env env(server.dataDir(), storage::EnvOptions{std::size_t{16} << 30, 16, false});
  auto mark = [&](bool installing) {
    auto txn = storage::Txn::write(env);
    StateMachine sm(StateMachine::openDbs(txn));
    if (installing) {
      sm.beginInstall(txn);
    } else {
      // Nothing staged: the tables would be emptied; end it by hand instead.
      sm.clearStaging(txn);
    }
    txn.commit();
  };
  mark(true);
  for (const char* target : {"/v1/nodes/cfg?consistency=stale", "/v1/nodes/cfg", "/v1/sessions"}) {
    requireError(server.request("GET", target), 503, "unavailable");
  }
  mark(false);
  CHECK(server.request("GET", "/v1/nodes/cfg?consistency=stale").status == 200);
}
