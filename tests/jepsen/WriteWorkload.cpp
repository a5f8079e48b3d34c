#include "tests/jepsen/WriteWorkload.h"

#include <map>
#include <thread>
#include <vector>

#include <nlohmann/json.hpp>

#include "api/HttpClient.h"

namespace warden::tests::jepsen {

using json = nlohmann::ordered_json;
using std::chrono::milliseconds;

void WriteWorkload::runClients(std::atomic<bool>& stop) {
  for (const char* parent : {"/v1/nodes/jepsen-t", "/v1/nodes/jepsen-i"}) {
    for (std::uint64_t node = 1; node <= cluster_.size(); ++node) {
      if (cluster_.request(node, "PUT", parent, R"({"create": true})").status == 200) break;
    }
  }
  std::vector<std::thread> clients;
  std::size_t index = 0;
  for (std::uint64_t node = 1; node <= cluster_.size(); ++node) {
    clients.emplace_back([this, i = index++, node, &stop] { txnClient(i, node, stop); });
    clients.emplace_back([this, i = index++, node, &stop] { createClient(i, node, stop); });
  }
  for (auto& t : clients) t.join();
}

void WriteWorkload::error(const std::string& what) {
  std::lock_guard lock(mutex_);
  counts_.errors++;
  if (counts_.firstError.empty()) counts_.firstError = what;
}

void WriteWorkload::violation(const std::string& what) {
  std::lock_guard lock(mutex_);
  if (counts_.violation.empty()) counts_.violation = what;
}

void WriteWorkload::txnClient(std::size_t index, std::uint64_t node, std::atomic<bool>& stop) {
  api::HttpClient http({"http://127.0.0.1:" + std::to_string(cluster_.httpPort(node))}, milliseconds(12'000));
  std::uint64_t n = 0;
  while (!stop) {
    try {
      if (choices_.chance(0.5)) {
        const std::string value = std::to_string(index) + "-" + std::to_string(++n);
        const json ops = {{"ops",
                           {{{"op", "set"}, {"path", "/jepsen-t/a"}, {"data", value}, {"create", true}},
                            {{"op", "set"}, {"path", "/jepsen-t/b"}, {"data", value}, {"create", true}}}}};
        auto r = http.request("POST", "/v1/txn", ops.dump());
        if (r.status == 200) {
          std::lock_guard lock(mutex_);
          counts_.txns++;
        } else if (r.status != 503 && r.status != 504 && r.status != 429) {
          error("txn: " + std::to_string(r.status) + " " + r.body);
        }
      } else {
        // Both keys in one read of one state, at either consistency.
        auto r = http.request("GET", std::string("/v1/nodes/jepsen-t?recursive") + (choices_.chance(0.5) ? "&consistency=stale" : ""));
        if (r.status != 200) continue;
        std::map<std::string, std::string> values;
        const json body = r.json();  // (a range-for over r.json()[...] would outlive its temporary)
        for (const auto& child : body["children"]) values[child["path"]] = child["data"];
        std::lock_guard lock(mutex_);
        counts_.pairReads++;
        if (values.count("/jepsen-t/a") != values.count("/jepsen-t/b") ||
            (values.count("/jepsen-t/a") && values["/jepsen-t/a"] != values["/jepsen-t/b"])) {
          if (counts_.violation.empty()) {
            counts_.violation = "a read at node " + std::to_string(node) + " saw a transaction half applied: " + r.body;
          }
        }
      }
    } catch (const api::HttpClientError&) {
      std::this_thread::sleep_for(milliseconds(100));
    }
  }
}

void WriteWorkload::createClient(std::size_t index, std::uint64_t node, std::atomic<bool>& stop) {
  // Its own node first, then the others: a retry goes wherever an answer comes from.
  std::vector<std::string> endpoints;
  for (std::uint64_t i = 0; i < cluster_.size(); ++i) {
    endpoints.push_back("http://127.0.0.1:" + std::to_string(cluster_.httpPort((node - 1 + i) % cluster_.size() + 1)));
  }
  api::HttpClient http(endpoints, createTimeout, api::RetryPolicy{.failoverOnUnavailable = true});
  std::uint64_t n = 0;
  while (!stop) {
    const std::string value = "c" + std::to_string(index) + "-" + std::to_string(++n);
    // A thousand writes per parent, so that the check reads each parent in one recursive read.
    const std::string parent = "/v1/nodes/jepsen-i/c" + std::to_string(index) + "-" + std::to_string((n - 1) / 1000);
    if (n % 1000 == 1) {
      try {
        http.send({"PUT", parent, R"({"create": true})", "application/json", api::HttpClient::newIdempotencyKey()});
      } catch (const api::HttpClientError&) {
      }
    }
    std::string key = api::HttpClient::newIdempotencyKey();
    const std::string body = json{{"data", value}, {"sequential", true}}.dump();
    // The same write, under the same key, until it is answered (or the run ends).
    for (int attempt = 0; !stop; ++attempt) {
      const std::uint64_t before = http.failovers();
      try {
        auto r = http.send({"POST", parent + "/w-", body, "application/json", key});
        {
          // The client sent it on to other nodes, under the same key, as often as this.
          std::lock_guard lock(mutex_);
          counts_.retries += http.failovers() - before;
        }
        if (r.status == 201) {
          std::lock_guard lock(mutex_);
          counts_.creates++;
          acknowledged_.insert(value);
          break;
        }
        if (r.status == 404) {
          // Its parent's create was lost: made again, and the write retried under a new key (the
          // key remembers its first answer, this 404, and the write was certainly not applied).
          key = api::HttpClient::newIdempotencyKey();
          try {
            http.send({"PUT", parent, R"({"create": true})", "application/json", api::HttpClient::newIdempotencyKey()});
          } catch (const api::HttpClientError&) {
          }
        } else if (r.status != 503 && r.status != 504 && r.status != 429) {
          error("create: " + std::to_string(r.status) + " " + r.body);
          break;
        }
      } catch (const api::HttpClientError&) {
        std::lock_guard lock(mutex_);
        counts_.retries += http.failovers() - before;
      }
      {
        std::lock_guard lock(mutex_);
        counts_.retries++;
      }
      std::this_thread::sleep_for(milliseconds(choices_.range(50, 200)));
    }
  }
}

WriteResult WriteWorkload::check() {
  // Every created node, counted by value, read (linearizable) from any node that answers.
  std::map<std::string, int> created;
  bool read = false;
  for (std::uint64_t node = 1; node <= cluster_.size() && !read; ++node) {
    auto parents = cluster_.request(node, "GET", "/v1/nodes/jepsen-i?children&limit=10000", {}, 10000);
    if (parents.status != 200) continue;
    read = true;
    std::map<std::string, int> seen;
    const json names = parents.json()["children"];
    for (const auto& name : names) {
      auto r = cluster_.request(node, "GET", "/v1/nodes/jepsen-i/" + name.get<std::string>() + "?recursive", {}, 10000);
      if (r.status != 200) {
        read = false;
        break;
      }
      const json subtree = r.json();
      for (const auto& child : subtree["children"]) seen[child["data"].get<std::string>()]++;
    }
    if (read) created = std::move(seen);
  }
  if (!read) error("the created nodes could not be read from any node");
  std::lock_guard lock(mutex_);
  WriteResult out = counts_;
  for (const auto& [value, count] : created) {
    if (count > 1 && out.violation.empty()) {
      out.violation = "the write of " + value + " was applied " + std::to_string(count) + " times";
    }
  }
  for (const std::string& value : acknowledged_) {
    if (!created.count(value) && out.violation.empty() && read) {
      out.violation = "the acknowledged write of " + value + " is missing (" + std::to_string(created.size()) +
                      " values read, " + std::to_string(acknowledged_.size()) + " acknowledged)";
    }
  }
  return out;
}

}  // namespace warden::tests::jepsen
