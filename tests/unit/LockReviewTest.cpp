// Adversarial review of the lock layer (locks, lock-delay, withdrawals): each test is one schedule
// from the review, applied step by step, that broke the code before its fix. (A third schedule,
// an upgrade from the 10-digit request names of a build before ec03ae2, needs a state no
// released build wrote: see coordinator/node/SAFETY.md.)

#include <catch2/catch.hpp>

#include <cstdio>
#include <optional>
#include <string>

#include "locks/LockQueue.h"
#include "tests/unit/StoreFixture.h"
#include "tests/unit/node/NodeNet.h"

using namespace warden::tests::node;
using warden::tests::StoreFixture;
using warden::tests::lockCommand;
using warden::tests::sessionCreate;

namespace {


}  // namespace

// Schedule (wrong answer, lost FIFO place). Session S's client acquires L (wait_ms 3000) via
// follower F: request A queues. F falls behind (partitioned from the leader). The client, hearing
// nothing, asks again via G with wait_ms 0: G finds A, it is not granted, G withdraws it (409). The
// client acquires again via G with wait_ms 60000: request B queues at the end. F's wait for A ends
// at 3000 ms; F has not applied A's withdrawal, so it sees A waiting and submits LockWithdraw
// {session, lock}; F heals, the withdraw is chosen: it removes B (the session's request *now*).
// G's wait on B wakes, finds B gone and answers 404 session_not_found although S is alive, and B
// lost its place in the queue. Fault: LockWithdraw names no request (StateMachineLocks.cpp
// applyLock withdraws `mine`); LocksApi::finish answers 404 for any vanished request.
// Fixed: the withdrawal carries the revision that queued its request in `token` (0: any), and
// LocksApi::finish answers 409 for a request withdrawn by another wait of a live session.
TEST_CASE("review: a late withdrawal of an earlier request does not take the session's newer request", "[lockreview]") {
  StoreFixture store;
  for (std::uint64_t s = 1; s <= 2; ++s) REQUIRE(store.applyCommand(sessionCreate(s)).status == Status::Ok);
  REQUIRE(store.applyCommand(lockCommand(CommandType::LockAcquire, 1, "L")).status == Status::Ok);  // holder
  auto a = store.applyCommand(lockCommand(CommandType::LockAcquire, 2, "L"));                       // A via F
  REQUIRE(a.status == Status::Ok);
  const std::string pathA = a.results.at(0).path;
  REQUIRE(store.applyCommand(lockCommand(CommandType::LockWithdraw, 2, "L", false, warden::locks::queuedRevision(pathA))).status ==
          Status::Ok);  // G's wait_ms 0 withdraws A
  REQUIRE_FALSE(store.get(pathA));
  auto b = store.applyCommand(lockCommand(CommandType::LockAcquire, 2, "L"));  // B via G, waiting
  REQUIRE(b.status == Status::Ok);
  const std::string pathB = b.results.at(0).path;
  REQUIRE(pathB != pathA);
  // F's withdrawal, meant for A, arrives late.
  REQUIRE(store.applyCommand(lockCommand(CommandType::LockWithdraw, 2, "L", false, warden::locks::queuedRevision(pathA))).status ==
          Status::Ok);
  CHECK(store.get(pathB).has_value());
}

namespace {

void electAll(NodeNet& net, NodeId leader) {
  net.runUntil({1, 2, 3}, all, [&] { return net.replica(1) && net.replica(2) && net.replica(3); }, none, 20);
  REQUIRE(net.replica(1));
  net.runUntil({leader}, all, [&] { return net.leads(leader) && net.core(leader).servesSessions(); });
  REQUIRE(net.core(leader).servesSessions());
}

std::optional<CommandResult> submitAndWait(NodeNet& net, NodeId at, Command command, const std::vector<NodeId>& ticking) {
  std::optional<CommandResult> result;
  net.core(at).submit(std::move(command), [&](CommandResult r) { result = std::move(r); });
  net.runUntil(ticking, all, [&] { return result.has_value(); }, none, 1000);
  return result;
}

}  // namespace

// Schedule (lock-delay lets someone in early). Leader 1 (correct clock). Session A (ttl 1 s)
// acquires L with lock_delay_ms 10000; session B queues behind it. A's client dies: leader 1
// expires A at leader time T, so L is unavailable until T + 10000. Nodes 2 and 3 run wall clocks
// 20 s ahead (an NTP step; nothing bounds the offset between nodes). Leader 1 crashes; 2 or 3
// takes over about a second later and stamps its entries with its own wall clock, T + ~21 s; B's
// node pokes L (as LocksApi::askAgainAfterDelay does once it sees the new stamps): B is granted
// ~1 s of real time after A's expiry instead of 10 s, while A's paused client may still write.
// Fault: grantLock compares available_at with the entry's wall-clock stamp; nothing renews the
// delay at a leadership change (sessions get a fresh ttl at takeover, a pending lock-delay gets
// nothing). Fixed: the delay is timed on each node's monotonic clock from when it learned of it
// (locks/DelayTimers.h), and the serving leader ends it (LockDelayEnd).
TEST_CASE("review: a lock-delay lasts its length in real time across a leader whose clock is ahead", "[lockreview]") {
  NodeNet net(3);
  electAll(net, 1);
  net.runUntil({1, 2, 3}, all, [&] { return false; }, none, 50);
  const std::uint64_t A = 0xa, B = 0xb;
  REQUIRE(submitAndWait(net, 1, warden::tests::sessionCreate(A, 1000), {1, 2, 3})->status == Status::Ok);
  REQUIRE(submitAndWait(net, 1, warden::tests::sessionCreate(B, 600'000), {1, 2, 3})->status == Status::Ok);
  REQUIRE(submitAndWait(net, 1, lockCommand(CommandType::LockAcquire, A, "L", false, 10'000), {1, 2, 3})->status ==
          Status::Ok);
  auto waiting = submitAndWait(net, 1, lockCommand(CommandType::LockAcquire, B, "L"), {1, 2, 3});
  REQUIRE(waiting);
  REQUIRE(waiting->status == Status::Ok);
  const std::string pathB = waiting->results.at(0).path;

  // No keepalive for A: leader 1 expires it; every node applies the expiry.
  auto aGone = [&](NodeId id) {
    return net.read(id, [&](const StateMachine& sm, auto& txn) { return !sm.sessions().get(txn, A).has_value(); });
  };
  net.runUntil({1, 2, 3}, all, [&] { return aGone(1) && aGone(2) && aGone(3); }, none, 500);
  REQUIRE(aGone(2));
  const std::uint64_t expiredAtUs = net.now;
  const bool delayed = net.read(2, [&](const StateMachine& sm, auto& txn) {
    auto record = sm.tree().get(txn, warden::locks::lockPath("L"));
    return record && warden::locks::decodeDelay(record->data).has_value();
  });
  REQUIRE(delayed);

  net.wallOffsetMs[2] = net.wallOffsetMs[3] = 20'000;
  net.crash(1);
  auto grantedAt = [&](NodeId id) {
    return net.read(id, [&](const StateMachine& sm, auto& txn) {
      auto record = sm.tree().get(txn, pathB);
      auto request = record ? warden::locks::decodeRequest(record->data) : std::nullopt;
      return request && request->granted();
    });
  };
  // The next leader ends the delay once it has run 10 s on its own monotonic clock: never
  // before, however far ahead its wall clock is, and not much after.
  net.runUntil({2, 3}, all, [&] { return grantedAt(2) || grantedAt(3); }, none, 2'000);
  const double elapsed = static_cast<double>(net.now - expiredAtUs) / 1e6;
  INFO("B granted " << elapsed << " s of real time after A's expiry");
  REQUIRE((grantedAt(2) || grantedAt(3)));
  CHECK(net.now - expiredAtUs >= 10'000'000);
  CHECK(net.now - expiredAtUs < 13'000'000);
}
