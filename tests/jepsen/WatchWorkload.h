#pragma once
// The watch workload: one writer per node sets keys under /jepsen-w; one watcher per node
// long-polls the subtree (`since` its last answer's revision) and, on any failure (no answer,
// 503, its node killed or cut off, 410 from a node whose history starts later because it
// rebuilt from a snapshot), reconnects to another node where it left off.
//
// Judged per watcher, once it caught up at the end:
//   order     revisions never go back, and no (revision, path) is reported twice
//   complete  every acknowledged write up to where the watcher got is reported (exactly once)

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <set>
#include <string>
#include <utility>
#include <vector>

#include "tests/cluster/TestCluster.h"
#include "tests/jepsen/Harness.h"

namespace warden::tests::jepsen {

struct WatchResult {
  std::uint64_t writes = 0, events = 0, reconnects = 0, errors = 0;
  std::string violation;
  std::string firstError;
};

class WatchWorkload {
 public:
  WatchWorkload(TestCluster& cluster, Choices& choices) : cluster_(cluster), choices_(choices) {}

  void runClients(std::atomic<bool>& stop);
  // Each watcher catches up (bounded), then the checks.
  WatchResult check();

 private:
  struct Watcher {
    std::uint64_t node = 0;
    std::uint64_t cursor = 0;  // complete up to here
    std::vector<std::pair<std::uint64_t, std::string>> seen;  // (revision, path), in arrival order
    std::string broken;        // why it could not go on (compacted), if so
    std::size_t compactedInARow = 0;
  };
  void writer(std::size_t index, std::uint64_t node, std::atomic<bool>& stop);
  // One long-poll of watcher w; false when no usable answer came (then it moves on to another node).
  bool poll(Watcher& w, std::uint64_t waitMs);
  void error(const std::string& what);

  TestCluster& cluster_;
  Choices& choices_;
  std::mutex mutex_;
  std::map<std::uint64_t, std::string> acknowledged_;  // revision -> path, of writes answered 200
  std::vector<Watcher> watchers_;
  WatchResult counts_;
};

}  // namespace warden::tests::jepsen
