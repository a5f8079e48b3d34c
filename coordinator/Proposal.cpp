#include "coordinator/Proposal.h"

#include "coordinator/Bytes.h"

namespace warden::coordinator {

namespace {
constexpr std::uint8_t kProposalFormat = 3;  // 2: without deadlineMs
}

std::string encodeProposal(const Proposal& p) {
  Encoder out;
  out.u8(kProposalFormat);
  out.varint(p.origin);
  out.fixed64(p.incarnation);
  out.varint(p.requestId);
  out.varint(p.timestampMs);
  out.varint(p.deadlineMs);
  out.bytes(p.command);
  return out.take();
}

Proposal decodeProposal(std::string_view bytes) {
  Decoder in(bytes);
  const std::uint8_t format = in.u8();
  if (format != kProposalFormat && format != 2) throw DecodeError("unknown proposal format");
  Proposal p;
  p.origin = in.varint();
  p.incarnation = in.fixed64();
  p.requestId = in.varint();
  p.timestampMs = in.varint();
  if (format == kProposalFormat) p.deadlineMs = in.varint();
  p.command = std::string(in.bytes());
  in.expectDone();
  return p;
}

}  // namespace warden::coordinator
