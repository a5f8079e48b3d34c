#pragma once
// The outside-in harness (issue 13): the built binary as a 3- or 5-node cluster on loopback,
// every peer link through a fault-injecting proxy (tests/cluster/TestCluster), clients bound to
// one node each recording every operation as invoke -> ok / fail / unknown, a nemesis, and
// checkers that judge the recorded history. What a run does comes from the environment, so that
// scripts/jepsen can ask for long runs of one workload and CTest runs a short mix:
//   WARDEN_JEPSEN_TIME     seconds of workload (faults all but the last few), default 20
//   WARDEN_JEPSEN_NODES    3 or 5, default 3
//   WARDEN_JEPSEN_NEMESIS  faults to draw from: all (default), none, or a comma list of
//                          kill, pause, partition, delay, wipe
//   WARDEN_JEPSEN_SEED     the nemesis's choices, default from the clock (printed)
//   WARDEN_JEPSEN_KEEP     where a failed run keeps its history and node logs (default
//                          /tmp/warden-jepsen-<pid>-<n>)

#include <chrono>
#include <cstdint>
#include <cstdlib>
#include <mutex>
#include <random>
#include <set>
#include <string>
#include <vector>

namespace warden::tests::jepsen {

using Clock = std::chrono::steady_clock;

struct Config {
  std::chrono::seconds time{20};
  std::size_t nodes = 3;
  std::set<std::string> faults{"kill", "pause", "partition", "delay", "wipe"};
  std::uint64_t seed = 0;
  std::string keep;

  static Config fromEnvironment();
  std::string describe() const;
};

// Microseconds since the run began: the history's time.
class RunClock {
 public:
  std::uint64_t nowUs() const {
    return static_cast<std::uint64_t>(std::chrono::duration_cast<std::chrono::microseconds>(Clock::now() - start_).count());
  }

 private:
  Clock::time_point start_ = Clock::now();
};

// A seeded source of choices, shared by threads.
class Choices {
 public:
  explicit Choices(std::uint64_t seed) : engine_(seed) {}
  std::uint64_t range(std::uint64_t lo, std::uint64_t hi) {
    std::lock_guard lock(mutex_);
    return lo + engine_() % (hi - lo + 1);
  }
  bool chance(double p) { return static_cast<double>(range(0, 999'999)) < p * 1'000'000; }

 private:
  std::mutex mutex_;
  std::mt19937_64 engine_;
};

// Where a failed run keeps what it saw: a fresh directory, named on stdout.
std::string keepDirectory(const Config& config, const std::string& workload);

}  // namespace warden::tests::jepsen
