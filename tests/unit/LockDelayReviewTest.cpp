// Adversarial review of the monotonic lock-delay (82d8baf): each test is one schedule that broke
// lock-delay safety before its fix.
//
// Bug (safety, fixed): a second expiry during a running delay (another shared holder, with a
// SHORTER lock_delay_ms) rewrote the lock node's "delay_ms" with the shorter length
// (StateMachine::delayLocksOf). Nodes that applied both expiries timed the longer one correctly
// (DelayTimers::started keeps the later due), but a node that rebuilds its timers from the state
// (timeLockDelays at process start or after a snapshot install; the LocalLog constructor) timed
// only the shorter delay from "now", and once it led, ended the delay early. Fix: the node keeps
// the longest length, `delay.delayMs = std::max(delay.delayMs, request->delayMs)`.

#include <catch2/catch.hpp>

#include <chrono>
#include <functional>
#include <future>
#include <memory>
#include <optional>
#include <string>
#include <thread>

#include "coordinator/LocalLog.h"
#include "locks/DelayTimers.h"
#include "locks/LockQueue.h"
#include "tests/unit/StoreFixture.h"
#include "tests/unit/node/NodeNet.h"

using namespace warden::tests::node;
using warden::tests::StoreFixture;
using warden::tests::lockCommand;
using warden::tests::sessionCreate;

namespace {


bool ldGranted(StoreFixture& store, const std::string& path) {
  auto record = store.get(path);
  auto request = record ? warden::locks::decodeRequest(record->data) : std::nullopt;
  return request && request->granted();
}

}  // namespace

// Schedule, state-machine level. Sessions A and B hold L shared, A with lock_delay_ms 60000, B
// with 1000; C waits (exclusive). A expires at t=2000 (revision R1: delay 60 s), B at t=2100
// (R2: the node now says delay_ms 1000). Every node then restarts (or one installs a snapshot
// and becomes leader): each times what the state says, 1000 ms (+2%) from its start, and the
// leader proposes LockDelayEnd{R2}, which matches: C is granted about a second after the restart,
// ~1.1 s of real time after A's expiry, while A's (paused) client may still write for 59 s.
TEST_CASE("lockdelayreview: a node that rebuilds its timers after a shorter second expiry ends the longer delay early",
          "[lockdelayreview]") {
  StoreFixture store;
  for (std::uint64_t s = 1; s <= 3; ++s) REQUIRE(store.applyCommand(sessionCreate(s)).status == Status::Ok);
  REQUIRE(store.applyCommand(lockCommand(CommandType::LockAcquire, 1, "L", true, 60'000), 1000).status == Status::Ok);
  REQUIRE(store.applyCommand(lockCommand(CommandType::LockAcquire, 2, "L", true, 1'000), 1000).status == Status::Ok);
  auto waiting = store.applyCommand(lockCommand(CommandType::LockAcquire, 3, "L"), 1000);
  REQUIRE(waiting.status == Status::Ok);
  const std::string pathC = waiting.results.at(0).path;
  REQUIRE_FALSE(ldGranted(store, pathC));

  REQUIRE(store.applyCommand(expireCommand(1, SessionEpoch{}), 2000).status == Status::Ok);  // R1: 60 s
  REQUIRE(store.applyCommand(expireCommand(2, SessionEpoch{}), 2100).status == Status::Ok);  // R2

  // What a node that starts now (or just installed a snapshot) times: NodeCore::timeLockDelays.
  std::vector<StateMachine::RunningDelay> running;
  {
    auto txn = storage::Txn::read(store.env());
    running = store.stateMachine().lockDelays(txn);
  }
  REQUIRE(running.size() == 1);
  INFO("the state's delay_ms after the second expiry: " << running[0].delayMs);
  CHECK(running[0].delayMs >= 60'000);

  // The restarted node leads, its monotonic clock at 0 when it started (right after R2).
  warden::locks::DelayTimers timers;
  for (const auto& d : running) timers.started(d.lock, d.revision, d.delayMs, 0);
  for (std::uint64_t nowMs = 0; nowMs <= 30'000; nowMs += 100) {
    for (const auto& [lock, revision] : timers.due(nowMs)) {
      auto end = warden::locks::DelayTimers::endCommand(lock, revision);
      REQUIRE(store.applyCommand(end, 2100 + nowMs).status == Status::Ok);
      timers.ended(lock);
    }
  }
  // 30 s after the restart, less than 31 s after A's expiry: its 60 s lock-delay still runs.
  CHECK_FALSE(ldGranted(store, pathC));
}

namespace {

void ldElectAll(NodeNet& net, NodeId leader) {
  net.runUntil({1, 2, 3}, all, [&] { return net.replica(1) && net.replica(2) && net.replica(3); }, none, 20);
  REQUIRE(net.replica(1));
  net.runUntil({leader}, all, [&] { return net.leads(leader) && net.core(leader).servesSessions(); });
  REQUIRE(net.core(leader).servesSessions());
}

std::optional<CommandResult> ldSubmitAndWait(NodeNet& net, NodeId at, Command command) {
  std::optional<CommandResult> result;
  net.core(at).submit(std::move(command), [&](CommandResult r) { result = std::move(r); });
  net.runUntil({1, 2, 3}, all, [&] { return result.has_value(); }, none, 1000);
  return result;
}

}  // namespace

// The same schedule through whole nodes. Three nodes, leader 1. A (ttl 1 s) and B (ttl 2 s) hold
// L shared, A with lock_delay_ms 60000, B with 1000; C waits. Neither A nor B keeps alive: the
// leader expires A (delay 60 s), then B (delay_ms rewritten to 1000). All three nodes restart
// (a power cut, or a rolling restart; each restart alone does the same once it leads). The new
// leader ends the delay about a second after it starts: C is granted a few seconds after A's
// expiry instead of 60 s.
TEST_CASE("lockdelayreview: whole cluster restarted after a shorter second expiry grants the lock before the first holder's delay",
          "[lockdelayreview]") {
  NodeNet net(3);
  ldElectAll(net, 1);
  net.runUntil({1, 2, 3}, all, [&] { return false; }, none, 50);
  const std::uint64_t A = 0xa, B = 0xb, C = 0xc;
  REQUIRE(ldSubmitAndWait(net, 1, sessionCreate(A, 1000))->status == Status::Ok);
  REQUIRE(ldSubmitAndWait(net, 1, sessionCreate(B, 2000))->status == Status::Ok);
  REQUIRE(ldSubmitAndWait(net, 1, sessionCreate(C, 600'000))->status == Status::Ok);
  REQUIRE(ldSubmitAndWait(net, 1, lockCommand(CommandType::LockAcquire, A, "L", true, 60'000))->status == Status::Ok);
  REQUIRE(ldSubmitAndWait(net, 1, lockCommand(CommandType::LockAcquire, B, "L", true, 1'000))->status == Status::Ok);
  auto waiting = ldSubmitAndWait(net, 1, lockCommand(CommandType::LockAcquire, C, "L"));
  REQUIRE(waiting);
  REQUIRE(waiting->status == Status::Ok);
  const std::string pathC = waiting->results.at(0).path;

  auto gone = [&](NodeId id, std::uint64_t session) {
    return net.read(id, [&](const StateMachine& sm, auto& txn) { return !sm.sessions().get(txn, session).has_value(); });
  };
  net.runUntil({1, 2, 3}, all, [&] { return gone(1, A) && gone(2, A) && gone(3, A); }, none, 500);
  REQUIRE(gone(1, A));
  const std::uint64_t expiredAtUs = net.now;
  net.runUntil({1, 2, 3}, all, [&] { return gone(1, B) && gone(2, B) && gone(3, B); }, none, 500);
  REQUIRE(gone(1, B));
  auto grantedAt = [&](NodeId id) {
    return net.read(id, [&](const StateMachine& sm, auto& txn) {
      auto record = sm.tree().get(txn, pathC);
      auto request = record ? warden::locks::decodeRequest(record->data) : std::nullopt;
      return request && request->granted();
    });
  };
  REQUIRE_FALSE(grantedAt(1));

  for (NodeId id : {1, 2, 3}) net.crash(id);
  for (NodeId id : {1, 2, 3}) net.restart(id);
  net.runUntil({1, 2, 3}, all, [&] { return grantedAt(1) || grantedAt(2) || grantedAt(3); }, none, 9'000);
  const double elapsed = static_cast<double>(net.now - expiredAtUs) / 1e6;
  INFO("C granted " << elapsed << " s of real time after A's expiry (A's lock_delay_ms: 60000)");
  REQUIRE((grantedAt(1) || grantedAt(2) || grantedAt(3)));
  CHECK(net.now - expiredAtUs >= 60'000'000);
}

// The same schedule on a single node (coordinator/LocalLog.cpp), in real time: A (ttl 1 s) and B
// (ttl 2 s) hold L shared with lock_delay_ms 60000 and 1000, C waits; both expire unkept; the
// process restarts at once. The LocalLog constructor times the state's delay_ms (1000) from its
// start and ends the delay about a second later: C is granted ~2 s after A's expiry.
TEST_CASE("lockdelayreview: a single node restarted after a shorter second expiry grants the lock before the first holder's delay",
          "[lockdelayreview]") {
  StoreFixture store;
  auto open = [&] {
    return std::make_unique<LocalLog>(store.env(), store.stateMachine(), [] { return std::uint64_t{1'800'000'000'000}; },
                                      LocalLog::Options{}, nullptr);
  };
  auto log = open();
  auto submit = [&](Command command) {
    std::promise<CommandResult> promise;
    auto future = promise.get_future();
    log->submit(std::move(command), [&promise](CommandResult r) { promise.set_value(std::move(r)); });
    REQUIRE(future.wait_for(std::chrono::seconds(10)) == std::future_status::ready);
    return future.get();
  };
  const std::uint64_t A = 0xa, B = 0xb, C = 0xc;
  REQUIRE(submit(sessionCreate(A, 1000)).status == Status::Ok);
  REQUIRE(submit(sessionCreate(B, 2000)).status == Status::Ok);
  REQUIRE(submit(sessionCreate(C, 600'000)).status == Status::Ok);
  REQUIRE(submit(lockCommand(CommandType::LockAcquire, A, "L", true, 60'000)).status == Status::Ok);
  REQUIRE(submit(lockCommand(CommandType::LockAcquire, B, "L", true, 1'000)).status == Status::Ok);
  auto waiting = submit(lockCommand(CommandType::LockAcquire, C, "L"));
  REQUIRE(waiting.status == Status::Ok);
  const std::string pathC = waiting.results.at(0).path;

  auto waitFor = [](const std::function<bool()>& done, std::chrono::milliseconds bound) {
    const auto until = std::chrono::steady_clock::now() + bound;
    while (!done() && std::chrono::steady_clock::now() < until) std::this_thread::sleep_for(std::chrono::milliseconds(10));
    return done();
  };
  REQUIRE(waitFor([&] { return !store.session(A).has_value(); }, std::chrono::seconds(10)));
  const auto expiredA = std::chrono::steady_clock::now();
  REQUIRE(waitFor([&] { return !store.session(B).has_value(); }, std::chrono::seconds(10)));
  REQUIRE_FALSE(ldGranted(store, pathC));

  log.reset();  // the process stops and starts again
  log = open();
  const bool granted = waitFor([&] { return ldGranted(store, pathC); }, std::chrono::seconds(4));
  const double elapsed = std::chrono::duration<double>(std::chrono::steady_clock::now() - expiredA).count();
  INFO("C granted: " << granted << ", " << elapsed << " s after A's expiry (A's lock_delay_ms: 60000)");
  CHECK_FALSE(granted);
  log.reset();
}
