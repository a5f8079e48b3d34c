// A wiped member rebuilding from a snapshot whose rows have keys near LMDB's 511-byte limit, and
// snapshot chunks holding rows no table can take (an unknown table, a key LMDB refuses), which
// come only from a bad frame and are dropped as they are decoded instead of stopping the node.
// The staging itself: tests/unit/SnapshotStagingTest.cpp.
#include <catch2/catch.hpp>

#include <algorithm>
#include <string>
#include <vector>

#include "coordinator/node/Frames.h"
#include "tests/unit/node/NodeNetHelpers.h"

using namespace warden::tests::node;
using warden::coordinator::Encoder;
using Row = warden::coordinator::StateMachine::Row;
using Kind = warden::coordinator::node::Frame;

namespace {

Command keyedCreate(const std::string& path, std::string key) {
  Command command = createCommand(path, 10);
  command.idempotencyKey = std::move(key);
  return command;
}

std::string longKey(char fill) { return std::string(503, fill); }

// A snapshot chunk frame as a sender cuts it (SnapshotTransfer.cpp), holding `rows`.
std::string chunkFrame(std::uint64_t id, std::uint64_t applied, const std::vector<Row>& rows) {
  Encoder out;
  out.varint(id);
  out.varint(0);       // chunk
  out.boolean(false);  // last
  out.varint(applied);
  out.varint(rows.size());
  for (const auto& row : rows) {
    out.u8(row.table);
    out.bytes(row.key);
    out.bytes(row.value);
  }
  return warden::coordinator::node::frame(Kind::SnapshotChunk, out.take());
}

// Node 3 is cut off while leader 1 writes, the first write keyed with a 503-byte key (its
// time-index row has a 511-byte key), and compacts; let back, node 3 is rebuilt from a snapshot
// installed in tiny steps, crashing after `crashAfterSteps` of them (none: no crash).
void rebuildWithLongKey(int crashAfterSteps) {
  NodeNet net(3, {}, [](NodeId, ClusterOptions& o) {
    o.retainedSlots = 5;
    o.snapshotChunkBytes = 400;
    o.installStepBytes = 60;
  });
  elect(net, 1);
  auto cut3 = [](const Frame& f) { return (f.from == 3 || f.to == 3) && f.from != f.to; };
  int answered = 0;
  for (int i = 0; i < 30; ++i) {
    Command command = i == 0 ? keyedCreate("/keyed", longKey('k')) : createCommand("/k" + std::to_string(i), 40);
    net.core(1).submit(std::move(command), [&](CommandResult r) {
      CHECK(r.status == Status::Ok);
      ++answered;
    });
    net.runUntil({1, 2}, [&](const Frame& f) { return !cut3(f); }, [&] { return answered == i + 1; }, cut3);
  }
  REQUIRE(answered == 30);
  REQUIRE(net.replica(1)->compactedUpTo() > net.replica(3)->commitIndex() + 1);
  if (crashAfterSteps >= 0) {
    net.runUntil({1, 2, 3}, all, [&] { return installing(net, 3); }, none, 600);
    REQUIRE(installing(net, 3));
    for (int i = 0; i < crashAfterSteps; ++i) net.turn(3);
    REQUIRE(installing(net, 3));
    net.crash(3);
    net.restart(3);  // finishes the install before anything reads the state
    CHECK_FALSE(installing(net, 3));
  }
  net.runUntil({1, 2, 3}, all, [&] { return net.core(3).applied() == net.core(1).applied(); }, none, 600);
  CHECK(net.core(3).applied() == net.core(1).applied());
  CHECK(revisionOf(net, 3) == revisionOf(net, 1));
  CHECK(count(net, 3, "dropped a malformed frame") == 0);
  // The replicas hold the same rows, the exactly-once memory of the long key included.
  auto rowsOf = [&net](NodeId id) {
    return net.read(id, [](const StateMachine& sm, auto& txn) {
      std::vector<std::string> rows;
      sm.exportState(txn, [&rows](Row row) { rows.push_back(std::to_string(row.table) + ":" + row.key + "=" + row.value); });
      return rows;
    });
  };
  const auto leaderRows = rowsOf(1);
  CHECK(std::any_of(leaderRows.begin(), leaderRows.end(), [](const std::string& r) { return r.size() > 511; }));
  CHECK(rowsOf(3) == leaderRows);
}

}  // namespace

TEST_CASE("a wiped member rebuilds from a snapshot holding a 503-byte idempotency key") {
  for (int crashAfterSteps : {-1, 0, 2, 6}) {
    DYNAMIC_SECTION("crash after install steps: " << crashAfterSteps) { rebuildWithLongKey(crashAfterSteps); }
  }
}

TEST_CASE("a snapshot chunk with a row no table can take is dropped, and the node goes on") {
  NodeNet net(3);
  elect(net, 1);
  const std::uint64_t applied = net.replica(1)->commitIndex() + 100;  // ahead of node 3: it would stage
  const std::vector<std::vector<Row>> bad = {
      {Row{0, "/fine", ""}, Row{10, "/a", ""}},            // an unknown table
      {Row{8, std::string(512, 'k'), ""}},                 // a key LMDB cannot hold
      {Row{0, "", "x"}},                                   // an empty key
  };
  std::uint64_t id = 77;
  for (const auto& rows : bad) net.core(3).peerFrame(2, chunkFrame(id++, applied, rows));
  CHECK(count(net, 3, "dropped a malformed frame") == bad.size());
  CHECK_FALSE(installing(net, 3));
  // Node 3 still follows and applies.
  int answered = 0;
  net.core(1).submit(createCommand("/after"), [&](CommandResult r) {
    CHECK(r.status == Status::Ok);
    ++answered;
  });
  net.runUntil({1, 2, 3}, all, [&] { return answered == 1 && revisionOf(net, 3) == revisionOf(net, 1); });
  CHECK(revisionOf(net, 3) == revisionOf(net, 1));
}
