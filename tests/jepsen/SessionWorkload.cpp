#include "tests/jepsen/SessionWorkload.h"

#include <thread>

#include <nlohmann/json.hpp>

#include "api/HttpClient.h"

namespace warden::tests::jepsen {

using json = nlohmann::ordered_json;
using std::chrono::milliseconds;

namespace {
std::string ephemeralPath(const std::string& session) { return "/v1/nodes/jepsen-s/e-" + session; }
}  // namespace

void SessionWorkload::runClients(std::atomic<bool>& stop) {
  for (std::uint64_t node = 1; node <= cluster_.size(); ++node) {
    if (cluster_.request(node, "PUT", "/v1/nodes/jepsen-s", R"({"create": true})").status == 200) break;
  }
  std::vector<std::thread> clients;
  std::size_t index = 0;
  for (std::uint64_t node = 1; node <= cluster_.size(); ++node) {
    for (int i = 0; i < 2; ++i, ++index) clients.emplace_back([this, index, node, &stop] { client(index, node, stop); });
  }
  for (auto& t : clients) t.join();
}

void SessionWorkload::error(const std::string& what) {
  std::lock_guard lock(mutex_);
  counts_.errors++;
  if (counts_.firstError.empty()) counts_.firstError = what;
}

void SessionWorkload::client(std::size_t index, std::uint64_t node, std::atomic<bool>& stop) {
  (void)index;
  api::HttpClient http({"http://127.0.0.1:" + std::to_string(cluster_.httpPort(node))}, milliseconds(12'000));
  auto pause = [&] { std::this_thread::sleep_for(milliseconds(choices_.range(50, 150))); };
  while (!stop) {
    try {
      const std::uint64_t ttl = choices_.range(1500, kMaxTtlMs);
      const std::uint64_t createInvoked = clock_.nowUs();
      auto created = http.request("POST", "/v1/sessions", json{{"ttl_ms", ttl}}.dump());
      if (created.status != 201) {
        pause();
        continue;
      }
      const std::string id = created.json()["id"];
      auto e = http.request("POST", ephemeralPath(id), json{{"ephemeral", true}, {"session", id}}.dump());
      if (e.status != 201) {
        if (e.status >= 400 && e.status < 500 && e.status != 404 && e.status != 429) {
          error("ephemeral: " + std::to_string(e.status) + " " + e.body);
        }
        continue;  // its session expires by itself
      }
      std::size_t mine = 0;
      {
        std::lock_guard lock(mutex_);
        mine = sessions_.size();
        sessions_.push_back(Session{id, ttl, createInvoked, 0, false});
        counts_.sessions++;
      }
      // Kept alive for 0 to 5 s (a third walk away at once), then left to expire.
      const auto keepUntil = Clock::now() + milliseconds(choices_.chance(0.3) ? 0 : choices_.range(500, 5000));
      while (Clock::now() < keepUntil && !stop) {
        std::this_thread::sleep_for(milliseconds(ttl / 3));
        const std::uint64_t invoked = clock_.nowUs();
        auto k = http.request("POST", "/v1/sessions/" + id + "/keepalive");
        if (k.status == 200) {
          std::lock_guard lock(mutex_);
          sessions_[mine].lastAckedInvoke = invoked;
          counts_.keepalivesAcked++;
        }
        auto r = http.request("GET", ephemeralPath(id));
        const std::uint64_t returned = clock_.nowUs();
        std::lock_guard lock(mutex_);
        counts_.reads++;
        if (r.status != 404) continue;
        Session& s = sessions_[mine];
        s.goneSeenAt = returned;
        counts_.goneSeen++;
        // The leader waits a ttl on its clock (within 1% of real time) after it received the
        // latest keepalive, which came after that keepalive's invocation.
        if (returned < s.lastAckedInvoke + s.ttlMs * 1000 * 98 / 100 && counts_.violation.empty()) {
          counts_.violation = "session " + id + " (ttl " + std::to_string(s.ttlMs) + " ms) was found gone by a read returning at " +
                              std::to_string(returned / 1000) + " ms; a keepalive invoked at " +
                              std::to_string(s.lastAckedInvoke / 1000) + " ms was acknowledged";
        }
        break;
      }
      std::lock_guard lock(mutex_);
      sessions_[mine].abandoned = true;
      counts_.abandoned++;
    } catch (const api::HttpClientError&) {
      pause();
    }
  }
}

SessionResult SessionWorkload::check() {
  std::vector<Session> sessions;
  {
    std::lock_guard lock(mutex_);
    sessions = sessions_;
  }
  // Every session was walked away from at the latest when the clients stopped: each must be
  // gone from every node once it had its ttl (and a leader change's fresh one). Asked again
  // until none is left or a deadline far beyond that (a loaded machine is slow, not wrong).
  std::string lingering;
  const auto deadline = Clock::now() + std::chrono::seconds(20);
  do {
    lingering.clear();
    for (std::uint64_t node = 1; node <= cluster_.size() && lingering.empty(); ++node) {
      for (const Session& s : sessions) {
        if (s.goneSeenAt != 0) continue;
        const auto r = cluster_.request(node, "GET", ephemeralPath(s.id), {}, 5000);
        if (r.status == 200) {
          lingering = "session " + s.id + " (ttl " + std::to_string(s.ttlMs) +
                      " ms), walked away from, still has its ephemeral node on node " + std::to_string(node) +
                      " 20 s after the clients stopped and the cluster went quiet";
          break;
        }
      }
    }
    if (!lingering.empty()) std::this_thread::sleep_for(milliseconds(500));
  } while (!lingering.empty() && Clock::now() < deadline);
  std::lock_guard lock(mutex_);
  SessionResult out = counts_;
  if (out.violation.empty()) out.violation = lingering;
  return out;
}

}  // namespace warden::tests::jepsen
