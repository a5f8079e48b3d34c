// Idempotency keys (issue 10): the replicated state remembers a keyed write with its first
// result for kIdempotencyMemoryMs of leader time; a retry gets that result and applies nothing.

#include <catch2/catch.hpp>

#include "coordinator/Bytes.h"
#include "coordinator/ResultCodec.h"
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

TEST_CASE("a key is forgotten once its time has passed in leader time") {
  StoreFixture store;
  REQUIRE(store.apply({createOp("/q")}, 1000).status == Status::Ok);
  REQUIRE(store.applyCommand(keyed({sequential("/q/x-", "")}, "old"), 1000).status == Status::Ok);
  // Still remembered just before its time ends; a later keyed write clears it after.
  REQUIRE(store.applyCommand(keyed({sequential("/q/x-", "")}, "old"), 1000 + kIdempotencyMemoryMs).status == Status::Ok);
  CHECK(store.children("/q").size() == 1);
  REQUIRE(store.applyCommand(keyed({createOp("/other")}, "new"), 2000 + kIdempotencyMemoryMs).status == Status::Ok);
  REQUIRE(store.applyCommand(keyed({sequential("/q/x-", "")}, "old"), 2000 + kIdempotencyMemoryMs).status == Status::Ok);
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
