#pragma once
// A real cluster of `warden serve` processes on loopback for tests: every peer link runs through
// a TcpProxy the test can cut, so partitions (one-way or both ways) need no privileges. Nodes
// can be killed with -9, paused with SIGSTOP, restarted and wiped. Every wait is bounded.

#include <sys/types.h>

#include <chrono>
#include <functional>
#include <map>
#include <memory>
#include <optional>
#include <set>
#include <string>
#include <thread>
#include <vector>

#include <boost/asio/io_context.hpp>

#include "api/HttpClient.h"
#include "tests/TempDir.h"
#include "tests/cluster/TcpProxy.h"

namespace warden::tests {

class TestCluster {
 public:
  explicit TestCluster(std::size_t size = 3, std::vector<std::string> extraArgs = {});
  ~TestCluster();

  std::size_t size() const { return size_; }
  void start(std::uint64_t id);  // returns once its /healthz answers
  void kill9(std::uint64_t id);
  int stop(std::uint64_t id);  // SIGTERM; the exit status
  void pause(std::uint64_t id);
  void resume(std::uint64_t id);
  void wipe(std::uint64_t id);  // the node must be stopped
  // Arguments for this node's next starts, after those every node gets.
  void setNodeArgs(std::uint64_t id, std::vector<std::string> args) { nodeArgs_[id] = std::move(args); }
  bool running(std::uint64_t id) const { return pids_.at(id) > 0; }

  // Cuts every peer link between `side` and the rest, both ways; heal() restores them all.
  void partition(const std::set<std::uint64_t>& side);
  // Cuts each peer link (from, to) for which `cut` holds: one-way cuts and bridges too.
  void cutLinks(const std::function<bool(std::uint64_t from, std::uint64_t to)>& cut);
  void heal();
  // Every peer link holds back what it carries by `delay` (0: none); heal() leaves it.
  void delayLinks(std::chrono::milliseconds delay);
  // Copies every node's log into `dir` (for a failed run to keep).
  void saveLogs(const std::string& dir) const;

  // One request on a fresh connection; a node that does not answer within `timeoutMs` yields
  // status 0.
  int httpPort(std::uint64_t id) const { return httpPort_.at(id); }
  api::HttpResponse request(std::uint64_t id, const std::string& method, const std::string& target,
                            const std::string& body = {}, int timeoutMs = 8000);
  // GET /v1/status of node `id`, its body parsed (a JSON null when it does not answer).
  nlohmann::ordered_json status(std::uint64_t id) { return request(id, "GET", "/v1/status").json(); }
  // The leader the running nodes agree on, waiting up to `timeoutMs`; empty if none.
  std::optional<std::uint64_t> waitForLeader(int timeoutMs = 30000, std::set<std::uint64_t> among = {});
  // The whole namespace as one node holds it (a stale read of the recursive root).
  std::string state(std::uint64_t id);
  // Waits until every running node holds the same state; false after `timeoutMs`.
  bool waitConverged(int timeoutMs = 30000);
  std::string log(std::uint64_t id) const;
  // Waits until the node reports it votes (its status has no "rebuilding"); false after `timeoutMs`.
  bool waitVoting(std::uint64_t id, int timeoutMs = 30000);

 private:
  void stopAll();  // kills every process, stops the proxies' thread

  std::size_t size_;
  std::vector<std::string> extraArgs_;
  std::map<std::uint64_t, std::vector<std::string>> nodeArgs_;
  TempDir dir_;
  boost::asio::io_context ioc_;  // before the proxies: their sockets must go first
  std::map<std::uint64_t, int> httpPort_, peerPort_;
  std::map<std::pair<std::uint64_t, std::uint64_t>, std::unique_ptr<TcpProxy>> proxies_;  // (from, to)
  std::map<std::uint64_t, pid_t> pids_;
  std::thread ioThread_;
};

}  // namespace warden::tests
