#pragma once
// A LogStore in memory, for the simulator and scripted tests. Whatever persist() was called on
// is "on disk", as LmdbLogStore's write-ahead log is once its flush returns.
// Like LmdbLogStore, it flushes the node's LMDB environment (`env`, if set) before a compaction
// or a learner mark: a test that images that file at its flushes (Env::afterCommit) models what
// a machine crash leaves of the applied state (NodeNet::powerLoss, the simulator's --power-loss).

#include <algorithm>
#include <variant>

#include "coordinator/paxos/Ready.h"
#include "coordinator/storage/Lmdb.h"

namespace warden::tests {

class MemoryLogStore : public coordinator::paxos::LogStore {
 public:
  coordinator::paxos::DurableState state;
  coordinator::storage::Env* env = nullptr;
  coordinator::paxos::DurableState load() override { return state; }

 protected:
  void write(const std::vector<coordinator::paxos::Record>& records) override {
    const bool flushesState = std::any_of(records.begin(), records.end(), [](const coordinator::paxos::Record& r) {
      return std::holds_alternative<coordinator::paxos::CompactRecord>(r) ||
             std::holds_alternative<coordinator::paxos::LearnerRecord>(r);
    });
    if (flushesState && env != nullptr) env->sync();
    for (const auto& r : records) coordinator::paxos::applyRecord(state, r);
  }
  void sync() override {}
};

}  // namespace warden::tests
