#pragma once
// The single-node log: it orders commands into entries, persists each entry and applies it in
// the same LMDB write transaction, then reports each command's result. One commit (one fsync)
// covers every command that arrived while the previous commit was running: group commit.
//
// A single node is its own leader: it keeps the sessions' deadlines (session::Keeper), granting
// every session a fresh ttl when it starts, and queues an expiry command when one passes.
//
// This is the seam where replication slides in: a replicated log takes the same submit() calls
// and reports results the same way, after the entry is chosen instead of merely written.

#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <mutex>
#include <thread>

#include "coordinator/Entry.h"
#include "coordinator/StateMachine.h"
#include "coordinator/Status.h"
#include "coordinator/storage/Lmdb.h"
#include "locks/DelayTimers.h"
#include "session/Keeper.h"

namespace warden::coordinator {

class LocalLog {
 public:
  // Called on the log's thread once the command's entry is durable and applied (or failed).
  using Done = std::function<void(CommandResult)>;
  using WallClock = std::function<std::uint64_t()>;  // ms since the epoch
  // Called on the log's thread after each commit with the revision now applied.
  using AppliedHook = watch::AppliedHook;

  struct Options {
    std::size_t maxBatchCommands = 8192;
    std::size_t maxPending = 100'000;      // submit() refuses beyond this
    std::uint64_t retainedEntries = 10'000;  // older entries are deleted from the log
  };

  LocalLog(storage::Env& env, const StateMachine& stateMachine, WallClock clock, Options options,
           AppliedHook onApplied);
  ~LocalLog();
  LocalLog(const LocalLog&) = delete;
  LocalLog& operator=(const LocalLog&) = delete;

  // Thread-safe. done is called exactly once: on the log's thread with the result, or right here
  // with Status::Overloaded (queue full) or Status::Unavailable (stopped).
  void submit(Command command, Done done);
  // Commits what is queued, then stops the thread. Idempotent.
  void stop();

  // Thread-safe. The session's ttl when it is alive (its deadline moves on), else nullopt.
  std::optional<std::uint64_t> keepalive(std::uint64_t session);
  std::size_t liveSessions();

 private:
  struct Pending {
    Command command;
    Done done;
  };
  void run();
  void commit(std::deque<Pending>& batch);
  void expireDue();
  void endDueLockDelays();

  storage::Env& env_;
  const StateMachine& stateMachine_;
  WallClock clock_;
  Options options_;
  AppliedHook onApplied_;
  MDB_dbi logDb_;
  std::uint64_t nextIndex_ = 0;
  std::uint64_t lastTimestampMs_ = 0;

  std::mutex keeperMutex_;  // never held together with mutex_
  session::Keeper keeper_;
  locks::DelayTimers lockDelays_;  // the log thread's (and the constructor's, before it starts)

  std::mutex mutex_;
  std::condition_variable wake_;
  std::deque<Pending> queue_;
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace warden::coordinator
