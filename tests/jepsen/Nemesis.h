#pragma once
// The nemesis: for a bounded time, one fault after another on a real cluster, each held for a
// few seconds and then undone, with a quiet moment between: kill -9 and restart (the leader or a
// follower), SIGSTOP and SIGCONT for longer than the lease and a short session ttl, partitions
// (one node isolated, the leader isolated, majority and minority, a bridge), delayed peer links,
// and a follower's data directory wiped. It runs on the test's own thread; at the end every
// node runs again and every link is whole.

#include <cstdint>
#include <functional>
#include <map>
#include <optional>
#include <string>

#include "tests/cluster/TestCluster.h"
#include "tests/jepsen/Harness.h"

namespace warden::tests::jepsen {

class Nemesis {
 public:
  Nemesis(TestCluster& cluster, const Config& config, Choices& choices)
      : cluster_(cluster), config_(config), choices_(choices) {}

  // Faults until `until`, then heals everything.
  void run(Clock::time_point until);
  void healAll();

  // "3 kill, 2 pause, ..." for the summary line.
  std::string summary() const;

  // Told when a node lost its disk (its own answers may start over).
  std::function<void(std::uint64_t node)> onWipe;
  // The node the workload finds most interesting to cut off now (a lock holder's), if any: a
  // quarter of the partitions isolate it (with `alwaysTarget`, every partition does
  // when there is one: a schedule aimed at it).
  std::function<std::optional<std::uint64_t>()> target;
  bool alwaysTarget = false;

 private:
  void kill(std::uint64_t node, Clock::time_point until);
  void pause(std::uint64_t node, Clock::time_point until);
  void partition(Clock::time_point until);
  void delay(Clock::time_point until);
  void wipe(Clock::time_point until);
  std::uint64_t leaderOrAny();
  std::uint64_t anyNode();
  void holdUntil(Clock::time_point until);

  TestCluster& cluster_;
  const Config& config_;
  Choices& choices_;
  std::map<std::string, int> counts_;
};

}  // namespace warden::tests::jepsen
