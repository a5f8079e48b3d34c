#pragma once
// The Paxos acceptor's durable state in LMDB, beside the namespace in the same environment:
//   paxos_meta: "promised" -> ballot, "compacted" -> slot, "learner" -> 0/1
//   paxos_log:  slot (big-endian) -> ballot and value accepted for it
// persist() commits one write transaction per Ready (with the apply transaction carried into
// it, if any); with fsync on, that commit is the fsync.

#include <optional>

#include "coordinator/node/AcceptorStore.h"
#include "coordinator/storage/Lmdb.h"

namespace warden::coordinator {

class LmdbLogStore : public node::AcceptorStore {
 public:
  explicit LmdbLogStore(storage::Env& env);

  paxos::DurableState load() override;
  void carry(storage::Txn txn) override { carried_.emplace(std::move(txn)); }

 protected:
  void write(const std::vector<paxos::Record>& records) override;
  void sync() override;

 private:
  storage::Env& env_;
  MDB_dbi meta_;
  MDB_dbi log_;
  std::optional<storage::Txn> carried_;  // the apply transaction, committed by the next write
};

}  // namespace warden::coordinator
