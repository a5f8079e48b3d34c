#include <catch2/catch.hpp>

#include <random>

#include "coordinator/paxos/MessageCodec.h"

using namespace warden::coordinator;
using namespace warden::coordinator::paxos;

namespace {

std::vector<Message> everyKind() {
  const Value value{false, {"cmd-1", std::string("bin\0ary", 7)}};
  Promise promise{Ballot{3, 2}, true, false, Ballot{3, 2}, {}, 4};
  promise.entries.push_back(PromisedEntry{5, Ballot{2, 1}, value, false});
  promise.entries.push_back(PromisedEntry{6, Ballot{2, 1}, Value::makeNoop(), true});
  CatchupReply catchup;
  catchup.entries = {ChosenEntry{9, value}, ChosenEntry{10, Value::makeNoop()}};
  catchup.compactedUpTo = 8;
  catchup.nonce = 0xfeedface;
  catchup.leaderBallot = Ballot{7, 3};
  catchup.nextSlot = 11;
  return {
      Message{1, 2, Prepare{Ballot{3, 1}, 5}},
      Message{2, 1, promise},
      Message{1, 3, Accept{Ballot{3, 1}, 7, value, 6, 123456789}},
      Message{3, 1, Accepted{Ballot{3, 1}, 7, false, Ballot{4, 2}, 123456789}},
      Message{1, 2, Heartbeat{Ballot{3, 1}, 6, 8, 42}},
      Message{2, 1, HeartbeatReply{Ballot{3, 1}, true, Ballot{3, 1}, 42, 6}},
      Message{2, 3, CatchupRequest{9, 77}},
      Message{3, 2, catchup},
  };
}

// Messages have no operator==; their encodings stand in for them.
void requireSame(const Message& a, const Message& b) { REQUIRE(encodeMessage(a) == encodeMessage(b)); }

}  // namespace

TEST_CASE("every kind of Paxos message round-trips through the wire format") {
  for (const auto& message : everyKind()) {
    INFO(messageName(message.payload));
    Message back = decodeMessage(encodeMessage(message));
    CHECK(back.from == message.from);
    CHECK(back.to == message.to);
    CHECK(back.payload.index() == message.payload.index());
    requireSame(back, message);
  }
  auto accept = std::get<Accept>(decodeMessage(encodeMessage(everyKind()[2])).payload);
  CHECK(accept.value.commands[1] == std::string("bin\0ary", 7));
  CHECK(accept.sentAt == 123456789);
}

TEST_CASE("a corrupted or truncated frame raises DecodeError and never crashes") {
  std::mt19937 rng(99);
  for (const auto& message : everyKind()) {
    const std::string good = encodeMessage(message);
    for (std::size_t cut = 0; cut < good.size(); ++cut) {
      CHECK_THROWS_AS(decodeMessage(std::string_view(good).substr(0, cut)), DecodeError);
    }
    for (int round = 0; round < 300; ++round) {
      std::string bad = good;
      bad[rng() % bad.size()] = static_cast<char>(rng());
      try {
        (void)decodeMessage(bad);
      } catch (const DecodeError&) {
      }
    }
  }
  CHECK_THROWS_AS(decodeMessage(std::string("\x02\x01\x02\x00", 4)), DecodeError);  // unknown format
  CHECK_THROWS_AS(decodeMessage(std::string("\x01\x01\x02\x09", 4)), DecodeError);  // unknown kind
  // A count claiming more entries than the frame could hold is refused before allocating.
  Encoder huge;
  huge.u8(kWireFormat);
  huge.varint(1);
  huge.varint(2);
  huge.u8(7);
  huge.varint(UINT64_MAX / 2);
  CHECK_THROWS_AS(decodeMessage(huge.data()), DecodeError);
}

TEST_CASE("a value claiming millions of commands in a short frame is refused as truncated") {
  // A hostile peer's frame: 2^24 commands claimed, a few bytes given. The count fits the
  // frame's bytes, so the decoder reserves, but at most a batch's worth (MessageCodec.cpp):
  // 2^24 strings were 512 MiB for a 16 MiB frame.
  Encoder out;
  out.u8(kWireFormat);
  out.varint(1);
  out.varint(2);
  out.u8(static_cast<std::uint8_t>(Payload(Accept{}).index()));
  out.varint(3);  // ballot round
  out.varint(1);  // ballot node
  out.varint(7);  // slot
  out.boolean(false);
  out.varint(1u << 24);
  std::string frame = out.take();
  frame.append("\xff\xff\xff\x7f");         // the first command's length: far beyond the frame
  frame.append((1u << 24) + 16, '\0');     // enough bytes for the count to pass as plausible
  CHECK_THROWS_AS(decodeMessage(frame), DecodeError);
}
