#pragma once
// The threads that `warden lock` and `warden elect` (api/CliLock.cpp) supervise while they hold a
// session: the keepalives, the asking for the lock (the leadership), and the watch of the grant.
// Each thread shares only its state (a Stoppable, under its mutex) with the supervisor, so that
// the supervisor can stop it, read its outcome, or leave it behind stuck in a request.

#include <algorithm>
#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <variant>
#include <vector>

#include "api/Cli.h"
#include "api/CliLockParts.h"

namespace warden::api::clilock {

// A thread whose state it shares (each body holds a shared_ptr to its state), so that it can be
// left behind, stuck in a request that nobody can cancel, without pointing at freed memory.
class Background {
 public:
  Background() = default;
  Background(const Background&) = delete;
  Background& operator=(const Background&) = delete;
  ~Background() { finishBy(Clock::now() + kThreadExit); }

  template <typename Body>
  void start(Body body) {
    done_ = std::make_shared<std::atomic<bool>>(false);
    thread_ = std::thread([body = std::move(body), done = done_]() mutable {
      body();
      done->store(true);
    });
  }

  // Joins the thread if it ends by `deadline`, else leaves it running.
  void finishBy(Clock::time_point deadline);

 private:
  std::shared_ptr<std::atomic<bool>> done_;
  std::thread thread_;
};

// What a thread and the supervisor share: a stop flag that cuts the thread's pauses short.
struct Stoppable {
  std::mutex mutex;
  std::condition_variable wake;
  bool stopping = false;

  void stop() {
    {
      std::lock_guard lock(mutex);
      stopping = true;
    }
    wake.notify_all();
  }
  bool stopped() {
    std::lock_guard lock(mutex);
    return stopping;
  }
  // Sleeps until `until` or stop(); true once stopped.
  bool sleepUntil(Clock::time_point until) {
    std::unique_lock lock(mutex);
    return wake.wait_until(lock, until, [this] { return stopping; });
  }
  bool pause(milliseconds& pause) {
    const bool stop = sleepUntil(Clock::now() + pause);
    pause = std::min(pause * 2, kMaxPause);
    return stop;
  }
};

// ---- The session's keepalives ------------------------------------------------------------

// A keepalive every ttl/3 through the client's failover. The session lives at least ttl past
// the sending of a keepalive the leader acknowledged (its ttl restarts when the leader gets
// it, which is later): `ackedSent` is the latest such sending, the session's creation at first.
struct KeeperState : Stoppable {
  std::vector<std::string> endpoints;
  std::string id;
  milliseconds ttl{};
  Clock::time_point ackedSent;
  std::optional<std::string> gone;  // why, once a keepalive was answered 404
};

void keepAlive(const std::shared_ptr<KeeperState>& s);

// ---- Asking for the lock (the leadership) ------------------------------------------------

struct Grant {
  std::uint64_t token = 0;  // the lock's token, or the leadership's term
};
struct Denied {
  ExitCode code;
  std::string message;
};

struct AcquireState : Stoppable {
  std::vector<std::string> endpoints;
  std::string id, name;
  bool election = false;
  bool shared = false;
  std::optional<std::string> owner;           // lock: --owner; election: VALUE
  std::optional<Clock::time_point> deadline;  // --wait
  std::optional<std::variant<Grant, Denied>> outcome;
};

// Asks until granted, denied, or stopped; a failed request is asked again after a pause (the
// supervisor gives up when the session cannot be kept alive).
std::variant<Grant, Denied> acquire(AcquireState& s);

// ---- Watching the grant ------------------------------------------------------------------

// Blocking reads of the lock (the election) from the grant on: once one no longer shows this
// session holding it with its token (leading in its term), `lost` says why. Only an answer
// from the grant's revision or later counts (a node behind it has not seen the grant yet).
struct WatchState : Stoppable {
  std::vector<std::string> endpoints;
  std::string id, name;
  bool election = false;
  std::uint64_t token = 0;
  std::optional<std::string> lost;
};

void watchGrant(const std::shared_ptr<WatchState>& s);

}  // namespace warden::api::clilock
