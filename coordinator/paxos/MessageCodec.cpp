#include "coordinator/paxos/MessageCodec.h"

#include <algorithm>

namespace warden::coordinator::paxos {

namespace {

constexpr std::uint64_t kMaxReservedCommands = 1024;  // twice the most a slot is given (ReplicaConfig::maxBatch)

// A count read from the wire cannot exceed the bytes left, each element taking at least one.
std::uint64_t readCount(Decoder& in, std::size_t remaining) {
  std::uint64_t n = in.varint();
  if (n > remaining) throw DecodeError("count larger than the frame");
  return n;
}

void encodePayload(Encoder& out, const Prepare& m) {
  encodeBallot(out, m.ballot);
  out.varint(m.fromSlot);
}
void encodePayload(Encoder& out, const Promise& m) {
  encodeBallot(out, m.ballot);
  out.boolean(m.ok);
  out.boolean(m.leaseHeld);
  encodeBallot(out, m.promised);
  out.varint(m.compactedUpTo);
  out.varint(m.entries.size());
  for (const auto& e : m.entries) {
    out.varint(e.slot);
    encodeBallot(out, e.ballot);
    encodeValue(out, e.value);
    out.boolean(e.chosen);
  }
  out.boolean(m.truncated);
}
void encodePayload(Encoder& out, const Accept& m) {
  encodeBallot(out, m.ballot);
  out.varint(m.slot);
  encodeValue(out, m.value);
  out.varint(m.commitIndex);
  out.varint(m.sentAt);
}
void encodePayload(Encoder& out, const Accepted& m) {
  encodeBallot(out, m.ballot);
  out.varint(m.slot);
  out.boolean(m.ok);
  encodeBallot(out, m.promised);
  out.varint(m.sentAt);
}
void encodePayload(Encoder& out, const Heartbeat& m) {
  encodeBallot(out, m.ballot);
  out.varint(m.commitIndex);
  out.varint(m.nextSlot);
  out.varint(m.sentAt);
}
void encodePayload(Encoder& out, const HeartbeatReply& m) {
  encodeBallot(out, m.ballot);
  out.boolean(m.ok);
  encodeBallot(out, m.promised);
  out.varint(m.sentAt);
  out.varint(m.commitIndex);
}
void encodePayload(Encoder& out, const CatchupRequest& m) {
  out.varint(m.fromSlot);
  out.varint(m.nonce);
}
void encodePayload(Encoder& out, const CatchupReply& m) {
  out.varint(m.entries.size());
  for (const auto& e : m.entries) {
    out.varint(e.slot);
    encodeValue(out, e.value);
  }
  out.boolean(m.snapshotNeeded);
  out.varint(m.compactedUpTo);
  out.varint(m.nonce);
  encodeBallot(out, m.leaderBallot);
  out.varint(m.nextSlot);
  encodeBallot(out, m.promised);
}
void encodePayload(Encoder& out, const PreVote& m) { encodeBallot(out, m.ballot); }
void encodePayload(Encoder& out, const PreVoteReply& m) {
  encodeBallot(out, m.ballot);
  out.boolean(m.granted);
}

Payload decodePayload(std::uint8_t kind, Decoder& in, std::size_t size) {
  switch (kind) {
    case 0: {
      Prepare m;
      m.ballot = decodeBallot(in);
      m.fromSlot = in.varint();
      return m;
    }
    case 1: {
      Promise m;
      m.ballot = decodeBallot(in);
      m.ok = in.boolean();
      m.leaseHeld = in.boolean();
      m.promised = decodeBallot(in);
      m.compactedUpTo = in.varint();
      for (auto n = readCount(in, size); n > 0; --n) {
        PromisedEntry e;
        e.slot = in.varint();
        e.ballot = decodeBallot(in);
        e.value = decodeValue(in);
        e.chosen = in.boolean();
        m.entries.push_back(std::move(e));
      }
      m.truncated = in.boolean();
      return m;
    }
    case 2: {
      Accept m;
      m.ballot = decodeBallot(in);
      m.slot = in.varint();
      m.value = decodeValue(in);
      m.commitIndex = in.varint();
      m.sentAt = in.varint();
      return m;
    }
    case 3: {
      Accepted m;
      m.ballot = decodeBallot(in);
      m.slot = in.varint();
      m.ok = in.boolean();
      m.promised = decodeBallot(in);
      m.sentAt = in.varint();
      return m;
    }
    case 4: {
      Heartbeat m;
      m.ballot = decodeBallot(in);
      m.commitIndex = in.varint();
      m.nextSlot = in.varint();
      m.sentAt = in.varint();
      return m;
    }
    case 5: {
      HeartbeatReply m;
      m.ballot = decodeBallot(in);
      m.ok = in.boolean();
      m.promised = decodeBallot(in);
      m.sentAt = in.varint();
      m.commitIndex = in.varint();
      return m;
    }
    case 6: {
      CatchupRequest m;
      m.fromSlot = in.varint();
      m.nonce = in.varint();
      return m;
    }
    case 7: {
      CatchupReply m;
      for (auto n = readCount(in, size); n > 0; --n) {
        ChosenEntry e;
        e.slot = in.varint();
        e.value = decodeValue(in);
        m.entries.push_back(std::move(e));
      }
      m.snapshotNeeded = in.boolean();
      m.compactedUpTo = in.varint();
      m.nonce = in.varint();
      m.leaderBallot = decodeBallot(in);
      m.nextSlot = in.varint();
      m.promised = decodeBallot(in);
      return m;
    }
    case 8: return PreVote{decodeBallot(in)};
    case 9: {
      PreVoteReply m;
      m.ballot = decodeBallot(in);
      m.granted = in.boolean();
      return m;
    }
    default: throw DecodeError("unknown message kind");
  }
}

}  // namespace

void encodeBallot(Encoder& out, const Ballot& ballot) {
  out.varint(ballot.round);
  out.varint(ballot.node);
}

Ballot decodeBallot(Decoder& in) {
  Ballot b;
  b.round = in.varint();
  b.node = in.varint();
  return b;
}

void encodeValue(Encoder& out, const Value& value) {
  out.boolean(value.noop);
  out.varint(value.commands.size());
  for (const auto& c : value.commands) out.bytes(c);
}

Value decodeValue(Decoder& in) {
  Value v;
  v.noop = in.boolean();
  std::uint64_t n = in.varint();
  if (n > (1u << 24)) throw DecodeError("too many commands in a value");
  // Each command takes at least its length byte on the wire but a whole std::string here: a
  // count beyond what is left reserves nothing, and a plausible one at most a batch's worth (a
  // hostile frame claiming millions of one-byte commands must not reserve 32 bytes for each).
  if (n <= in.remaining()) v.commands.reserve(std::min<std::uint64_t>(n, kMaxReservedCommands));
  for (; n > 0; --n) v.commands.emplace_back(in.bytes());
  return v;
}

std::string encodeMessage(const Message& message) {
  Encoder out;
  // An Accept's frame at once at its size, not grown through a string's doublings (each step
  // past 1 KiB a large allocation on the driver's thread).
  if (const auto* accept = std::get_if<Accept>(&message.payload)) out.reserve(64 + wireSize(accept->value));
  out.u8(kWireFormat);
  out.varint(message.from);
  out.varint(message.to);
  out.u8(static_cast<std::uint8_t>(message.payload.index()));
  std::visit([&out](const auto& m) { encodePayload(out, m); }, message.payload);
  return out.take();
}

Message decodeMessage(std::string_view bytes) {
  Decoder in(bytes);
  if (in.u8() != kWireFormat) throw DecodeError("unknown wire format");
  Message message;
  message.from = in.varint();
  message.to = in.varint();
  const std::uint8_t kind = in.u8();
  message.payload = decodePayload(kind, in, bytes.size());
  in.expectDone();
  return message;
}

}  // namespace warden::coordinator::paxos
