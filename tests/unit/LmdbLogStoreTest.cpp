#include <catch2/catch.hpp>

#include "coordinator/LmdbLogStore.h"
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
