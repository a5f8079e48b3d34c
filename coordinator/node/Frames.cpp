#include "coordinator/node/Frames.h"

namespace warden::coordinator::node {

std::string frame(Frame kind, const std::string& body) {
  std::string out(1, static_cast<char>(kind));
  out += body;
  return out;
}

std::vector<std::string> proposalsFrames(Frame kind, const std::vector<std::string>& proposals, std::size_t maxBytes) {
  std::vector<std::string> frames;
  std::size_t begin = 0;
  while (begin < proposals.size()) {
    std::size_t end = begin, bytes = 0;
    while (end < proposals.size() && (end == begin || bytes + proposals[end].size() <= maxBytes)) {
      bytes += proposals[end++].size();
    }
    Encoder out;
    out.varint(end - begin);
    for (std::size_t i = begin; i < end; ++i) out.bytes(proposals[i]);
    frames.push_back(frame(kind, out.data()));
    begin = end;
  }
  return frames;
}

std::vector<std::string> decodeProposals(Decoder& in, std::size_t size) {
  std::uint64_t n = in.varint();
  if (n > size) throw DecodeError("too many proposals");
  std::vector<std::string> out;
  for (; n > 0; --n) out.emplace_back(in.bytes());
  return out;
}

}  // namespace warden::coordinator::node
