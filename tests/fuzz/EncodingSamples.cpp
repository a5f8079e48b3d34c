// The encodings Warden itself produces, one sample of each kind, made with the real encoders:
// the fuzz targets' binary seeds (fuzz_seeds writes them) and the bytes the encoding version
// is pinned to (tests/unit/EncodingVersionTest.cpp).

#include "tests/fuzz/EncodingSamples.h"

#include "coordinator/Bytes.h"
#include "coordinator/Command.h"
#include "coordinator/Entry.h"
#include "coordinator/NodeRecord.h"
#include "coordinator/Proposal.h"
#include "coordinator/node/Frames.h"
#include "coordinator/paxos/MessageCodec.h"
#include "coordinator/transport/PeerTransport.h"
#include "session/SessionTable.h"

namespace warden::tests {

namespace {

using namespace coordinator;
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

// A lock or election command as the HTTP edge makes them (locks/LockQueue.h), with the
// node's limits stamped; keyed ones carry the client's Idempotency-Key.
Command lockCommand(CommandType type, std::string key = {}) {
  Command c;
  c.type = type;
  c.session = type == CommandType::LockDelayEnd ? 0 : 0x1f2e3d4c5b6a7988;
  c.name = isElectionCommand(type) ? "primary" : "nightly-job";
  c.text = type == CommandType::LockAcquire ? "worker-7 pid 4242" : type == CommandType::ElectionProclaim ? "10.0.0.7:8080" : "";
  c.token = type == CommandType::LockAcquire ? 5'000 : type == CommandType::LockDelayEnd ? 77 : 41;
  c.shared = type == CommandType::LockAcquire;
  c.maxNodes = 10'000;
  c.quotaBytes = std::uint64_t{2} << 30;
  c.idempotencyKey = std::move(key);
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

void records(std::vector<Sample>& out) {
  auto add = [&out](std::string name, std::string bytes) { out.push_back({std::move(name), std::move(bytes)}); };
  NodeRecord config{{4, 0, 12, 30, 1'700'000'000'000, 1'700'000'050'000, 0, 0, 0}, 0, "{\"replicas\": 3}"};
  add("node_record_data", byte(0) + encodeNodeRecord(config));
  NodeRecord parent{{0, 7, 3, 3, 1'700'000'000'000, 1'700'000'000'000, 0, 2, 5}, 5, ""};
  add("node_record_parent", byte(0) + encodeNodeRecord(parent));
  NodeRecord lock{{0, 0, 40, 40, 1'700'000'100'000, 1'700'000'100'000, 0x1f2e3d4c5b6a7988, 0, 0}, 0, ""};
  add("node_record_ephemeral", byte(0) + encodeNodeRecord(lock));

  add("entry_txn", byte(1) + encodeEntry(Entry{7, 1'700'000'000'000, {txnCommand({createOp(), setOp()})}}));
  add("entry_sessions",
        byte(1) + encodeEntry(Entry{8, 1'700'000'000'123,
                                    {sessionCreate(), txnCommand({lockOp()}),
                                     expireCommand(0x1f2e3d4c5b6a7988, SessionEpoch{{3, 2}, 1})}}));
  add("entry_epoch", byte(1) + encodeEntry(Entry{9, 1'700'000'000'500, {epochCommand(SessionEpoch{{4, 1}, 0})}}));

  add("command_txn", byte(2) + encoded(txnCommand({createOp(), lockOp(), setOp(), deleteOp()})));
  add("command_session_close", byte(2) + encoded(sessionCommand(CommandType::SessionClose, 77)));
  // Every other command type, and the keyed forms (each its own wire type or mark).
  Command limited = txnCommand({createOp()});
  limited.maxNodes = 10'000;
  limited.quotaBytes = std::uint64_t{2} << 30;
  add("command_txn_limited", byte(2) + encoded(limited));
  limited.idempotencyKey = "deploy-42";
  add("command_txn_keyed", byte(2) + encoded(limited));
  Command keyedCreate = sessionCreate();
  keyedCreate.idempotencyKey = "open-7";
  add("command_session_create_keyed", byte(2) + encoded(keyedCreate));
  Command keyedClose = sessionCommand(CommandType::SessionClose, 77);
  keyedClose.idempotencyKey = "close-7";
  add("command_session_close_keyed", byte(2) + encoded(keyedClose));
  add("command_session_expire", byte(2) + encoded(expireCommand(0x1f2e3d4c5b6a7988, SessionEpoch{{3, 2}, 1})));
  add("command_session_epoch", byte(2) + encoded(epochCommand(SessionEpoch{{4, 1}, 2})));
  add("command_tick", byte(2) + encoded(tickCommand()));
  const std::pair<CommandType, const char*> locks[] = {
      {CommandType::LockAcquire, "lock_acquire"},          {CommandType::LockRelease, "lock_release"},
      {CommandType::LockWithdraw, "lock_withdraw"},        {CommandType::LockDelayEnd, "lock_delay_end"},
      {CommandType::ElectionCampaign, "election_campaign"}, {CommandType::ElectionProclaim, "election_proclaim"},
      {CommandType::ElectionResign, "election_resign"}};
  for (const auto& [type, name] : locks) {
    add(std::string("command_") + name, byte(2) + encoded(lockCommand(type)));
    add(std::string("command_") + name + "_keyed", byte(2) + encoded(lockCommand(type, "retry-" + std::string(name))));
  }
  add("proposal_lock_acquire", byte(3) + proposal(2, 19, lockCommand(CommandType::LockAcquire), 1'700'000'000'000));
  add("entry_locks", byte(1) + encodeEntry(Entry{10, 1'700'000'001'000,
                                                 {lockCommand(CommandType::LockAcquire),
                                                  lockCommand(CommandType::ElectionProclaim, "proclaim-1"),
                                                  lockCommand(CommandType::LockDelayEnd)}}));

  add("proposal_set", byte(3) + proposal(2, 17, txnCommand({setOp()}), 1'700'000'000'000));
  add("proposal_unstamped", byte(3) + proposal(3, 1, sessionCreate()));

  add("session_record",
        byte(4) + warden::session::encodeSessionRecord({10'000, "worker-7", 40, 1'700'000'100'000}));

  Encoder promised;
  paxos::encodeBallot(promised, {3, 2});
  add("promised_ballot", byte(5) + promised.data());

  Encoder accepted;
  paxos::encodeBallot(accepted, {3, 2});
  paxos::encodeValue(accepted, paxos::Value{false, {proposal(2, 17, txnCommand({setOp()})), proposal(1, 4, sessionCreate())}});
  add("accepted_value", byte(6) + accepted.data());
  Encoder noop;
  paxos::encodeBallot(noop, {4, 1});
  paxos::encodeValue(noop, paxos::Value::makeNoop());
  add("accepted_noop", byte(6) + noop.data());
}

std::string paxosFrame(paxos::Payload payload) {
  return node::frame(node::Frame::Paxos, paxos::encodeMessage(paxos::Message{2, 1, std::move(payload)}));
}

void peerFrames(std::vector<Sample>& out) {
  auto add = [&out](std::string name, std::string bytes) { out.push_back({std::move(name), std::move(bytes)}); };
  const std::string from2 = byte(0);  // the target's first byte: 0 is node 2, 1 is node 3
  const paxos::Value value{false, {proposal(2, 17, txnCommand({setOp()}))}};

  add("hello", from2 + transport::encodeHello(2, "127.0.0.1:7002"));
  add("paxos_prepare", from2 + paxosFrame(paxos::Prepare{{5, 2}, 12}));
  add("paxos_promise",
        from2 + paxosFrame(paxos::Promise{{5, 2}, true, false, {5, 2}, {{12, {4, 3}, value, true}}, 10, false}));
  add("paxos_accept", from2 + paxosFrame(paxos::Accept{{5, 2}, 13, value, 12, 123'456}));
  add("paxos_accepted", from2 + paxosFrame(paxos::Accepted{{5, 2}, 13, false, {6, 3}, 123'456}));
  add("paxos_heartbeat", from2 + paxosFrame(paxos::Heartbeat{{5, 2}, 12, 14, 123'789}));
  add("paxos_heartbeat_reply", from2 + paxosFrame(paxos::HeartbeatReply{{5, 2}, true, {5, 2}, 123'789, 11}));
  add("paxos_catchup_request", from2 + paxosFrame(paxos::CatchupRequest{9, 0x5555}));
  add("paxos_catchup_reply",
        from2 + paxosFrame(paxos::CatchupReply{{{9, value}, {10, paxos::Value::makeNoop()}}, false, 4, 0x5555, {5, 2}, 14, {5, 2}}));
  add("paxos_prevote", from2 + paxosFrame(paxos::PreVote{{6, 2}}));
  add("paxos_prevote_reply", from2 + paxosFrame(paxos::PreVoteReply{{6, 2}, true}));

  const std::vector<std::string> proposals{proposal(2, 17, txnCommand({setOp()})), proposal(2, 18, sessionCreate())};
  add("forward", from2 + node::proposalsFrames(node::Frame::Forward, proposals).front());
  add("forward_rejected", from2 + node::proposalsFrames(node::Frame::ForwardRejected, proposals).front());

  Encoder readIndex;
  readIndex.fixed64(0x9e3779b97f4a7c15);
  readIndex.varint(42);
  add("read_index_request", from2 + node::frame(node::Frame::ReadIndexRequest, readIndex.data()));
  readIndex.boolean(true);
  readIndex.varint(12);
  add("read_index_reply", from2 + node::frame(node::Frame::ReadIndexReply, readIndex.data()));

  Encoder probe;
  probe.fixed64(0x9e3779b97f4a7c15);
  add("probe", from2 + node::frame(node::Frame::Probe, probe.data()));
  probe.boolean(true);
  add("probe_reply", from2 + node::frame(node::Frame::ProbeReply, probe.data()));

  Encoder keepalives;
  keepalives.fixed64(0x9e3779b97f4a7c15);
  keepalives.varint(2);
  for (std::uint64_t id : {7, 8}) {
    keepalives.varint(id);
    keepalives.varint(0x1f2e3d4c5b6a7988 + id);
  }
  add("keepalive_request", from2 + node::frame(node::Frame::KeepaliveRequest, keepalives.data()));
  Encoder answers;
  answers.fixed64(0x9e3779b97f4a7c15);
  answers.varint(2);
  answers.varint(7);
  answers.u8(static_cast<std::uint8_t>(node::KeepaliveAnswer::Alive));
  answers.varint(10'000);
  answers.varint(8);
  answers.u8(static_cast<std::uint8_t>(node::KeepaliveAnswer::AskAgain));
  answers.varint(0);
  add("keepalive_reply", from2 + node::frame(node::Frame::KeepaliveReply, answers.data()));

  Encoder chunk;
  chunk.varint(3);   // stream id
  chunk.varint(0);   // chunk
  chunk.boolean(false);
  chunk.varint(120);  // applied
  chunk.varint(1);
  chunk.u8(0);
  chunk.bytes("/app");
  chunk.bytes(encodeNodeRecord(NodeRecord{{1, 0, 5, 9, 1, 2, 0, 0, 0}, 0, "x"}));
  add("snapshot_chunk", from2 + node::frame(node::Frame::SnapshotChunk, chunk.data()));
  Encoder ack;
  ack.varint(3);
  ack.varint(0);
  add("snapshot_ack", from2 + node::frame(node::Frame::SnapshotAck, ack.data()));
}

}  // namespace

std::vector<std::vector<Command>> stateScript() {
  constexpr std::uint64_t kOther = 0x2a2a2a2a2a2a2a2a;
  Command otherCreate = sessionCommand(CommandType::SessionCreate, kOther);
  otherCreate.ttlMs = 20'000;
  otherCreate.idempotencyKey = "open-2a";
  Command limited = txnCommand({createOp(), [] {
                                  Op op = createOp();
                                  op.path = "/app/other";
                                  return op;
                                }()});
  limited.maxNodes = 10'000;
  limited.quotaBytes = std::uint64_t{2} << 30;
  limited.idempotencyKey = "deploy-42";
  Command otherAcquire = lockCommand(CommandType::LockAcquire, "acquire-2a");
  otherAcquire.session = kOther;
  otherAcquire.shared = false;
  Command otherWithdraw = lockCommand(CommandType::LockWithdraw);
  otherWithdraw.session = kOther;
  otherWithdraw.token = 0;
  Op parent = createOp();
  parent.path = "/locks/job";
  parent.data.clear();
  Command keyedClose = sessionCommand(CommandType::SessionClose, 0x1f2e3d4c5b6a7988);
  keyedClose.idempotencyKey = "close-7";
  return {
      {sessionCreate(), otherCreate},
      {limited, txnCommand({parent}), txnCommand({lockOp()}), txnCommand({setOp()})},  // the set fails: version 4 expected
      {lockCommand(CommandType::LockAcquire), otherAcquire, lockCommand(CommandType::LockRelease, "release-1")},
      {otherWithdraw, lockCommand(CommandType::ElectionCampaign),
       lockCommand(CommandType::ElectionProclaim, "proclaim-1"), lockCommand(CommandType::ElectionResign, "resign-1")},
      {lockCommand(CommandType::LockDelayEnd), tickCommand(), epochCommand(SessionEpoch{{4, 1}, 0})},
      {expireCommand(kOther, SessionEpoch{{4, 1}, 0}), keyedClose, txnCommand({deleteOp()})},
  };
}

std::vector<paxos::Record> acceptorRecords() {
  const paxos::Value value{false, {proposal(2, 17, txnCommand({setOp()}), 1'700'000'000'000),
                                   proposal(1, 4, lockCommand(CommandType::LockAcquire, "acquire-1"))}};
  return {paxos::PromiseRecord{{5, 2}}, paxos::AcceptRecord{12, {5, 2}, value},
          paxos::AcceptRecord{13, {5, 2}, paxos::Value::makeNoop()}, paxos::CompactRecord{9},
          paxos::LearnerRecord{true}, paxos::LearnerRecord{false}};
}

std::vector<Sample> recordSamples() {
  std::vector<Sample> out;
  records(out);
  return out;
}

std::vector<Sample> peerFrameSamples() {
  std::vector<Sample> out;
  peerFrames(out);
  return out;
}

}  // namespace warden::tests
