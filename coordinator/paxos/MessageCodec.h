#pragma once
// The binary form of Paxos messages on the peer link: a format byte, then the fields in order.
// Decoding never trusts the input: a truncated, oversized or unknown frame raises DecodeError
// and the peer link drops it; a node never crashes on a malformed frame.

#include <string>
#include <string_view>

#include "coordinator/Bytes.h"
#include "coordinator/paxos/Message.h"
#include "coordinator/paxos/Record.h"

namespace warden::coordinator::paxos {

inline constexpr std::uint8_t kWireFormat = 2;

std::string encodeMessage(const Message& message);
Message decodeMessage(std::string_view bytes);  // throws DecodeError

// Values and ballots alone, for the log store.
void encodeBallot(Encoder& out, const Ballot& ballot);
Ballot decodeBallot(Decoder& in);
void encodeValue(Encoder& out, const Value& value);
Value decodeValue(Decoder& in);

}  // namespace warden::coordinator::paxos
