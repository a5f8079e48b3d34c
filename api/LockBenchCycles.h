#pragma once
// Uncontended lock cycles, the first part of `warden bench-locks` (api/LockBench.cpp), also run
// by `warden bench-compare` (api/CompareBench.cpp): clients each with their own owner (a Warden
// session or an etcd lease), their own lock and their own connection, acquiring and releasing
// back to back.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "api/LockBenchClient.h"

namespace warden::api::lockbench {

// One service at one concurrency.
struct CycleRow {
  std::size_t cycles = 0;
  double seconds = 0;
  Latencies cycle, acquire, release;
  double serverCpu = -1;  // seconds, summed over the server pids; < 0 when not measured
  std::size_t errors = 0;
  std::string firstError;

  void fail(const std::string& what) {
    if (errors++ == 0) firstError = what;
  }
};

struct CycleConfig {
  std::size_t clients = 1;
  double seconds = 5;
  std::uint64_t ttlMs = 120'000;  // of each owner; must outlast the run (no keepalives are sent)
  std::string lockPrefix;         // client i's lock is <lockPrefix>-n<clients>-c<i>
  std::vector<long> serverPids;   // their CPU is read over the cycling (not the opening and closing)
};

// Opens the owners, cycles for the configured time, closes the owners; runs on the calling
// thread. Throws std::runtime_error when an owner could not be opened; a failed acquire or
// release stops its client and is counted in the row.
CycleRow runCycles(const std::string& url, const LockService& service, const CycleConfig& config);

}  // namespace warden::api::lockbench
