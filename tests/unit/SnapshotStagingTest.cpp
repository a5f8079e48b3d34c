// Snapshot rows whose keys are near LMDB's 511-byte limit. The exactly-once time index holds
// 8 bytes of time + a key of up to 503 bytes as it is (IdempotencyTest), and staging put a table
// byte in front of every key: such a row made 512 bytes, every node receiving the snapshot
// stopped on MDB_BAD_VALSIZE, and a wiped member could not rebuild while the row lived. The
// node-level schedules are in tests/unit/node/LongKeySnapshotTest.cpp.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "tests/unit/StoreFixture.h"

using namespace warden::coordinator;
using warden::tests::StoreFixture;
using warden::tests::createOp;
using storage::LmdbError;
using storage::Txn;
using Row = StateMachine::Row;

namespace {

Command keyedCreate(const std::string& path, std::string key) {
  Command command = txnCommand({createOp(path, std::string(10, 'x'))});
  command.idempotencyKey = std::move(key);
  return command;
}

std::string longKey(char fill) { return std::string(503, fill); }

// A state with two 503-byte keys among short ones, so that its rows have long ones in places.
void fill(StoreFixture& store) {
  REQUIRE(store.applyCommand(keyedCreate("/a", "short"), 1000).status == Status::Ok);
  REQUIRE(store.applyCommand(keyedCreate("/b", longKey('k')), 1000).status == Status::Ok);
  REQUIRE(store.applyCommand(txnCommand({createOp("/c", "x")}), 1000).status == Status::Ok);
  REQUIRE(store.applyCommand(keyedCreate("/d", longKey('m')), 1001).status == Status::Ok);
}

bool sameRows(const std::vector<Row>& a, const std::vector<Row>& b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (a[i].table != b[i].table || a[i].key != b[i].key || a[i].value != b[i].value) return false;
  }
  return true;
}

std::size_t longestKey(const std::vector<Row>& rows) {
  std::size_t longest = 0;
  for (const auto& row : rows) longest = std::max(longest, row.key.size());
  return longest;
}

}  // namespace

TEST_CASE("a snapshot holding 511-byte keys stages one row per piece and installs in small steps") {
  StoreFixture from;
  fill(from);
  const std::vector<Row> rows = from.rows();
  REQUIRE(longestKey(rows) == 511);  // the time index's rows of the 503-byte keys
  StoreFixture to;
  {
    auto txn = Txn::write(to.env());
    to.stateMachine().clearStaging(txn);
    txn.commit();
  }
  for (const auto& row : rows) {  // one piece (and one transaction) a row, as a slow stream stages them
    auto txn = Txn::write(to.env());
    to.stateMachine().stageRows(txn, {row});
    txn.commit();
  }
  {
    auto txn = Txn::write(to.env());
    to.stateMachine().beginInstall(txn);
    txn.commit();
  }
  for (int step = 0;; ++step) {
    REQUIRE(step < 10'000);
    auto txn = Txn::write(to.env());
    const bool done = to.stateMachine().installStep(txn, 100);
    txn.commit();
    if (done) break;
  }
  CHECK(sameRows(to.rows(), rows));
  // The installed replica remembers the keyed writes: their retries are answered, not applied.
  CHECK(to.applyCommand(keyedCreate("/b", longKey('k')), 2000) == from.applyCommand(keyedCreate("/b", longKey('k')), 2000));
  CHECK(to.applyCommand(keyedCreate("/d2", longKey('m')), 2000).status == Status::KeyReused);
}

TEST_CASE("an install of long rows stopped halfway is finished at restart") {
  StoreFixture from;
  fill(from);
  const std::vector<Row> rows = from.rows();
  StoreFixture to;
  REQUIRE(to.applyCommand(txnCommand({createOp("/old", "x")}), 1000).status == Status::Ok);
  {
    auto txn = Txn::write(to.env());
    to.stateMachine().clearStaging(txn);
    to.stateMachine().stageRows(txn, {rows.begin(), rows.begin() + static_cast<std::ptrdiff_t>(rows.size() / 2)});
    txn.commit();
  }
  {
    auto txn = Txn::write(to.env());
    to.stateMachine().stageRows(txn, {rows.begin() + static_cast<std::ptrdiff_t>(rows.size() / 2), rows.end()});
    to.stateMachine().beginInstall(txn);
    REQUIRE_FALSE(to.stateMachine().installStep(txn, 100));
    txn.commit();
  }
  to.reopen();  // initialize() finishes the install before anything reads the state
  CHECK(sameRows(to.rows(), rows));
}

TEST_CASE("staging every row under its table byte, as before, fails on a 511-byte key (planted)") {
  StoreFixture from;
  fill(from);
  StoreFixture to;
  to.stateMachine().bugs.stageLongRowsPlain = true;
  auto txn = Txn::write(to.env());
  CHECK_THROWS_AS(to.stateMachine().stageRows(txn, from.rows()), LmdbError);
}

TEST_CASE("rows no table can take do not fit") {
  StoreFixture store;
  const auto& sm = store.stateMachine();
  CHECK(sm.rowFits(Row{0, "/a", ""}));
  CHECK(sm.rowFits(Row{8, std::string(511, 'k'), ""}));
  CHECK_FALSE(sm.rowFits(Row{8, std::string(512, 'k'), ""}));
  CHECK_FALSE(sm.rowFits(Row{0, "", "x"}));
  CHECK_FALSE(sm.rowFits(Row{10, "/a", ""}));
  CHECK_FALSE(sm.rowFits(Row{255, "/a", ""}));
}
