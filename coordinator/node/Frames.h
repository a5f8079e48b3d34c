#pragma once
// The node's frames on the peer link: one kind byte, then the body. Paxos messages ride in
// Frame::Paxos; the rest is the node's own traffic around the replica. Every id that matches a
// reply to a request travels with the asking process's incarnation (PAXOS.md 5b).

#include <cstdint>
#include <string>
#include <vector>

#include "coordinator/Bytes.h"

namespace warden::coordinator::node {

enum class Frame : std::uint8_t {
  Paxos = 1,
  Forward = 2,           // proposals for the leader
  ReadIndexRequest = 3,  // incarnation, id: "confirm you lead and tell me what to apply before I read"
  ReadIndexReply = 4,    // incarnation, id, ok, index
  ForwardRejected = 5,   // proposals the addressee could not take: the sender tries elsewhere
  Probe = 6,             // nonce: "has this cluster any history?", from a node with an empty disk
  ProbeReply = 7,        // nonce, history
  SnapshotChunk = 8,     // part of the whole state, for a peer behind the compacted log
  KeepaliveRequest = 9,  // incarnation, then a follower's keepalives of one turn, for the leader
  KeepaliveReply = 10,   // incarnation, then the leader's answers
  SnapshotAck = 11,      // id, chunk: the receiver staged it; flow control for the sender
  Ping = 12,             // nothing: "I am alive", to a peer this node sent nothing else to lately
};

// A leader's answer to one relayed keepalive.
enum class KeepaliveAnswer : std::uint8_t { Alive = 0, NotFound = 1, AskAgain = 2 };

std::string frame(Frame kind, const std::string& body = {});
// Proposals in frames of at most about maxBytes each (one proposal at least), so that a backlog
// of large writes never makes a frame the receiver would refuse.
std::vector<std::string> proposalsFrames(Frame kind, const std::vector<std::string>& proposals,
                                         std::size_t maxBytes = 4u << 20);
// Throws DecodeError on a count larger than the frame.
std::vector<std::string> decodeProposals(Decoder& in, std::size_t size);

}  // namespace warden::coordinator::node
