// Write deadlines in leader time (issue 10, coordinator/node/SAFETY.md 7), step by step: the
// schedules an adversarial review of the change found, each of which broke it before its fix.
#include <catch2/catch.hpp>

#include <cstdio>
#include <optional>

#include "tests/unit/node/NodeNetHelpers.h"

using namespace warden::tests::node;

namespace {


bool exists(NodeNet& net, NodeId id, const std::string& path) {
  return net.read(id, [&](const StateMachine& sm, auto& txn) { return sm.tree().get(txn, path).has_value(); });
}
std::uint64_t storedStamp(NodeNet& net, NodeId id) {
  return net.read(id, [&](const StateMachine& sm, auto& txn) { return sm.timestampMs(txn); });
}

}  // namespace

// Leader 1's wall clock jumps 6 s ahead (write timeout 5 s). Origin 3's write W reaches 1, which
// stamps it past W's deadline; only acceptor 2 takes it before 1 dies. Leader 2 re-proposes that
// copy at slot s (skipped: late; origin 3 answers 503 from apply's late path) and then the copy
// origin 3 re-sent to it, stamped by 2's clock before the deadline, at a later slot: applied.
TEST_CASE("a write answered 503 because one copy came too late is not applied by a later copy") {
  NodeNet net(3);
  elect(net, 1);
  net.runUntil({1, 2, 3}, all, [&] { return false; }, none, 50);  // everyone applies the epoch

  net.wallOffsetMs[1] = 6'000;  // node 1's wall clock steps forward
  std::optional<CommandResult> result;
  std::uint64_t answeredAtUs = 0;
  bool appliedWhenAnswered = false;
  net.core(3).submit(createCommand("/w"), [&](CommandResult r) {
    result = std::move(r);
    answeredAtUs = net.now;
    appliedWhenAnswered = exists(net, 3, "/w");
  });
  net.turn(3);  // forwards W to 1
  auto accept1to3 = [](const Frame& f) { return f.from == 1 && f.to == 3 && f.is("Accept"); };
  auto fromOrTo1Later = [](const Frame& f) { return f.from == 2 && f.to == 1; };
  // 1 proposes W at slot s; 2 accepts it; 3 never sees the Accept; 2's reply never reaches 1.
  net.settle([&](const Frame& f) { return !accept1to3(f) && !fromOrTo1Later(f); },
             [&](const Frame& f) { return accept1to3(f) || fromOrTo1Later(f); });
  net.crash(1);
  auto to1 = [](const Frame& f) { return f.to == 1 || f.from == 1; };

  bool sawNoQuorumBeforeApplied = false;
  net.runUntil({2, 3}, [&](const Frame& f) { return !to1(f); },
               [&] {
                 if (result && result->status == Status::NoQuorum && !exists(net, 3, "/w")) sawNoQuorumBeforeApplied = true;
                 return result.has_value() && exists(net, 2, "/w") && exists(net, 3, "/w");
               },
               to1, 1500);
  REQUIRE(result);
  std::printf("W answered status %d (NoQuorum=%d) at %.3f s: %s\n", static_cast<int>(result->status),
              static_cast<int>(Status::NoQuorum), answeredAtUs / 1e6, result->message.c_str());
  std::printf("/w applied on 2: %d, on 3: %d; stored stamps 2: %llu 3: %llu\n", exists(net, 2, "/w"), exists(net, 3, "/w"),
              static_cast<unsigned long long>(storedStamp(net, 2)), static_cast<unsigned long long>(storedStamp(net, 3)));
  std::printf("when W was answered, /w existed on 3: %d\n", appliedWhenAnswered);
  CHECK((sawNoQuorumBeforeApplied || !appliedWhenAnswered));
  // The claim: a write answered NoQuorum is never applied.
  CHECK_FALSE((result->status == Status::NoQuorum && exists(net, 3, "/w")));
}

// Liveness: the leader's wall clock steps 6 s ahead after its epoch entry. Every write through a
// follower is stamped past its deadline and skipped; a skipped entry does not move the stored
// time, so the follower's idea of leader time never catches up: every later write fails too.
TEST_CASE("after a leader's clock steps ahead, writes through a follower fail only until the applied time catches up") {
  NodeNet net(3);
  elect(net, 1);
  net.runUntil({1, 2, 3}, all, [&] { return false; }, none, 50);
  net.wallOffsetMs[1] = 6'000;
  int ok = 0, refused = 0, other = 0;
  for (int i = 0; i < 10; ++i) {
    std::optional<CommandResult> result;
    net.core(3).submit(createCommand("/f" + std::to_string(i)), [&](CommandResult r) { result = std::move(r); });
    net.runUntil({1, 2, 3}, all, [&] { return result.has_value(); }, none, 2000);
    REQUIRE(result);
    if (result->status == Status::Ok) ++ok;
    else if (result->status == Status::NoQuorum) ++refused;
    else ++other;
    net.runUntil({1, 2, 3}, all, [&] { return false; }, none, 300);  // 3 s between writes
  }
  std::printf("follower writes after the leader's clock stepped ahead: %d ok, %d refused (503), %d other; t=%.1f s\n", ok,
              refused, other, net.now / 1e6);
  CHECK(ok >= 9);
}

namespace {
// Rows in the request memory after admitting `n` requests, one a slot, leader time 1 ms a slot;
// the first request's deadline is `firstAheadMs` past its slot's time, the others' 5 s.
std::size_t requestRowsAfter(std::uint64_t n, std::uint64_t firstAheadMs) {
  warden::tests::StoreFixture store;
  const std::uint64_t t0 = 1'800'000'000'000;
  auto txn = warden::coordinator::storage::Txn::write(store.env());
  for (std::uint64_t slot = 1; slot <= n; ++slot) {
    const std::uint64_t stamp = t0 + slot;
    const std::uint64_t deadline = stamp + (slot == 1 ? firstAheadMs : 5'000);
    REQUIRE(store.stateMachine().admitRequest(txn, 7, 1, slot, slot, deadline, stamp));
  }
  std::size_t rows = 0;
  // requests (5) and requests_by_deadline (9), in snapshot order
  store.stateMachine().exportState(txn, [&](warden::coordinator::StateMachine::Row row) { rows += row.table == 5 || row.table == 9; });
  txn.commit();
  return rows;
}
}  // namespace

TEST_CASE("one request whose deadline is far ahead does not stop the request memory from being purged") {
  const std::size_t normal = requestRowsAfter(40'000, 5'000);
  const std::size_t skewed = requestRowsAfter(40'000, 24ull * 3600 * 1000);  // its origin's wall clock a day ahead
  std::printf("requests rows after 40,000 admissions: %zu with normal deadlines, %zu when the first one's deadline is a day ahead\n",
              normal, skewed);
  CHECK(skewed < 20'000);
}
