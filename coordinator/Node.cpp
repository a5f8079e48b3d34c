#include "coordinator/Node.h"

#include <algorithm>
#include <chrono>

#include "coordinator/EncodingVersion.h"
#include "coordinator/ReplicatedLog.h"

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
  checkEncodingVersion(txn, options_.dataDir);
  stateMachine_ = std::make_unique<StateMachine>(StateMachine::openDbs(txn));
  stateMachine_->forgetIdempotencyKeys = options_.bugs.forgetIdempotencyKeys;
  stateMachine_->initialize(txn);
  revision_ = stateMachine_->revision(txn);
  txn.commit();
  waiters_.applied(revision_);
  // The history starts at the state's revision: nothing older is known here after a restart.
  watches_ = std::make_unique<watch::WatchHub>(options_.watchHistory, options_.maxWatchers, revision_);
  auto onApplied = [this](watch::Applied& applied) {
    // The history first: a read that waited for this revision may watch from it at once.
    watches_->applied(applied);
    noteRevision(applied.revision);
    waiters_.applied(applied.revision);
  };
  if (options_.cluster.size() > 1) {
    ClusterOptions cluster;
    cluster.id = options_.id;
    cluster.members = options_.cluster;
    cluster.http = options_.http;
    cluster.writeTimeoutMs = options_.writeTimeoutMs;
    cluster.retainedSlots = options_.retainedSlots;
    cluster.retainedBytes = options_.retainedBytes;
    cluster.applyCommitDelayUs = options_.applyCommitDelayUs;
    cluster.flushBehind = options_.flushBehind;
    cluster.appliesWanted = [this](const watch::Applied& pending, watch::PendingScan& scan) {
      return waiters_.lowestWaited() <= pending.revision || watches_->concerns(pending.events, scan);
    };
    cluster.bugs = options_.bugs;
    cluster.encodingVersion = options_.encodingVersion;
    replicated_ = std::make_unique<ReplicatedLog>(env_, *stateMachine_, cluster, onApplied);
    // A new watcher may be waiting for events the open apply holds (appliesWanted).
    watches_->onWatch([this] { replicated_->nudge(); });
  } else {
    log_ = std::make_unique<LocalLog>(env_, *stateMachine_, wallClockMs, LocalLog::Options{}, onApplied);
  }
}

Node::~Node() { stop(); }

void Node::noteRevision(std::uint64_t revision) {
  std::uint64_t seen = revision_.load(std::memory_order_relaxed);
  while (revision > seen && !revision_.compare_exchange_weak(seen, revision, std::memory_order_release)) {
  }
}

void Node::submit(Command command, LocalLog::Done done, AnswerWhen when) {
  if (command.type == CommandType::Txn || isLockCommand(command.type)) {
    command.maxNodes = options_.maxTxnNodes;
    command.quotaBytes = options_.quotaBytes;
  }
  if (replicated_ && when == AnswerWhen::Applied) {
    // Answered before its apply commits (and before the hook below hears of it): the revision
    // this node reports (status, X-Warden-Revision) must not fall behind what it acknowledged.
    replicated_->submit(std::move(command), [this, done = std::move(done)](CommandResult r) {
      noteRevision(r.revision);
      done(std::move(r));
    }, when);
  } else if (replicated_) {
    replicated_->submit(std::move(command), std::move(done), when);
  } else {
    log_->submit(std::move(command), std::move(done));
  }
}

void Node::readBarrier(std::function<void(Status)> done) {
  // A single node acknowledges a write only after applying it: its state is always current.
  if (!replicated_) return done(Status::Ok);
  replicated_->readBarrier(std::move(done));
}

void Node::keepalive(std::uint64_t session, KeepaliveDone done) {
  if (replicated_) return replicated_->keepalive(session, std::move(done));
  const auto ttl = log_->keepalive(session);
  done(ttl ? Status::Ok : Status::SessionNotFound, ttl.value_or(0));
}

std::size_t Node::liveSessions() const { return replicated_ ? replicated_->liveSessions() : log_->liveSessions(); }

bool Node::waitForRevision(std::uint64_t revision, std::chrono::milliseconds timeout, std::function<void(bool)> done) {
  if (replicated_ && revision <= replicated_->appliedRevision()) {
    // Applied here, perhaps not committed yet (this node may even have answered the write from
    // that apply): the nudge below commits it within a turn, so the wait must not end first,
    // not even with wait_ms=0 (found by the review of issue 14: Review9ClusterTest).
    const auto commit = std::chrono::duration_cast<std::chrono::milliseconds>(
        std::chrono::microseconds(options_.applyCommitDelayUs));
    timeout = std::max(timeout, commit + std::chrono::seconds(1));
  }
  const bool queued = waiters_.wait(revision, timeout, std::move(done));
  // Waiting, perhaps for a revision the open apply holds already (appliesWanted): the driver looks.
  if (queued && replicated_ && waiters_.lowestWaited() <= revision) replicated_->nudge();
  return queued;
}

storage::Txn Node::read() { return storage::Txn::read(env_); }

std::uint64_t Node::appliedIndex() {
  storage::Txn txn = read();
  return stateMachine_->appliedIndex(txn);
}

ClusterView Node::view() {
  if (replicated_) return replicated_->view();
  ClusterView v;
  v.id = options_.id;
  v.leader = options_.id;
  v.appliedIndex = v.commitIndex = v.appliedPending = appliedIndex();
  MemberView self;
  self.id = options_.id;
  self.peer = options_.cluster.count(options_.id) ? options_.cluster.at(options_.id) : "";
  self.http = options_.http;
  self.leader = true;
  self.healthy = true;
  v.members.push_back(self);
  return v;
}

void Node::stop() {
  // Watch timers may submit (a lock waiter asking again): none may run once the logs stop.
  watches_->stop();
  if (replicated_) replicated_->stop();
  if (log_) log_->stop();
  waiters_.stop();
}

}  // namespace warden::coordinator
