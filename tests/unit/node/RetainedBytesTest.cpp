// The log slots a node retains for laggards sit in memory (the Paxos replica's log), so they are
// bounded in bytes as well as in number (ClusterOptions::retainedBytes): a load of large
// transactions compacts sooner instead of holding up to 2 x retainedSlots of them. Compaction
// below the applied slot is always safe; a laggard then needs a snapshot.
#include <catch2/catch.hpp>

#include <string>

#include "tests/unit/node/NodeNetHelpers.h"

using namespace warden::tests::node;

namespace {

constexpr std::uint64_t kRetainedBytes = 6'000;
constexpr std::size_t kDataBytes = 500;  // each write's slot holds a little more than this

NodeNet bytesNet(bool unbounded = false) {
  ClusterOptions::Bugs bugs;
  bugs.unboundedHeldBytes = unbounded;
  return NodeNet(3, bugs, [](NodeId, ClusterOptions& o) {
    o.retainedSlots = 1'000;  // never reached here: only the bytes compact
    o.retainedBytes = kRetainedBytes;
    o.snapshotChunkBytes = 2'000;
  });
}

// What a node's replica holds of applied slots, in bytes.
std::uint64_t heldBytes(NodeNet& net, NodeId id) {
  std::uint64_t bytes = 0;
  const auto* replica = net.replica(id);
  replica->forEachHeld(replica->compactedUpTo() + 1, net.core(id).applied(), [&](auto, std::size_t b) { bytes += b; });
  return bytes;
}

// `count` writes of kDataBytes each through leader 1, one at a time, delivering frames `pass`
// lets through among `nodes`.
void write(NodeNet& net, int count, const std::vector<NodeId>& nodes, const std::function<bool(const Frame&)>& pass,
           const std::function<bool(const Frame&)>& drop, int first = 0) {
  for (int i = first; i < first + count; ++i) {
    bool answered = false;
    net.core(1).submit(createCommand("/big" + std::to_string(i), kDataBytes), [&](CommandResult r) {
      CHECK(r.status == Status::Ok);
      answered = true;
    });
    net.runUntil(nodes, pass, [&] { return answered; }, drop);
    REQUIRE(answered);
  }
}

}  // namespace

TEST_CASE("slots of large writes are compacted by size: each member holds about retainedBytes of them") {
  NodeNet net = bytesNet();
  elect(net, 1);
  write(net, 60, {1, 2, 3}, all, none);  // about 30 KB of slots, 5 times the bound
  net.runUntil({1, 2, 3}, all, [&] { return net.core(3).applied() == net.core(1).applied(); });
  for (NodeId id : {1, 2, 3}) {
    INFO("node " << id);
    CHECK(net.replica(id)->compactedUpTo() > 0);
    // Compacted once over twice the bound, down to the bound: never more than twice it, and a slot.
    CHECK(heldBytes(net, id) <= 2 * kRetainedBytes + kDataBytes + 200);
  }
  // A restarted member starts counting over from what its log holds, and still compacts.
  net.crash(2);
  net.restart(2);
  write(net, 60, {1, 2, 3}, all, none, 60);
  net.runUntil({1, 2, 3}, all, [&] { return net.core(2).applied() == net.core(1).applied(); });
  CHECK(heldBytes(net, 2) <= 2 * kRetainedBytes + kDataBytes + 200);
  CHECK(revisionOf(net, 2) == revisionOf(net, 1));
}

TEST_CASE("compacting by slot count alone holds every large slot (planted)") {
  NodeNet net = bytesNet(true);
  elect(net, 1);
  write(net, 60, {1, 2, 3}, all, none);
  CHECK(net.replica(1)->compactedUpTo() == 0);
  CHECK(heldBytes(net, 1) > 2 * kRetainedBytes + kDataBytes + 200);
}

TEST_CASE("a member cut off while large slots are compacted by size catches up from a snapshot") {
  NodeNet net = bytesNet();
  elect(net, 1);
  auto cut3 = [](const Frame& f) { return (f.from == 3 || f.to == 3) && f.from != f.to; };
  write(net, 60, {1, 2}, [&](const Frame& f) { return !cut3(f); }, cut3);
  REQUIRE(net.replica(1)->compactedUpTo() > net.replica(3)->commitIndex() + 1);
  net.runUntil({1, 2, 3}, all, [&] { return net.core(3).applied() == net.core(1).applied(); }, none, 600);
  CHECK(net.core(3).applied() == net.core(1).applied());
  CHECK(revisionOf(net, 3) == revisionOf(net, 1));
  CHECK(count(net, 3, "installed a snapshot") >= 1);
}
