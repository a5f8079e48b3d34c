// Sessions and ephemeral nodes over real HTTP against one real node (API.md "Sessions").

#include <catch2/catch.hpp>

#include <csignal>
#include <chrono>
#include <thread>

#include "tests/http/Expect.h"

using namespace warden::tests;
using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

namespace {

std::string createSession(TestServer& server, int ttlMs, const std::string& name = {}) {
  json body = {{"ttl_ms", ttlMs}};
  if (!name.empty()) body["name"] = name;
  auto r = server.request("POST", "/v1/sessions", body.dump());
  INFO(r.body);
  REQUIRE(r.status == 201);
  REQUIRE(r.json()["id"].is_string());
  CHECK(r.json()["ttl_ms"] == ttlMs);
  return r.json()["id"];
}

std::string ephemeralBody(const std::string& session, bool sequential = false) {
  return json{{"ephemeral", true}, {"session", session}, {"sequential", sequential}}.dump();
}

// Polls until the node is gone; how long after `since` it was seen gone, or nullopt after a
// generous deadline (for a server that never expires it; not a bound on how late it may be).
std::optional<std::chrono::milliseconds> waitGone(TestServer& server, const std::string& path, Clock::time_point since,
                                                  int limitMs = 30000) {
  const auto start = Clock::now();
  while (Clock::now() - start < std::chrono::milliseconds(limitMs)) {
    if (server.request("HEAD", "/v1/nodes" + path).status == 404) {
      return std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - since);
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  return std::nullopt;
}

}  // namespace

TEST_CASE("a session is created and described and listed and closed with its ephemeral nodes") {
  TestServer server;
  const std::string id = createSession(server, 30'000, "worker-1");
  CHECK(id.size() == 16);
  REQUIRE(server.request("POST", "/v1/nodes/members").status == 201);
  auto e = server.request("POST", "/v1/nodes/members/m-", ephemeralBody(id, true));
  REQUIRE(e.status == 201);
  CHECK(e.json()["path"] == "/members/m-0000000000");
  CHECK(e.json()["stat"]["ephemeral_owner"] == id);
  REQUIRE(server.request("POST", "/v1/nodes/leaf", ephemeralBody(id)).status == 201);

  auto got = server.request("GET", "/v1/sessions/" + id);
  REQUIRE(got.status == 200);
  CHECK(got.json() == json{{"id", id}, {"ttl_ms", 30'000}, {"name", "worker-1"},
                           {"ephemerals", {"/leaf", "/members/m-0000000000"}}, {"locks", json::array()}});
  auto list = server.request("GET", "/v1/sessions");
  REQUIRE(list.status == 200);
  REQUIRE(list.json()["sessions"].size() == 1);
  CHECK(list.json()["sessions"][0]["id"] == id);

  auto kept = server.request("POST", "/v1/sessions/" + id + "/keepalive");
  REQUIRE(kept.status == 200);
  CHECK(kept.json() == json{{"id", id}, {"ttl_ms", 30'000}});

  const auto before = revisionOf(server);
  auto closed = server.request("DELETE", "/v1/sessions/" + id);
  REQUIRE(closed.status == 204);
  CHECK(closed.revision == before + 1);  // every ephemeral node goes in one revision
  CHECK(server.request("HEAD", "/v1/nodes/leaf").status == 404);
  CHECK(server.request("GET", "/v1/nodes/members?children").json()["children"] == json::array());
  requireError(server.request("GET", "/v1/sessions/" + id), 404, "session_not_found");
  requireError(server.request("POST", "/v1/sessions/" + id + "/keepalive"), 404, "session_not_found");
  requireError(server.request("DELETE", "/v1/sessions/" + id), 404, "session_not_found");
  requireError(server.request("POST", "/v1/nodes/late", ephemeralBody(id)), 404, "session_not_found");
  CHECK(server.request("GET", "/v1/sessions").json()["sessions"] == json::array());
}

TEST_CASE("ephemeral nodes need a live session and cannot have children") {
  TestServer server;
  requireError(server.request("POST", "/v1/nodes/e", ephemeralBody("00000000000000ff")), 404, "session_not_found");
  requireError(server.request("POST", "/v1/nodes/e", R"({"ephemeral": true})"), 400, "invalid_argument");
  requireError(server.request("POST", "/v1/nodes/e", R"({"ephemeral": true, "session": "xyz"})"), 400,
               "invalid_argument");
  const std::string id = createSession(server, 10'000);
  REQUIRE(server.request("POST", "/v1/nodes/e", ephemeralBody(id)).status == 201);
  requireError(server.request("POST", "/v1/nodes/e/child"), 409, "no_children_for_ephemerals");
  requireError(server.request("POST", "/v1/nodes/e/child", ephemeralBody(id)), 409, "no_children_for_ephemerals");
  requireError(server.request("PUT", "/v1/nodes/e/child", R"({"data": "x", "create": true})"), 409,
               "no_children_for_ephemerals");
  // Ephemeral nodes inside a transaction, all or nothing.
  auto txn = server.request("POST", "/v1/txn",
                            json{{"ops", {{{"op", "create"}, {"path", "/t"}, {"ephemeral", true}, {"session", id}},
                                          {{"op", "check"}, {"path", "/missing"}}}}}.dump());
  CHECK(txn.status == 409);
  CHECK(server.request("GET", "/v1/sessions/" + id).json()["ephemerals"] == json{"/e"});
}

TEST_CASE("bad session requests get 4xx and change nothing") {
  TestServer server;
  const auto before = revisionOf(server);
  for (const char* body : {R"({})", R"({"ttl_ms": 999})", R"({"ttl_ms": 600001})", R"({"ttl_ms": "5000"})",
                           R"({"ttl_ms": 5000.5})", R"({"ttl_ms": 5000, "name": 7})", R"({"ttl_ms": 5000, "extra": 1})",
                           R"({"ttl_ms": -1})"}) {
    INFO(body);
    requireError(server.request("POST", "/v1/sessions", body), 400, "invalid_argument");
  }
  requireError(server.request("POST", "/v1/sessions", "{not json"), 400, "bad_json");
  requireError(server.request("POST", "/v1/sessions", json{{"ttl_ms", 5000}, {"name", std::string(1025, 'n')}}.dump()),
               400, "invalid_argument");
  requireError(server.request("POST", "/v1/sessions/nothex/keepalive"), 400, "invalid_argument");
  requireError(server.request("GET", "/v1/sessions/0000000000000000"), 400, "invalid_argument");
  requireError(server.request("DELETE", "/v1/sessions/12345678901234567"), 400, "invalid_argument");
  requireError(server.request("POST", "/v1/sessions/00000000000000ab/other"), 404, "not_found");
  requireError(server.request("PUT", "/v1/sessions"), 405, "method_not_allowed");
  requireError(server.request("GET", "/v1/sessions/00000000000000ab/keepalive"), 405, "method_not_allowed");
  requireError(server.request("GET", "/v1/sessions?bogus=1"), 400, "invalid_argument");
  const std::string id = createSession(server, 5000);
  requireError(server.request("POST", "/v1/sessions/" + id + "/keepalive", R"({"x": 1})"), 400, "invalid_argument");
  CHECK(revisionOf(server) == before + 1);  // only the one good create
}

TEST_CASE("a session without keepalives expires after its ttl with its ephemeral nodes") {
  TestServer server;
  const auto start = Clock::now();  // before the create was sent: the server's ttl starts later
  const std::string id = createSession(server, 1000);
  REQUIRE(server.request("POST", "/v1/nodes/e", ephemeralBody(id)).status == 201);
  auto sinceCreate = waitGone(server, "/e", start);
  REQUIRE(sinceCreate);
  // Never before its ttl (a bound no delay can break); how soon after it, printed only.
  WARN("a session of ttl 1000 ms expired " << sinceCreate->count() << " ms after its create was sent");
  CHECK(sinceCreate->count() >= 1000);
  requireError(server.request("GET", "/v1/sessions/" + id), 404, "session_not_found");
}

TEST_CASE("keepalives keep a session alive past its ttl") {
  TestServer server;
  // A keepalive every 800 ms on a 4 s ttl (not 300 ms on 1 s: a scheduler stall under ASan must
  // not expire it), for 6.4 s: longer than the ttl, so only the keepalives keep it.
  constexpr int kTtlMs = 4000;
  const std::string id = createSession(server, kTtlMs);
  REQUIRE(server.request("POST", "/v1/nodes/e", ephemeralBody(id)).status == 201);
  Clock::time_point lastSent;
  for (int i = 0; i < 8; ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(800));
    lastSent = Clock::now();
    REQUIRE(server.request("POST", "/v1/sessions/" + id + "/keepalive").status == 200);
  }
  CHECK(server.request("HEAD", "/v1/nodes/e").status == 200);
  // Then it goes, never before a ttl after the last keepalive was sent.
  auto gone = waitGone(server, "/e", lastSent);
  REQUIRE(gone);
  CHECK(gone->count() >= kTtlMs);
}

TEST_CASE("after a restart every session gets a fresh ttl", "[single]") {
  TestServer server;
  // 4 s: the checks right after the restart come well within the fresh ttl, even when slow.
  constexpr int kTtlMs = 4000;
  const std::string id = createSession(server, kTtlMs);
  REQUIRE(server.request("POST", "/v1/nodes/e", ephemeralBody(id)).status == 201);
  REQUIRE(server.stop(SIGTERM) == 0);
  std::this_thread::sleep_for(std::chrono::milliseconds(kTtlMs + 500));  // longer than the ttl, while down
  server.start();
  CHECK(server.request("HEAD", "/v1/nodes/e").status == 200);
  const auto sent = Clock::now();
  REQUIRE(server.request("POST", "/v1/sessions/" + id + "/keepalive").status == 200);
  // Gone, never before a ttl after that keepalive was sent.
  auto gone = waitGone(server, "/e", sent);
  REQUIRE(gone);
  CHECK(gone->count() >= kTtlMs);
}

TEST_CASE("the CLI creates keeps alive lists and closes sessions") {
  TestServer server;
  auto w = [&](std::vector<std::string> args) {
    args.push_back("--endpoints");
    args.push_back(server.endpoint());
    return runWarden(args);
  };
  auto created = w({"session", "create", "--ttl", "20000", "--name", "cli"});
  REQUIRE(created.exitCode == 0);
  REQUIRE(created.out.size() == 17);  // 16 hex digits and a newline
  const std::string id = created.out.substr(0, 16);
  CHECK(w({"create", "/e", "--ephemeral", "--session", id}).out == "/e\n");
  CHECK(w({"session", "keepalive", id}).out == id + " alive, ttl 20000 ms\n");
  CHECK(w({"session", "ls"}).out == id + "  ttl 20000 ms  1 ephemeral  cli\n");
  CHECK(w({"session", "ls", id}).out == id + " ttl 20000 ms name cli\n  /e\n");
  CHECK(json::parse(w({"session", "ls", "-o", "json"}).out)["sessions"][0]["id"] == id);
  CHECK_THAT(w({"session", "close", id}).out, Catch::StartsWith("closed " + id));
  CHECK(w({"get", "/e"}).exitCode == 4);
  CHECK(w({"session", "keepalive", id}).exitCode == 4);
  CHECK(w({"session", "keepalive", id, "--every", "100"}).exitCode == 4);  // stops once the session is gone
  CHECK(w({"session", "create", "--ttl", "5"}).exitCode == 2);
  CHECK(w({"session", "frobnicate"}).exitCode == 2);
  CHECK(w({"session"}).exitCode == 2);
}

TEST_CASE("creating a session beyond --max-sessions answers 429 and changes nothing") {
  TestServer server({"--max-sessions", "2"});
  const std::string a = createSession(server, 5000);
  createSession(server, 5000);
  const auto before = revisionOf(server);
  requireError(server.request("POST", "/v1/sessions", R"({"ttl_ms": 5000})"), 429, "too_many_requests");
  CHECK(revisionOf(server) == before);
  REQUIRE(server.request("DELETE", "/v1/sessions/" + a).status == 204);
  createSession(server, 5000);
}
