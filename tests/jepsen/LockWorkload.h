#pragma once
// The lock workload: clients bound to one node each contend for one exclusive lock, each with a
// session of its own kept alive through its node: acquire (a bounded wait), hold for a moment
// while asking `check?token=` as a fenced resource would, release by token. Partitions and
// pauses expire sessions, so a holder can lose the lock without knowing: what fencing is for.
//
// Judged over the history (as the simulator's lock checks, tests/sim/NodeSimLocks.cpp):
//   exclusive  no token is seen valid by a check invoked after a check of a larger token
//              returned valid: two exclusive holders as a fenced resource sees them
//   tokens     a grant answered before another acquire was invoked has the smaller token
// (A resource that fences by asking `check?token=` is what the exclusive check judges: it never
// takes a stale token if no check calls one valid after a newer one was.)

#include <atomic>
#include <cstdint>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "tests/cluster/TestCluster.h"
#include "tests/jepsen/Harness.h"

namespace warden::tests::jepsen {

struct LockResult {
  std::uint64_t grants = 0, checks = 0, staleChecks = 0, releases = 0, sessionsLost = 0, errors = 0;
  std::string violation;   // empty: every check held
  std::string firstError;  // an answer no correct server gives
};

class LockWorkload {
 public:
  LockWorkload(TestCluster& cluster, const RunClock& clock, Choices& choices)
      : cluster_(cluster), clock_(clock), choices_(choices) {}

  // How long a holder holds, checking its token all along (ms).
  std::uint64_t holdMinMs = 30, holdMaxMs = 1500;

  void runClients(std::atomic<bool>& stop);
  LockResult check();
  // The node whose client holds the lock, as far as the clients know.
  std::optional<std::uint64_t> holderNode() const {
    const std::uint64_t node = holderNode_.load();
    return node == 0 ? std::nullopt : std::optional<std::uint64_t>(node);
  }

 private:
  struct Grant {
    std::uint64_t token = 0;
    std::uint64_t acquireInvoked = 0, answered = 0;
  };
  struct Seen {  // a check that found `token` valid
    std::uint64_t token = 0, invoked = 0, returned = 0;
  };
  void client(std::size_t index, std::uint64_t node, std::atomic<bool>& stop);
  void error(const std::string& what);

  TestCluster& cluster_;
  const RunClock& clock_;
  Choices& choices_;
  std::mutex mutex_;
  std::vector<Grant> grants_;
  std::vector<Seen> seen_;
  LockResult counts_;
  std::atomic<std::uint64_t> holderNode_{0};
};

}  // namespace warden::tests::jepsen
