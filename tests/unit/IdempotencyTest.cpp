// Idempotency keys (issue 10): the replicated state remembers a keyed write with its first
// result for kIdempotencyMemoryMs of leader time; a retry gets that result and applies nothing.

#include <catch2/catch.hpp>

#include "coordinator/Bytes.h"
#include "coordinator/ResultCodec.h"
#include "coordinator/storage/Keys.h"
#include "session/Keeper.h"
#include "tests/unit/StoreFixture.h"

using namespace warden::coordinator;
using namespace warden::tests;

namespace {

Command keyed(std::vector<Op> ops, std::string key) {
  Command command = txnCommand(std::move(ops));
  command.idempotencyKey = std::move(key);
  return command;
}

Op sequential(std::string path, std::string data) {
  Op op = createOp(std::move(path), std::move(data));
  op.sequential = true;
  return op;
}

}  // namespace

TEST_CASE("a retried write with the same key gets its first result and applies nothing") {
  StoreFixture store;
  REQUIRE(store.apply({createOp("/q")}).status == Status::Ok);
  const auto first = store.applyCommand(keyed({sequential("/q/x-", "1")}, "key-1"), 5000);
  REQUIRE(first.status == Status::Ok);
  CHECK(first.results[0].path == "/q/x-0000000000");
  const auto again = store.applyCommand(keyed({sequential("/q/x-", "1")}, "key-1"), 6000);
  CHECK(again == first);
  CHECK(store.children("/q").size() == 1);
  CHECK(store.revision() == 2);
  // A failed write is remembered too: its retry fails alike, even once it would succeed.
  const auto missing = store.applyCommand(keyed({setOp("/nope", "v")}, "key-2"));
  CHECK(missing.status == Status::NotFound);
  REQUIRE(store.apply({createOp("/nope")}).status == Status::Ok);
  CHECK(store.applyCommand(keyed({setOp("/nope", "v")}, "key-2")) == missing);
}

TEST_CASE("a key used for another write is refused and changes nothing") {
  StoreFixture store;
  REQUIRE(store.applyCommand(keyed({createOp("/a", "1")}, "k")).status == Status::Ok);
  const auto reused = store.applyCommand(keyed({createOp("/b", "1")}, "k"));
  CHECK(reused.status == Status::KeyReused);
  CHECK_THAT(reused.message, Catch::Contains("'k'"));
  CHECK_FALSE(store.get("/b"));
  CHECK(store.revision() == 1);
}

namespace {
// As if `slots` slots had been applied since (the applied index is all apply looks at).
void skipSlots(StoreFixture& store, std::uint64_t slots) {
  auto txn = storage::Txn::write(store.env());
  const std::uint64_t applied = store.stateMachine().appliedIndex(txn);
  txn.put(txn.openDb("meta"), "applied_index", storage::encodeU64Key(applied + slots));
  txn.commit();
}
}  // namespace

TEST_CASE("a key is forgotten once its time has passed in leader time, and its slots") {
  StoreFixture store;
  REQUIRE(store.apply({createOp("/q")}, 1000).status == Status::Ok);
  REQUIRE(store.applyCommand(keyed({sequential("/q/x-", "")}, "old"), 1000).status == Status::Ok);
  // Still remembered just before its time ends; a later keyed write clears it after.
  REQUIRE(store.applyCommand(keyed({sequential("/q/x-", "")}, "old"), 1000 + kIdempotencyMemoryMs).status == Status::Ok);
  CHECK(store.children("/q").size() == 1);
  // Its time has passed, but not its slots: still remembered.
  REQUIRE(store.applyCommand(keyed({createOp("/other")}, "new"), 2000 + kIdempotencyMemoryMs).status == Status::Ok);
  REQUIRE(store.applyCommand(keyed({sequential("/q/x-", "")}, "old"), 2000 + kIdempotencyMemoryMs).status == Status::Ok);
  CHECK(store.children("/q").size() == 1);
  skipSlots(store, kIdempotencyMemorySlots);
  REQUIRE(store.applyCommand(keyed({createOp("/other2")}, "new2"), 3000 + kIdempotencyMemoryMs).status == Status::Ok);
  REQUIRE(store.applyCommand(keyed({sequential("/q/x-", "")}, "old"), 3000 + kIdempotencyMemoryMs).status == Status::Ok);
  CHECK(store.children("/q").size() == 2);
}

TEST_CASE("a command result survives its encoding") {
  CommandResult r;
  r.status = Status::BadVersion;
  r.message = "expected version 3";
  r.failedOp = 2;
  r.revision = 99;
  r.results.push_back(OpResult{OpType::Create, "/a", Stat{1, 2, 3, 4, 5, 6, 7, 8, 9}});
  r.results.push_back(OpResult{OpType::Delete, "/b", std::nullopt});
  CHECK(decodeResult(encodeResult(r)) == r);
  CHECK_THROWS_AS(decodeResult(encodeResult(r).substr(1)), DecodeError);
}

TEST_CASE("a keyed session create answered from memory creates no second session") {
  StoreFixture store;
  Command create = sessionCommand(CommandType::SessionCreate, 77);
  create.ttlMs = 5000;
  create.idempotencyKey = "s-1";
  Encoder out;
  encodeCommand(out, create);
  Decoder in(out.data());
  REQUIRE(decodeCommand(in) == create);
  const auto first = store.applyCommand(create);
  REQUIRE(first.status == Status::Ok);
  CHECK(store.applyCommand(create) == first);  // not "exists": the same answer
  REQUIRE(store.applyCommand(sessionCommand(CommandType::SessionClose, 77)).status == Status::Ok);
  CHECK(store.applyCommand(create) == first);  // still remembered, and nothing is created again
  CHECK_FALSE(store.session(77));
  Command other = create;
  other.ttlMs = 9000;
  CHECK(store.applyCommand(other).status == Status::KeyReused);
}

TEST_CASE("a keyed session close retried gets its first answer, not session_not_found") {
  StoreFixture store;
  Command create = sessionCommand(CommandType::SessionCreate, 91);
  create.ttlMs = 5000;
  REQUIRE(store.applyCommand(create).status == Status::Ok);
  Command close = sessionCommand(CommandType::SessionClose, 91);
  close.idempotencyKey = "close-1";
  Encoder out;
  encodeCommand(out, close);
  Decoder in(out.data());
  REQUIRE(decodeCommand(in) == close);
  const auto first = store.applyCommand(close);
  REQUIRE(first.status == Status::Ok);
  CHECK_FALSE(store.session(91));
  CHECK(store.applyCommand(close) == first);
  // Without the key the retry is a new close, of a session that is gone.
  CHECK(store.applyCommand(sessionCommand(CommandType::SessionClose, 91)).status == Status::SessionNotFound);
  // The same key for another session's close, or for a create, is a reuse.
  Command otherClose = sessionCommand(CommandType::SessionClose, 93);
  otherClose.idempotencyKey = "close-1";
  CHECK(store.applyCommand(otherClose).status == Status::KeyReused);
  Command keyedCreate = create;
  keyedCreate.idempotencyKey = "close-1";
  CHECK(store.applyCommand(keyedCreate).status == Status::KeyReused);
}

namespace {
// What NodeCore::apply does with each result: the keeper hears of what really applied.
CommandResult applyAndTell(StoreFixture& store, warden::session::Keeper& keeper, const Command& command,
                           std::uint64_t nowMs) {
  bool replayed = false;
  CommandResult r = store.applyCommand(command, nowMs, replayed);
  if (!replayed) keeper.applied(command, r, nowMs);
  return r;
}
}  // namespace

// Review schedule: a create's reply is lost, the keeper marks the session expiring and the leader
// proposes its expiry, and the client's retry of the create is chosen first. Telling the keeper
// of the replay would make it answer a keepalive "alive" for a session whose expiry is chosen.
TEST_CASE("a keyed create answered from memory does not revive a session the keeper is expiring") {
  StoreFixture store;
  warden::session::Keeper keeper;
  keeper.takeOver(0, {});
  Command create = sessionCommand(CommandType::SessionCreate, 41);
  create.ttlMs = 1000;
  create.idempotencyKey = "c-1";
  REQUIRE(applyAndTell(store, keeper, create, 0).status == Status::Ok);
  REQUIRE(keeper.due(1000 + 2 * warden::session::Keeper::kBucketMs) == std::vector<std::uint64_t>{41});
  REQUIRE(applyAndTell(store, keeper, create, 1050).status == Status::Ok);  // the retry, from memory
  CHECK_FALSE(keeper.keepalive(41, 1060));
}

// Review schedule: a keyed close went through; the same id lives again (a new create); the
// client retries the old close within its memory. The retry changes nothing, so the keeper must
// keep the new session (else its keepalives 404 while it lives, and it never expires).
TEST_CASE("a keyed close answered from memory does not end the session living under that id now") {
  StoreFixture store;
  warden::session::Keeper keeper;
  keeper.takeOver(0, {});
  Command create = sessionCommand(CommandType::SessionCreate, 43);
  create.ttlMs = 30'000;
  Command close = sessionCommand(CommandType::SessionClose, 43);
  close.idempotencyKey = "close-9";
  REQUIRE(applyAndTell(store, keeper, create, 0).status == Status::Ok);
  REQUIRE(applyAndTell(store, keeper, close, 100).status == Status::Ok);
  REQUIRE(applyAndTell(store, keeper, create, 200).status == Status::Ok);
  REQUIRE(keeper.keepalive(43, 300));
  CHECK(applyAndTell(store, keeper, close, 400).status == Status::Ok);
  CHECK(store.session(43));
  CHECK(keeper.keepalive(43, 500));
}

// Review schedule: a leader whose clock is 10 minutes ahead stamps one keyed write; a retry of a
// key applied a second before must still find it (keys are kept kIdempotencyMemorySlots too).
TEST_CASE("a leader clock far ahead does not make every remembered key old at once") {
  StoreFixture store;
  REQUIRE(store.apply({createOp("/q")}, 1000).status == Status::Ok);
  REQUIRE(store.applyCommand(keyed({sequential("/q/job-", "")}, "K"), 1000).status == Status::Ok);
  REQUIRE(store.applyCommand(keyed({createOp("/y")}, "other"), 2000 + kIdempotencyMemoryMs).status == Status::Ok);
  REQUIRE(store.applyCommand(keyed({sequential("/q/job-", "")}, "K"), 3000).status == Status::Ok);
  CHECK(store.children("/q").size() == 1);
}

// Review schedule: keyed transactions whose results are large (1024 checks of a 1 KB path, about
// 1 MB each) must not grow the table past its byte bound (they would fill the LMDB map, and apply
// would fail on every replica, again after every restart).
TEST_CASE("the idempotency table stays within its byte bound, oldest keys going first") {
  StoreFixture store;
  std::string path;
  for (int i = 0; i < 5; ++i) path += "/" + std::string(200, static_cast<char>('a' + i));
  Op make = createOp(path);
  make.makeParents = true;
  REQUIRE(store.apply({make}).status == Status::Ok);
  const std::vector<Op> checks(kMaxTxnOps, checkOp(path));
  const int writes = static_cast<int>(kMaxIdempotencyBytes / (1000 * kMaxTxnOps)) + 40;
  for (int i = 0; i < writes; ++i) {
    REQUIRE(store.applyCommand(keyed(checks, "k" + std::to_string(i)), 1000 + i).status == Status::Ok);
  }
  auto txn = storage::Txn::read(store.env());
  const auto bytes = txn.get(txn.openDb("meta"), "idempotency_bytes");
  REQUIRE(bytes);
  CHECK(storage::decodeU64Key(*bytes) <= kMaxIdempotencyBytes);
  txn.abort();
  // The newest is remembered (its retry is a replay); the oldest was forgotten to make room.
  bool replayed = false;
  store.applyCommand(keyed(checks, "k" + std::to_string(writes - 1)), 5000, replayed);
  CHECK(replayed);
  store.applyCommand(keyed(checks, "k0"), 5000, replayed);
  CHECK_FALSE(replayed);
}

TEST_CASE("a key past LMDB's key limit in the log is remembered, replayed and forgotten like any other") {
  // The edge takes keys of 1 to 128 characters; one longer (a frame from another build, or a bug
  // at the edge) used to stop every replica with MDB_BAD_VALSIZE. It is kept in shortened form.
  StoreFixture store;
  const std::string longKey(1000, 'k');
  std::string otherLong = longKey;  // the same 400-byte prefix, another key
  otherLong.back() = 'x';
  REQUIRE(store.apply({createOp("/q")}, 1000).status == Status::Ok);
  const auto first = store.applyCommand(keyed({sequential("/q/x-", "")}, longKey), 1000);
  REQUIRE(first.status == Status::Ok);
  CHECK(store.applyCommand(keyed({sequential("/q/x-", "")}, longKey), 2000) == first);  // replayed
  CHECK(store.applyCommand(keyed({sequential("/q/x-", "")}, otherLong), 2000).status == Status::Ok);
  CHECK(store.applyCommand(keyed({createOp("/b")}, longKey), 2000).status == Status::KeyReused);
  CHECK(store.children("/q").size() == 2);
  // Forgotten in its time, as a short key is.
  skipSlots(store, kIdempotencyMemorySlots);
  REQUIRE(store.applyCommand(keyed({createOp("/later")}, "new"), 3000 + kIdempotencyMemoryMs).status == Status::Ok);
  REQUIRE(store.applyCommand(keyed({sequential("/q/x-", "")}, longKey), 3000 + kIdempotencyMemoryMs).status == Status::Ok);
  CHECK(store.children("/q").size() == 3);
}

TEST_CASE("keys up to 503 bytes keep the rows the previous binary stored as they are, and longer ones are shortened") {
  // Found by the review of the shortened keys: binaries before them stored every key that fit
  // the time index (8 bytes of time + the key within LMDB's 511) as it is; shortening those
  // from 401 bytes on missed such rows, so a retry across the upgrade applied twice.
  for (const std::size_t length : {450u, 503u, 504u}) {
    DYNAMIC_SECTION("a key of " << length << " bytes") {
      StoreFixture store;
      const std::string key(length, 'k');
      REQUIRE(store.apply({createOp("/q")}, 1000).status == Status::Ok);
      const auto first = store.applyCommand(keyed({sequential("/q/x-", "")}, key), 1000);
      REQUIRE(first.status == Status::Ok);
      auto txn = storage::Txn::write(store.env());
      const auto idempotency = txn.openDb("idempotency");
      const bool raw = txn.get(idempotency, key).has_value();
      txn.abort();
      CHECK(raw == (length <= 503));  // the previous binary's form wherever it had one
      CHECK(store.applyCommand(keyed({sequential("/q/x-", "")}, key), 2000) == first);
      CHECK(store.children("/q").size() == 1);
    }
  }
}
