#pragma once
// coordinator::Node is what the HTTP edge talks to: it submits write commands to the log and
// opens read snapshots of the applied state. Whether the log is local or replicated is hidden
// behind it, so the edge does not change when replication arrives.

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>

#include "coordinator/LocalLog.h"
#include "coordinator/StateMachine.h"
#include "coordinator/storage/Lmdb.h"

namespace warden::coordinator {

struct NodeOptions {
  std::uint64_t id = 1;
  std::string dataDir = "warden-data";
  bool fsync = true;
  std::size_t mapSize = std::size_t{16} << 30;
};

class Node {
 public:
  explicit Node(const NodeOptions& options);
  ~Node();
  Node(const Node&) = delete;
  Node& operator=(const Node&) = delete;

  // Thread-safe. done runs exactly once: on the log's thread with the command's result once it is
  // durable and applied, or at once when the log refuses it (see LocalLog::submit).
  void submit(Command command, LocalLog::Done done);

  // A consistent snapshot of the applied state; read it with stateMachine(). Any thread.
  storage::Txn read();
  const StateMachine& stateMachine() const { return *stateMachine_; }

  std::uint64_t id() const { return options_.id; }
  std::uint64_t revision() const { return revision_.load(std::memory_order_acquire); }
  std::uint64_t appliedIndex();

  // Commits what is queued and stops accepting writes.
  void stop();

 private:
  NodeOptions options_;
  storage::Env env_;
  std::unique_ptr<StateMachine> stateMachine_;
  std::atomic<std::uint64_t> revision_{0};
  std::unique_ptr<LocalLog> log_;
};

}  // namespace warden::coordinator
