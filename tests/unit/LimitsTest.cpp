// The limits one write is held to (issue 10): a bounded number of nodes touched, and a quota on
// what the state holds. Both are stamped into the command by the node that admits it, so every
// replica refuses the same writes.

#include <catch2/catch.hpp>

#include "coordinator/Bytes.h"
#include "tests/unit/StoreFixture.h"

using namespace warden::coordinator;
using namespace warden::tests;

namespace {

Command limited(std::vector<Op> ops, std::uint64_t maxNodes, std::uint64_t quotaBytes = 0) {
  Command command = txnCommand(std::move(ops));
  command.maxNodes = maxNodes;
  command.quotaBytes = quotaBytes;
  return command;
}

Op deepCreate(int depth) {
  std::string path;
  for (int i = 0; i < depth; ++i) path += "/d" + std::to_string(i);
  Op op = createOp(path, "leaf");
  op.makeParents = true;
  return op;
}

}  // namespace

TEST_CASE("a write that would create more nodes than its limit changes nothing") {
  StoreFixture store;
  auto r = store.applyCommand(limited({deepCreate(11)}, 10));
  CHECK(r.status == Status::TooLarge);
  CHECK_THAT(r.message, Catch::Contains("more than 10 nodes") && Catch::Contains("--max-txn-nodes"));
  CHECK_FALSE(store.get("/d0"));
  CHECK(store.revision() == 0);
  // Exactly at the limit it goes through; the count spans every op of the transaction.
  CHECK(store.applyCommand(limited({deepCreate(10)}, 10)).status == Status::Ok);
  auto spread = store.applyCommand(limited({createOp("/x1"), createOp("/x2"), createOp("/x3")}, 2));
  CHECK(spread.status == Status::TooLarge);
  CHECK(spread.failedOp == std::size_t{2});
  CHECK_FALSE(store.get("/x1"));
}

TEST_CASE("a recursive delete of a subtree larger than the limit changes nothing") {
  StoreFixture store;
  REQUIRE(store.apply({createOp("/big")}).status == Status::Ok);
  std::vector<Op> children;
  for (int i = 0; i < 30; ++i) children.push_back(createOp("/big/c" + std::to_string(i)));
  REQUIRE(store.apply(children).status == Status::Ok);
  REQUIRE(store.apply({deepCreate(3)}).status == Status::Ok);

  auto r = store.applyCommand(limited({deleteOp("/big", std::nullopt, true)}, 30));  // 31 nodes
  CHECK(r.status == Status::TooLarge);
  CHECK(store.children("/big").size() == 30);
  CHECK(store.applyCommand(limited({deleteOp("/big", std::nullopt, true)}, 31)).status == Status::Ok);
  CHECK_FALSE(store.get("/big"));
  // Deletes and creates of one transaction share the budget.
  auto mixed = store.applyCommand(limited({deleteOp("/d0", std::nullopt, true), createOp("/y")}, 3));
  CHECK(mixed.status == Status::TooLarge);
  CHECK(store.get("/d0/d1/d2"));
}

TEST_CASE("commands logged before limits existed apply without them") {
  Command command = limited({createOp("/a")}, 7, 1 << 20);
  Encoder out;
  encodeCommand(out, command);
  Decoder in(out.data());
  CHECK(decodeCommand(in) == command);
  // A transaction without limits keeps its old wire form, which decodes with none.
  Encoder legacy;
  encodeCommand(legacy, txnCommand({createOp("/a")}));
  CHECK(static_cast<std::uint8_t>(legacy.data()[0]) == static_cast<std::uint8_t>(CommandType::Txn));
  Decoder back(legacy.data());
  const Command old = decodeCommand(back);
  CHECK(old.maxNodes == 0);
  CHECK(old.quotaBytes == 0);
}

TEST_CASE("over its quota the state refuses writes that grow it and takes deletes and shrinking writes") {
  StoreFixture store;
  const std::uint64_t quota = 4 * nodeCost("/n0", 1000);
  auto put = [&](const std::string& path, std::size_t bytes) {
    Op op = setOp(path, std::string(bytes, 'x'));
    op.createIfMissing = true;
    return store.applyCommand(limited({op}, 100, quota));
  };
  for (int i = 0; i < 4; ++i) REQUIRE(put("/n" + std::to_string(i), 1000).status == Status::Ok);
  CHECK(store.usedBytes() == quota);
  auto full = put("/n4", 1000);
  CHECK(full.status == Status::NoSpace);
  CHECK_THAT(full.message, Catch::Contains("quota"));
  CHECK_FALSE(store.get("/n4"));
  // A smaller value for an existing node shrinks the state: allowed.
  CHECK(put("/n0", 10).status == Status::Ok);
  CHECK(put("/n0", 500).status == Status::Ok);
  CHECK(put("/n0", 1001).status == Status::NoSpace);
  // Deleting makes room again.
  CHECK(store.applyCommand(limited({deleteOp("/n1")}, 100, quota)).status == Status::Ok);
  CHECK(put("/n4", 1000).status == Status::Ok);
}

TEST_CASE("the bytes the quota counts follow creates, sets, deletes and expiries") {
  StoreFixture store;
  CHECK(store.usedBytes() == 0);
  Op parents = deepCreate(3);
  REQUIRE(store.apply({parents}).status == Status::Ok);
  CHECK(store.usedBytes() == nodeCost("/d0", 0) + nodeCost("/d0/d1", 0) + nodeCost("/d0/d1/d2", 4));
  REQUIRE(store.apply({setOp("/d0", "12345")}).status == Status::Ok);
  CHECK(store.usedBytes() == nodeCost("/d0", 5) + nodeCost("/d0/d1", 0) + nodeCost("/d0/d1/d2", 4));
  REQUIRE(store.apply({deleteOp("/d0", std::nullopt, true)}).status == Status::Ok);
  CHECK(store.usedBytes() == 0);

  Command create = sessionCommand(CommandType::SessionCreate, 42);
  create.ttlMs = 5000;
  REQUIRE(store.applyCommand(create).status == Status::Ok);
  REQUIRE(store.apply({ephemeralOp("/e", 42)}).status == Status::Ok);
  CHECK(store.usedBytes() == nodeCost("/e", 0));
  REQUIRE(store.applyCommand(sessionCommand(CommandType::SessionClose, 42)).status == Status::Ok);
  CHECK(store.usedBytes() == 0);
}

TEST_CASE("a session owns at most the limit of ephemeral nodes, so that its close stays one bounded write") {
  StoreFixture store;
  Command create = sessionCommand(CommandType::SessionCreate, 9);
  create.ttlMs = 5000;
  REQUIRE(store.applyCommand(create).status == Status::Ok);
  std::vector<Op> three;
  for (int i = 0; i < 3; ++i) three.push_back(ephemeralOp("/e" + std::to_string(i), 9));
  REQUIRE(store.applyCommand(limited(three, 3)).status == Status::Ok);
  auto fourth = store.applyCommand(limited({ephemeralOp("/e3", 9)}, 3));
  CHECK(fourth.status == Status::TooLarge);
  CHECK_THAT(fourth.message, Catch::Contains("ephemeral nodes"));
  CHECK_FALSE(store.get("/e3"));
  // Persistent nodes are not counted; deleting one of its ephemerals makes room.
  CHECK(store.applyCommand(limited({createOp("/p")}, 3)).status == Status::Ok);
  REQUIRE(store.applyCommand(limited({deleteOp("/e0")}, 3)).status == Status::Ok);
  CHECK(store.applyCommand(limited({ephemeralOp("/e3", 9)}, 3)).status == Status::Ok);
}

// Review schedule: a store written before the quota existed has no count; starting from zero, a
// write could take it past the quota. Opening it counts what it holds, as it would have counted.
TEST_CASE("a store from before the quota counts what it holds when opened") {
  StoreFixture store;
  Op make = createOp("/old/deep", std::string(10'000, 'x'));
  make.makeParents = true;
  REQUIRE(store.apply({make, createOp("/other", "abc")}).status == Status::Ok);
  const std::uint64_t counted = store.usedBytes();
  REQUIRE(counted > 10'000);
  {
    auto txn = warden::coordinator::storage::Txn::write(store.env());
    txn.erase(txn.openDb("meta"), "used_bytes");
    txn.commit();
  }
  store.reopen();
  CHECK(store.usedBytes() == counted);
  Command grow = txnCommand({createOp("/new", std::string(9'000, 'y'))});
  grow.quotaBytes = 12'000;
  CHECK(store.applyCommand(grow).status == Status::NoSpace);
}
