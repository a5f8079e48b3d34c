#include "locks/DelayTimers.h"

#include <algorithm>

#include "locks/LockQueue.h"

namespace warden::locks {

void DelayTimers::started(const std::string& lock, std::uint64_t revision, std::uint64_t delayMs, std::uint64_t nowMs) {
  // The node's clock may run up to 1% slow against real time (PAXOS.md): 2% covers it.
  const std::uint64_t until = nowMs + delayMs + delayMs / 50 + 1;
  auto [it, fresh] = timers_.try_emplace(lock);
  it->second.revision = revision;
  it->second.dueMs = fresh ? until : std::max(it->second.dueMs, until);
  it->second.offeredMs = 0;
}

void DelayTimers::ended(const std::string& lock) { timers_.erase(lock); }

void DelayTimers::noteChange(const coordinator::watch::Event& event, std::uint64_t nowMs) {
  if (!isQueue(event.path) || isElection(event.path)) return;
  auto delay = event.type == coordinator::watch::EventType::Deleted ? std::nullopt : decodeDelay(event.data);
  if (delay) started(event.path, event.stat.modified, delay->delayMs, nowMs);
  else ended(event.path);
}

coordinator::Command DelayTimers::endCommand(const std::string& lock, std::uint64_t revision) {
  coordinator::Command end;
  end.type = coordinator::CommandType::LockDelayEnd;
  end.name = lock.substr(kLocksRoot.size() + 1);
  end.token = revision;
  return end;
}

std::vector<std::pair<std::string, std::uint64_t>> DelayTimers::due(std::uint64_t nowMs) {
  std::vector<std::pair<std::string, std::uint64_t>> out;
  for (auto& [lock, timer] : timers_) {
    if (nowMs < timer.dueMs) continue;
    if (timer.offeredMs != 0 && nowMs < timer.offeredMs + kRetryMs) continue;
    timer.offeredMs = nowMs;
    out.emplace_back(lock, timer.revision);
  }
  return out;
}

}  // namespace warden::locks
