#include "coordinator/watch/WatchHub.h"

#include <vector>

#include "coordinator/Path.h"

namespace warden::coordinator::watch {

WatchHub::WatchHub(Limits limits, std::size_t maxWatchers, std::uint64_t revision)
    : maxWatchers_(maxWatchers),
      history_(limits, revision),
      wakeThread_([this] { runWakes(); }),
      timerThread_([this] { runTimers(); }) {}

WatchHub::~WatchHub() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wakeDue_.notify_one();
  wakeThread_.join();
  {
    std::lock_guard lock(timerMutex_);
    timersStopping_ = true;
  }
  timerWake_.notify_one();
  timerThread_.join();
}

WatchHub::Watcher::~Watcher() { hub_.remove(this); }

std::unique_ptr<WatchHub::Watcher> WatchHub::watch(Filter filter, Wake wake) {
  std::lock_guard lock(mutex_);
  if (count_ >= maxWatchers_) return nullptr;
  std::unique_ptr<Watcher> watcher(new Watcher(*this, std::move(filter), std::move(wake)));
  auto& index = watcher->filter_.recursive ? subtree_ : exact_;
  index[watcher->filter_.path].insert(watcher.get());
  count_++;
  return watcher;
}

void WatchHub::remove(Watcher* watcher) {
  std::lock_guard lock(mutex_);
  auto& index = watcher->filter_.recursive ? subtree_ : exact_;
  auto it = index.find(watcher->filter_.path);
  if (it == index.end() || it->second.erase(watcher) == 0) return;
  if (it->second.empty()) index.erase(it);
  due_.erase(watcher);
  count_--;
}

void WatchHub::applied(Applied& applied) {
  {
    std::lock_guard lock(mutex_);
    auto take = [&](const std::unordered_map<std::string, std::unordered_set<Watcher*>>& index, const std::string& key) {
      auto it = index.find(key);
      if (it == index.end()) return;
      for (Watcher* w : it->second) due_.emplace(w, w->wake_);
    };
    if (applied.replaced) {
      // Everyone: their place in the history may be gone.
      for (const auto* index : {&exact_, &subtree_}) {
        for (const auto& [path, set] : *index) take(*index, path);
      }
    } else {
      for (const Event& e : applied.events) {
        // By path: the node's own watchers and its parent's (a child set changed), and the
        // recursive watchers of the node and each of its ancestors.
        take(exact_, e.path);
        if (e.type != EventType::Changed && e.path != "/") take(exact_, std::string(parentOf(e.path)));
        for (std::string_view p = e.path;; p = parentOf(p)) {
          take(subtree_, std::string(p));
          if (p == "/") break;
        }
      }
    }
    history_.add(applied);
  }
  wakeDue_.notify_one();
}

void WatchHub::runWakes() {
  std::unique_lock lock(mutex_);
  for (;;) {
    wakeDue_.wait(lock, [this] { return stopping_ || !due_.empty(); });
    if (stopping_) return;
    std::unordered_map<Watcher*, Wake> due;
    due.swap(due_);
    lock.unlock();
    // Without the lock: a woken watcher reads the history at once. One removed meanwhile has a
    // wake that only finds its owner gone.
    for (const auto& [watcher, wake] : due) wake();
    lock.lock();
  }
}

std::optional<History::Page> WatchHub::read(const Filter& filter, std::uint64_t since, std::size_t maxEvents,
                                            std::size_t maxBytes) {
  std::lock_guard lock(mutex_);
  if (since < history_.floor()) return std::nullopt;
  return history_.read(filter, since, maxEvents, maxBytes);
}

std::uint64_t WatchHub::floor() {
  std::lock_guard lock(mutex_);
  return history_.floor();
}

std::uint64_t WatchHub::revision() {
  std::lock_guard lock(mutex_);
  return history_.revision();
}

std::size_t WatchHub::watchers() {
  std::lock_guard lock(mutex_);
  return count_;
}

void WatchHub::at(Clock::time_point when, std::function<void()> fire) {
  {
    std::lock_guard lock(timerMutex_);
    timers_.emplace(when, std::move(fire));
  }
  timerWake_.notify_one();
}

void WatchHub::runTimers() {
  std::unique_lock lock(timerMutex_);
  while (!timersStopping_) {
    if (timers_.empty()) {
      timerWake_.wait(lock);
      continue;
    }
    const auto next = timers_.begin()->first;
    if (Clock::now() < next) {
      timerWake_.wait_until(lock, next);
      continue;
    }
    auto fire = std::move(timers_.begin()->second);
    timers_.erase(timers_.begin());
    lock.unlock();
    fire();
    lock.lock();
  }
}

}  // namespace warden::coordinator::watch
