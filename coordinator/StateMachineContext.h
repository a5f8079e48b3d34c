#pragma once
// Inside StateMachine's apply: what every op of one command shares. Only the StateMachine*.cpp
// files include it.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "coordinator/StateMachine.h"

namespace warden::coordinator {

// The transaction and the values every op of one command shares.
struct StateMachine::Context {
  storage::Txn& txn;
  std::uint64_t revision;
  std::uint64_t timestampMs;
  std::uint64_t maxNodes = 0;  // 0: no limit
  bool changed = false;
  std::uint64_t touched = 0;  // nodes created and deleted so far
  std::int64_t growth = 0;    // in usedBytes
  std::vector<watch::Event> events = {};  // kept only if the command applies

  void note(watch::EventType type, std::string_view path, const Stat& stat, std::string_view data = {}) {
    events.push_back(watch::Event{type, std::string(path), revision, stat, std::string(data)});
  }
};

// A command's own transaction: a child of `parent`, so that the command is all-or-nothing, or
// (apply's batched path, see StateMachine::apply) `parent` itself.
class CommandTxn {
 public:
  CommandTxn(storage::Txn& parent, bool nest)
      : child_(nest ? std::optional<storage::Txn>(storage::Txn::nested(parent)) : std::nullopt),
        txn_(child_ ? *child_ : parent) {}
  storage::Txn& get() { return txn_; }
  void commit() {
    if (child_) child_->commit();
  }
  void abort() {
    if (child_) child_->abort();
  }

 private:
  std::optional<storage::Txn> child_;
  storage::Txn& txn_;
};

}  // namespace warden::coordinator
