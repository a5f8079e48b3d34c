// The request memory behind exactly-once apply (StateMachine::admitRequest): a copy of a write
// is refused for as long as it could still be applied, and the memory forgets only what no copy
// can reach any more.
#include <catch2/catch.hpp>

#include <set>
#include <string>

#include "coordinator/storage/Keys.h"
#include "tests/unit/StoreFixture.h"

using warden::coordinator::StateMachine;
using warden::coordinator::storage::Txn;
using warden::tests::StoreFixture;

namespace {

constexpr std::uint64_t kT0 = 1'800'000'000'000;  // leader time, ms
constexpr std::size_t kRequestsTable = 5;          // snapshot order (StateMachineSnapshot.cpp)
constexpr std::size_t kByDeadlineTable = 9;

// One request of origin 7, incarnation 1, admitted in its own transaction.
bool admit(StoreFixture& store, std::uint64_t requestId, std::uint64_t slot, std::uint64_t deadlineMs,
           std::uint64_t stampMs) {
  auto txn = Txn::write(store.env());
  const bool admitted = store.stateMachine().admitRequest(txn, 7, 1, requestId, slot, deadlineMs, stampMs);
  txn.commit();
  return admitted;
}

// The deadlines of the remembered requests, as the snapshot carries them.
std::multiset<std::uint64_t> rememberedDeadlines(StoreFixture& store) {
  std::multiset<std::uint64_t> deadlines;
  for (const auto& row : store.rows()) {
    if (row.table == kByDeadlineTable) deadlines.insert(warden::coordinator::storage::decodeU64Key(row.key.substr(0, 8)));
  }
  return deadlines;
}

std::size_t rowsOf(StoreFixture& store, std::size_t table) {
  std::size_t n = 0;
  for (const auto& row : store.rows()) n += row.table == table;
  return n;
}

}  // namespace

TEST_CASE("a copy of a write is refused until the applied time passes its deadline, and then forgotten") {
  StoreFixture store;
  const std::uint64_t deadline = kT0 + 5'000;
  REQUIRE(admit(store, 1, 1, deadline, kT0));
  // Copies in later slots, other writes in between, up to and at the deadline.
  std::uint64_t slot = 2;
  for (std::uint64_t stamp = kT0; stamp <= deadline; stamp += 250, ++slot) {
    CHECK_FALSE(admit(store, 1, slot, deadline, stamp));
    CHECK(admit(store, 1000 + slot, slot, stamp + 5'001, stamp));
  }
  CHECK(rememberedDeadlines(store).count(deadline) == 1);
  // Past it: the next admission forgets it (a copy chosen now would be skipped by apply unasked).
  REQUIRE(admit(store, 2, slot, deadline + 5'001, deadline + 1));
  CHECK(rememberedDeadlines(store).count(deadline) == 0);
  CHECK(rowsOf(store, kRequestsTable) == 0);  // client writes live in the deadline order only
}

TEST_CASE("the request memory is forgotten from its front, across many pages, exactly up to the applied time") {
  StoreFixture store;
  // 10,000 requests whose deadlines are 1 ms apart, remembered while nothing has passed.
  for (std::uint64_t i = 0; i < 10'000; ++i) REQUIRE(admit(store, i, i + 1, kT0 + i, kT0));
  REQUIRE(rememberedDeadlines(store).size() == 10'000);
  // The applied time moves to kT0 + 4,000: each admission forgets up to 8 of the 4,000 passed.
  for (std::uint64_t i = 0; i < 600; ++i) REQUIRE(admit(store, 20'000 + i, 20'000 + i, kT0 + 100'000 + i, kT0 + 4'000));
  const auto left = rememberedDeadlines(store);
  CHECK(left.size() == 6'000 + 600);
  CHECK(*left.begin() == kT0 + 4'000);  // all passed forgotten, none still ahead
  for (std::uint64_t d = kT0 + 4'000; d < kT0 + 10'000; ++d) REQUIRE(left.count(d) == 1);
  // Every one still ahead still refuses its copy.
  CHECK_FALSE(admit(store, 4'000, 30'000, kT0 + 4'000, kT0 + 4'000));
  CHECK_FALSE(admit(store, 9'999, 30'001, kT0 + 9'999, kT0 + 4'000));
}

TEST_CASE("a request without a deadline is remembered for the slot memory") {
  StoreFixture store;
  REQUIRE(admit(store, 1, 1, 0, kT0));
  CHECK_FALSE(admit(store, 1, 2, 0, kT0 + 60'000));
  CHECK_FALSE(admit(store, 1, 1 + StateMachine::kRequestMemorySlots, 0, kT0 + 60'000));
  // Past the memory, admissions of others forget it.
  REQUIRE(admit(store, 2, 2 + StateMachine::kRequestMemorySlots, 0, kT0 + 60'000));
  CHECK(admit(store, 1, 3 + StateMachine::kRequestMemorySlots, 0, kT0 + 60'000));
}

TEST_CASE("a write a store from before the deadline order remembered still refuses its copies") {
  StoreFixture store;
  // The row an older version wrote: requests (slot, deadline) and requests_by_slot.
  const std::string id = warden::coordinator::storage::encodeU64Key(7) + warden::coordinator::storage::encodeU64Key(1) +
                         warden::coordinator::storage::encodeU64Key(1);
  {
    auto txn = Txn::write(store.env());
    const auto& dbs = StateMachine::openDbs(txn);
    txn.put(dbs.requests, id, warden::coordinator::storage::encodeU64Key(1) + warden::coordinator::storage::encodeU64Key(kT0 + 5'000));
    txn.put(dbs.requestsBySlot, warden::coordinator::storage::encodeU64Key(1) + id, {});
    txn.commit();
  }
  CHECK_FALSE(admit(store, 1, 2, kT0 + 5'000, kT0 + 1'000));
  CHECK(admit(store, 2, 3, kT0 + 6'000, kT0 + 1'000));
  // Once past both memories, it is forgotten there too.
  REQUIRE(admit(store, 3, 2 + StateMachine::kRequestMemorySlots, kT0 + 20'000, kT0 + 10'000));
  CHECK(rowsOf(store, kRequestsTable) == 0);
}

TEST_CASE("a snapshot carries the request memory: the installed replica refuses the same copies") {
  StoreFixture from;
  REQUIRE(admit(from, 1, 1, kT0 + 5'000, kT0));
  REQUIRE(admit(from, 2, 2, 0, kT0));
  StoreFixture to;
  {
    auto txn = Txn::write(to.env());
    to.stateMachine().importState(txn, from.rows());
    txn.commit();
  }
  CHECK_FALSE(admit(to, 1, 3, kT0 + 5'000, kT0 + 1'000));
  CHECK_FALSE(admit(to, 2, 3, 0, kT0 + 1'000));
  CHECK(admit(to, 3, 3, kT0 + 5'000, kT0 + 1'000));
}

TEST_CASE("the check catches a memory that forgets a write before its deadline (planted)") {
  StoreFixture store;
  store.stateMachine().bugs.forgetRequestsEarly = true;
  REQUIRE(admit(store, 1, 1, kT0 + 5'000, kT0));
  REQUIRE(admit(store, 2, 2, kT0 + 5'001, kT0 + 1));  // forgets request 1, though its deadline is ahead
  CHECK(admit(store, 1, 3, kT0 + 5'000, kT0 + 2));   // so its copy would apply twice
}
