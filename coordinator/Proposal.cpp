#include "coordinator/Proposal.h"

#include "coordinator/Bytes.h"

namespace warden::coordinator {

namespace {
constexpr std::uint8_t kProposalFormat = 3;  // 2: without deadlineMs
}

std::string encodeProposal(const Proposal& p) { return encodeProposal(p, p.command); }

std::string encodeProposal(const Proposal& p, std::string_view command) {
  Encoder out;
  out.reserve(command.size() + 64);  // the fields around it take at most 59 bytes
  out.u8(kProposalFormat);
  out.varint(p.origin);
  out.fixed64(p.incarnation);
  out.varint(p.requestId);
  out.varint(p.timestampMs);
  out.varint(p.deadlineMs);
  out.bytes(command);
  return out.take();
}

ProposalView viewProposal(std::string_view bytes) {
  Decoder in(bytes);
  const std::uint8_t format = in.u8();
  if (format != kProposalFormat && format != 2) throw DecodeError("unknown proposal format");
  ProposalView p;
  p.origin = in.varint();
  p.incarnation = in.fixed64();
  p.requestId = in.varint();
  p.timestampMs = in.varint();
  if (format == kProposalFormat) p.deadlineMs = in.varint();
  p.command = in.bytes();
  in.expectDone();
  return p;
}

Proposal decodeProposal(std::string_view bytes) {
  const ProposalView view = viewProposal(bytes);
  Proposal p;
  static_cast<ProposalHeader&>(p) = view;
  p.command = std::string(view.command);
  return p;
}

void stampProposal(std::string& bytes, std::uint64_t timestampMs) {
  Decoder in(bytes);
  if (in.u8() != kProposalFormat) {
    // An older format is written anew in the current one, as encodeProposal does.
    Proposal p = decodeProposal(bytes);
    p.timestampMs = timestampMs;
    bytes = encodeProposal(p);
    return;
  }
  in.varint();   // origin
  in.fixed64();  // incarnation
  in.varint();   // requestId
  const std::size_t at = bytes.size() - in.remaining();
  in.varint();  // the stamp it carries
  const std::size_t end = bytes.size() - in.remaining();
  Encoder stamp;
  stamp.varint(timestampMs);
  bytes.replace(at, end - at, stamp.take());
}

}  // namespace warden::coordinator
