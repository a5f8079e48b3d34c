#include "coordinator/Node.h"

#include <chrono>

namespace warden::coordinator {

namespace {
std::uint64_t wallClockMs() {
  using namespace std::chrono;
  return static_cast<std::uint64_t>(duration_cast<milliseconds>(system_clock::now().time_since_epoch()).count());
}
}  // namespace

Node::Node(const NodeOptions& options)
    : options_(options), env_(options.dataDir, storage::EnvOptions{options.mapSize, 16, options.fsync}) {
  storage::Txn txn = storage::Txn::write(env_);
  stateMachine_ = std::make_unique<StateMachine>(StateMachine::openDbs(txn));
  stateMachine_->initialize(txn);
  revision_ = stateMachine_->revision(txn);
  txn.commit();
  log_ = std::make_unique<LocalLog>(env_, *stateMachine_, wallClockMs, LocalLog::Options{},
                                    [this](std::uint64_t revision) { revision_.store(revision, std::memory_order_release); });
}

Node::~Node() { stop(); }

void Node::submit(Command command, LocalLog::Done done) { log_->submit(std::move(command), std::move(done)); }

storage::Txn Node::read() { return storage::Txn::read(env_); }

std::uint64_t Node::appliedIndex() {
  storage::Txn txn = read();
  return stateMachine_->appliedIndex(txn);
}

void Node::stop() { log_->stop(); }

}  // namespace warden::coordinator
