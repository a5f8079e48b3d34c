#include "tests/jepsen/WatchWorkload.h"

#include <thread>

#include <nlohmann/json.hpp>

#include "api/HttpClient.h"

namespace warden::tests::jepsen {

using json = nlohmann::ordered_json;
using std::chrono::milliseconds;

void WatchWorkload::runClients(std::atomic<bool>& stop) {
  for (std::uint64_t node = 1; node <= cluster_.size(); ++node) {
    if (cluster_.request(node, "PUT", "/v1/nodes/jepsen-w", R"({"create": true})").status == 200) break;
  }
  watchers_.resize(cluster_.size());
  std::vector<std::thread> clients;
  for (std::uint64_t node = 1; node <= cluster_.size(); ++node) {
    clients.emplace_back([this, node, &stop] { writer(node - 1, node, stop); });
    clients.emplace_back([this, node, &stop] {
      Watcher& w = watchers_[node - 1];
      w.node = node;
      while (!stop && w.broken.empty()) {
        if (!poll(w, 1000)) {
          // Reconnect elsewhere, where it left off.
          std::lock_guard lock(mutex_);
          counts_.reconnects++;
          w.node = choices_.range(1, cluster_.size());
        }
      }
    });
  }
  for (auto& t : clients) t.join();
}

void WatchWorkload::error(const std::string& what) {
  std::lock_guard lock(mutex_);
  counts_.errors++;
  if (counts_.firstError.empty()) counts_.firstError = what;
}

void WatchWorkload::writer(std::size_t index, std::uint64_t node, std::atomic<bool>& stop) {
  api::HttpClient http({"http://127.0.0.1:" + std::to_string(cluster_.httpPort(node))}, milliseconds(12'000));
  std::uint64_t n = 0;
  while (!stop) {
    const std::string key = "/jepsen-w/k" + std::to_string(choices_.range(0, 4));
    try {
      auto r = http.request("PUT", "/v1/nodes" + key,
                            json{{"data", "w" + std::to_string(index) + "-" + std::to_string(++n)}, {"create", true}}.dump());
      if (r.status == 200) {
        std::lock_guard lock(mutex_);
        acknowledged_[r.json()["stat"]["modified"].get<std::uint64_t>()] = key;
        counts_.writes++;
      } else if (r.status != 503 && r.status != 504 && r.status != 429) {
        error("write: " + std::to_string(r.status) + " " + r.body);
      } else {
        std::this_thread::sleep_for(milliseconds(50));
      }
    } catch (const api::HttpClientError&) {
      std::this_thread::sleep_for(milliseconds(100));
    }
    std::this_thread::sleep_for(milliseconds(choices_.range(0, 10)));
  }
}

bool WatchWorkload::poll(Watcher& w, std::uint64_t waitMs) {
  try {
    api::HttpClient http({"http://127.0.0.1:" + std::to_string(cluster_.httpPort(w.node))}, milliseconds(waitMs + 5000));
    auto r = http.request("GET", "/v1/watch/jepsen-w?recursive&since=" + std::to_string(w.cursor) +
                                     "&wait_ms=" + std::to_string(waitMs));
    if (r.status == 410) {
      // This node's history starts later (it rebuilt from a snapshot): another may have it.
      // Every node saying so, one after another, is a real loss.
      if (++w.compactedInARow >= cluster_.size() * 2) {
        w.broken = "every node said the history was compacted past revision " + std::to_string(w.cursor);
      }
      return false;
    }
    if (r.status != 200) return false;
    w.compactedInARow = 0;
    const json body = r.json();
    for (const auto& e : body["events"]) w.seen.emplace_back(e["revision"].get<std::uint64_t>(), e["path"].get<std::string>());
    {
      std::lock_guard lock(mutex_);
      counts_.events += body["events"].size();
    }
    w.cursor = std::max(w.cursor, body["revision"].get<std::uint64_t>());
    return true;
  } catch (const api::HttpClientError&) {
    return false;
  }
}

WatchResult WatchWorkload::check() {
  std::map<std::uint64_t, std::string> acknowledged;
  {
    std::lock_guard lock(mutex_);
    acknowledged = acknowledged_;
  }
  const std::uint64_t last = acknowledged.empty() ? 0 : acknowledged.rbegin()->first;
  // Each watcher catches up to the last acknowledged write (bounded), moving on when refused.
  for (Watcher& w : watchers_) {
    const auto deadline = Clock::now() + std::chrono::seconds(20);
    while (w.cursor < last && w.broken.empty() && Clock::now() < deadline) {
      if (!poll(w, 500)) w.node = w.node % cluster_.size() + 1;
    }
  }
  std::lock_guard lock(mutex_);
  WatchResult out = counts_;
  for (const Watcher& w : watchers_) {
    const std::string who = "the watcher that began at node " + std::to_string(&w - watchers_.data() + 1);
    if (!w.broken.empty()) {
      if (out.violation.empty()) out.violation = who + ": " + w.broken;
      continue;
    }
    if (w.cursor < last && out.violation.empty()) {
      out.violation = who + " did not get past revision " + std::to_string(w.cursor) + " of " + std::to_string(last) + " in 20 s";
    }
    std::set<std::pair<std::uint64_t, std::string>> once;
    std::uint64_t previous = 0;
    for (const auto& event : w.seen) {
      if (event.first < previous && out.violation.empty()) {
        out.violation = who + " was told of revision " + std::to_string(event.first) + " after revision " + std::to_string(previous);
      }
      previous = event.first;
      if (!once.insert(event).second && out.violation.empty()) {
        out.violation = who + " was told of revision " + std::to_string(event.first) + " (" + event.second + ") twice";
      }
    }
    for (const auto& [revision, path] : acknowledged) {
      if (revision > w.cursor) break;
      if (!once.count({revision, path}) && out.violation.empty()) {
        out.violation = who + " missed the acknowledged write of " + path + " at revision " + std::to_string(revision) +
                        " (it got to revision " + std::to_string(w.cursor) + ")";
      }
    }
  }
  return out;
}

}  // namespace warden::tests::jepsen
