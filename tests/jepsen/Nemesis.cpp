#include "tests/jepsen/Nemesis.h"

#include <algorithm>
#include <cstdio>
#include <thread>
#include <vector>

namespace warden::tests::jepsen {

using std::chrono::milliseconds;

void Nemesis::run(Clock::time_point until) {
  const std::vector<std::string> faults(config_.faults.begin(), config_.faults.end());
  while (!faults.empty() && Clock::now() < until) {
    const std::string& fault = faults[choices_.range(0, faults.size() - 1)];
    // Each fault is held for 2 to 4 s (never past the end), then undone.
    const auto end = std::min(until, Clock::now() + milliseconds(choices_.range(2000, 4000)));
    counts_[fault]++;
    if (fault == "kill") kill(choices_.chance(0.5) ? leaderOrAny() : anyNode(), end);
    else if (fault == "pause") pause(choices_.chance(0.5) ? leaderOrAny() : anyNode(), end);
    else if (fault == "partition") partition(end);
    else if (fault == "delay") delay(end);
    else if (fault == "wipe") wipe(end);
    std::this_thread::sleep_for(milliseconds(choices_.range(500, 1500)));
  }
  healAll();
}

void Nemesis::healAll() {
  cluster_.heal();
  cluster_.delayLinks(milliseconds(0));
  for (std::uint64_t id = 1; id <= cluster_.size(); ++id) {
    if (cluster_.running(id)) cluster_.resume(id);
    else cluster_.start(id);
  }
}

std::string Nemesis::summary() const {
  std::string out;
  for (const auto& [fault, n] : counts_) out += (out.empty() ? "" : ", ") + std::to_string(n) + " " + fault;
  return out.empty() ? "no faults" : out;
}

void Nemesis::holdUntil(Clock::time_point until) {
  while (Clock::now() < until) std::this_thread::sleep_for(milliseconds(20));
}

std::uint64_t Nemesis::anyNode() { return choices_.range(1, cluster_.size()); }

std::uint64_t Nemesis::leaderOrAny() {
  auto leader = cluster_.waitForLeader(1000);
  return leader ? *leader : anyNode();
}

void Nemesis::kill(std::uint64_t node, Clock::time_point until) {
  std::printf("nemesis: kill -9 node %llu\n", static_cast<unsigned long long>(node));
  cluster_.kill9(node);
  holdUntil(until);
  cluster_.start(node);
}

void Nemesis::pause(std::uint64_t node, Clock::time_point until) {
  // Longer than the lease (300 ms) and than a short session ttl: the others move on without it.
  std::printf("nemesis: SIGSTOP node %llu\n", static_cast<unsigned long long>(node));
  cluster_.pause(node);
  holdUntil(until);
  cluster_.resume(node);
}

void Nemesis::partition(Clock::time_point until) {
  const std::size_t n = cluster_.size();
  std::set<std::uint64_t> side;
  std::string what;
  std::optional<std::uint64_t> targeted;
  if (target && (alwaysTarget || choices_.chance(0.25))) targeted = target();
  const std::uint64_t shape = targeted ? 0 : choices_.range(0, n == 5 ? 3 : 2);
  if (shape == 0) {
    side = {targeted ? *targeted : anyNode()};
    what = "node " + std::to_string(*side.begin()) + " isolated" + (targeted ? " (the workload's target)" : "");
  } else if (shape == 1) {
    side = {leaderOrAny()};
    what = "the leader (node " + std::to_string(*side.begin()) + ") isolated";
  } else if (shape == 2) {
    // A bridge: one node hears both halves, which do not hear each other.
    const std::uint64_t bridge = anyNode();
    std::set<std::uint64_t> left;
    for (std::uint64_t id = 1; id <= n; ++id) {
      if (id != bridge && (left.size() < (n - 1) / 2)) left.insert(id);
    }
    std::printf("nemesis: a bridge through node %llu\n", static_cast<unsigned long long>(bridge));
    cluster_.cutLinks([&](std::uint64_t from, std::uint64_t to) {
      return from != bridge && to != bridge && left.count(from) != left.count(to);
    });
    holdUntil(until);
    cluster_.heal();
    return;
  } else {
    // Five nodes: two against three, at random.
    while (side.size() < 2) side.insert(anyNode());
    what = "nodes " + std::to_string(*side.begin()) + " and " + std::to_string(*side.rbegin()) + " cut from the other three";
  }
  std::printf("nemesis: partition, %s\n", what.c_str());
  cluster_.partition(side);
  holdUntil(until);
  cluster_.heal();
}

void Nemesis::delay(Clock::time_point until) {
  const auto d = milliseconds(choices_.range(50, 250));
  std::printf("nemesis: every peer link delayed %lld ms\n", static_cast<long long>(d.count()));
  cluster_.delayLinks(d);
  holdUntil(until);
  cluster_.delayLinks(milliseconds(0));
}

void Nemesis::wipe(Clock::time_point until) {
  auto leader = cluster_.waitForLeader(1000);
  if (!leader) return;
  const std::uint64_t node = *leader % cluster_.size() + 1;  // a follower
  std::printf("nemesis: node %llu loses its disk\n", static_cast<unsigned long long>(node));
  cluster_.kill9(node);
  cluster_.wipe(node);
  if (onWipe) onWipe(node);
  holdUntil(until);
  cluster_.start(node);
  // One lost disk at a time: the next fault waits until it votes again (bounded).
  cluster_.waitVoting(node, 20000);
}

}  // namespace warden::tests::jepsen
