#pragma once
// One write as it travels through the replicated log: the node that received it (and will
// answer the client), that node's process incarnation and request number, the leader's
// timestamp, and the command. Request numbers restart with every process, and a log replayed
// after a restart or a wipe holds the previous process's proposals: only a matching
// incarnation (random per process) makes a chosen proposal this process's own (PAXOS.md 5b).

#include <cstdint>
#include <string>
#include <string_view>

namespace warden::coordinator {

struct ProposalHeader {
  std::uint64_t origin = 0;
  std::uint64_t incarnation = 0;
  std::uint64_t requestId = 0;
  std::uint64_t timestampMs = 0;  // 0 until the leader stamps it
  // Past this time (leader stamps, clamped never to run backwards) it is not applied: its origin
  // may have told the client so. 0: no deadline (proposals logged before deadlines existed).
  std::uint64_t deadlineMs = 0;
};

struct Proposal : ProposalHeader {
  std::string command;  // encodeCommand bytes
};

// A proposal whose command stays in the bytes it was decoded from (valid while they are): what
// every member decodes for each write it applies, without a copy of the command.
struct ProposalView : ProposalHeader {
  std::string_view command;
};

std::string encodeProposal(const Proposal& proposal);
// The same with `command` in place of proposal.command (which is not read).
std::string encodeProposal(const Proposal& proposal, std::string_view command);
Proposal decodeProposal(std::string_view bytes);  // throws DecodeError
ProposalView viewProposal(std::string_view bytes);  // throws DecodeError
// Sets the leader's stamp of an encoded proposal: the bytes encodeProposal would give for it
// decoded with timestampMs set, without copying its command. Throws DecodeError.
void stampProposal(std::string& bytes, std::uint64_t timestampMs);

}  // namespace warden::coordinator
