#pragma once
// coordinator::Node is what the HTTP edge talks to: it submits write commands to the log, gives
// read barriers for linearizable reads, and opens read snapshots of the applied state. Whether
// the log is local (a one-member cluster) or replicated is hidden behind it, so the edge does
// not change with the cluster's size.

#include <atomic>
#include <chrono>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <string>

#include "coordinator/AnswerWhen.h"
#include "coordinator/ClusterView.h"
#include "coordinator/LocalLog.h"
#include "coordinator/RevisionWaiters.h"
#include "coordinator/node/ClusterOptions.h"
#include "coordinator/StateMachine.h"
#include "coordinator/storage/Lmdb.h"
#include "coordinator/watch/WatchHub.h"

namespace warden::coordinator {

class ReplicatedLog;

struct NodeOptions {
  std::uint64_t id = 1;
  std::string dataDir = "warden-data";
  bool fsync = true;
  std::size_t mapSize = std::size_t{16} << 30;
  std::map<std::uint64_t, std::string> cluster;  // id -> peer address; one member: no replication
  std::string http;                              // advertised to peers
  std::uint64_t writeTimeoutMs = 5000;
  std::uint64_t retainedSlots = 10'000;
  std::uint64_t retainedBytes = 64u << 20;  // ClusterOptions::retainedBytes
  std::uint64_t applyCommitDelayUs = 50'000;       // ClusterOptions::applyCommitDelayUs
  bool flushBehind = true;                         // ClusterOptions::flushBehind
  std::uint64_t maxTxnNodes = 10'000;              // stamped on every write this node admits
  std::uint64_t quotaBytes = std::uint64_t{2} << 30;  // likewise (StateMachine::usedBytes)
  watch::Limits watchHistory;                      // --watch-history-events, --watch-history-bytes
  std::size_t maxWatchers = 100'000;
  std::uint32_t encodingVersion = kEncodingVersion;  // ClusterOptions::encodingVersion (tests only)
  // Test-only defects (warden serve --test-bug): for the outside-in checks (tests/jepsen) to
  // show that they catch them. Never set otherwise.
  node::ClusterOptions::Bugs bugs;
};

class Node {
 public:
  explicit Node(const NodeOptions& options);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Thread-safe. done runs exactly once, on the log's thread: with the command's result once
  // it is durable (on a majority) and applied here, or with the reason it was not.
  void submit(Command command, LocalLog::Done done, AnswerWhen when = AnswerWhen::Visible);
  // Thread-safe. done(Ok) once a read of this node's state sees every write acknowledged
  // before the call; done(NoQuorum) when that cannot be established within the deadline.
  void readBarrier(std::function<void(Status)> done);

  // Thread-safe. done runs once, on the log's thread, with the leader's answer: Ok and the
  // session's ttl, SessionNotFound, or NoQuorum when no leader answered within the deadline.
  void keepalive(std::uint64_t session, KeepaliveDone done);
  // Sessions whose deadlines this node keeps: all of them at the leader, none elsewhere.
  std::size_t liveSessions() const;

  // Thread-safe. done(true) once this node has applied `revision`, done(false) after `timeout`.
  // False when too many callers wait already.
  bool waitForRevision(std::uint64_t revision, std::chrono::milliseconds timeout, std::function<void(bool)> done);

  // A consistent snapshot of the applied state; read it with stateMachine(). Any thread.
  storage::Txn read();
  const StateMachine& stateMachine() const { return *stateMachine_; }
  // Test-only defects this node was started with (NodeOptions::bugs).
  const node::ClusterOptions::Bugs& bugs() const { return options_.bugs; }
  // The watch history and watchers of this node, fed by every apply here.
  watch::WatchHub& watches() { return *watches_; }

  std::uint64_t id() const { return options_.id; }
  std::uint64_t revision() const { return revision_.load(std::memory_order_acquire); }
  std::uint64_t quotaBytes() const { return options_.quotaBytes; }
  std::uint64_t appliedIndex();
  ClusterView view();
  bool replicated() const { return replicated_ != nullptr; }

  // Commits what is queued and stops accepting writes.
  void stop();

 private:
  NodeOptions options_;
  storage::Env env_;
  std::unique_ptr<StateMachine> stateMachine_;
  void noteRevision(std::uint64_t revision);  // revision_ only moves forward
  std::atomic<std::uint64_t> revision_{0};
  RevisionWaiters waiters_;
  std::unique_ptr<watch::WatchHub> watches_;  // before the logs: they feed it from their first apply
  std::unique_ptr<LocalLog> log_;
  std::unique_ptr<ReplicatedLog> replicated_;
};

}  // namespace warden::coordinator
