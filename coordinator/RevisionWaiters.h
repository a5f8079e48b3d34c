#pragma once
// Callers waiting for this node to apply a revision (reads with ?min_revision=R). Each waits at
// most until its deadline; a thread of its own fires the ones whose deadline passed, so waiting
// costs no thread per caller.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <mutex>
#include <thread>

namespace warden::coordinator {

class RevisionWaiters {
 public:
  // reached == true once the revision is applied, false at the deadline. Called exactly once,
  // on the applying thread or the waiters' own thread, never under the caller's locks.
  using Callback = std::function<void(bool reached)>;

  explicit RevisionWaiters(std::size_t maxWaiters = 100'000);
  ~RevisionWaiters();

  // False (and cb is not kept) when too many are waiting already.
  bool wait(std::uint64_t revision, std::chrono::milliseconds timeout, Callback cb);
  void applied(std::uint64_t revision);
  void stop();
  // The lowest revision a caller still waits for (UINT64_MAX when none does): the node commits
  // an apply that reached it at once instead of after its delay. Any thread, without blocking.
  std::uint64_t lowestWaited() const { return lowest_.load(); }

 private:
  using Clock = std::chrono::steady_clock;
  struct Waiter {
    std::uint64_t revision;
    Clock::time_point deadline;
    Callback cb;
  };
  void run();
  void noteLowest();  // under mutex_, after waiters_ changed

  std::size_t maxWaiters_;
  std::mutex mutex_;
  std::condition_variable wake_;
  std::uint64_t applied_ = 0;
  std::uint64_t nextId_ = 0;
  std::map<std::uint64_t, Waiter> waiters_;  // by id
  std::atomic<std::uint64_t> lowest_{UINT64_MAX};  // the lowest revision in waiters_
  bool stopping_ = false;
  std::thread thread_;
};

}  // namespace warden::coordinator
