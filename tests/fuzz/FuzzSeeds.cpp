// Writes the binary seed corpora of the fuzz targets, made with the real encoders so that each
// seed is a frame or a record Warden itself would produce:
//   fuzz_seeds DIR   writes DIR/record/* and DIR/peer_frame/* (DIR is usually tests/fuzz/corpus)
// The text corpora (url, json_codec, router) are written by hand.

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <string>

#include "coordinator/Bytes.h"
#include "coordinator/Command.h"
#include "coordinator/Entry.h"
#include "coordinator/NodeRecord.h"
#include "coordinator/Proposal.h"
#include "coordinator/node/Frames.h"
#include "coordinator/paxos/MessageCodec.h"
#include "coordinator/transport/PeerTransport.h"
#include "session/SessionTable.h"

namespace {

using namespace warden::coordinator;
namespace fs = std::filesystem;

void write(const fs::path& dir, const std::string& name, const std::string& bytes) {
  fs::create_directories(dir);
  std::ofstream(dir / name, std::ios::binary) << bytes;
}

std::string byte(unsigned value) { return std::string(1, static_cast<char>(value)); }

Op createOp() {
  Op op;
  op.type = OpType::Create;
  op.path = "/app/config";
  op.data = "{\"replicas\": 3}";
  op.makeParents = true;
  return op;
}

Op lockOp() {
  Op op;
  op.type = OpType::Create;
  op.path = "/locks/job/lock-";
  op.ephemeral = true;
  op.sequential = true;
  op.session = 0x1f2e3d4c5b6a7988;
  return op;
}

Op setOp() {
  Op op;
  op.type = OpType::Set;
  op.path = "/app/config";
  op.data = std::string("bin\0ary\xff", 8);
  op.version = 4;
  return op;
}

Op deleteOp() {
  Op op;
  op.type = OpType::Delete;
  op.path = "/app";
  op.recursive = true;
  return op;
}

Command sessionCreate() {
  Command c = sessionCommand(CommandType::SessionCreate, 0x1f2e3d4c5b6a7988);
  c.ttlMs = 10'000;
  c.name = "worker-7";
  return c;
}

std::string encoded(const Command& command) {
  Encoder out;
  encodeCommand(out, command);
  return out.take();
}

std::string proposal(std::uint64_t origin, std::uint64_t request, const Command& command, std::uint64_t stamp = 0) {
  Proposal p;
  p.origin = origin;
  p.incarnation = 0x9e3779b97f4a7c15;
  p.requestId = request;
  p.timestampMs = stamp;
  p.command = encoded(command);
  return encodeProposal(p);
}

void records(const fs::path& dir) {
  NodeRecord config{{4, 0, 12, 30, 1'700'000'000'000, 1'700'000'050'000, 0, 0, 0}, 0, "{\"replicas\": 3}"};
  write(dir, "node_record_data", byte(0) + encodeNodeRecord(config));
  NodeRecord parent{{0, 7, 3, 3, 1'700'000'000'000, 1'700'000'000'000, 0, 2, 5}, 5, ""};
  write(dir, "node_record_parent", byte(0) + encodeNodeRecord(parent));
  NodeRecord lock{{0, 0, 40, 40, 1'700'000'100'000, 1'700'000'100'000, 0x1f2e3d4c5b6a7988, 0, 0}, 0, ""};
  write(dir, "node_record_ephemeral", byte(0) + encodeNodeRecord(lock));

  write(dir, "entry_txn", byte(1) + encodeEntry(Entry{7, 1'700'000'000'000, {txnCommand({createOp(), setOp()})}}));
  write(dir, "entry_sessions",
        byte(1) + encodeEntry(Entry{8, 1'700'000'000'123,
                                    {sessionCreate(), txnCommand({lockOp()}),
                                     expireCommand(0x1f2e3d4c5b6a7988, SessionEpoch{{3, 2}, 1})}}));
  write(dir, "entry_epoch", byte(1) + encodeEntry(Entry{9, 1'700'000'000'500, {epochCommand(SessionEpoch{{4, 1}, 0})}}));

  write(dir, "command_txn", byte(2) + encoded(txnCommand({createOp(), lockOp(), setOp(), deleteOp()})));
  write(dir, "command_session_close", byte(2) + encoded(sessionCommand(CommandType::SessionClose, 77)));

  write(dir, "proposal_set", byte(3) + proposal(2, 17, txnCommand({setOp()}), 1'700'000'000'000));
  write(dir, "proposal_unstamped", byte(3) + proposal(3, 1, sessionCreate()));

  write(dir, "session_record",
        byte(4) + warden::session::encodeSessionRecord({10'000, "worker-7", 40, 1'700'000'100'000}));

  Encoder promised;
  paxos::encodeBallot(promised, {3, 2});
  write(dir, "promised_ballot", byte(5) + promised.data());

  Encoder accepted;
  paxos::encodeBallot(accepted, {3, 2});
  paxos::encodeValue(accepted, paxos::Value{false, {proposal(2, 17, txnCommand({setOp()})), proposal(1, 4, sessionCreate())}});
  write(dir, "accepted_value", byte(6) + accepted.data());
  Encoder noop;
  paxos::encodeBallot(noop, {4, 1});
  paxos::encodeValue(noop, paxos::Value::makeNoop());
  write(dir, "accepted_noop", byte(6) + noop.data());
}

std::string paxosFrame(paxos::Payload payload) {
  return node::frame(node::Frame::Paxos, paxos::encodeMessage(paxos::Message{2, 1, std::move(payload)}));
}

void peerFrames(const fs::path& dir) {
  const std::string from2 = byte(0);  // the target's first byte: 0 is node 2, 1 is node 3
  const paxos::Value value{false, {proposal(2, 17, txnCommand({setOp()}))}};

  write(dir, "hello", from2 + transport::encodeHello(2, "127.0.0.1:7002"));
  write(dir, "paxos_prepare", from2 + paxosFrame(paxos::Prepare{{5, 2}, 12}));
  write(dir, "paxos_promise",
        from2 + paxosFrame(paxos::Promise{{5, 2}, true, false, {5, 2}, {{12, {4, 3}, value, true}}, 10, false}));
  write(dir, "paxos_accept", from2 + paxosFrame(paxos::Accept{{5, 2}, 13, value, 12, 123'456}));
  write(dir, "paxos_accepted", from2 + paxosFrame(paxos::Accepted{{5, 2}, 13, false, {6, 3}, 123'456}));
  write(dir, "paxos_heartbeat", from2 + paxosFrame(paxos::Heartbeat{{5, 2}, 12, 14, 123'789}));
  write(dir, "paxos_heartbeat_reply", from2 + paxosFrame(paxos::HeartbeatReply{{5, 2}, true, {5, 2}, 123'789, 11}));
  write(dir, "paxos_catchup_request", from2 + paxosFrame(paxos::CatchupRequest{9, 0x5555}));
  write(dir, "paxos_catchup_reply",
        from2 + paxosFrame(paxos::CatchupReply{{{9, value}, {10, paxos::Value::makeNoop()}}, false, 4, 0x5555, {5, 2}, 14, {5, 2}}));
  write(dir, "paxos_prevote", from2 + paxosFrame(paxos::PreVote{{6, 2}}));
  write(dir, "paxos_prevote_reply", from2 + paxosFrame(paxos::PreVoteReply{{6, 2}, true}));

  const std::vector<std::string> proposals{proposal(2, 17, txnCommand({setOp()})), proposal(2, 18, sessionCreate())};
  write(dir, "forward", from2 + node::proposalsFrames(node::Frame::Forward, proposals).front());
  write(dir, "forward_rejected", from2 + node::proposalsFrames(node::Frame::ForwardRejected, proposals).front());

  Encoder readIndex;
  readIndex.fixed64(0x9e3779b97f4a7c15);
  readIndex.varint(42);
  write(dir, "read_index_request", from2 + node::frame(node::Frame::ReadIndexRequest, readIndex.data()));
  readIndex.boolean(true);
  readIndex.varint(12);
  write(dir, "read_index_reply", from2 + node::frame(node::Frame::ReadIndexReply, readIndex.data()));

  Encoder probe;
  probe.fixed64(0x9e3779b97f4a7c15);
  write(dir, "probe", from2 + node::frame(node::Frame::Probe, probe.data()));
  probe.boolean(true);
  write(dir, "probe_reply", from2 + node::frame(node::Frame::ProbeReply, probe.data()));

  Encoder keepalives;
  keepalives.fixed64(0x9e3779b97f4a7c15);
  keepalives.varint(2);
  for (std::uint64_t id : {7, 8}) {
    keepalives.varint(id);
    keepalives.varint(0x1f2e3d4c5b6a7988 + id);
  }
  write(dir, "keepalive_request", from2 + node::frame(node::Frame::KeepaliveRequest, keepalives.data()));
  Encoder answers;
  answers.fixed64(0x9e3779b97f4a7c15);
  answers.varint(2);
  answers.varint(7);
  answers.u8(static_cast<std::uint8_t>(node::KeepaliveAnswer::Alive));
  answers.varint(10'000);
  answers.varint(8);
  answers.u8(static_cast<std::uint8_t>(node::KeepaliveAnswer::AskAgain));
  answers.varint(0);
  write(dir, "keepalive_reply", from2 + node::frame(node::Frame::KeepaliveReply, answers.data()));

  Encoder chunk;
  chunk.varint(3);   // stream id
  chunk.varint(0);   // chunk
  chunk.boolean(false);
  chunk.varint(120);  // applied
  chunk.varint(1);
  chunk.u8(0);
  chunk.bytes("/app");
  chunk.bytes(encodeNodeRecord(NodeRecord{{1, 0, 5, 9, 1, 2, 0, 0, 0}, 0, "x"}));
  write(dir, "snapshot_chunk", from2 + node::frame(node::Frame::SnapshotChunk, chunk.data()));
  Encoder ack;
  ack.varint(3);
  ack.varint(0);
  write(dir, "snapshot_ack", from2 + node::frame(node::Frame::SnapshotAck, ack.data()));
}

}  // namespace

int main(int argc, char** argv) {
  if (argc != 2) {
    std::fprintf(stderr, "usage: fuzz_seeds DIR   (writes DIR/record and DIR/peer_frame)\n");
    return 2;
  }
  const fs::path root = argv[1];
  records(root / "record");
  peerFrames(root / "peer_frame");
  return 0;
}
