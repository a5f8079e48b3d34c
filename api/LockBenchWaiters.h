#pragma once
// The waiters half of `warden bench-locks` (api/LockBench.h): many blocking acquires on one lock,
// then the lock handed down the queue one release at a time.

#include <cstdint>
#include <string>

#include "api/LockBenchClient.h"

namespace warden::api::lockbench {

struct WaitersConfig {
  tcp::endpoint endpoint;
  const LockService* service = nullptr;
  std::string lock;            // a name no one else uses
  std::size_t waiters = 1000;  // each its own owner and connection
  std::uint64_t ttlMs = 120'000;
  std::uint64_t waitMs = 120'000;  // each waiter's wait; bounds the whole run
  long serverPid = 0;              // 0: no CPU figures
};

// A holder takes the lock; `waiters` owners, each on its own connection, send one blocking
// acquire; once the lock's queue shows every one of them, the holder releases, and each grantee
// releases as soon as it is granted, until the last. A waiter whose request is answered counts
// as woken by the latest release sent. Prints the wake-ups per release, the latency from a
// release to the next grant, the grants' order against the queue's, and the server's CPU; closes
// every owner at the end. True when every release woke exactly one waiter, the one first in
// line, the last release (nobody waiting) woke none, and nothing failed. Throws
// std::runtime_error when the owners cannot be opened or the lock cannot be taken or queued on.
bool runWaiters(const WaitersConfig& config);

}  // namespace warden::api::lockbench
