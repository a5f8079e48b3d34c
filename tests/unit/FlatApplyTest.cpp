// Single-op writes applied with no child transaction of their own (StateMachine::needsOwnTxn),
// against the old behaviour (ownTxnEveryCommand), on mixes BatchedApplyTest does not generate
// (from the adversarial review of the change): root ops, long
// (shortened-key) and over-long paths, oversize data, createIfMissing with versions and under
// ephemeral parents, ephemeral caps via maxNodes, recursive deletes of ephemeral-holding subtrees
// under maxNodes, quotas exactly at used + nodeCost (and one byte either side), keyed commands,
// session closes/expiries in the same flat entry. Then the same rule on a small entry with its
// planted bug, and a storage error on either path (a child transaction or the shared parent).

#include <catch2/catch.hpp>

#include <functional>
#include <map>

#include "tests/SplitMixRandom.h"
#include "tests/TempDir.h"
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

TEST_CASE("single-op writes in an entry share its transaction and one refused by its quota leaves nothing") {
  for (bool planted : {false, true}) {
    DYNAMIC_SECTION((planted ? "with noOwnTxnEver planted" : "as built")) {
      StoreFixture store;
      store.stateMachine().noOwnTxnEver = planted;
      REQUIRE(store.apply({createOp("/a", "1")}).status == Status::Ok);
      REQUIRE(store.apply({createOp("/b", "1")}).status == Status::Ok);
      const std::uint64_t used = store.usedBytes();
      // The second set grows /b by 200 bytes over a quota 50 bytes away: refused after its write,
      // which must go with it. The others (no quota) apply.
      Command over = txnCommand(setOp("/b", std::string(201, 'b')));
      over.quotaBytes = used + 50;
      auto results = store.applyAll({txnCommand(setOp("/a", "2")), over, txnCommand(setOp("/a", "3"))});
      REQUIRE(results.size() == 3);
      CHECK(results[0].status == Status::Ok);
      CHECK(results[1].status == Status::NoSpace);
      CHECK(results[2].status == Status::Ok);
      CHECK(store.get("/a")->data == "3");
      if (planted) {
        CHECK(store.get("/b")->data.size() == 201);  // what the check below catches
      } else {
        CHECK(store.get("/b")->data == "1");
        CHECK(store.usedBytes() == used);
      }
    }
  }
}

TEST_CASE("a storage error in the middle of a batched entry leaves the parent transaction to abort and the store as it was") {
  // A map too small for the entry: LMDB fails (MDB_MAP_FULL), in the batch's child transaction
  // (creates that make their parents may fail after writing) or, for commands that cannot, in
  // the parent itself, which they share.
  for (bool flat : {false, true}) {
    DYNAMIC_SECTION((flat ? "commands that cannot fail after writing" : "commands that may")) {
      TempDir dir;
      storage::Env env(dir.path(), storage::EnvOptions{std::size_t{1} << 21, 16, false});
      std::optional<StateMachine> sm;
      {
        auto txn = storage::Txn::write(env);
        sm.emplace(StateMachine::openDbs(txn));
        sm->initialize(txn);
        txn.commit();
      }
      {
        auto txn = storage::Txn::write(env);
        REQUIRE(sm->apply(txn, Entry{1, 1000, {txnCommand({createOp("/a", "1")})}}).front().status == Status::Ok);
        txn.commit();
      }
      const std::string big(900'000, 'x');
      auto create = [&](const std::string& path) {
        Op op = createOp(path, big);
        op.makeParents = !flat;
        return txnCommand(std::move(op));
      };
      Entry entry{2, 2000, {create("/b"), create("/c"), create("/d")}};
      {
        auto txn = storage::Txn::write(env);
        StateMachine::Notes notes;
        bool threw = false;
        try {
          sm->apply(txn, entry, &notes);
        } catch (const storage::LmdbError& e) {
          threw = true;
          CHECK(e.code() == MDB_MAP_FULL);
        }
        REQUIRE(threw);
        if (!flat) {
          // What the caller sees in its transaction now: the entry's time only (written before
          // the batch), none of its commands, and the entry not applied. Callers abort it
          // (NodeCore stops, LocalLog answers every write of the entry "unavailable").
          CHECK(sm->appliedIndex(txn) == 1);
          CHECK(sm->revision(txn) == 1);
          CHECK_FALSE(sm->tree().get(txn, "/b").has_value());
          CHECK(sm->timestampMs(txn) == 2000);
        }
        // (With the error in the parent, LMDB refuses it anything but an abort, as callers do.)
      }
      auto txn = storage::Txn::read(env);
      CHECK(sm->appliedIndex(txn) == 1);
      CHECK(sm->timestampMs(txn) == 1000);
      CHECK_FALSE(sm->tree().get(txn, "/b").has_value());
    }
  }
}
