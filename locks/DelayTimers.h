#pragma once
// The lock-delays running (locks/LockQueue.h Delay), each timed on this node's monotonic clock
// from when this node learned of it: when it applied the expiry that began it, or, after a
// restart or a snapshot install, when it found it in the state. Either is no earlier than the
// delay truly began (an expiry takes effect once chosen, before anyone applies it), so a delay
// timed here is never shorter than asked, whatever the wall clocks say. The leader proposes the
// end of each that is due (LockDelayEnd, naming the revision that set it); a delay extended
// meanwhile (another holder expired) is named by a newer revision and runs on.
//
// Pure: no clock, no lock. Times are milliseconds of the caller's monotonic clock.

#include <cstdint>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "coordinator/Command.h"
#include "coordinator/watch/Event.h"

namespace warden::locks {

class DelayTimers {
 public:
  // An end proposed but not applied after this long (the write was lost) is offered again.
  static constexpr std::uint64_t kRetryMs = 1000;

  // Lock `lock`'s delay was set (or extended) at `revision` to last `delayMs`, as of `nowMs`.
  // The timer runs delayMs stretched by the clock-rate bound (2%), from now or from where a
  // running one for this lock already ends, whichever is later.
  void started(const std::string& lock, std::uint64_t revision, std::uint64_t delayMs, std::uint64_t nowMs);
  // The delay is over, or the lock gone.
  void ended(const std::string& lock);
  // What apply did to a node: for a lock's own node, its data is the delay, if one runs.
  void noteChange(const coordinator::watch::Event& event, std::uint64_t nowMs);
  // Forget every timer (the state was replaced); started() again from what it holds.
  void clear() { timers_.clear(); }

  // The delays due at `nowMs`, as (lock path, revision that set it); each is offered again only
  // kRetryMs later.
  std::vector<std::pair<std::string, std::uint64_t>> due(std::uint64_t nowMs);

  std::size_t size() const { return timers_.size(); }

  // The command that ends the delay of `lock` (its path) set at `revision`.
  static coordinator::Command endCommand(const std::string& lock, std::uint64_t revision);

 private:
  struct Timer {
    std::uint64_t revision = 0;
    std::uint64_t dueMs = 0;
    std::uint64_t offeredMs = 0;  // 0: not yet
  };
  std::map<std::string, Timer> timers_;
};

}  // namespace warden::locks
