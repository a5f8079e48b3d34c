// Sessions and ephemeral nodes in the replicated state machine.
#include <catch2/catch.hpp>

#include "tests/unit/StoreFixture.h"

using namespace warden::coordinator;
using namespace warden::tests;
using warden::session::formatSessionId;
using warden::session::parseSessionId;

TEST_CASE("session create stores the record at its own revision") {
  StoreFixture store;
  auto r = store.applyCommand(sessionCreate(0xabc, 5000, "worker-1"), 777);
  REQUIRE(r.status == Status::Ok);
  CHECK(r.revision == 1);
  auto record = store.session(0xabc);
  REQUIRE(record);
  CHECK(*record == warden::session::SessionRecord{5000, "worker-1", 1, 777});
  CHECK(store.applyCommand(sessionCreate(0xabc)).status == Status::Exists);
  CHECK(store.revision() == 1);
}

TEST_CASE("session create enforces ttl bounds and the id and name rules") {
  StoreFixture store;
  CHECK(store.applyCommand(sessionCreate(1, 999)).status == Status::InvalidArgument);
  CHECK(store.applyCommand(sessionCreate(1, 600'001)).status == Status::InvalidArgument);
  CHECK(store.applyCommand(sessionCreate(0, 5000)).status == Status::InvalidArgument);
  CHECK(store.applyCommand(sessionCreate(1, 5000, std::string(1025, 'n'))).status == Status::InvalidArgument);
  CHECK(store.revision() == 0);
  CHECK(store.applyCommand(sessionCreate(1, 1000)).status == Status::Ok);
  CHECK(store.applyCommand(sessionCreate(2, 600'000)).status == Status::Ok);
}

TEST_CASE("an ephemeral node needs a live session and records its owner") {
  StoreFixture store;
  auto missing = store.apply({ephemeralOp("/e", 42)});
  CHECK(missing.status == Status::SessionNotFound);
  CHECK_THAT(missing.message, Catch::Contains(formatSessionId(42)));
  CHECK(store.apply({ephemeralOp("/e", 0)}).status == Status::SessionNotFound);
  CHECK_FALSE(store.get("/e"));

  REQUIRE(store.applyCommand(sessionCreate(42)).status == Status::Ok);
  auto r = store.apply({ephemeralOp("/e", 42)});
  REQUIRE(r.status == Status::Ok);
  CHECK(r.results[0].stat->ephemeralOwner == 42);
  CHECK(store.get("/e")->stat.ephemeralOwner == 42);
  CHECK(store.ephemerals(42) == std::vector<std::string>{"/e"});
}

TEST_CASE("ephemeral nodes cannot have children") {
  StoreFixture store;
  REQUIRE(store.applyCommand(sessionCreate(7)).status == Status::Ok);
  REQUIRE(store.apply({ephemeralOp("/e", 7)}).status == Status::Ok);
  CHECK(store.apply({createOp("/e/child")}).status == Status::EphemeralParent);
  CHECK(store.apply({ephemeralOp("/e/child", 7)}).status == Status::EphemeralParent);
  Op withParents = createOp("/e/a/b");
  withParents.makeParents = true;
  CHECK(store.apply({withParents}).status == Status::EphemeralParent);
  CHECK(store.get("/e")->stat.numChildren == 0);
}

TEST_CASE("sequential ephemeral nodes count per parent like any sequential node") {
  StoreFixture store;
  REQUIRE(store.applyCommand(sessionCreate(7)).status == Status::Ok);
  REQUIRE(store.apply({createOp("/queue")}).status == Status::Ok);
  auto a = store.apply({ephemeralOp("/queue/item-", 7, true)});
  auto b = store.apply({ephemeralOp("/queue/item-", 7, true)});
  REQUIRE(a.status == Status::Ok);
  REQUIRE(b.status == Status::Ok);
  CHECK(a.results[0].path == "/queue/item-0000000000");
  CHECK(b.results[0].path == "/queue/item-0000000001");
  CHECK(store.ephemerals(7) == std::vector<std::string>{"/queue/item-0000000000", "/queue/item-0000000001"});
}

TEST_CASE("closing a session deletes all its ephemeral nodes in one revision") {
  StoreFixture store;
  REQUIRE(store.applyCommand(sessionCreate(7)).status == Status::Ok);
  REQUIRE(store.applyCommand(sessionCreate(8)).status == Status::Ok);
  REQUIRE(store.apply({createOp("/g")}).status == Status::Ok);
  REQUIRE(store.apply({ephemeralOp("/g/a", 7), ephemeralOp("/g/b", 7), ephemeralOp("/top", 7)}).status == Status::Ok);
  REQUIRE(store.apply({ephemeralOp("/g/other", 8)}).status == Status::Ok);
  const auto before = store.revision();
  const auto cversion = store.get("/g")->stat.cversion;

  auto r = store.applyCommand(sessionCommand(CommandType::SessionClose, 7));
  REQUIRE(r.status == Status::Ok);
  CHECK(r.revision == before + 1);
  CHECK(store.revision() == before + 1);
  CHECK(r.results.size() == 3);
  CHECK_FALSE(store.get("/g/a"));
  CHECK_FALSE(store.get("/g/b"));
  CHECK_FALSE(store.get("/top"));
  CHECK_FALSE(store.session(7));
  CHECK(store.ephemerals(7).empty());
  CHECK(store.children("/g") == std::vector<std::string>{"other"});
  CHECK(store.get("/g")->stat.numChildren == 1);
  CHECK(store.get("/g")->stat.cversion == cversion + 2);
  // The other session is untouched; a second close finds nothing and changes nothing.
  CHECK(store.get("/g/other"));
  CHECK(store.applyCommand(sessionCommand(CommandType::SessionExpire, 7)).status == Status::SessionNotFound);
  CHECK(store.revision() == before + 1);
  CHECK(store.apply({ephemeralOp("/late", 7)}).status == Status::SessionNotFound);
}

TEST_CASE("expiry has the same effect as close") {
  StoreFixture store;
  REQUIRE(store.applyCommand(sessionCreate(9)).status == Status::Ok);
  REQUIRE(store.apply({ephemeralOp("/x", 9)}).status == Status::Ok);
  REQUIRE(store.applyCommand(sessionCommand(CommandType::SessionExpire, 9)).status == Status::Ok);
  CHECK_FALSE(store.get("/x"));
  CHECK_FALSE(store.session(9));
}

TEST_CASE("deleting an ephemeral node or its parent drops it from its session") {
  StoreFixture store;
  REQUIRE(store.applyCommand(sessionCreate(5)).status == Status::Ok);
  REQUIRE(store.apply({createOp("/p")}).status == Status::Ok);
  REQUIRE(store.apply({ephemeralOp("/p/a", 5), ephemeralOp("/b", 5)}).status == Status::Ok);
  REQUIRE(store.apply({deleteOp("/b")}).status == Status::Ok);
  CHECK(store.ephemerals(5) == std::vector<std::string>{"/p/a"});
  REQUIRE(store.apply({deleteOp("/p", std::nullopt, true)}).status == Status::Ok);
  CHECK(store.ephemerals(5).empty());
  // Closing afterwards removes the session alone.
  auto r = store.applyCommand(sessionCommand(CommandType::SessionClose, 5));
  CHECK(r.status == Status::Ok);
  CHECK(r.results.empty());
}

TEST_CASE("a failed transaction leaves no ephemeral ownership behind") {
  StoreFixture store;
  REQUIRE(store.applyCommand(sessionCreate(5)).status == Status::Ok);
  auto r = store.apply({ephemeralOp("/a", 5), checkOp("/missing")});
  CHECK(r.status == Status::NotFound);
  CHECK(store.ephemerals(5).empty());
  CHECK_FALSE(store.get("/a"));
}

TEST_CASE("sessions survive a reopen and travel in snapshots") {
  StoreFixture store;
  REQUIRE(store.applyCommand(sessionCreate(5, 3000, "n")).status == Status::Ok);
  REQUIRE(store.apply({ephemeralOp("/a", 5)}).status == Status::Ok);
  store.reopen();
  CHECK(store.session(5)->ttlMs == 3000);
  CHECK(store.ephemerals(5) == std::vector<std::string>{"/a"});

  std::vector<StateMachine::Row> rows;
  {
    auto txn = storage::Txn::read(store.env());
    store.stateMachine().exportState(txn, [&rows](StateMachine::Row row) { rows.push_back(std::move(row)); });
  }
  StoreFixture other;
  {
    auto txn = storage::Txn::write(other.env());
    other.stateMachine().importState(txn, rows);
    txn.commit();
  }
  CHECK(other.session(5) == store.session(5));
  CHECK(other.ephemerals(5) == std::vector<std::string>{"/a"});
  CHECK(other.dump() == store.dump());
}

TEST_CASE("session commands survive their binary encoding") {
  Command command = sessionCreate(0x1234, 4321, "name");
  Encoder out;
  encodeCommand(out, command);
  Decoder in(out.data());
  CHECK(decodeCommand(in) == command);
  CHECK(in.done());
}

TEST_CASE("session ids are 16 hex digits and never 0") {
  CHECK(formatSessionId(0xab) == "00000000000000ab");
  CHECK(parseSessionId("00000000000000AB") == 0xabu);
  CHECK(parseSessionId("ffffffffffffffff") == ~0ull);
  CHECK_FALSE(parseSessionId("0000000000000000"));
  CHECK(parseSessionId("ab") == 0xabu);
  CHECK_FALSE(parseSessionId(""));
  CHECK_FALSE(parseSessionId("00000000000000ag"));
  CHECK_FALSE(parseSessionId("000000000000000ab"));
}

TEST_CASE("an expiry proposed by a deposed leader is ignored once a later leader's epoch is applied") {
  // PAXOS.md 9b: leader (1,1) proposed expire(S); leader (2,3) took over, kept S alive, and its
  // epoch was chosen first. A later phase 1 finds the old expiry and chooses it: it must be void.
  using warden::coordinator::paxos::Ballot;
  StoreFixture store;
  REQUIRE(store.applyCommand(sessionCreate(9)).status == Status::Ok);
  REQUIRE(store.apply({ephemeralOp("/e", 9)}).status == Status::Ok);
  const auto revision = store.revision();

  auto epoch = store.applyCommand(epochCommand({Ballot{2, 3}, 0}));
  CHECK(epoch.status == Status::Ok);
  CHECK(store.revision() == revision);  // an epoch changes nothing a client sees

  auto stale = store.applyCommand(expireCommand(9, {Ballot{1, 1}, 0}));
  CHECK(stale.status != Status::Ok);
  CHECK(store.session(9));
  CHECK(store.get("/e"));
  CHECK(store.revision() == revision);

  // An older epoch arriving late does not lower it; the current leader's own expiry applies.
  CHECK(store.applyCommand(epochCommand({Ballot{1, 5}, 0})).status == Status::Ok);
  CHECK(store.applyCommand(expireCommand(9, {Ballot{1, 5}, 0})).status != Status::Ok);
  CHECK(store.applyCommand(expireCommand(9, {Ballot{2, 3}, 0})).status == Status::Ok);
  CHECK_FALSE(store.session(9));
  CHECK_FALSE(store.get("/e"));
}

TEST_CASE("session commands keep their epoch through the binary encoding") {
  using warden::coordinator::paxos::Ballot;
  for (const Command& c : {expireCommand(77, {Ballot{4, 2}, 3}), epochCommand({Ballot{9, 1}, 1})}) {
    Encoder out;
    encodeCommand(out, c);
    Decoder in(out.data());
    CHECK(decodeCommand(in) == c);
  }
}

TEST_CASE("a snapshot cut into small pieces and staged piece by piece installs the same state") {
  StoreFixture store;
  REQUIRE(store.applyCommand(sessionCreate(5, 3000, "n")).status == Status::Ok);
  REQUIRE(store.apply({ephemeralOp("/a", 5)}).status == Status::Ok);
  for (int i = 0; i < 40; ++i) REQUIRE(store.apply({createOp("/n" + std::to_string(i))}).status == Status::Ok);

  StoreFixture other;
  REQUIRE(other.apply({createOp("/only-here")}).status == Status::Ok);  // replaced wholesale
  {
    auto txn = storage::Txn::write(other.env());
    other.stateMachine().clearStaging(txn);
    txn.commit();
  }
  auto source = storage::Txn::read(store.env());
  StateMachine::ExportPosition at;
  int pieces = 0;
  for (bool done = false; !done && pieces < 10'000; ++pieces) {
    std::vector<StateMachine::Row> rows;
    done = store.stateMachine().exportPiece(source, at, 100, [&rows](StateMachine::Row row) { rows.push_back(std::move(row)); });
    auto txn = storage::Txn::write(other.env());
    other.stateMachine().stageRows(txn, rows);
    txn.commit();
  }
  CHECK(pieces > 10);  // it really came in pieces
  {
    auto txn = storage::Txn::write(other.env());
    other.stateMachine().installStaged(txn);
    txn.commit();
  }
  CHECK(other.dump() == store.dump());
  CHECK_FALSE(other.get("/only-here"));
  CHECK(other.session(5) == store.session(5));
}

TEST_CASE("a snapshot installed in small steps, with a restart halfway, ends as the same state") {
  StoreFixture store;
  REQUIRE(store.applyCommand(sessionCreate(5, 3000, "n")).status == Status::Ok);
  REQUIRE(store.apply({ephemeralOp("/a", 5)}).status == Status::Ok);
  for (int i = 0; i < 40; ++i) REQUIRE(store.apply({createOp("/n" + std::to_string(i), std::string(50, 'x'))}).status == Status::Ok);
  for (const std::size_t stopAfter : {std::size_t{1}, std::size_t{3}, std::size_t{12}, std::size_t{1000}}) {
    StoreFixture other;
    for (int i = 0; i < 30; ++i) REQUIRE(other.apply({createOp("/old" + std::to_string(i))}).status == Status::Ok);
    {
      auto source = storage::Txn::read(store.env());
      std::vector<StateMachine::Row> rows;
      store.stateMachine().exportState(source, [&rows](StateMachine::Row row) { rows.push_back(std::move(row)); });
      auto txn = storage::Txn::write(other.env());
      other.stateMachine().clearStaging(txn);
      other.stateMachine().stageRows(txn, rows);
      other.stateMachine().beginInstall(txn);
      txn.commit();
    }
    bool done = false;
    std::size_t steps = 0;
    for (; !done && steps < stopAfter; ++steps) {
      auto txn = storage::Txn::write(other.env());
      done = other.stateMachine().installStep(txn, 200);
      CHECK(other.stateMachine().installing(txn) == !done);  // readers see the mark until the end
      txn.commit();
    }
    if (!done) {
      // The process stops halfway: the next one finishes the install before anything reads.
      other.reopen();
    }
    auto txn = storage::Txn::read(other.env());
    CHECK_FALSE(other.stateMachine().installing(txn));
    CHECK(other.stateMachine().appliedIndex(txn) == store.appliedIndex());
    txn.abort();
    CHECK(other.dump() == store.dump());
    CHECK(other.session(5) == store.session(5));
    CHECK(other.usedBytes() == store.usedBytes());
    CHECK_FALSE(other.get("/old3"));
    if (stopAfter == 1000) CHECK(steps > 20);  // it really went in steps
  }
}
