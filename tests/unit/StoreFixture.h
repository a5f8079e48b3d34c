#pragma once
// A state machine over a fresh LMDB store in a temporary directory, applying one entry at a time.

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "coordinator/Path.h"
#include "coordinator/StateMachine.h"
#include "tests/TempDir.h"

namespace warden::tests {

class StoreFixture {
 public:
  StoreFixture() { open(); }

  // Closes and reopens the store, as a restart would.
  void reopen() {
    sm_.reset();
    env_.reset();
    open();
  }

  coordinator::CommandResult apply(std::vector<coordinator::Op> ops, std::uint64_t timestampMs = 1000) {
    return applyAll({coordinator::txnCommand(std::move(ops))}, timestampMs).front();
  }

  std::vector<coordinator::CommandResult> applyAll(std::vector<coordinator::Command> commands,
                                                   std::uint64_t timestampMs = 1000) {
    auto txn = coordinator::storage::Txn::write(*env_);
    coordinator::Entry entry{sm_->appliedIndex(txn) + 1, timestampMs, std::move(commands)};
    auto results = sm_->apply(txn, entry);
    txn.commit();
    return results;
  }

  coordinator::CommandResult applyCommand(coordinator::Command command, std::uint64_t timestampMs = 1000) {
    return applyAll({std::move(command)}, timestampMs).front();
  }

  // The same, telling whether the result came from the idempotency table.
  coordinator::CommandResult applyCommand(coordinator::Command command, std::uint64_t timestampMs, bool& replayed) {
    auto txn = coordinator::storage::Txn::write(*env_);
    coordinator::Entry entry{sm_->appliedIndex(txn) + 1, timestampMs, {std::move(command)}};
    coordinator::StateMachine::Notes notes;
    auto results = sm_->apply(txn, entry, &notes);
    txn.commit();
    replayed = notes.replays.at(0);
    return results.front();
  }

  // One entry of these commands, with what apply notes (its events appended to those `notes`
  // holds already, as a node's apply does).
  std::vector<coordinator::CommandResult> applyNoted(std::vector<coordinator::Command> commands,
                                                     std::uint64_t timestampMs,
                                                     coordinator::StateMachine::Notes& notes) {
    auto txn = coordinator::storage::Txn::write(*env_);
    coordinator::Entry entry{sm_->appliedIndex(txn) + 1, timestampMs, std::move(commands)};
    auto results = sm_->apply(txn, entry, &notes);
    txn.commit();
    return results;
  }

  // Every replicated row (StateMachine::exportState), table by table: two stores with equal
  // rows hold the same state, meta and idempotency tables included.
  std::vector<coordinator::StateMachine::Row> rows() {
    auto txn = coordinator::storage::Txn::read(*env_);
    std::vector<coordinator::StateMachine::Row> out;
    sm_->exportState(txn, [&out](coordinator::StateMachine::Row row) { out.push_back(std::move(row)); });
    return out;
  }

  std::optional<session::SessionRecord> session(std::uint64_t id) {
    auto txn = coordinator::storage::Txn::read(*env_);
    return sm_->sessions().get(txn, id);
  }

  std::vector<std::string> ephemerals(std::uint64_t id) {
    auto txn = coordinator::storage::Txn::read(*env_);
    return sm_->sessions().ephemerals(txn, id);
  }

  std::optional<coordinator::NodeRecord> get(const std::string& path) {
    auto txn = coordinator::storage::Txn::read(*env_);
    return sm_->tree().get(txn, path);
  }

  std::vector<std::string> children(const std::string& path) {
    auto txn = coordinator::storage::Txn::read(*env_);
    return sm_->tree().children(txn, path);
  }

  std::uint64_t revision() {
    auto txn = coordinator::storage::Txn::read(*env_);
    return sm_->revision(txn);
  }

  std::uint64_t usedBytes() {
    auto txn = coordinator::storage::Txn::read(*env_);
    return sm_->usedBytes(txn);
  }

  std::uint64_t appliedIndex() {
    auto txn = coordinator::storage::Txn::read(*env_);
    return sm_->appliedIndex(txn);
  }

  // Every node with its record, depth first: two stores with equal dumps hold the same state.
  std::string dump(const std::string& path = "/") {
    auto record = get(path);
    if (!record) return {};
    std::string out = path + "=" + coordinator::encodeNodeRecord(*record) + "\n";
    for (const auto& name : children(path)) out += dump(coordinator::childOf(path, name));
    return out;
  }

  coordinator::storage::Env& env() { return *env_; }
  coordinator::StateMachine& stateMachine() { return *sm_; }

 private:
  void open() {
    env_ = std::make_unique<coordinator::storage::Env>(dir_.path(),
                                                       coordinator::storage::EnvOptions{std::size_t{1} << 30, 16, false});
    auto txn = coordinator::storage::Txn::write(*env_);
    sm_ = std::make_unique<coordinator::StateMachine>(coordinator::StateMachine::openDbs(txn));
    sm_->initialize(txn);
    txn.commit();
  }

  TempDir dir_;
  std::unique_ptr<coordinator::storage::Env> env_;
  std::unique_ptr<coordinator::StateMachine> sm_;
};

// Op builders that read like the API.
inline coordinator::Op createOp(std::string path, std::string data = {}) {
  coordinator::Op op;
  op.type = coordinator::OpType::Create;
  op.path = std::move(path);
  op.data = std::move(data);
  return op;
}

inline coordinator::Op ephemeralOp(std::string path, std::uint64_t session, bool sequential = false) {
  coordinator::Op op = createOp(std::move(path));
  op.ephemeral = true;
  op.session = session;
  op.sequential = sequential;
  return op;
}

// A lock or election command (locks/LockQueue.h): token is a release's token, an acquire's
// lock-delay, a withdrawal's queuing revision or a delay end's revision.
inline coordinator::Command lockCommand(coordinator::CommandType type, std::uint64_t session, std::string name,
                                        bool shared = false, std::uint64_t token = 0) {
  coordinator::Command c;
  c.type = type;
  c.session = session;
  c.name = std::move(name);
  c.shared = shared;
  c.token = token;
  return c;
}

inline coordinator::Command sessionCreate(std::uint64_t id, std::uint64_t ttlMs = 10'000, std::string name = {}) {
  coordinator::Command command = coordinator::sessionCommand(coordinator::CommandType::SessionCreate, id);
  command.ttlMs = ttlMs;
  command.name = std::move(name);
  return command;
}

inline coordinator::Op setOp(std::string path, std::string data, std::optional<std::int64_t> version = std::nullopt) {
  coordinator::Op op;
  op.type = coordinator::OpType::Set;
  op.path = std::move(path);
  op.data = std::move(data);
  op.version = version;
  return op;
}

inline coordinator::Op deleteOp(std::string path, std::optional<std::int64_t> version = std::nullopt,
                                bool recursive = false) {
  coordinator::Op op;
  op.type = coordinator::OpType::Delete;
  op.path = std::move(path);
  op.version = version;
  op.recursive = recursive;
  return op;
}

inline coordinator::Op checkOp(std::string path, std::optional<std::int64_t> version = std::nullopt) {
  coordinator::Op op;
  op.type = coordinator::OpType::Check;
  op.path = std::move(path);
  op.version = version;
  return op;
}

}  // namespace warden::tests
