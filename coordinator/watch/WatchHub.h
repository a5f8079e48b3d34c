#pragma once
// Every watch on one node: the history, the registered watchers indexed by path, a thread that
// wakes them, and a timer thread for their deadlines. A write wakes only the watchers whose
// filter it matches (found by path, never by scanning them all); woken watchers read what they
// need from the history, so a watcher costs no queue of its own. The applying thread only marks
// watchers due: the wakes (and the reading and encoding they do) run on the hub's own thread,
// so that many watchers do not slow the log down. Thread-safe.

#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <string_view>
#include <thread>
#include <unordered_map>
#include <unordered_set>

#include "coordinator/watch/History.h"

namespace warden::coordinator::watch {

class WatchHub {
 public:
  using Clock = std::chrono::steady_clock;
  using Wake = std::function<void()>;

  WatchHub(Limits limits, std::size_t maxWatchers, std::uint64_t revision);
  ~WatchHub() { stop(); }
  // No wake and no timer runs after this returns (those pending are dropped). Idempotent.
  void stop();
  WatchHub(const WatchHub&) = delete;
  WatchHub& operator=(const WatchHub&) = delete;

  // From the applying thread, in apply order.
  void applied(Applied& applied);

  // Whether an event of an apply not yet committed (so not yet given to applied()) concerns a
  // registered watcher: then the apply should commit now rather than wait for its delay
  // (ClusterOptions::appliesWanted). Looks only at the events after `scan`, unless a watcher
  // registered since it was last called.
  bool concerns(const std::vector<Event>& pending, PendingScan& scan);
  // Runs (on the registering thread, without the hub's lock) after each watcher registers: the
  // node wakes its applying thread, whose pending events may concern it.
  void onWatch(std::function<void()> hook) { onWatch_ = std::move(hook); }

  // A registered watcher: `wake` runs (on the hub's thread, without its lock) after an event it
  // matches was applied, and after the history started over; several applies in quick
  // succession may wake it once. The hub keeps its cursor (everything it matches up to there
  // was read): the history may drop older events that other paths' writes pushed out, and the
  // watcher is compacted only if one of them was its own. Unregistered when the handle goes.
  class Watcher {
   public:
    ~Watcher();
    Watcher(const Watcher&) = delete;
    Watcher& operator=(const Watcher&) = delete;
    const Filter& filter() const { return filter_; }

   private:
    friend class WatchHub;
    Watcher(WatchHub& hub, Filter filter, std::uint64_t since, Wake wake)
        : hub_(hub), filter_(std::move(filter)), wake_(std::move(wake)), cursor_(since) {}
    WatchHub& hub_;
    Filter filter_;
    Wake wake_;
    std::uint64_t cursor_;  // under the hub's lock
    bool lost_ = false;     // an event it matches after its cursor left the history
  };
  // Watches from `since` (events after it). nullptr when --max-watchers are registered already.
  std::unique_ptr<Watcher> watch(Filter filter, std::uint64_t since, Wake wake);

  // The next events the watcher matches after its cursor, which moves to the page's upTo;
  // nullopt once one of them left the history unread (or `since` was older than the history).
  std::optional<History::Page> read(Watcher& watcher, std::size_t maxEvents, std::size_t maxBytes);
  std::uint64_t floor();
  std::uint64_t revision();
  std::size_t watchers();

  // Runs `fire` on the timer thread at `at` (or soon after); nothing holds the hub's lock then.
  void at(Clock::time_point when, std::function<void()> fire);

 private:
  void remove(Watcher* watcher);
  // The watchers an event concerns, by path (never a scan of them all).
  template <typename Visit>
  void forEachMatching(const Event& e, Visit visit);
  void runWakes();
  void runTimers();

  std::size_t maxWatchers_;
  std::mutex mutex_;
  History history_;
  // Looked up by string_view: matching an event (every write, watched or not) builds no strings.
  struct PathHash {
    using is_transparent = void;
    std::size_t operator()(std::string_view path) const { return std::hash<std::string_view>{}(path); }
  };
  using Index = std::unordered_map<std::string, std::unordered_set<Watcher*>, PathHash, std::equal_to<>>;
  Index exact_;    // non-recursive, by path
  Index subtree_;  // recursive, by root
  std::size_t count_ = 0;
  std::uint64_t generation_ = 0;  // registrations so far (PendingScan)
  std::function<void()> onWatch_;  // set before any watcher registers
  std::unordered_map<Watcher*, Wake> due_;  // to wake, at most once each
  std::condition_variable wakeDue_;
  bool stopping_ = false;
  std::thread wakeThread_;

  std::mutex timerMutex_;
  std::condition_variable timerWake_;
  std::multimap<Clock::time_point, std::function<void()>> timers_;
  bool timersStopping_ = false;
  std::thread timerThread_;
};

}  // namespace warden::coordinator::watch
