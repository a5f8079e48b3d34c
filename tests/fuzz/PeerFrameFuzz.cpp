// Fuzzes what a node decodes from its peers: the connection hello (coordinator/transport), the
// node's frames (coordinator/node/Frames) and the Paxos messages inside them
// (coordinator/paxos/MessageCodec). The first input byte picks the sending peer (node 2 or 3 of a
// 3-node cluster whose node 1 is under test); the rest is one frame as PeerTransport hands it
// over. The only acceptable refusal is a DecodeError; and:
//   - a Paxos message, a batch of forwarded proposals and a hello that decode re-encode to bytes
//     that decode to the same thing and re-encode identically;
//   - node 1's NodeCore takes the frame (peerFrame, then endTurn) without crashing or throwing.
//
// The NodeCore gets every frame kind except Paxos and SnapshotChunk: those carry what a peer
// claims was accepted, chosen or applied, and Paxos tolerates peers that crash, not peers that
// lie, so made-up contents there would only show that a lying peer can corrupt a node. Their
// decoding is covered above. Each input gets a fresh NodeCore (a follower with a started
// acceptor) over one LMDB store the frames it gets cannot change, so a finding replays alone.

#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>

#include "coordinator/Bytes.h"
#include "coordinator/StateMachine.h"
#include "coordinator/paxos/Ready.h"
#include "coordinator/node/Frames.h"
#include "coordinator/node/NodeCore.h"
#include "coordinator/paxos/MessageCodec.h"
#include "coordinator/paxos/Ready.h"
#include "coordinator/storage/Lmdb.h"
#include "coordinator/transport/PeerTransport.h"
#include "tests/TempDir.h"
#include "tests/fuzz/FuzzCheck.h"

namespace {

using namespace warden::coordinator;
using warden::tests::fuzz::printable;

void checkPaxos(std::string_view body) {
  std::string once;
  try {
    once = paxos::encodeMessage(paxos::decodeMessage(body));
  } catch (const DecodeError&) {
    return;
  }
  FUZZ_CHECK(paxos::encodeMessage(paxos::decodeMessage(once)) == once,
             "a Paxos message re-encodes differently: " + printable(body));
}

void checkProposals(node::Frame kind, std::string_view body) {
  std::vector<std::string> proposals;
  try {
    Decoder in(body);
    proposals = node::decodeProposals(in, body.size());
    in.expectDone();  // as the node reads it: the batch is the whole frame
  } catch (const DecodeError&) {
    return;
  }
  if (proposals.empty()) return;  // proposalsFrames makes no frame for no proposals
  const auto frames = node::proposalsFrames(kind, proposals, SIZE_MAX);
  FUZZ_CHECK(frames.size() == 1 && frames[0][0] == static_cast<char>(kind), "proposalsFrames split a batch");
  Decoder again(std::string_view(frames[0]).substr(1));
  FUZZ_CHECK(node::decodeProposals(again, frames[0].size()) == proposals && again.done(),
             "forwarded proposals change through encode/decode: " + printable(body));
}

void checkHello(const std::string& body) {
  paxos::NodeId from = 0;
  std::string http;
  std::uint32_t version = 0;
  if (!transport::decodeHello(body, from, http, version)) return;
  paxos::NodeId from2 = 0;
  std::string http2;
  std::uint32_t version2 = 0;
  FUZZ_CHECK(transport::decodeHello(transport::encodeHello(from, http, version), from2, http2, version2) &&
                 from2 == from && http2 == http && version2 == version,
             "a hello changes through encode/decode: " + printable(body));
}

// ---- node 1, fed one frame ----

class NullOutbox : public node::Outbox {
 public:
  void send(std::uint64_t, std::string) override {}
  bool connected(std::uint64_t) const override { return true; }
};

class FixedClock : public node::Clock {
 public:
  std::uint64_t nowUs() const override { return 1'000'000'000; }
  std::uint64_t wallMs() const override { return 1'700'000'000'000; }
};

class CountingRandom : public paxos::Random {
 public:
  std::uint64_t next() override { return state_ = state_ * 6364136223846793005ULL + 1442695040888963407ULL; }

 private:
  std::uint64_t state_ = 42;
};

// An acceptor that has started (so the replica runs at once instead of probing) and kept
// nothing else. Writes land nowhere: each input starts from this state again.
class StartedLogStore : public paxos::LogStore {
 public:
  paxos::DurableState load() override {
    paxos::DurableState state;
    state.started = true;
    return state;
  }

 protected:
  void write(const std::vector<paxos::Record>&) override {}
  void sync() override {}
};

struct Store {
  warden::tests::TempDir dir;
  storage::Env env{dir.path(), storage::EnvOptions{std::size_t{64} << 20, 16, false}};
  std::unique_ptr<StateMachine> stateMachine;

  Store() {
    storage::Txn txn = storage::Txn::write(env);
    stateMachine = std::make_unique<StateMachine>(StateMachine::openDbs(txn));
    stateMachine->initialize(txn);
    txn.commit();
  }
};

void feedNode(std::uint64_t from, const std::string& body) {
  static Store store;
  NullOutbox outbox;
  FixedClock clock;
  CountingRandom random;
  StartedLogStore log;
  node::ClusterOptions options;
  options.id = 1;
  options.members = {{1, "127.0.0.1:1"}, {2, "127.0.0.1:2"}, {3, "127.0.0.1:3"}};
  node::NodeCore core(store.env, *store.stateMachine, options,
                      node::NodeCore::Ports{outbox, clock, random, log, [](const std::string&) {}}, [](warden::coordinator::watch::Applied&) {});
  core.peerFrame(from, body);
  core.endTurn();
  core.shutdown();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (size == 0) return 0;
  const std::uint64_t from = 2 + (data[0] & 1);
  const std::string body(reinterpret_cast<const char*>(data) + 1, size - 1);
  checkHello(body);
  if (body.empty()) return 0;
  const auto kind = static_cast<node::Frame>(body[0]);
  const std::string_view rest = std::string_view(body).substr(1);
  if (kind == node::Frame::Paxos) checkPaxos(rest);
  if (kind == node::Frame::Forward || kind == node::Frame::ForwardRejected) checkProposals(kind, rest);
  if (kind != node::Frame::Paxos && kind != node::Frame::SnapshotChunk) feedNode(from, body);
  return 0;
}
