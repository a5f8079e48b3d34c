#include "coordinator/watch/WatchHub.h"

#include <vector>

#include "coordinator/Path.h"
#include "coordinator/ThreadName.h"

namespace warden::coordinator::watch {

WatchHub::WatchHub(Limits limits, std::size_t maxWatchers, std::uint64_t revision)
    : maxWatchers_(maxWatchers),
      history_(limits, revision),
      wakeThread_([this] {
        nameThisThread("warden-watches");
        runWakes();
      }),
      timerThread_([this] {
        nameThisThread("warden-wtimers");
        runTimers();
      }) {}

void WatchHub::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wakeDue_.notify_one();
  if (wakeThread_.joinable()) wakeThread_.join();
  {
    std::lock_guard lock(timerMutex_);
    timersStopping_ = true;
  }
  timerWake_.notify_one();
  if (timerThread_.joinable()) timerThread_.join();
}

WatchHub::Watcher::~Watcher() { hub_.remove(this); }

std::unique_ptr<WatchHub::Watcher> WatchHub::watch(Filter filter, std::uint64_t since, Wake wake) {
  std::unique_ptr<Watcher> watcher;
  {
    std::lock_guard lock(mutex_);
    if (count_ >= maxWatchers_) return nullptr;
    watcher.reset(new Watcher(*this, std::move(filter), since, std::move(wake)));
    watcher->lost_ = since < history_.floor();
    auto& index = watcher->filter_.recursive ? subtree_ : exact_;
    index[watcher->filter_.path].insert(watcher.get());
    count_++;
    generation_++;
  }
  if (onWatch_) onWatch_();
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

template <typename Visit>
void WatchHub::forEachMatching(const Event& e, Visit visit) {
  auto take = [&](const Index& index, std::string_view key) {
    auto it = index.find(key);
    if (it == index.end()) return;
    for (Watcher* w : it->second) visit(w);
  };
  // The node's own watchers and its parent's (a child set changed), and the recursive watchers
  // of the node and each of its ancestors.
  if (!exact_.empty()) {
    take(exact_, e.path);
    if (e.type != EventType::Changed && e.path != "/") take(exact_, parentOf(e.path));
  }
  if (subtree_.empty()) return;
  for (std::string_view p = e.path;; p = parentOf(p)) {
    take(subtree_, p);
    if (p == "/") break;
  }
}

void WatchHub::applied(Applied& applied) {
  {
    std::lock_guard lock(mutex_);
    auto due = [this](Watcher* w) { due_.try_emplace(w, w->wake_); };
    if (applied.replaced) {
      // Nothing is known of what happened between the old state and this one.
      for (const auto* index : {&exact_, &subtree_}) {
        for (const auto& [path, set] : *index) {
          for (Watcher* w : set) {
            if (w->cursor_ < applied.revision) w->lost_ = true;
            due(w);
          }
        }
      }
      history_.add(applied);
    } else {
      for (const Event& e : applied.events) forEachMatching(e, due);
      // Pushed out before a watcher it concerns read it: that watcher cannot be complete.
      history_.add(applied, [&](const Event& e) {
        forEachMatching(e, [&](Watcher* w) {
          if (w->cursor_ < e.revision && !w->lost_) {
            w->lost_ = true;
            due(w);
          }
        });
      });
    }
  }
  wakeDue_.notify_one();
}

bool WatchHub::concerns(const std::vector<Event>& pending, PendingScan& scan) {
  std::lock_guard lock(mutex_);
  if (scan.generation != generation_ || scan.events > pending.size()) scan = PendingScan{0, generation_};
  bool found = false;
  for (; scan.events < pending.size() && !found; ++scan.events) {
    forEachMatching(pending[scan.events], [&found](Watcher*) { found = true; });
  }
  return found;
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

std::optional<History::Page> WatchHub::read(Watcher& watcher, std::size_t maxEvents, std::size_t maxBytes) {
  std::lock_guard lock(mutex_);
  if (watcher.lost_) return std::nullopt;
  // Below the floor, nothing it matches was dropped (that would have marked it lost).
  const std::uint64_t from = std::max(watcher.cursor_, history_.floor());
  History::Page page = history_.read(watcher.filter_, from, maxEvents, maxBytes);
  watcher.cursor_ = page.upTo;
  return page;
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
