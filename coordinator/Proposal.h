#pragma once
// One write as it travels through the replicated log: the node that received it (and will
// answer the client), that node's request number, the leader's timestamp, and the command.

#include <cstdint>
#include <string>
#include <string_view>

namespace warden::coordinator {

struct Proposal {
  std::uint64_t origin = 0;
  std::uint64_t requestId = 0;
  std::uint64_t timestampMs = 0;  // 0 until the leader stamps it
  std::string command;            // encodeCommand bytes
};

std::string encodeProposal(const Proposal& proposal);
Proposal decodeProposal(std::string_view bytes);  // throws DecodeError

}  // namespace warden::coordinator
