#pragma once
// A LogStore in memory, for the simulator and scripted tests. Whatever a sync covered is "on
// disk" (`state`), as LmdbLogStore's write-ahead log is once its flush returns; what was only
// written waits in memory until then.
// Like LmdbLogStore, it flushes the node's LMDB environment (`env`, if set) before a compaction
// or a learner mark: a test that images that file at its flushes (Env::afterCommit) models what
// a machine crash leaves of the applied state (NodeNet::powerLoss, the simulator's --power-loss).

#include <algorithm>
#include <deque>
#include <functional>
#include <utility>
#include <variant>

#include "coordinator/paxos/Ready.h"
#include "coordinator/storage/Lmdb.h"

namespace warden::tests {

class MemoryLogStore : public coordinator::paxos::LogStore {
 public:
  coordinator::paxos::DurableState state;  // what is on disk: flushed
  coordinator::storage::Env* env = nullptr;
  // Set: flushBehind() calls it, and the caller ends the flush later (endFlush). Unset: a
  // flush behind happens at once.
  std::function<void()> onFlushBehind;
  coordinator::paxos::DurableState load() override { return state; }

  void flushBehind() override {
    if (onFlushBehind) return onFlushBehind();
    flushNow();
  }
  // A flush begun when written() was `ticket` has ended: what was written up to then is durable.
  void endFlush(std::uint64_t ticket) {
    while (!unflushed_.empty() && unflushed_.front().first <= ticket) {
      for (const auto& r : unflushed_.front().second) coordinator::paxos::applyRecord(state, r);
      unflushed_.pop_front();
    }
    markDurable(ticket);
  }
  // A crash: what was written but not flushed is lost (kill -9 would keep it in the page cache;
  // losing it is what a power loss does, and what no rule may count on).
  void loseUnflushed() {
    unflushed_.clear();
    markDurable(written());
  }

 protected:
  void write(const std::vector<coordinator::paxos::Record>& records) override {
    const bool flushesState = std::any_of(records.begin(), records.end(), [](const coordinator::paxos::Record& r) {
      return std::holds_alternative<coordinator::paxos::CompactRecord>(r) ||
             std::holds_alternative<coordinator::paxos::LearnerRecord>(r);
    });
    if (flushesState && env != nullptr) env->sync();
    unflushed_.emplace_back(written() + 1, records);  // the ticket this write gets
  }
  void sync() override { endFlush(written()); }

 private:
  std::deque<std::pair<std::uint64_t, std::vector<coordinator::paxos::Record>>> unflushed_;
};

}  // namespace warden::tests
