#include <catch2/catch.hpp>

#include <random>

#include "coordinator/Entry.h"
#include "coordinator/NodeRecord.h"
#include "coordinator/Proposal.h"
#include "coordinator/Bytes.h"

using namespace warden::coordinator;

namespace {
Entry sampleEntry() {
  Op create;
  create.type = OpType::Create;
  create.path = "/app/q/item-";
  create.data = std::string("bin\0ary", 7);
  create.sequential = true;
  create.makeParents = true;
  create.ephemeral = true;
  create.session = 0xdeadbeef;
  Op set;
  set.type = OpType::Set;
  set.path = "/app";
  set.data = "v";
  set.version = 0;
  set.createIfMissing = true;
  Op erase;
  erase.type = OpType::Delete;
  erase.path = "/old";
  erase.version = INT64_MAX;
  erase.recursive = true;
  Op check;
  check.path = "/app";
  Command acquire;
  acquire.type = CommandType::LockAcquire;
  acquire.session = 7;
  acquire.name = "db";
  acquire.text = "worker 3";
  acquire.shared = true;
  Command release;  // keyed
  release.type = CommandType::LockRelease;
  release.session = 7;
  release.name = "db";
  release.token = 1234;
  release.idempotencyKey = "k-1";
  Command resign;  // keyed
  resign.type = CommandType::ElectionResign;
  resign.session = 8;
  resign.name = "primary";
  resign.idempotencyKey = "k-2";
  return Entry{42, 1764150000000, {txnCommand({create, set}), txnCommand({erase, check}), acquire, release, resign}};
}
}  // namespace

TEST_CASE("a lock command without an Idempotency-Key encodes as it did before keys and one with a key is marked") {
  Command release;
  release.type = CommandType::LockRelease;
  release.session = 7;
  release.name = "db";
  release.token = 9;
  Encoder plain;
  encodeCommand(plain, release);
  CHECK(static_cast<std::uint8_t>(plain.data()[0]) == static_cast<std::uint8_t>(CommandType::LockRelease));
  release.idempotencyKey = "k";
  Encoder keyed;
  encodeCommand(keyed, release);
  CHECK(keyed.data().substr(1, plain.data().size()) == plain.data());  // a mark before, the key after
  Decoder in(keyed.data());
  CHECK(decodeCommand(in) == release);
  // The key's digest tells lock commands apart by type and fields, and from a session's close.
  Command other = release;
  other.token = 10;
  CHECK(encodeOps(other) != encodeOps(release));
  Command close = sessionCommand(CommandType::SessionClose, 7);
  CHECK(encodeOps(close) != encodeOps(release));
}

TEST_CASE("an entry round-trips through its encoding field for field") {
  Entry entry = sampleEntry();
  CHECK(decodeEntry(encodeEntry(entry)) == entry);
}

TEST_CASE("decoding any corruption of an entry throws DecodeError or yields an entry but never crashes") {
  const std::string good = encodeEntry(sampleEntry());
  std::mt19937 rng(7);
  for (int round = 0; round < 2000; ++round) {
    std::string bad = good;
    int flips = 1 + static_cast<int>(rng() % 4);
    for (int i = 0; i < flips; ++i) bad[rng() % bad.size()] = static_cast<char>(rng());
    if (rng() % 3 == 0) bad.resize(rng() % bad.size());
    try {
      (void)decodeEntry(bad);
    } catch (const DecodeError&) {
    }
  }
  CHECK_THROWS_AS(decodeEntry(good + "x"), DecodeError);
}

// Found by tests/fuzz/RecordFuzz: seven bytes claiming a million commands made decodeEntry reserve
// 120 MB before it found the bytes were not there (a million ops in one command: 112 MB).
TEST_CASE("a count of commands or ops beyond the bytes left is refused before anything is reserved") {
  // format 1, index 0, timestamp 0, then 1,000,000 commands (varint c0 84 3d) and nothing else
  const std::string millionCommands("\x01\x00\x00\xc0\x84\x3d", 6);
  CHECK_THROWS_WITH(decodeEntry(millionCommands), "too many commands");
  // one command: a transaction (type 1) of 1,000,000 ops, and one op's worth of bytes
  const std::string millionOps = std::string("\x01\x00\x00\x01\x01\xc0\x84\x3d", 8) + std::string(6, '\0');
  CHECK_THROWS_WITH(decodeEntry(millionOps), "too many ops");
  // as many elements as bytes left is still allowed to try: the count is not what fails
  const std::string twoOps = std::string("\x01\x00\x00\x01\x01\x02", 6) + std::string(6, '\0');
  CHECK_THROWS_WITH(decodeEntry(twoOps), "unknown op type");
}

TEST_CASE("a node record round-trips and reports its data length") {
  NodeRecord record;
  record.stat = Stat{3, 2, 10, 12, 1000, 2000, 77, 5, 0};
  record.nextSequence = 9;
  record.data = "payload";
  NodeRecord back = decodeNodeRecord(encodeNodeRecord(record));
  CHECK(back.stat.dataLength == 7);
  back.stat.dataLength = 0;
  CHECK(back == record);
}

TEST_CASE("a proposal stamped in place is the bytes encodeProposal gives it with that stamp") {
  Proposal p;
  p.origin = 3;
  p.incarnation = 0x0123456789abcdefULL;
  p.requestId = 300;
  p.deadlineMs = 1'700'000'123'456ULL;
  p.command = std::string(200, 'c');  // past any short-string buffer
  for (std::uint64_t before : {std::uint64_t{0}, std::uint64_t{1'700'000'000'000ULL}}) {
    for (std::uint64_t stamp : {std::uint64_t{0}, std::uint64_t{127}, std::uint64_t{128}, std::uint64_t{1'700'000'000'001ULL},
                                ~std::uint64_t{0}}) {
      p.timestampMs = before;
      std::string bytes = encodeProposal(p);
      stampProposal(bytes, stamp);
      Proposal expected = p;
      expected.timestampMs = stamp;
      CHECK(bytes == encodeProposal(expected));
      CHECK(decodeProposal(bytes).timestampMs == stamp);
    }
  }
  // Format 2 (no deadline) comes out in the current format, as a decode and encode made it.
  const unsigned char format2[] = {2,    3,    0xef, 0xcd, 0xab, 0x89, 0x67, 0x45, 0x23, 0x01,  // format, origin, incarnation
                                   5,    0,                                                   // requestId, stamp
                                   2,    'a',  'b'};                                          // command
  std::string old(reinterpret_cast<const char*>(format2), sizeof format2);
  Proposal decoded = decodeProposal(old);
  decoded.timestampMs = 99;
  stampProposal(old, 99);
  CHECK(old == encodeProposal(decoded));
  std::string broken = "\x03\x03";
  CHECK_THROWS_AS(stampProposal(broken, 1), DecodeError);
}
