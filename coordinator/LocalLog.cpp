#include "coordinator/LocalLog.h"

#include <algorithm>
#include <chrono>
#include <cstdio>

#include "coordinator/ThreadName.h"

namespace warden::coordinator {

namespace {

constexpr auto kExpiryScan = std::chrono::milliseconds(50);

std::uint64_t steadyMs() {
  using namespace std::chrono;
  return static_cast<std::uint64_t>(duration_cast<milliseconds>(steady_clock::now().time_since_epoch()).count());
}

}  // namespace

LocalLog::LocalLog(storage::Env& env, const StateMachine& stateMachine, WallClock clock, Options options,
                   AppliedHook onApplied)
    : env_(env),
      stateMachine_(stateMachine),
      clock_(std::move(clock)),
      options_(options),
      onApplied_(std::move(onApplied)) {
  storage::Txn txn = storage::Txn::write(env_);
  logDb_ = txn.openDb("log");
  nextIndex_ = stateMachine_.appliedIndex(txn) + 1;
  {
    // A write transaction's cursors must close before it commits.
    storage::Cursor cursor(txn, logDb_);
    if (auto last = cursor.last()) lastTimestampMs_ = decodeEntry(last->value).timestampMs;
  }
  // Nobody knows when clients last spoke before this start: every session gets a fresh ttl.
  keeper_.takeOver(steadyMs(), stateMachine_.sessions().ttls(txn));
  // Likewise each lock-delay runs its whole length from this start.
  for (const auto& d : stateMachine_.lockDelays(txn)) lockDelays_.started(d.lock, d.revision, d.delayMs, steadyMs());
  txn.commit();
  thread_ = std::thread([this] {
    nameThisThread("warden-driver");
    run();
  });
}

LocalLog::~LocalLog() { stop(); }

void LocalLog::submit(Command command, Done done) {
  CommandResult refused;
  {
    std::lock_guard lock(mutex_);
    if (!stopping_ && queue_.size() < options_.maxPending) {
      queue_.push_back(Pending{std::move(command), std::move(done)});
      wake_.notify_one();
      return;
    }
    refused.status = stopping_ ? Status::Unavailable : Status::Overloaded;
    refused.message = stopping_ ? "the node is shutting down" : "too many writes are queued; try again";
  }
  done(std::move(refused));
}

void LocalLog::stop() {
  {
    std::lock_guard lock(mutex_);
    stopping_ = true;
  }
  wake_.notify_one();
  if (thread_.joinable()) thread_.join();
}

std::optional<std::uint64_t> LocalLog::keepalive(std::uint64_t session) {
  std::lock_guard lock(keeperMutex_);
  return keeper_.keepalive(session, steadyMs());
}

std::size_t LocalLog::liveSessions() {
  std::lock_guard lock(keeperMutex_);
  return keeper_.size();
}

void LocalLog::expireDue() {
  std::vector<std::uint64_t> due;
  {
    std::lock_guard lock(keeperMutex_);
    due = keeper_.due(steadyMs());
  }
  for (std::uint64_t id : due) {
    // Nobody waits for the answer: apply tells the keeper, and a lost expiry is due again.
    submit(sessionCommand(CommandType::SessionExpire, id), [](CommandResult) {});
  }
}

void LocalLog::endDueLockDelays() {
  for (const auto& [lock, revision] : lockDelays_.due(steadyMs())) {
    // Nobody waits for the answer: apply ends the timer, and a lost end is due again.
    submit(locks::DelayTimers::endCommand(lock, revision), [](CommandResult) {});
  }
}

void LocalLog::run() {
  std::deque<Pending> batch;
  auto nextScan = std::chrono::steady_clock::now() + kExpiryScan;
  for (;;) {
    if (std::chrono::steady_clock::now() >= nextScan) {
      expireDue();
      endDueLockDelays();
      nextScan = std::chrono::steady_clock::now() + kExpiryScan;
    }
    {
      std::unique_lock lock(mutex_);
      if (!wake_.wait_until(lock, nextScan, [this] { return stopping_ || !queue_.empty(); })) continue;
      if (queue_.empty()) return;  // stopping, and everything queued was committed
      std::size_t n = std::min(queue_.size(), options_.maxBatchCommands);
      std::move(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n), std::back_inserter(batch));
      queue_.erase(queue_.begin(), queue_.begin() + static_cast<std::ptrdiff_t>(n));
    }
    commit(batch);
    batch.clear();
  }
}

void LocalLog::commit(std::deque<Pending>& batch) {
  Entry entry;
  entry.index = nextIndex_;
  // Timestamps never go backwards in the log, even if the wall clock does.
  entry.timestampMs = std::max(clock_(), lastTimestampMs_);
  entry.commands.reserve(batch.size());
  for (Pending& p : batch) entry.commands.push_back(std::move(p.command));

  std::vector<CommandResult> results;
  StateMachine::Notes notes;  // replays: answered from the idempotency table, the keeper heard of them already
  std::uint64_t revision = 0;
  try {
    storage::Txn txn = storage::Txn::write(env_);
    txn.put(logDb_, storage::encodeU64Key(entry.index), encodeEntry(entry));
    if (entry.index > options_.retainedEntries) {
      txn.erase(logDb_, storage::encodeU64Key(entry.index - options_.retainedEntries));
    }
    results = stateMachine_.apply(txn, entry, &notes);
    revision = stateMachine_.revision(txn);
    txn.commit();
  } catch (const storage::LmdbError& e) {
    // Nothing of this entry was written; each caller hears why and may retry.
    std::fprintf(stderr, "warden: commit of entry %llu failed: %s\n",
                 static_cast<unsigned long long>(entry.index), e.what());
    CommandResult failed;
    failed.status = Status::Unavailable;
    failed.message = std::string("storage failure: ") + e.what();
    for (Pending& p : batch) p.done(failed);
    return;
  }
  nextIndex_ += 1;
  lastTimestampMs_ = entry.timestampMs;
  {
    std::lock_guard lock(keeperMutex_);
    const std::uint64_t now = steadyMs();
    for (std::size_t i = 0; i < results.size(); ++i) {
      if (!notes.replays[i]) keeper_.applied(entry.commands[i], results[i], now);
    }
  }
  for (const auto& event : notes.events) lockDelays_.noteChange(event, steadyMs());
  if (onApplied_) {
    watch::Applied applied{revision, std::move(notes.events), false};
    onApplied_(applied);
  }
  for (std::size_t i = 0; i < batch.size(); ++i) {
    // A callback that throws must not take the log's thread (and every later write) with it.
    try {
      batch[i].done(std::move(results[i]));
    } catch (const std::exception& e) {
      std::fprintf(stderr, "warden: a write's completion failed: %s\n", e.what());
    }
  }
}

}  // namespace warden::coordinator
