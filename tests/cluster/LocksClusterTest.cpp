// Issue 12 on a real 3-node cluster (the contention also on 5 nodes): contending clients, each
// through its own node, take turns holding a lock through a kill -9 of the leader (on 5 nodes of
// the leader and a follower), never two at once, with tokens increasing in grant order; a holder
// that falls silent (as if paused) loses the lock when its session expires, the next holder's
// token is larger, and the check rejects the old one; waiters whose clients hang up leave the
// queue at once, through whichever node they waited on.

#include <catch2/catch.hpp>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <mutex>
#include <thread>
#include <vector>

#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include "tests/cluster/TestCluster.h"
#include "tests/http/TestServer.h"

using namespace warden::tests;
using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

namespace {

std::vector<std::string> endpoints(TestCluster& cluster, std::uint64_t first) {
  std::vector<std::string> out;
  for (std::uint64_t i = 0; i < cluster.size(); ++i) {
    out.push_back("http://127.0.0.1:" + std::to_string(cluster.httpPort((first - 1 + i) % cluster.size() + 1)));
  }
  return out;
}

struct Hold {
  std::uint64_t token;
  Clock::time_point granted, releasing;
};

}  // namespace

namespace {

void contendThroughLeaderKill(std::size_t size) {
  TestCluster cluster(size);
  auto leader = cluster.waitForLeader();
  REQUIRE(leader);
  // On 5 nodes a follower dies with the leader (the last node that is not the leader): 3 of 5
  // still make a majority.
  std::vector<std::uint64_t> killed{*leader};
  if (size >= 5) killed.push_back(*leader == size ? size - 1 : size);
  std::mutex mutex;
  std::vector<Hold> holds;
  std::atomic<bool> stop{false};
  std::atomic<int> refused{0};
  auto client = [&](std::uint64_t node) {
    warden::api::HttpClient http(endpoints(cluster, node), std::chrono::seconds(15),
                                 warden::api::RetryPolicy{.failoverOnUnavailable = true});
    // 30 s ttl, a keepalive every second: an acquire held up by the failover (up to the 15 s
    // client timeout) cannot let a holder's session expire mid-hold, which would let the lock pass
    // on while it still "holds" and fail the check below for the wrong reason.
    // (No Catch assertion on this thread: one that fails would throw past it. A client whose
    // session cannot be created takes no part, which the hold counts below notice.)
    std::string session;
    const std::string key = warden::api::HttpClient::newIdempotencyKey();
    for (int attempt = 0; attempt < 100 && session.empty() && !stop; ++attempt) {
      try {
        auto created = http.send({"POST", "/v1/sessions", json{{"ttl_ms", 30000}}.dump(), "application/json", key});
        if (created.status == 201) session = created.json()["id"];
      } catch (const warden::api::HttpClientError&) {
      }
      if (session.empty()) std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    if (session.empty()) return;
    auto lastKeepalive = Clock::now();
    while (!stop) try {
      if (Clock::now() - lastKeepalive > std::chrono::milliseconds(1000)) {
        http.send({"POST", "/v1/sessions/" + session + "/keepalive", {}, "application/json", {}});
        lastKeepalive = Clock::now();
      }
      auto got = http.send({"POST", "/v1/locks/m/acquire", json{{"session", session}, {"wait_ms", 1000}}.dump(),
                            "application/json", {}});
      if (got.status != 200) {
        refused++;
        continue;
      }
      Hold hold{got.json()["token"], Clock::now(), {}};
      std::this_thread::sleep_for(std::chrono::milliseconds(20));  // the critical section
      hold.releasing = Clock::now();
      {
        std::lock_guard lock(mutex);
        holds.push_back(hold);
      }
      // Released by its token, retried (with the same token) through failures.
      const std::string key = warden::api::HttpClient::newIdempotencyKey();
      for (int attempt = 0; attempt < 20; ++attempt) {
        try {
          auto released = http.send({"POST", "/v1/locks/m/release", json{{"session", session}, {"token", hold.token}}.dump(),
                                     "application/json", key});
          if (released.status == 200 || released.status == 409) break;
        } catch (const warden::api::HttpClientError&) {
        }
        std::this_thread::sleep_for(std::chrono::milliseconds(100));
      }
    } catch (const warden::api::HttpClientError&) {
      // A connection reset by the killed leader leaves an acquire or keepalive (no
      // Idempotency-Key, so not repeated elsewhere) without an answer: ask again. An acquire that
      // did take the lock is answered at once with the same token when asked again.
      refused++;
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
  };
  std::vector<std::thread> clients;
  for (std::uint64_t n = 1; n <= 4; ++n) clients.emplace_back(client, (n - 1) % size + 1);
  // Each phase ends once so many more holds are done (within a generous deadline), not after a
  // fixed time, which a slow machine (ASan, 2 cores) may fill with nothing.
  auto holdsAtLeast = [&](std::size_t n) {
    const auto deadline = Clock::now() + std::chrono::seconds(30);
    for (;;) {
      {
        std::lock_guard lock(mutex);
        if (holds.size() >= n) return true;
      }
      if (Clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
  };
  const bool beforeKill = holdsAtLeast(8);
  for (auto id : killed) cluster.kill9(id);
  const auto killedAt = Clock::now();
  const bool afterKill = beforeKill && holdsAtLeast(16);
  WARN(size << " nodes, " << killed.size() << " killed: 8 more holds "
            << std::chrono::duration_cast<std::chrono::milliseconds>(Clock::now() - killedAt).count() << " ms after the kill");
  for (auto id : killed) cluster.start(id);
  const bool afterRestart = afterKill && holdsAtLeast(24);
  stop = true;
  for (auto& t : clients) t.join();
  REQUIRE(beforeKill);
  REQUIRE(afterKill);
  REQUIRE(afterRestart);
  // Every node, the restarted ones too, ends with the same state (the lock's and the sessions').
  REQUIRE(cluster.waitConverged());

  std::sort(holds.begin(), holds.end(), [](const Hold& a, const Hold& b) { return a.token < b.token; });
  INFO(holds.size() << " holds, " << refused << " acquires that timed out or failed");
  REQUIRE(holds.size() > 20);
  for (std::size_t i = 1; i < holds.size(); ++i) {
    CHECK(holds[i].token > holds[i - 1].token);
    // Granted only after the previous holder was done: never two holders at once.
    CHECK(holds[i].granted >= holds[i - 1].releasing);
  }
}

}  // namespace

TEST_CASE("contending clients hold a lock one at a time through a leader kill with tokens rising in grant order on 3 nodes") {
  contendThroughLeaderKill(3);
}

TEST_CASE("contending clients hold a lock one at a time through a kill of the leader and a follower with tokens rising in grant order on 5 nodes") {
  contendThroughLeaderKill(5);
}

TEST_CASE("a holder that falls silent loses the lock when its session expires and its token is then stale") {
  TestCluster cluster(3);
  REQUIRE(cluster.waitForLeader());
  auto session = [&](std::uint64_t node, int ttl) -> std::string {
    auto r = cluster.request(node, "POST", "/v1/sessions", json{{"ttl_ms", ttl}}.dump());
    REQUIRE(r.status == 201);
    return r.json()["id"];
  };
  const std::string silent = session(1, 1500), next = session(2, 30000);
  auto first = cluster.request(1, "POST", "/v1/locks/job/acquire", json{{"session", silent}}.dump());
  REQUIRE(first.status == 200);
  const std::uint64_t oldToken = first.json()["token"];
  // The silent holder sends nothing more (a paused process); the next waits through node 2.
  const auto start = Clock::now();
  auto got = cluster.request(2, "POST", "/v1/locks/job/acquire", json{{"session", next}, {"wait_ms", 15000}}.dump(), 20000);
  REQUIRE(got.status == 200);
  CHECK(Clock::now() - start >= std::chrono::milliseconds(1000));  // not before the session could expire
  const std::uint64_t newToken = got.json()["token"];
  CHECK(newToken > oldToken);
  for (std::uint64_t node = 1; node <= 3; ++node) {
    auto stale = cluster.request(node, "GET", "/v1/locks/job/check?token=" + std::to_string(oldToken));
    CHECK(stale.status == 409);
    CHECK(stale.json()["valid"] == false);
    CHECK(cluster.request(node, "GET", "/v1/locks/job/check?token=" + std::to_string(newToken)).json()["valid"] == true);
  }
  // Its release is refused: it holds nothing.
  CHECK(cluster.request(1, "POST", "/v1/locks/job/release", json{{"session", silent}, {"token", oldToken}}.dump()).status == 404);
}

namespace {

// A blocking acquire sent on a raw connection, so that the test can hang up mid-wait.
struct RawWaiter {
  int fd = -1;
  std::string session;
  RawWaiter() = default;
  RawWaiter(const RawWaiter&) = delete;
  RawWaiter& operator=(const RawWaiter&) = delete;
  ~RawWaiter() { hangUp(); }
  void hangUp() {
    if (fd >= 0) ::close(fd);
    fd = -1;
  }
  // What came back within `ms` (empty if nothing).
  std::string answer(int ms) {
    std::string out;
    const auto deadline = Clock::now() + std::chrono::milliseconds(ms);
    char buf[4096];
    while (Clock::now() < deadline && out.find("\r\n\r\n") == std::string::npos) {
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, 50) <= 0) continue;
      const ssize_t n = ::recv(fd, buf, sizeof buf, 0);
      if (n <= 0) break;
      out.append(buf, static_cast<std::size_t>(n));
    }
    // The body follows the head; give it a moment to arrive whole.
    std::this_thread::sleep_for(std::chrono::milliseconds(50));
    const ssize_t n = ::recv(fd, buf, sizeof buf, MSG_DONTWAIT);
    if (n > 0) out.append(buf, static_cast<std::size_t>(n));
    return out;
  }
};

}  // namespace

TEST_CASE("waiters through any node whose clients hang up leave the queue at once, and the next in line still gets the lock") {
  TestCluster cluster(3);
  REQUIRE(cluster.waitForLeader());
  auto open = [&](std::uint64_t node) -> std::string {
    auto r = cluster.request(node, "POST", "/v1/sessions", json{{"ttl_ms", 30000}}.dump());
    REQUIRE(r.status == 201);
    return r.json()["id"];
  };
  auto waiting = [&](std::uint64_t node) {
    return cluster.request(node, "GET", "/v1/locks/q").json()["waiters"].size();
  };
  const std::string holder = open(1);
  auto held = cluster.request(1, "POST", "/v1/locks/q/acquire", json{{"session", holder}}.dump());
  REQUIRE(held.status == 200);
  std::vector<RawWaiter> waiters(8);
  for (std::size_t i = 0; i < waiters.size(); ++i) {
    const std::uint64_t node = i % 3 + 1;
    waiters[i].session = open(node);
    waiters[i].fd = connectLoopback(cluster.httpPort(node));
    REQUIRE(waiters[i].fd >= 0);
    const std::string body = json{{"session", waiters[i].session}, {"wait_ms", 60000}}.dump();
    const std::string raw = "POST /v1/locks/q/acquire HTTP/1.1\r\nHost: x\r\nContent-Length: " + std::to_string(body.size()) +
                            "\r\n\r\n" + body;
    REQUIRE(::send(waiters[i].fd, raw.data(), raw.size(), MSG_NOSIGNAL) == static_cast<ssize_t>(raw.size()));
    // One at a time, so that their order in the queue is known.
    for (int t = 0; t < 3000 && waiting(1) != i + 1; ++t) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    REQUIRE(waiting(1) == i + 1);
  }
  // Every other waiter hangs up (on all three nodes): gone from the queue (polled for up to 30 s;
  // the queue holding them until their 60 s wait_ms would fail it).
  for (std::size_t i = 0; i < waiters.size(); i += 2) waiters[i].hangUp();
  for (int t = 0; t < 3000 && waiting(2) != 4; ++t) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  REQUIRE(waiting(2) == 4);
  for (std::uint64_t node = 1; node <= 3; ++node) CHECK(waiting(node) == 4);
  // The release grants the first waiter still there, and only it is answered.
  REQUIRE(cluster.request(1, "POST", "/v1/locks/q/release", json{{"session", holder}, {"token", held.json()["token"]}}.dump())
              .status == 200);
  const std::string first = waiters[1].answer(30000);
  CHECK(first.starts_with("HTTP/1.1 200"));
  CHECK(first.find(waiters[1].session) != std::string::npos);
  for (std::size_t i = 3; i < waiters.size(); i += 2) CHECK(waiters[i].answer(100).empty());
  // The rest hang up too: nobody is left waiting, and the holder keeps its lock.
  for (std::size_t i = 3; i < waiters.size(); i += 2) waiters[i].hangUp();
  for (int t = 0; t < 3000 && waiting(3) != 0; ++t) std::this_thread::sleep_for(std::chrono::milliseconds(10));
  CHECK(waiting(3) == 0);
  auto state = cluster.request(3, "GET", "/v1/locks/q").json();
  REQUIRE(state["holders"].size() == 1);
  CHECK(state["holders"][0]["session"] == waiters[1].session);
}
