#pragma once
// The writes workload: transactions and retried writes.
//   txn         clients set two keys to one value in one transaction, and read both in one
//               recursive read (linearizable or stale): no read ever sees them differ
//   idempotent  clients create sequential nodes carrying "<client>-<n>" with an Idempotency-Key,
//               retrying through every node until an answer (as HttpClient's failover does):
//               once quiet, each acknowledged write exists exactly once, and none more than once

#include <atomic>
#include <chrono>
#include <cstdint>
#include <mutex>
#include <set>
#include <string>

#include "tests/cluster/TestCluster.h"
#include "tests/jepsen/Harness.h"

namespace warden::tests::jepsen {

struct WriteResult {
  std::uint64_t txns = 0, pairReads = 0, creates = 0, retries = 0, errors = 0;
  std::string violation;
  std::string firstError;
};

class WriteWorkload {
 public:
  WriteWorkload(TestCluster& cluster, Choices& choices) : cluster_(cluster), choices_(choices) {}

  // How long a create waits for its answer before it is sent again under the same key. Short,
  // many writes are retried while a kill stalls the cluster: the hunt for a server that applies
  // a retried write twice needs retries of writes that were applied.
  std::chrono::milliseconds createTimeout{12'000};

  void runClients(std::atomic<bool>& stop);
  // Once the cluster is quiet: the counts of each created value.
  WriteResult check();

 private:
  void txnClient(std::size_t index, std::uint64_t node, std::atomic<bool>& stop);
  void createClient(std::size_t index, std::uint64_t node, std::atomic<bool>& stop);
  void error(const std::string& what);
  void violation(const std::string& what);

  TestCluster& cluster_;
  Choices& choices_;
  std::mutex mutex_;
  std::set<std::string> acknowledged_;  // created values whose write was answered 201
  WriteResult counts_;
};

}  // namespace warden::tests::jepsen
