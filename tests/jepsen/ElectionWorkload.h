#pragma once
// The election workload: one candidate per node, each with a session kept alive in the
// background through its node, campaigns for one election (a bounded wait), leads for a while
// reading the election as anyone would, then resigns. Sessions expire under partitions and
// pauses, so a leader can be replaced without knowing.
//
// Judged over every observation (a campaign won, a linearizable read of the election):
//   one-leader  a term names one session, whoever observes it
//   terms       no observation shows a term older than one another observation had already
//               returned before it began (the leader never goes back)

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "tests/cluster/TestCluster.h"
#include "tests/jepsen/Harness.h"

namespace warden::tests::jepsen {

struct ElectionResult {
  std::uint64_t wins = 0, reads = 0, resigns = 0, sessionsLost = 0, errors = 0;
  std::uint64_t terms = 0;  // distinct terms observed
  std::string violation;
  std::string firstError;
};

class ElectionWorkload {
 public:
  ElectionWorkload(TestCluster& cluster, const RunClock& clock, Choices& choices)
      : cluster_(cluster), clock_(clock), choices_(choices) {}

  // How long a leader leads, reading the election all along (ms).
  std::uint64_t leadMinMs = 100, leadMaxMs = 2000;

  void runClients(std::atomic<bool>& stop);
  ElectionResult check();
  // The node whose candidate leads, as far as the candidates know.
  std::optional<std::uint64_t> leaderNode() const {
    const std::uint64_t node = leaderNode_.load();
    return node == 0 ? std::nullopt : std::optional<std::uint64_t>(node);
  }

 private:
  struct Observation {
    std::uint64_t term = 0;
    std::string session;
    std::uint64_t invoked = 0, returned = 0;
  };
  void client(std::uint64_t node, std::atomic<bool>& stop);
  void observe(const Observation& o);
  void error(const std::string& what);

  TestCluster& cluster_;
  const RunClock& clock_;
  Choices& choices_;
  std::mutex mutex_;
  std::vector<Observation> observations_;
  ElectionResult counts_;
  std::atomic<std::uint64_t> leaderNode_{0};
};

}  // namespace warden::tests::jepsen
