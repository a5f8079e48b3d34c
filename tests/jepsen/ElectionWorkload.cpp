#include "tests/jepsen/ElectionWorkload.h"

#include <algorithm>
#include <thread>

#include <nlohmann/json.hpp>

#include "api/HttpClient.h"
#include "tests/jepsen/SessionKeeper.h"

namespace warden::tests::jepsen {

using json = nlohmann::ordered_json;
using std::chrono::milliseconds;

namespace {
constexpr std::uint64_t kTtlMs = 1500;  // below the nemesis's 2-4 s faults: leaders do lose sessions
}

void ElectionWorkload::runClients(std::atomic<bool>& stop) {
  std::vector<std::thread> clients;
  for (std::uint64_t node = 1; node <= cluster_.size(); ++node) {
    clients.emplace_back([this, node, &stop] { client(node, stop); });
  }
  for (auto& t : clients) t.join();
}

void ElectionWorkload::error(const std::string& what) {
  std::lock_guard lock(mutex_);
  counts_.errors++;
  if (counts_.firstError.empty()) counts_.firstError = what;
}

void ElectionWorkload::observe(const Observation& o) {
  std::lock_guard lock(mutex_);
  observations_.push_back(o);
}

void ElectionWorkload::client(std::uint64_t node, std::atomic<bool>& stop) {
  const std::string endpoint = "http://127.0.0.1:" + std::to_string(cluster_.httpPort(node));
  api::HttpClient http({endpoint}, milliseconds(12'000));
  SessionKeeper keeper(endpoint, milliseconds(kTtlMs / 3), stop);
  std::string session;
  auto pause = [&] { std::this_thread::sleep_for(milliseconds(choices_.range(50, 150))); };
  // A linearizable read of the election: who leads, in which term.
  auto readElection = [&] {
    Observation o;
    o.invoked = clock_.nowUs();
    auto r = http.request("GET", "/v1/elections/jepsen");
    o.returned = clock_.nowUs();
    if (r.status != 200) {
      if (r.status != 503 && r.status != 504) error("read: " + std::to_string(r.status) + " " + r.body);
      return;
    }
    const json body = r.json();
    {
      std::lock_guard lock(mutex_);
      counts_.reads++;
    }
    if (body["leader"].is_null()) return;
    o.term = body["leader"]["term"];
    o.session = body["leader"]["session"];
    observe(o);
  };
  while (!stop) {
    try {
      bool lost = false;
      session = keeper.ensure(http, kTtlMs, &lost);
      if (lost) {
        std::lock_guard lock(mutex_);
        counts_.sessionsLost++;
      }
      if (session.empty()) {
        pause();
        continue;
      }
      Observation won;
      won.invoked = clock_.nowUs();
      auto c = http.request("POST", "/v1/elections/jepsen/campaign",
                            json{{"session", session}, {"value", "node-" + std::to_string(node)},
                                 {"wait_ms", choices_.range(200, 1000)}}
                                .dump());
      won.returned = clock_.nowUs();
      if (c.status == 404) {
        std::lock_guard lock(mutex_);
        counts_.sessionsLost++;
        session.clear();
        keeper.keep("");
        continue;
      }
      if (c.status == 202) {
        readElection();  // someone else leads: what does this node say?
        continue;
      }
      if (c.status != 200) {
        if (c.status != 503 && c.status != 504 && c.status != 429) error("campaign: " + std::to_string(c.status) + " " + c.body);
        pause();
        continue;
      }
      won.term = c.json()["term"];
      won.session = session;
      observe(won);
      leaderNode_ = node;
      {
        std::lock_guard lock(mutex_);
        counts_.wins++;
      }
      // Lead for a while, reading the election as anyone would.
      const auto until = Clock::now() + milliseconds(choices_.range(leadMinMs, leadMaxMs));
      while (Clock::now() < until && !stop && !keeper.lost()) {
        readElection();
        std::this_thread::sleep_for(milliseconds(20));
      }
      std::uint64_t mine = node;
      leaderNode_.compare_exchange_strong(mine, 0);
      if (http.request("POST", "/v1/elections/jepsen/resign", json{{"session", session}}.dump()).status == 200) {
        std::lock_guard lock(mutex_);
        counts_.resigns++;
      }
    } catch (const api::HttpClientError&) {
      pause();  // no answer: whatever it was may or may not have happened
    }
  }
  if (!session.empty()) {
    try {
      http.request("DELETE", "/v1/sessions/" + session);
    } catch (const api::HttpClientError&) {
    }
  }
}

ElectionResult ElectionWorkload::check() {
  std::lock_guard lock(mutex_);
  ElectionResult out = counts_;
  // one-leader: a term names one session.
  std::map<std::uint64_t, std::string> leaderOf;
  for (const Observation& o : observations_) {
    auto [it, fresh] = leaderOf.emplace(o.term, o.session);
    if (!fresh && it->second != o.session && out.violation.empty()) {
      out.violation = "term " + std::to_string(o.term) + " was led by session " + it->second + " and by session " + o.session;
    }
  }
  out.terms = leaderOf.size();
  // terms: for each term, the latest invocation and the earliest return of an observation of it;
  // a term observed by a read invoked after a larger term's observation returned went back.
  std::map<std::uint64_t, std::pair<std::uint64_t, std::uint64_t>> spans;
  for (const Observation& o : observations_) {
    auto [it, fresh] = spans.try_emplace(o.term, o.invoked, o.returned);
    if (!fresh) {
      it->second.first = std::max(it->second.first, o.invoked);
      it->second.second = std::min(it->second.second, o.returned);
    }
  }
  std::uint64_t earliestLarger = ~0ull, larger = 0;
  for (auto it = spans.rbegin(); it != spans.rend() && out.violation.empty(); ++it) {
    if (earliestLarger < it->second.first) {
      out.violation = "term " + std::to_string(it->first) + " was observed by a read invoked at " +
                      std::to_string(it->second.first / 1000) + " ms, after term " + std::to_string(larger) +
                      " had been observed at " + std::to_string(earliestLarger / 1000) + " ms: the leader went back";
    }
    if (it->second.second < earliestLarger) {
      earliestLarger = it->second.second;
      larger = it->first;
    }
  }
  return out;
}

}  // namespace warden::tests::jepsen
