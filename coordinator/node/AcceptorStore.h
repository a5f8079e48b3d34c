#pragma once
// The Paxos acceptor's store as the node core uses it: a LogStore that can also take the apply
// transaction along into its next write, so that one durable commit holds both (node/Apply.cpp).

#include "coordinator/paxos/Ready.h"
#include "coordinator/storage/Lmdb.h"

namespace warden::coordinator::node {

class AcceptorStore : public paxos::LogStore {
 public:
  // The next write() puts its records into `txn` and commits it, durably, with them. A store
  // destroyed before that aborts it.
  virtual void carry(storage::Txn txn) = 0;
};

}  // namespace warden::coordinator::node
