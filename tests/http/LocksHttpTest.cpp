// Locks over HTTP (issue 12, API.md "Locks"): acquire, try-lock, blocking acquire woken by the
// release before it (and only that one), release by token, fencing checks, a session's end,
// the lock's state under /_warden, and bad input.

#include <catch2/catch.hpp>

#include <chrono>
#include <future>
#include <thread>

#include <sys/socket.h>
#include <unistd.h>

#include "tests/http/Expect.h"

using namespace warden::tests;
using json = nlohmann::ordered_json;

namespace {

warden::api::HttpResponse acquire(TestServer& server, const std::string& name, const std::string& session, int waitMs = 0,
                                  const std::string& mode = "exclusive") {
  warden::api::HttpClient client({server.endpoint()});
  return client.send(warden::api::HttpRequest{
      "POST", "/v1/locks/" + name + "/acquire", json{{"session", session}, {"wait_ms", waitMs}, {"mode", mode}}.dump(),
      "application/json", {}});
}

}  // namespace

TEST_CASE("a lock is acquired, checked, released by its token, and its tokens increase") {
  TestServer server;
  const std::string a = server.newSession(), b = server.newSession();
  auto first = acquire(server, "db", a);
  REQUIRE(first.status == 200);
  const std::uint64_t token = first.json()["token"];
  CHECK(first.json()["mode"] == "exclusive");
  CHECK(first.json()["session"] == a);
  CHECK(acquire(server, "db", a).json()["token"] == token);  // again: the same grant
  requireError(acquire(server, "db", b), 409, "locked");     // try-lock
  CHECK(server.request("GET", "/v1/locks/db/check?token=" + std::to_string(token)).json()["valid"] == true);
  auto described = server.request("GET", "/v1/locks/db").json();
  CHECK(described["holders"].size() == 1);
  CHECK(described["holders"][0]["token"] == token);
  CHECK(described["waiters"].empty());  // b's try-lock left the queue
  requireError(server.request("POST", "/v1/locks/db/release", json{{"session", b}, {"token", token}}.dump()), 409, "not_holder");
  REQUIRE(server.request("POST", "/v1/locks/db/release", json{{"session", a}, {"token", token}}.dump()).status == 200);
  auto stale = server.request("GET", "/v1/locks/db/check?token=" + std::to_string(token));
  requireError(stale, 409, "stale_token");
  CHECK(stale.json()["valid"] == false);
  auto second = acquire(server, "db", b);
  REQUIRE(second.status == 200);
  CHECK(second.json()["token"].get<std::uint64_t>() > token);
  // The lock's state is a node under /_warden, readable (and watchable) like any other.
  auto state = server.request("GET", "/v1/nodes/_warden/locks/db?children").json();
  REQUIRE(state["children"].size() == 1);
}

TEST_CASE("a release wakes the next waiter only, and a waiter whose wait ends leaves the queue") {
  TestServer server;
  const std::string a = server.newSession(), b = server.newSession(), c = server.newSession(), d = server.newSession();
  const std::uint64_t token = acquire(server, "q", a).json()["token"];
  // Queued in a known order: C is sent only once B is seen waiting (not after a sleep, which a
  // slow machine may outlast).
  auto waiters = [&] { return server.request("GET", "/v1/locks/q").json()["waiters"].size(); };
  auto waitWaiters = [&](std::size_t n) {
    for (int i = 0; i < 3000 && waiters() != n; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return waiters() == n;
  };
  auto waitB = std::async(std::launch::async, [&] { return acquire(server, "q", b, 25000); });
  REQUIRE(waitWaiters(1));
  auto waitC = std::async(std::launch::async, [&] { return acquire(server, "q", c, 25000); });
  REQUIRE(waitWaiters(2));
  REQUIRE(server.request("POST", "/v1/locks/q/release", json{{"session", a}, {"token", token}}.dump()).status == 200);
  auto gotB = waitB.get();
  REQUIRE(gotB.status == 200);
  CHECK(gotB.json()["token"].get<std::uint64_t>() > token);
  // C is still waiting, not woken: the state shows it (B holds, C queued); and no answer came.
  // (No delay can fail the second check: C may not be answered before B releases.)
  const auto afterB = server.request("GET", "/v1/locks/q").json();
  CHECK(afterB["holders"].size() == 1);
  CHECK(afterB["waiters"].size() == 1);
  CHECK(waitC.wait_for(std::chrono::milliseconds(300)) == std::future_status::timeout);
  REQUIRE(server.request("POST", "/v1/locks/q/release", json{{"session", b}, {"token", gotB.json()["token"]}}.dump()).status == 200);
  CHECK(waitC.get().status == 200);
  // A bounded wait that ends: 409 locked, and the queue no longer holds it.
  auto late = acquire(server, "q", d, 300);
  requireError(late, 409, "locked");
  CHECK(server.request("GET", "/v1/locks/q").json()["waiters"].empty());
}

TEST_CASE("shared holders share the lock and an exclusive request waits for them") {
  TestServer server;
  const std::string a = server.newSession(), b = server.newSession(), c = server.newSession();
  REQUIRE(acquire(server, "r", a, 0, "shared").status == 200);
  REQUIRE(acquire(server, "r", b, 0, "shared").status == 200);
  requireError(acquire(server, "r", c, 0, "exclusive"), 409, "locked");
  CHECK(server.request("GET", "/v1/locks/r").json()["holders"].size() == 2);
}

TEST_CASE("a session's close releases its lock to the next waiter at once") {
  TestServer server;
  const std::string a = server.newSession(), b = server.newSession();
  const std::uint64_t token = acquire(server, "s", a).json()["token"];
  auto waitB = std::async(std::launch::async, [&] { return acquire(server, "s", b, 10000); });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  REQUIRE(server.request("DELETE", "/v1/sessions/" + a).status == 204);
  auto got = waitB.get();
  REQUIRE(got.status == 200);
  CHECK(got.json()["token"].get<std::uint64_t>() > token);
  requireError(server.request("GET", "/v1/locks/s/check?token=" + std::to_string(token)), 409, "stale_token");
}

TEST_CASE("GET with index blocks until the lock changes") {
  TestServer server;
  const std::string a = server.newSession();
  auto first = acquire(server, "i", a);
  const std::uint64_t revision = *first.revision;
  auto blocked = std::async(std::launch::async, [&] {
    warden::api::HttpClient client({server.endpoint()});
    return client.send(warden::api::HttpRequest{"GET", "/v1/locks/i?index=" + std::to_string(revision) + "&wait_ms=10000", {}, {}, {}});
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  CHECK(blocked.wait_for(std::chrono::milliseconds(100)) == std::future_status::timeout);
  REQUIRE(server.request("POST", "/v1/locks/i/release", json{{"session", a}, {"token", first.json()["token"]}}.dump()).status == 200);
  auto answer = blocked.get();
  REQUIRE(answer.status == 200);
  CHECK(answer.json()["holders"].empty());
}

TEST_CASE("a release or resign repeated under its Idempotency-Key gets its first answer") {
  TestServer server;
  const std::string a = server.newSession();
  auto granted = acquire(server, "db", a);
  REQUIRE(granted.status == 200);
  const std::uint64_t token = granted.json()["token"];
  warden::api::HttpClient client({server.endpoint()});
  const auto release = [&](std::uint64_t t, const std::string& key) {
    return client.send(warden::api::HttpRequest{"POST", "/v1/locks/db/release",
                                                json{{"session", a}, {"token", t}}.dump(), "application/json", key});
  };
  auto first = release(token, "release-1");
  REQUIRE(first.status == 200);
  auto again = release(token, "release-1");  // a client that never saw the first answer
  CHECK(again.status == 200);
  CHECK(again.revision == first.revision);
  requireError(release(token, "release-2"), 409, "not_holder");          // a new key: a new release
  requireError(release(token + 1, "release-1"), 409, "idempotency_key_reused");  // another release under it
  requireError(release(token, std::string(129, 'k')), 400, "invalid_argument");  // a key too long

  // An election's resign and proclaim likewise.
  const auto post = [&](const std::string& target, const json& body, const std::string& key) {
    return client.send(warden::api::HttpRequest{"POST", target, body.dump(), "application/json", key});
  };
  auto led = post("/v1/elections/primary/campaign", json{{"session", a}, {"value", "me"}}, "c-1");
  REQUIRE(led.status == 200);
  const std::uint64_t term = led.json()["term"];
  REQUIRE(post("/v1/elections/primary/proclaim", json{{"session", a}, {"term", term}, {"value", "v2"}}, "p-1").status == 200);
  REQUIRE(post("/v1/elections/primary/resign", json{{"session", a}}, "r-1").status == 200);
  CHECK(post("/v1/elections/primary/proclaim", json{{"session", a}, {"term", term}, {"value", "v2"}}, "p-1").status == 200);
  requireError(post("/v1/elections/primary/proclaim", json{{"session", a}, {"term", term}, {"value", "v2"}}, "p-2"), 409,
               "not_leader_of_election");
  CHECK(server.request("GET", "/v1/elections/primary").json()["leader"].is_null());
}

TEST_CASE("bad lock requests are refused and change nothing") {
  TestServer server;
  const std::string a = server.newSession();
  requireError(server.request("POST", "/v1/locks/x/acquire", "{}"), 400, "invalid_argument");
  requireError(server.request("POST", "/v1/locks/x/acquire", json{{"session", "zz"}}.dump()), 400, "invalid_argument");
  requireError(server.request("POST", "/v1/locks/x/acquire", json{{"session", a}, {"mode", "odd"}}.dump()), 400, "invalid_argument");
  requireError(server.request("POST", "/v1/locks/x/acquire", json{{"session", a}, {"wait_ms", 300001}}.dump()), 400, "invalid_argument");
  requireError(server.request("POST", "/v1/locks/x/acquire", json{{"session", a}, {"extra", 1}}.dump()), 400, "invalid_argument");
  requireError(server.request("POST", "/v1/locks/x/acquire", json{{"session", "00000000000000ff"}}.dump()), 404, "session_not_found");
  requireError(server.request("POST", "/v1/locks/x/release", json{{"session", a}}.dump()), 400, "invalid_argument");
  requireError(server.request("GET", "/v1/locks/x/check"), 400, "invalid_argument");
  requireError(server.request("GET", "/v1/locks/x/acquire"), 405, "method_not_allowed");
  requireError(server.request("GET", "/v1/locks/x/nope"), 404, "not_found");
  requireError(server.request("PUT", "/v1/nodes/_warden/locks/x", R"({"data":"1","create":true})"), 403, "forbidden");
  CHECK(server.request("GET", "/v1/locks/x").json()["holders"].empty());
}

TEST_CASE("an election: the first campaign leads, the next waits (202) and leads once the leader resigns") {
  TestServer server;
  const std::string a = server.newSession(), b = server.newSession();
  auto first = server.request("POST", "/v1/elections/svc/campaign", json{{"session", a}, {"value", "a:1"}}.dump());
  REQUIRE(first.status == 200);
  CHECK(first.json()["leader"] == true);
  const std::uint64_t term = first.json()["term"];
  auto queued = server.request("POST", "/v1/elections/svc/campaign", json{{"session", b}, {"value", "b:1"}, {"wait_ms", 100}}.dump());
  REQUIRE(queued.status == 202);
  CHECK(queued.json()["position"] == 1);
  auto observed = server.request("GET", "/v1/elections/svc").json();
  CHECK(observed["leader"]["value"] == "a:1");
  CHECK(observed["candidates"] == 2);
  requireError(server.request("POST", "/v1/elections/svc/proclaim", json{{"session", b}, {"term", term}, {"value", "x"}}.dump()),
               409, "not_leader_of_election");
  REQUIRE(server.request("POST", "/v1/elections/svc/proclaim", json{{"session", a}, {"term", term}, {"value", "a:2"}}.dump()).status ==
          200);
  CHECK(server.request("GET", "/v1/elections/svc").json()["leader"]["value"] == "a:2");
  // b campaigns again and waits; a's resignation makes it leader, with a larger term.
  auto waiting = std::async(std::launch::async, [&] {
    warden::api::HttpClient client({server.endpoint()});
    return client.send(warden::api::HttpRequest{"POST", "/v1/elections/svc/campaign",
                                                json{{"session", b}, {"value", "b:1"}, {"wait_ms", 10000}}.dump(), "application/json", {}});
  });
  std::this_thread::sleep_for(std::chrono::milliseconds(200));
  REQUIRE(server.request("POST", "/v1/elections/svc/resign", json{{"session", a}}.dump()).status == 200);
  auto led = waiting.get();
  REQUIRE(led.status == 200);
  CHECK(led.json()["term"].get<std::uint64_t>() > term);
  CHECK(server.request("GET", "/v1/elections/svc").json()["leader"]["session"] == b);
  requireError(server.request("POST", "/v1/elections/svc/campaign", "{}"), 400, "invalid_argument");
  requireError(server.request("GET", "/v1/elections/svc/resign"), 405, "method_not_allowed");
}

TEST_CASE("a waiter gets a lock whose holder expired with a lock-delay only once the delay is over") {
  TestServer server;
  const std::string next = server.newSession();
  // Before the holder's session is created: its ttl, then the delay, count from later than this,
  // so no grant can come sooner than 2.5 s after it, however slow the machine.
  const auto start = std::chrono::steady_clock::now();
  const std::string holder = server.newSession(1000);
  warden::api::HttpClient client({server.endpoint()});
  auto first = client.send({"POST", "/v1/locks/ld/acquire", json{{"session", holder}, {"lock_delay_ms", 1500}}.dump(), "application/json", {}});
  REQUIRE(first.status == 200);
  // The holder sends no keepalive: its session expires after about a second, then the delay.
  auto got = acquire(server, "ld", next, 25000);
  const auto waited = std::chrono::steady_clock::now() - start;
  REQUIRE(got.status == 200);
  WARN("granted " << std::chrono::duration_cast<std::chrono::milliseconds>(waited).count()
                  << " ms after the holder's session was created (ttl 1000 ms, lock_delay_ms 1500)");
  CHECK(waited >= std::chrono::milliseconds(2500));
  requireError(client.send({"POST", "/v1/locks/ld/acquire", json{{"session", next}, {"lock_delay_ms", 60001}}.dump(), "application/json", {}}),
               400, "invalid_argument");
}

TEST_CASE("a waiter whose client hangs up leaves the queue at once, and a pipelined or patient client is not taken for one") {
  TestServer server;
  const std::string holder = server.newSession(), quitter = server.newSession(), patient = server.newSession();
  auto held = acquire(server, "hang", holder);
  REQUIRE(held.status == 200);
  auto waiters = [&] { return server.request("GET", "/v1/locks/hang").json()["waiters"].size(); };
  // A client asks to wait a minute, then hangs up.
  const std::string body = json{{"session", quitter}, {"wait_ms", 60000}}.dump();
  const std::string raw = "POST /v1/locks/hang/acquire HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                          "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
  int fd = connectLoopback(server.port());
  REQUIRE(fd >= 0);
  REQUIRE(::send(fd, raw.data(), raw.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(raw.size()));
  for (int i = 0; i < 3000 && waiters() != 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  REQUIRE(waiters() == 1);
  ::close(fd);
  // Gone from the queue long before its minute is up (polled for up to 30 s).
  for (int i = 0; i < 3000 && waiters() != 0; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK(waiters() == 0);
  // A client that stays is still granted the lock at the release.
  auto waiting = std::async(std::launch::async, [&] { return acquire(server, "hang", patient, 20000); });
  for (int i = 0; i < 3000 && waiters() != 1; ++i) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  REQUIRE(server.request("POST", "/v1/locks/hang/release", json{{"session", holder}, {"token", held.json()["token"]}}.dump()).status == 200);
  auto granted = waiting.get();
  REQUIRE(granted.status == 200);
  CHECK(granted.json()["session"] == patient);
  // A client that sends its next request before the answer (pipelining) keeps its place.
  const std::string next = "GET /v1/locks/hang HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n";
  const std::string wait2 = json{{"session", quitter}, {"wait_ms", 1500}}.dump();
  const std::string both = "POST /v1/locks/hang/acquire HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\n"
                           "Content-Length: " + std::to_string(wait2.size()) + "\r\n\r\n" + wait2 + next;
  const std::string answers = rawExchange(server.port(), both, 30000);
  CHECK(answers.find("409") != std::string::npos);           // not granted within its 1.5 s
  CHECK(answers.find("not granted within wait_ms") != std::string::npos);
  CHECK(answers.find("\"holders\"") != std::string::npos);   // then the pipelined read
}
