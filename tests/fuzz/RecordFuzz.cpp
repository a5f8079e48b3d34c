// Fuzzes the decoders of what Warden stores (coordinator/NodeRecord, Entry, Command, Proposal,
// session records, the acceptor's ballots and values as LmdbLogStore keeps them) with arbitrary
// bytes. The first byte picks the decoder, the rest is its input. The only acceptable refusal is
// a DecodeError; and whatever decodes must re-encode to bytes that decode to the same value and
// re-encode to the same bytes.

#include <cstdint>
#include <optional>
#include <string>
#include <string_view>

#include "coordinator/Bytes.h"
#include "coordinator/Command.h"
#include "coordinator/Entry.h"
#include "coordinator/NodeRecord.h"
#include "coordinator/Proposal.h"
#include "coordinator/paxos/MessageCodec.h"
#include "session/SessionTable.h"
#include "tests/fuzz/FuzzCheck.h"

namespace {

using namespace warden::coordinator;
using warden::tests::fuzz::printable;

// decode(encode(decode(bytes))) == decode(bytes), and encoding that again gives the same bytes.
template <typename Decode, typename Encode, typename Same>
void roundTrip(const char* what, std::string_view bytes, Decode decode, Encode encode, Same same) {
  std::optional<decltype(decode(bytes))> value;
  try {
    value.emplace(decode(bytes));
  } catch (const DecodeError&) {
    return;
  }
  const std::string once = encode(*value);
  const auto back = decode(once);  // bytes we just encoded must decode: no catch
  FUZZ_CHECK(same(back, *value), std::string(what) + " changes through encode/decode: " + printable(bytes));
  FUZZ_CHECK(encode(back) == once, std::string(what) + " re-encodes differently: " + printable(bytes));
}

auto equal = [](const auto& a, const auto& b) { return a == b; };

Command decodeOneCommand(std::string_view bytes) {
  Decoder in(bytes);
  Command command = decodeCommand(in);
  in.expectDone();
  return command;
}

std::string encodeOneCommand(const Command& command) {
  Encoder out;
  encodeCommand(out, command);
  return out.take();
}

// LmdbLogStore's rows: the promised ballot, and each slot's accepted (ballot, value).
paxos::Ballot decodePromised(std::string_view bytes) {
  Decoder in(bytes);
  paxos::Ballot ballot = paxos::decodeBallot(in);
  in.expectDone();  // LmdbLogStore::load does not check this; a stored ballot has nothing after it
  return ballot;
}

std::string encodePromised(const paxos::Ballot& ballot) {
  Encoder out;
  paxos::encodeBallot(out, ballot);
  return out.take();
}

paxos::AcceptedValue decodeAccepted(std::string_view bytes) {
  Decoder in(bytes);
  paxos::AcceptedValue accepted;
  accepted.ballot = paxos::decodeBallot(in);
  accepted.value = paxos::decodeValue(in);
  in.expectDone();
  return accepted;
}

std::string encodeAccepted(const paxos::AcceptedValue& accepted) {
  Encoder out;
  paxos::encodeBallot(out, accepted.ballot);
  paxos::encodeValue(out, accepted.value);
  return out.take();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::string_view bytes(reinterpret_cast<const char*>(data) + 1, size - 1);
  switch (data[0] % 7) {
    case 0: roundTrip("node record", bytes, decodeNodeRecord, encodeNodeRecord, equal); break;
    case 1: roundTrip("entry", bytes, decodeEntry, encodeEntry, equal); break;
    case 2: roundTrip("command", bytes, decodeOneCommand, encodeOneCommand, equal); break;
    case 3:
      // (encodeProposal is overloaded: the lambda picks the one-argument form.)
      roundTrip(
          "proposal", bytes, decodeProposal, [](const Proposal& p) { return encodeProposal(p); },
          [](const Proposal& a, const Proposal& b) {
            return a.origin == b.origin && a.incarnation == b.incarnation && a.requestId == b.requestId &&
                   a.timestampMs == b.timestampMs && a.command == b.command;
          });
      // A proposal carries a command: decode that too, as the node does when it applies one.
      try {
        roundTrip("proposal's command", decodeProposal(bytes).command, decodeOneCommand, encodeOneCommand, equal);
      } catch (const DecodeError&) {
      }
      break;
    case 4:
      roundTrip("session record", bytes, warden::session::decodeSessionRecord, warden::session::encodeSessionRecord,
                equal);
      break;
    case 5: roundTrip("promised ballot", bytes, decodePromised, encodePromised, equal); break;
    case 6:
      roundTrip("accepted value", bytes, decodeAccepted, encodeAccepted,
                [](const paxos::AcceptedValue& a, const paxos::AcceptedValue& b) {
                  return a.ballot == b.ballot && a.value == b.value;
                });
      break;
  }
  return 0;
}
