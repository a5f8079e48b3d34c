#pragma once
// A LogStore in memory, for the simulator and scripted tests. Whatever persist() was called on
// is "on disk"; the simulator models lost fsyncs by calling persist() only when a sync completes.

#include "coordinator/paxos/Ready.h"

namespace warden::tests {

class MemoryLogStore : public coordinator::paxos::LogStore {
 public:
  coordinator::paxos::DurableState state;
  coordinator::paxos::DurableState load() override { return state; }

 protected:
  void write(const std::vector<coordinator::paxos::Record>& records) override {
    for (const auto& r : records) coordinator::paxos::applyRecord(state, r);
  }
  void sync() override {}
};

}  // namespace warden::tests
