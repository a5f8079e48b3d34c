#include "coordinator/RevisionWaiters.h"

#include <algorithm>
#include <vector>

#include "coordinator/ThreadName.h"

namespace warden::coordinator {

RevisionWaiters::RevisionWaiters(std::size_t maxWaiters) : maxWaiters_(maxWaiters), thread_([this] {
        nameThisThread("warden-waiters");
        run();
      }) {}

RevisionWaiters::~RevisionWaiters() { stop(); }

bool RevisionWaiters::wait(std::uint64_t revision, std::chrono::milliseconds timeout, Callback cb) {
  {
    std::unique_lock lock(mutex_);
    if (revision > applied_) {
      if (stopping_ || waiters_.size() >= maxWaiters_) return false;
      waiters_.emplace(nextId_++, Waiter{revision, Clock::now() + timeout, std::move(cb)});
      // seq_cst, like the driver's nudge flag: a driver woken by a nudge after this sees it.
      if (revision < lowest_.load()) lowest_.store(revision);
      wake_.notify_one();
      return true;
    }
  }
  cb(true);
  return true;
}

void RevisionWaiters::applied(std::uint64_t revision) {
  std::vector<Callback> ready;
  {
    std::lock_guard lock(mutex_);
    applied_ = std::max(applied_, revision);
    std::uint64_t lowest = UINT64_MAX;  // of those still waiting, found on the same walk
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      if (it->second.revision <= applied_) {
        ready.push_back(std::move(it->second.cb));
        it = waiters_.erase(it);
      } else {
        lowest = std::min(lowest, it->second.revision);
        ++it;
      }
    }
    lowest_.store(lowest);
  }
  for (auto& cb : ready) cb(true);
}

void RevisionWaiters::noteLowest() {
  std::uint64_t lowest = UINT64_MAX;
  for (const auto& [id, w] : waiters_) lowest = std::min(lowest, w.revision);
  lowest_.store(lowest);
}

void RevisionWaiters::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

void RevisionWaiters::run() {
  std::unique_lock lock(mutex_);
  while (!stopping_) {
    auto earliest = Clock::time_point::max();
    for (const auto& [id, w] : waiters_) earliest = std::min(earliest, w.deadline);
    if (earliest == Clock::time_point::max()) {
      wake_.wait(lock);
    } else {
      wake_.wait_until(lock, earliest);
    }
    std::vector<Callback> expired;
    const auto now = Clock::now();
    for (auto it = waiters_.begin(); it != waiters_.end();) {
      if (it->second.deadline <= now) {
        expired.push_back(std::move(it->second.cb));
        it = waiters_.erase(it);
      } else {
        ++it;
      }
    }
    if (!expired.empty()) noteLowest();
    lock.unlock();
    for (auto& cb : expired) cb(false);
    lock.lock();
  }
  // Whoever still waits hears no at shutdown.
  std::vector<Callback> rest;
  for (auto& [id, w] : waiters_) rest.push_back(std::move(w.cb));
  waiters_.clear();
  noteLowest();
  lock.unlock();
  for (auto& cb : rest) cb(false);
}

}  // namespace warden::coordinator
