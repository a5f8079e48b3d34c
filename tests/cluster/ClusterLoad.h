#pragma once
// Client traffic that keeps running while a cluster test injects its fault (issue 13: faults
// under load, not on a quiet cluster), and what it proves afterwards.
//
// BackgroundWriter creates /<prefix>/w<n>, each with data of its own, through every node in turn
// (a dead, paused or cut-off node costs that write, and is passed over for 5 s); every write
// acknowledged (200) is recorded. Optionally a reader reads, through every node in turn, the
// latest write that was acknowledged before the read was sent: a linearizable read of it must
// never say 404 or show other data. After stop(), and once the cluster converged, requireEverywhere() checks every
// acknowledged write on every running node. No Catch assertion runs on its threads; the
// destructor stops and joins them, so a failing REQUIRE in the test never meets a joinable
// thread.

#include <atomic>
#include <chrono>
#include <map>
#include <mutex>
#include <sstream>
#include <string>
#include <thread>
#include <vector>

#include <catch2/catch.hpp>

#include "tests/cluster/TestCluster.h"

namespace warden::tests {

class BackgroundWriter {
 public:
  struct Options {
    int writers = 1;
    bool reader = false;
    std::chrono::milliseconds pause{10};  // between one thread's writes
  };

  BackgroundWriter(TestCluster& cluster, std::string prefix) : BackgroundWriter(cluster, std::move(prefix), Options{}) {}
  BackgroundWriter(TestCluster& cluster, std::string prefix, Options options) : cluster_(cluster), prefix_(std::move(prefix)) {
    // The parent, through whichever node takes it (bounded: 30 s).
    bool created = false;
    const auto deadline = std::chrono::steady_clock::now() + std::chrono::seconds(30);
    for (std::uint64_t via = 1; !created && std::chrono::steady_clock::now() < deadline; via = via % cluster_.size() + 1) {
      created = cluster_.request(via, "PUT", "/v1/nodes" + prefix_, R"({"data": "", "create": true})", 3000).status == 200;
      if (!created) std::this_thread::sleep_for(std::chrono::milliseconds(50));
    }
    REQUIRE(created);
    for (int t = 0; t < options.writers; ++t) {
      threads_.emplace_back([this, t, pause = options.pause] { write(static_cast<std::uint64_t>(t), pause); });
    }
    if (options.reader) threads_.emplace_back([this] { read(); });
  }
  ~BackgroundWriter() { stop(); }
  BackgroundWriter(const BackgroundWriter&) = delete;
  BackgroundWriter& operator=(const BackgroundWriter&) = delete;

  void stop() {
    stop_ = true;
    for (auto& t : threads_) {
      if (t.joinable()) t.join();
    }
  }

  int acknowledged() const { return acknowledged_; }
  int sent() const { return next_; }
  int reads() const { return reads_; }
  // Reads of an acknowledged write that answered 404 or other data (a lost write or a stale read).
  std::vector<std::string> violations() const {
    std::lock_guard lock(mutex_);
    return violations_;
  }

  // Waits until `more` further writes were acknowledged (30 s at most): a phase of a test ends
  // on progress, not on wall time.
  bool waitMore(int more, std::chrono::milliseconds limit = std::chrono::seconds(30)) const {
    const int target = acknowledged_ + more;
    const auto deadline = std::chrono::steady_clock::now() + limit;
    while (acknowledged_ < target) {
      if (std::chrono::steady_clock::now() > deadline) return false;
      std::this_thread::sleep_for(std::chrono::milliseconds(20));
    }
    return true;
  }

  // After stop() and cluster.waitConverged(): every acknowledged write, with its data, on every
  // running node (its own state, a stale read of the whole subtree), and no reader violation.
  void requireEverywhere() {
    stop();
    for (std::uint64_t id = 1; id <= cluster_.size(); ++id) {
      if (!cluster_.running(id)) continue;
      auto r = cluster_.request(id, "GET", "/v1/nodes" + prefix_ + "?recursive&consistency=stale", {}, 10000);
      INFO("node " << id << " " << prefix_ << ": " << r.status);
      REQUIRE(r.status == 200);
      std::map<std::string, std::string> held;
      const auto subtree = r.json();  // (kept: a range-for over a part of a temporary would dangle)
      for (const auto& child : subtree["children"]) held[child["path"].get<std::string>()] = child.value("data", std::string());
      std::size_t missing = 0;
      std::ostringstream first;
      for (const auto& [path, data] : acked_) {
        auto it = held.find(path);
        if (it == held.end() || it->second != data) {
          if (missing++ < 5) first << " " << path;
        }
      }
      INFO(acked_.size() << " acknowledged writes; missing or wrong:" << first.str());
      CHECK(missing == 0);
    }
    const auto bad = violations();
    INFO((bad.empty() ? std::string() : bad.front()));
    CHECK(bad.empty());
  }

 private:
  // The next node to go through after `via`, passing over those that failed in the last 5 s
  // (unless all did): a dead or cut-off node must not hold the load back.
  std::uint64_t nextNode(std::uint64_t via, const std::map<std::uint64_t, std::chrono::steady_clock::time_point>& failedAt) const {
    const auto now = std::chrono::steady_clock::now();
    for (std::size_t i = 0; i < cluster_.size(); ++i) {
      via = via % cluster_.size() + 1;
      auto it = failedAt.find(via);
      if (it == failedAt.end() || now - it->second > std::chrono::seconds(5)) return via;
    }
    return via % cluster_.size() + 1;
  }

  void write(std::uint64_t t, std::chrono::milliseconds pause) {
    std::uint64_t via = t;
    std::map<std::uint64_t, std::chrono::steady_clock::time_point> failedAt;
    while (!stop_) {
      const int n = next_++;
      const std::string path = prefix_ + "/w" + std::to_string(n), data = "d" + std::to_string(n);
      via = nextNode(via, failedAt);
      // 3 s: a write to a cut-off or paused node costs this thread that long, no more.
      auto r = cluster_.request(via, "PUT", "/v1/nodes" + path, "{\"data\": \"" + data + "\", \"create\": true}", 3000);
      if (r.status == 200) {
        std::lock_guard lock(mutex_);
        acked_[path] = data;
        latest_ = path;
        acknowledged_++;
      } else {
        failedAt[via] = std::chrono::steady_clock::now();
      }
      std::this_thread::sleep_for(pause);
    }
  }

  void read() {
    std::uint64_t via = 0;
    std::map<std::uint64_t, std::chrono::steady_clock::time_point> failedAt;
    while (!stop_) {
      std::string path, data;
      {
        std::lock_guard lock(mutex_);
        if (!latest_.empty()) {
          path = latest_;
          data = acked_[path];
        }
      }
      via = nextNode(via, failedAt);
      if (!path.empty()) {
        auto r = cluster_.request(via, "GET", "/v1/nodes" + path, {}, 3000);  // linearizable by default
        if (r.status == 200 || r.status == 404) {
          reads_++;
        } else {
          failedAt[via] = std::chrono::steady_clock::now();
        }
        if (r.status == 404 || (r.status == 200 && r.json()["data"] != data)) {
          std::lock_guard lock(mutex_);
          violations_.push_back("node " + std::to_string(via) + " answered " + std::to_string(r.status) + " " + r.body +
                                " for " + path + ", acknowledged before the read was sent");
        }
      }
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
  }

  TestCluster& cluster_;
  const std::string prefix_;
  std::atomic<bool> stop_{false};
  std::atomic<int> next_{0}, acknowledged_{0}, reads_{0};
  mutable std::mutex mutex_;
  std::map<std::string, std::string> acked_;
  std::string latest_;
  std::vector<std::string> violations_;
  std::vector<std::thread> threads_;
};

}  // namespace warden::tests
