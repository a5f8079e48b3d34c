// Which commands StateMachine::apply runs in an LMDB child transaction of their own: those that
// may fail after writing, whose failure must leave nothing (see apply and SAFETY.md 5).

#include "coordinator/StateMachine.h"

namespace warden::coordinator {

bool StateMachine::mayFailAfterWriting(const Command& command) const {
  if (ownTxnEveryCommand) return true;
  if (noOwnTxnEver) return false;
  // Sessions' commands check everything before they write; locks' may fail halfway.
  if (command.type != CommandType::Txn) return isLockCommand(command.type);
  if (command.ops.size() != 1) return true;  // a later op may fail after an earlier one wrote
  const Op& op = command.ops.front();
  switch (op.type) {
    // Each of these checks everything (path, size, existence, version, parent, session, node
    // budget) before its first write (StateMachine::set, erase, check, create).
    case OpType::Set:
    case OpType::Delete:
    case OpType::Check: return false;
    // Except a create that makes its parents first, or takes a sequence number and then finds
    // the numbered node taken.
    case OpType::Create: return op.makeParents || op.sequential;
  }
  return true;
}

bool StateMachine::needsOwnTxn(storage::Txn& txn, const Command& command) const {
  if (mayFailAfterWriting(command)) return true;
  if (noOwnTxnEver || command.type != CommandType::Txn || command.quotaBytes == 0) return false;
  // The quota is checked after the op wrote. A set grows the state by at most what a new node of
  // its data would cost (a create by exactly that; a delete or check not at all): if even that
  // fits, the quota cannot refuse it.
  const Op& op = command.ops.front();
  if (op.type == OpType::Delete || op.type == OpType::Check) return false;
  return usedBytes(txn) + nodeCost(op.path, op.data.size()) > command.quotaBytes;
}

}  // namespace warden::coordinator
