#include <catch2/catch.hpp>

#include <filesystem>

#include "coordinator/LmdbLogStore.h"
#include "coordinator/paxos/MessageCodec.h"
#include "coordinator/paxos/Replica.h"
#include "tests/TempDir.h"

using namespace warden::coordinator;
using warden::tests::TempDir;

namespace {
class FixedRandom : public paxos::Random {
 public:
  std::uint64_t next() override { return 4; }
};
}  // namespace

TEST_CASE("the LMDB log store keeps promises, accepted values, compaction and learner state across reopening") {
  TempDir dir;
  const storage::EnvOptions options{std::size_t{1} << 30, 16, true};
  FixedRandom random;
  {
    storage::Env env(dir.path(), options);
    LmdbLogStore store(env);
    paxos::ReplicaConfig config;
    config.id = 2;
    config.members = {1, 2, 3};
    paxos::Replica replica(config, store.load(), 0, false, random, 1'000'000);
    const paxos::Time later = 1'000'000 + config.leaseDuration + 1;
    auto send = [&](paxos::Payload payload) {
      paxos::Ready ready = replica.step(paxos::Message{1, 2, std::move(payload)}, later);
      (void)ready.release(store.persist(ready));
    };
    send(paxos::Prepare{paxos::Ballot{5, 1}, 1});
    for (paxos::Slot s = 1; s <= 4; ++s) {
      send(paxos::Accept{paxos::Ballot{5, 1}, s, paxos::Value{false, {"v" + std::to_string(s)}}, 0, later});
    }
    send(paxos::Heartbeat{paxos::Ballot{5, 1}, 4, 5, later});  // slots 1..4 chosen
    paxos::Ready compacted = replica.compact(2);
    (void)compacted.release(store.persist(compacted));
  }
  storage::Env env(dir.path(), options);
  LmdbLogStore store(env);
  paxos::DurableState state = store.load();
  CHECK(state.promised == paxos::Ballot{5, 1});
  CHECK(state.compactedUpTo == 2);
  REQUIRE(state.accepted.size() == 2);
  CHECK(state.accepted.at(3).value.commands == std::vector<std::string>{"v3"});
  CHECK(state.accepted.at(4).ballot == paxos::Ballot{5, 1});
  CHECK_FALSE(state.learner);
}

TEST_CASE("a second write transaction begun on the thread that holds one throws instead of waiting for itself") {
  // The node's apply transaction may stay open across turns (applyCommitDelayUs): a driver path
  // that forgot to commit it before writing would otherwise hang the node in LMDB's writer lock.
  TempDir dir;
  storage::Env env(dir.path(), storage::EnvOptions{std::size_t{1} << 26, 16, false});
  storage::Txn first = storage::Txn::write(env);
  CHECK_THROWS_AS(storage::Txn::write(env), std::logic_error);
  first.commit();
  storage::Txn second = storage::Txn::write(env);  // released by the commit
  second.abort();
  CHECK_NOTHROW(storage::Txn::write(env).commit());
}

namespace {
// Persists `records` as one Ready would.
void persist(paxos::LogStore& store, std::vector<paxos::Record> records) {
  paxos::Ready ready;
  ready.records = std::move(records);
  (void)ready.release(store.persist(ready));
}
paxos::AcceptRecord accept(paxos::Slot slot) {
  return paxos::AcceptRecord{slot, paxos::Ballot{3, 1}, paxos::Value{false, {"v" + std::to_string(slot)}}};
}
std::size_t walSegments(const std::string& dir) {
  std::size_t n = 0;
  for ([[maybe_unused]] const auto& e : std::filesystem::directory_iterator(dir + "/wal")) ++n;
  return n;
}
}  // namespace

TEST_CASE("a vote is one append to the log and flushes nothing in LMDB while a compaction flushes the applies first") {
  TempDir dir;
  storage::Env env(dir.path(), storage::EnvOptions{std::size_t{1} << 26, 16, false});
  LmdbLogStore store(env);
  (void)store.load();
  std::vector<bool> commits;  // Env::afterCommit's `synced`, in order
  env.afterCommit = [&](bool synced) { commits.push_back(synced); };
  persist(store, {paxos::PromiseRecord{paxos::Ballot{3, 1}}, accept(1), accept(2)});
  CHECK(commits.empty());
  storage::Txn apply = storage::Txn::write(env);
  apply.commitWithoutSync();
  persist(store, {paxos::CompactRecord{1}});
  // The apply's commit, then a flush that makes it durable before the compaction is, then the
  // compaction's own fold into LMDB.
  REQUIRE(commits.size() >= 2);
  CHECK(commits[0] == false);
  CHECK(commits[1] == true);
  commits.clear();
  persist(store, {paxos::LearnerRecord{false}});
  CHECK(commits == std::vector<bool>{true});
}

TEST_CASE("compactions fold the log into LMDB and drop the segments they cover") {
  TempDir dir;
  const storage::EnvOptions options{std::size_t{1} << 26, 16, false};
  {
    storage::Env env(dir.path(), options);
    LmdbLogStore store(env, 256);  // a few batches a segment
    (void)store.load();
    persist(store, {paxos::PromiseRecord{paxos::Ballot{3, 1}}});
    for (paxos::Slot s = 1; s <= 60; ++s) persist(store, {accept(s)});
    const std::size_t before = walSegments(dir.path());
    CHECK(before > 3);
    persist(store, {paxos::CompactRecord{50}, paxos::PromiseRecord{paxos::Ballot{4, 2}}});
    CHECK(walSegments(dir.path()) < before);
    persist(store, {accept(61)});
  }
  storage::Env env(dir.path(), options);
  LmdbLogStore store(env, 256);
  paxos::DurableState state = store.load();
  CHECK(state.promised == paxos::Ballot{4, 2});
  CHECK(state.compactedUpTo == 50);
  REQUIRE(state.accepted.size() == 11);
  CHECK(state.accepted.begin()->first == 51);
  CHECK(state.accepted.rbegin()->second.value.commands == std::vector<std::string>{"v61"});
}

TEST_CASE("a data directory that lost its write-ahead log refuses to load and one that lost its LMDB file starts empty") {
  TempDir dir;
  const storage::EnvOptions options{std::size_t{1} << 26, 16, false};
  {
    storage::Env env(dir.path(), options);
    LmdbLogStore store(env);
    (void)store.load();
    persist(store, {paxos::LearnerRecord{false}, paxos::PromiseRecord{paxos::Ballot{7, 2}}, accept(1)});
  }
  SECTION("the log gone: the promise would be forgotten") {
    std::filesystem::remove_all(dir.path() + "/wal");
    storage::Env env(dir.path(), options);
    LmdbLogStore store(env);
    CHECK_THROWS_AS(store.load(), storage::LmdbError);
  }
  SECTION("the LMDB file gone: a wiped disk, which the node rebuilds as such") {
    std::filesystem::remove(dir.path() + "/data.mdb");
    std::filesystem::remove(dir.path() + "/lock.mdb");
    storage::Env env(dir.path(), options);
    LmdbLogStore store(env);
    paxos::DurableState state = store.load();
    CHECK(state.promised.isZero());
    CHECK(state.accepted.empty());
    CHECK_FALSE(state.started);
  }
}

TEST_CASE("acceptor state written before the log existed is kept and new records go to the log") {
  TempDir dir;
  const storage::EnvOptions options{std::size_t{1} << 26, 16, false};
  {
    // The layout of earlier versions: everything in LMDB, no "wal_id".
    storage::Env env(dir.path(), options);
    storage::Txn txn = storage::Txn::write(env);
    MDB_dbi meta = txn.openDb("paxos_meta");
    MDB_dbi log = txn.openDb("paxos_log");
    Encoder ballot;
    paxos::encodeBallot(ballot, paxos::Ballot{5, 3});
    txn.put(meta, "promised", ballot.data());
    txn.put(meta, "learner", "0");
    Encoder value;
    paxos::encodeBallot(value, paxos::Ballot{5, 3});
    paxos::encodeValue(value, paxos::Value{false, {"old"}});
    txn.put(log, storage::encodeU64Key(9), value.data());
    txn.commit();
  }
  {
    storage::Env env(dir.path(), options);
    LmdbLogStore store(env);
    paxos::DurableState state = store.load();
    CHECK(state.promised == paxos::Ballot{5, 3});
    CHECK(state.started);
    REQUIRE(state.accepted.count(9) == 1);
    persist(store, {accept(10)});
  }
  storage::Env env(dir.path(), options);
  LmdbLogStore store(env);
  paxos::DurableState state = store.load();
  CHECK(state.accepted.size() == 2);
  CHECK(state.accepted.at(9).value.commands == std::vector<std::string>{"old"});
}
