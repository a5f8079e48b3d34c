#pragma once
// The session workload: clients bound to one node each open sessions (ttl 1.5 to 3 s), each with
// an ephemeral node, keep some alive for a while through their node and walk away from others.
// Judged:
//   early      no linearizable read finds a session's ephemeral node gone sooner than a ttl
//              (less 2% for clock rates) after the invocation of a keepalive that was
//              acknowledged: a session never vanishes while it is kept alive
//   lingering  20 s after the clients stopped (the cluster quiet), no session its client walked
//              away from still has its ephemeral node, on any node

#include <atomic>
#include <cstdint>
#include <mutex>
#include <string>
#include <vector>

#include "tests/cluster/TestCluster.h"
#include "tests/jepsen/Harness.h"

namespace warden::tests::jepsen {

struct SessionResult {
  std::uint64_t sessions = 0, keepalivesAcked = 0, reads = 0, goneSeen = 0, abandoned = 0, errors = 0;
  std::string violation;
  std::string firstError;
};

class SessionWorkload {
 public:
  SessionWorkload(TestCluster& cluster, const RunClock& clock, Choices& choices)
      : cluster_(cluster), clock_(clock), choices_(choices) {}

  void runClients(std::atomic<bool>& stop);
  // After the clients stopped: the check, including reads of what is left (asked again until
  // nothing is, for up to 20 s).
  SessionResult check();

  static constexpr std::uint64_t kMaxTtlMs = 3000;

 private:
  struct Session {
    std::string id;
    std::uint64_t ttlMs = 0;
    std::uint64_t lastAckedInvoke = 0;  // the latest acknowledged keepalive's invocation (or the create's)
    std::uint64_t goneSeenAt = 0;       // a read found its ephemeral node gone (its return time)
    bool abandoned = false;
  };
  void client(std::size_t index, std::uint64_t node, std::atomic<bool>& stop);
  void error(const std::string& what);

  TestCluster& cluster_;
  const RunClock& clock_;
  Choices& choices_;
  std::mutex mutex_;
  std::vector<Session> sessions_;
  SessionResult counts_;
};

}  // namespace warden::tests::jepsen
