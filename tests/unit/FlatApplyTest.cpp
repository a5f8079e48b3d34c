// Single-op writes applied with no child transaction of their own (StateMachine::needsOwnTxn),
// against the old behaviour (ownTxnEveryCommand), on mixes BatchedApplyTest does not generate
// (from the adversarial review of the change): root ops, long
// (shortened-key) and over-long paths, oversize data, createIfMissing with versions and under
// ephemeral parents, ephemeral caps via maxNodes, recursive deletes of ephemeral-holding subtrees
// under maxNodes, quotas exactly at used + nodeCost (and one byte either side), keyed commands,
// session closes/expiries in the same flat entry.

#include <catch2/catch.hpp>

#include <functional>
#include <map>

#include "tests/SplitMixRandom.h"
#include "tests/unit/StoreFixture.h"

using namespace warden::coordinator;
using namespace warden::tests;

namespace {

std::vector<std::string> texts(StoreFixture& store) {
  std::vector<std::string> out;
  for (const auto& row : store.rows()) out.push_back(std::to_string(row.table) + " " + row.key + " = " + row.value);
  return out;
}

std::string flatDifference(const std::function<void(StateMachine&)>& plant, std::uint64_t seed, int rounds,
                           std::map<Status, int>& outcomes) {
  SplitMixRandom rng(seed);
  auto pick = [&rng](std::uint64_t n) { return rng.next() % n; };
  StoreFixture built;
  StoreFixture reference;
  plant(built.stateMachine());
  reference.stateMachine().ownTxnEveryCommand = true;
  const std::string longName(450, 'L');
  const std::vector<std::string> paths{"/",       "/a",          "/a/x",          "/a/x/y",  "/b",
                                       "/b/e",    "/a/e",        "/" + longName,  "/" + longName + "/k",
                                       "/c",      "/b/e/under",  "/" + std::string(1100, 'T'), "/a/bad//p"};
  std::uint64_t ts = 1000;
  std::uint64_t keys = 0;
  for (int round = 0; round < rounds; ++round) {
    const std::uint64_t used = reference.usedBytes();
    std::vector<Command> commands;
    for (std::uint64_t i = 0, n = 1 + pick(6); i < n; ++i) {
      const std::string path = paths[pick(paths.size())];
      const std::optional<std::int64_t> version =
          pick(4) == 0 ? std::optional<std::int64_t>(static_cast<std::int64_t>(pick(3))) : std::nullopt;
      std::string data(pick(8) == 0 ? (std::size_t{1} << 20) + pick(2) : pick(200), 'd');
      Op op;
      switch (pick(10)) {
        case 0: op = createOp(path, data); break;
        case 1: op = ephemeralOp(path, 1 + pick(3)); op.data = data; break;
        case 2: op = setOp(path, data, version); break;
        case 3: op = setOp(path, data, version); op.createIfMissing = true; break;
        case 4:
        case 5: op = deleteOp(path, version, pick(2) == 0); break;
        case 6: op = checkOp(path, version); break;
        case 7: {
          commands.push_back(pick(2) == 0 ? sessionCreate(1 + pick(3))
                                          : sessionCommand(pick(2) ? CommandType::SessionClose : CommandType::SessionExpire,
                                                           1 + pick(3)));
          continue;
        }
        default: op = createOp(path, data);
      }
      Command c = txnCommand(std::move(op));
      const Op& o = c.ops.front();
      const std::uint64_t cost = nodeCost(o.path, o.data.size());
      switch (pick(5)) {
        case 0: c.quotaBytes = used + cost; break;
        case 1: c.quotaBytes = used + cost - 1; break;
        case 2: c.quotaBytes = used + pick(300) + 1; break;
        default: break;
      }
      if (pick(3) == 0) c.maxNodes = 1 + pick(3);
      if (pick(4) == 0) c.idempotencyKey = "k" + std::to_string(pick(2) ? pick(4) : ++keys);
      commands.push_back(std::move(c));
    }
    ts += 1 + pick(5);
    StateMachine::Notes a;
    StateMachine::Notes b;
    const auto ra = built.applyNoted(commands, ts, a);
    const auto rb = reference.applyNoted(commands, ts, b);
    const std::string where = "round " + std::to_string(round) + ": ";
    for (std::size_t i = 0; i < commands.size(); ++i) {
      if (!(ra.at(i) == rb.at(i))) return where + "result " + std::to_string(i) + " differs: " + ra[i].message + " / " + rb[i].message;
      if (commands[i].type == CommandType::Txn) ++outcomes[ra[i].status];
    }
    if (a.replays != b.replays) return where + "replays differ";
    if (a.events != b.events) return where + "events differ";
    if (texts(built) != texts(reference)) return where + "rows differ";
  }
  return "";
}

}  // namespace

TEST_CASE("single-op writes sharing their entry's transaction answer and store as with one child txn each, at every edge") {
  std::map<Status, int> outcomes;
  for (std::uint64_t seed : {1ull, 2ull, 3ull, 4ull}) {
    INFO("seed " << seed);
    CHECK(flatDifference([](StateMachine&) {}, seed, 400, outcomes) == "");
  }
  // The edges ran: refusals by quota, by size, by a missing or ephemeral parent, and successes.
  CHECK(outcomes[Status::Ok] > 100);
  CHECK(outcomes[Status::NoSpace] > 20);
  CHECK(outcomes[Status::TooLarge] > 20);
  CHECK(outcomes[Status::EphemeralParent] > 2);
  CHECK(outcomes[Status::NotFound] > 20);
  // Planted: every command applied as one that cannot fail after writing; caught.
  std::map<Status, int> ignored;
  CHECK(flatDifference([](StateMachine& sm) { sm.noOwnTxnEver = true; }, 1, 400, ignored) != "");
}
