#include "coordinator/node/Frames.h"

namespace warden::coordinator::node {

std::string frame(Frame kind, const std::string& body) {
  std::string out(1, static_cast<char>(kind));
  out += body;
  return out;
}

std::string proposalsFrame(Frame kind, const std::vector<std::string>& proposals) {
  Encoder out;
  out.varint(proposals.size());
  for (const auto& p : proposals) out.bytes(p);
  return frame(kind, out.data());
}

std::vector<std::string> decodeProposals(Decoder& in, std::size_t size) {
  std::uint64_t n = in.varint();
  if (n > size) throw DecodeError("too many proposals");
  std::vector<std::string> out;
  for (; n > 0; --n) out.emplace_back(in.bytes());
  return out;
}

}  // namespace warden::coordinator::node
