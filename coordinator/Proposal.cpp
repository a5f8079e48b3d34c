#include "coordinator/Proposal.h"

#include "coordinator/Bytes.h"

namespace warden::coordinator {

namespace {
constexpr std::uint8_t kProposalFormat = 2;
}

std::string encodeProposal(const Proposal& p) {
  Encoder out;
  out.u8(kProposalFormat);
  out.varint(p.origin);
  out.fixed64(p.incarnation);
  out.varint(p.requestId);
  out.varint(p.timestampMs);
  out.bytes(p.command);
  return out.take();
}

Proposal decodeProposal(std::string_view bytes) {
  Decoder in(bytes);
  if (in.u8() != kProposalFormat) throw DecodeError("unknown proposal format");
  Proposal p;
  p.origin = in.varint();
  p.incarnation = in.fixed64();
  p.requestId = in.varint();
  p.timestampMs = in.varint();
  p.command = std::string(in.bytes());
  in.expectDone();
  return p;
}

}  // namespace warden::coordinator
