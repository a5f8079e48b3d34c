#pragma once
// A LogStore in memory, for the simulator and scripted tests. Whatever persist() was called on
// is "on disk"; the simulator models lost fsyncs by calling persist() only when a sync completes.
// Its writes stand for LmdbLogStore's durable commits (with fsync on, the only durable ones of a
// running node's environment besides snapshot staging and install steps; applies commit without
// a flush): onDurable, if set, runs after each, so a test can image the node's LMDB file there
// and model a power loss (NodeNet::powerLoss, the node simulator's --power-loss).

#include <functional>
#include <optional>

#include "coordinator/node/AcceptorStore.h"

namespace warden::tests {

class MemoryLogStore : public coordinator::node::AcceptorStore {
 public:
  coordinator::paxos::DurableState state;
  std::function<void()> onDurable;
  coordinator::paxos::DurableState load() override { return state; }
  // The node's apply transaction, committed with the next write as LmdbLogStore does.
  void carry(coordinator::storage::Txn txn) override { carried_.emplace(std::move(txn)); }

 protected:
  void write(const std::vector<coordinator::paxos::Record>& records) override {
    // LmdbLogStore::write commits nothing when it has no records and nothing carried.
    const bool commits = !records.empty() || carried_.has_value();
    for (const auto& r : records) coordinator::paxos::applyRecord(state, r);
    if (carried_) {
      carried_->commit();
      carried_.reset();
    }
    if (commits && onDurable) onDurable();
  }
  void sync() override {}

 private:
  std::optional<coordinator::storage::Txn> carried_;
};

}  // namespace warden::tests
