#pragma once
// The register workload: a few keys as registers; clients bound to one node each (as Jepsen
// binds them, so that a partitioned node does not starve the rest) write, compare-and-swap (by
// the version they last read) and read them with the default, linearizable consistency. The
// history goes to the simulator's checker (tests/sim/Linearizability: Wing & Gong with Lowe's
// memoization), where a timeout or a connection error is an operation of unknown outcome.
//
// Reads with ?consistency=stale are recorded apart: the only promise they make is that one
// node's answers never go back in revision (while that node keeps its disk).

#include <atomic>
#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <vector>

#include "tests/cluster/TestCluster.h"
#include "tests/jepsen/Harness.h"
#include "tests/sim/Linearizability.h"

namespace warden::tests::jepsen {

struct RegisterResult {
  std::vector<sim::Operation> history;
  std::uint64_t ok = 0, failed = 0, unknown = 0, staleReads = 0;
  std::uint64_t writesOk = 0;  // writes and swaps that took effect
  std::string staleViolation;  // a node whose stale reads went back in revision
  std::uint64_t unexpectedCount = 0;  // answers no correct server gives these requests (a 4xx)
  std::string unexpected;             // the first of them
  sim::CheckResult verdict;
  double checkSeconds = 0;
};

class RegisterWorkload {
 public:
  RegisterWorkload(TestCluster& cluster, const RunClock& clock, Choices& choices)
      : cluster_(cluster), clock_(clock), choices_(choices) {}

  // Clients (three per node) until `stop` is set; then the check.
  void runClients(std::atomic<bool>& stop);
  RegisterResult check();

  // The node lost its disk: its stale reads may start over from there.
  void noteWiped(std::uint64_t node) {
    std::lock_guard lock(mutex_);
    wipedGeneration_[node]++;
  }

 private:
  void client(std::size_t index, std::uint64_t node, bool reader, std::atomic<bool>& stop);
  void unexpected(unsigned status, const std::string& body);

  TestCluster& cluster_;
  const RunClock& clock_;
  Choices& choices_;
  std::mutex mutex_;
  std::vector<sim::Operation> history_;
  std::map<std::uint64_t, std::uint64_t> wipedGeneration_;
  std::uint64_t staleReads_ = 0;
  std::uint64_t unexpectedCount_ = 0;
  std::string unexpected_;
  std::string staleViolation_;
};

}  // namespace warden::tests::jepsen
