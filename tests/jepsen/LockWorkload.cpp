#include "tests/jepsen/LockWorkload.h"

#include <algorithm>
#include <map>
#include <thread>

#include <nlohmann/json.hpp>

#include "api/HttpClient.h"
#include "tests/jepsen/SessionKeeper.h"

namespace warden::tests::jepsen {

using json = nlohmann::ordered_json;
using std::chrono::milliseconds;

namespace {
constexpr std::uint64_t kTtlMs = 1500;  // below the nemesis's 2-4 s faults: holders do lose sessions
}

void LockWorkload::runClients(std::atomic<bool>& stop) {
  std::vector<std::thread> clients;
  std::size_t index = 0;
  for (std::uint64_t node = 1; node <= cluster_.size(); ++node, ++index) {
    clients.emplace_back([this, index, node, &stop] { client(index, node, stop); });
  }
  for (auto& t : clients) t.join();
}

void LockWorkload::error(const std::string& what) {
  std::lock_guard lock(mutex_);
  counts_.errors++;
  if (counts_.firstError.empty()) counts_.firstError = what;
}

void LockWorkload::client(std::size_t index, std::uint64_t node, std::atomic<bool>& stop) {
  (void)index;
  const std::string endpoint = "http://127.0.0.1:" + std::to_string(cluster_.httpPort(node));
  api::HttpClient http({endpoint}, milliseconds(12'000));
  SessionKeeper keeper(endpoint, milliseconds(kTtlMs / 3), stop);
  std::string session;
  auto pauseAfterFailure = [&] { std::this_thread::sleep_for(milliseconds(choices_.range(50, 150))); };
  while (!stop) {
    try {
      bool lost = false;
      session = keeper.ensure(http, kTtlMs, &lost);
      if (lost) {
        std::lock_guard lock(mutex_);
        counts_.sessionsLost++;
      }
      if (session.empty()) {
        pauseAfterFailure();
        continue;
      }
      Grant grant;
      grant.acquireInvoked = clock_.nowUs();
      auto a = http.request("POST", "/v1/locks/jepsen/acquire",
                            json{{"session", session}, {"wait_ms", choices_.range(200, 1000)}}.dump());
      if (a.status == 404) {
        std::lock_guard lock(mutex_);
        counts_.sessionsLost++;
        session.clear();
        keeper.keep("");
        continue;
      }
      if (a.status != 200) {
        if (a.status != 409 && a.status != 503 && a.status != 504 && a.status != 429) {
          error("acquire: " + std::to_string(a.status) + " " + a.body);
        }
        if (a.status != 409) pauseAfterFailure();
        continue;
      }
      grant.token = a.json()["token"];
      grant.answered = clock_.nowUs();
      holderNode_ = node;
      {
        std::lock_guard lock(mutex_);
        grants_.push_back(grant);
        counts_.grants++;
      }
      // Hold it for a moment, checking the token as a fenced resource would.
      const auto holdUntil = Clock::now() + milliseconds(choices_.range(holdMinMs, holdMaxMs));
      do {
        Seen seen{grant.token, clock_.nowUs(), 0};
        auto c = http.request("GET", "/v1/locks/jepsen/check?token=" + std::to_string(grant.token));
        seen.returned = clock_.nowUs();
        {
          std::lock_guard lock(mutex_);
          counts_.checks++;
          if (c.status == 200) seen_.push_back(seen);
          if (c.status == 409) counts_.staleChecks++;
        }
        if (c.status != 200 && c.status != 409 && c.status != 503 && c.status != 504) {
          error("check: " + std::to_string(c.status) + " " + c.body);
        }
        if (c.status == 409) break;  // lost it: the release will be refused
        std::this_thread::sleep_for(milliseconds(10));
      } while (Clock::now() < holdUntil && !stop);
      std::uint64_t mine = node;  // (no longer the holder's node, unless another took over)
      holderNode_.compare_exchange_strong(mine, 0);
      auto r = http.request("POST", "/v1/locks/jepsen/release", json{{"session", session}, {"token", grant.token}}.dump());
      if (r.status == 200) {
        std::lock_guard lock(mutex_);
        counts_.releases++;
      }
    } catch (const api::HttpClientError&) {
      pauseAfterFailure();  // no answer: whatever it was may or may not have happened
    }
  }
  // The session goes with the client (its lock, if any, with it).
  if (!session.empty()) {
    try {
      http.request("DELETE", "/v1/sessions/" + session);
    } catch (const api::HttpClientError&) {
    }
  }
}

LockResult LockWorkload::check() {
  std::lock_guard lock(mutex_);
  LockResult out = counts_;
  // exclusive: for each token, the latest invocation and the earliest return of a valid check.
  std::map<std::uint64_t, std::pair<std::uint64_t, std::uint64_t>> spans;  // token -> (last invoked, first returned)
  for (const Seen& s : seen_) {
    auto [it, fresh] = spans.try_emplace(s.token, s.invoked, s.returned);
    if (!fresh) {
      it->second.first = std::max(it->second.first, s.invoked);
      it->second.second = std::min(it->second.second, s.returned);
    }
  }
  std::uint64_t earliestLarger = ~0ull, larger = 0;
  for (auto it = spans.rbegin(); it != spans.rend() && out.violation.empty(); ++it) {
    if (earliestLarger < it->second.first) {
      out.violation = "token " + std::to_string(it->first) + " was found valid by a check invoked at " +
                      std::to_string(it->second.first / 1000) + " ms, after token " + std::to_string(larger) +
                      " was found valid at " + std::to_string(earliestLarger / 1000) + " ms: two holders";
    }
    if (it->second.second < earliestLarger) {
      earliestLarger = it->second.second;
      larger = it->first;
    }
  }
  // tokens: a grant answered before another acquire was invoked has the smaller token.
  for (std::size_t i = 0; i < grants_.size() && out.violation.empty(); ++i) {
    for (std::size_t j = 0; j < grants_.size(); ++j) {
      const Grant &a = grants_[i], &b = grants_[j];
      if (a.token != b.token && a.answered < b.acquireInvoked && b.token < a.token) {
        out.violation = "a grant answered at " + std::to_string(a.answered / 1000) + " ms has token " +
                        std::to_string(a.token) + "; an acquire invoked later (" +
                        std::to_string(b.acquireInvoked / 1000) + " ms) was granted token " + std::to_string(b.token);
        break;
      }
    }
  }
  return out;
}

}  // namespace warden::tests::jepsen
