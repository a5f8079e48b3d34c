#pragma once
// A LogStore in memory, for the simulator and scripted tests. Whatever persist() was called on
// is "on disk"; the simulator models lost fsyncs by calling persist() only when a sync completes.

#include <optional>

#include "coordinator/node/AcceptorStore.h"

namespace warden::tests {

class MemoryLogStore : public coordinator::node::AcceptorStore {
 public:
  coordinator::paxos::DurableState state;
  coordinator::paxos::DurableState load() override { return state; }
  // The node's apply transaction, committed with the next write as LmdbLogStore does.
  void carry(coordinator::storage::Txn txn) override { carried_.emplace(std::move(txn)); }

 protected:
  void write(const std::vector<coordinator::paxos::Record>& records) override {
    for (const auto& r : records) coordinator::paxos::applyRecord(state, r);
    if (carried_) {
      carried_->commit();
      carried_.reset();
    }
  }
  void sync() override {}

 private:
  std::optional<coordinator::storage::Txn> carried_;
};

}  // namespace warden::tests
