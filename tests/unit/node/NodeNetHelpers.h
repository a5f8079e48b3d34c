#pragma once
// Small steps and looks shared by the NodeNet scenario tests.

#include <catch2/catch.hpp>

#include <cstddef>
#include <cstdint>
#include <string>

#include "tests/unit/node/NodeNet.h"

namespace warden::tests::node {

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

}  // namespace warden::tests::node
