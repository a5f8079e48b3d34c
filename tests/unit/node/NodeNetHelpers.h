#pragma once
// Small steps and looks shared by the NodeNet scenario tests.

#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <string>
#include <string_view>

#include "coordinator/Bytes.h"
#include "tests/unit/StoreFixture.h"
#include "tests/unit/node/NodeNet.h"

namespace warden::tests::node {

// A one-op transaction creating `path` with `dataBytes` bytes of data (the rebuild scenarios
// give each node 40, so that a snapshot of a few hundred of them takes several chunks).
inline Command createCommand(const std::string& path, std::size_t dataBytes = 0) {
  return txnCommand({warden::tests::createOp(path, std::string(dataBytes, 'x'))});
}

inline bool isChunkTo(const Frame& f, NodeId to) { return f.isKind(coordinator::node::Frame::SnapshotChunk) && f.to == to; }
inline bool isAckFrom(const Frame& f, NodeId from) { return f.isKind(coordinator::node::Frame::SnapshotAck) && f.from == from; }

// The stream id of a snapshot frame (its first field, after the kind byte).
inline std::uint64_t streamOf(const Frame& f) {
  warden::coordinator::Decoder in(std::string_view(f.bytes).substr(1));
  return in.varint();
}

// Lets every member start, then runs `leader` alone until it leads and serves sessions.
inline void elect(NodeNet& net, NodeId leader) {
  net.runUntil({1, 2, 3}, all, [&] { return net.replica(1) && net.replica(2) && net.replica(3); }, none, 20);
  REQUIRE(net.replica(1));
  net.runUntil({leader}, all, [&] { return net.leads(leader) && net.core(leader).servesSessions(); });
  REQUIRE(net.core(leader).servesSessions());
}

// How many of a node's log lines contain `needle`.
inline std::size_t count(NodeNet& net, NodeId id, const std::string& needle) {
  std::size_t n = 0;
  for (const auto& line : net.logs[id]) n += line.find(needle) != std::string::npos;
  return n;
}

inline bool installing(NodeNet& net, NodeId id) {
  return net.read(id, [](const StateMachine& sm, auto& txn) { return sm.installing(txn); });
}

inline std::uint64_t revisionOf(NodeNet& net, NodeId id) {
  return net.read(id, [](const StateMachine& sm, auto& txn) { return sm.revision(txn); });
}

// Whether a node's applied state holds `path`.
inline bool has(NodeNet& net, NodeId id, const std::string& path) {
  return net.read(id, [&](const StateMachine& sm, auto& txn) { return sm.tree().get(txn, path).has_value(); });
}

}  // namespace warden::tests::node
