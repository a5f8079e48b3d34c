#pragma once
// A node's view of its cluster, for /v1/status, /readyz and /metrics.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace warden::coordinator {

struct MemberView {
  std::uint64_t id = 0;
  std::string peer;                 // its peer address
  std::optional<std::string> http;  // what it advertises over the peer link; empty until known
  bool leader = false;
  bool healthy = false;  // this node heard from it recently (itself: always)
};

struct ClusterView {
  std::uint64_t id = 0;
  std::optional<std::uint64_t> leader;
  std::uint64_t commitIndex = 0;
  std::uint64_t appliedIndex = 0;     // committed: what reads see
  std::uint64_t appliedPending = 0;   // applied here, an apply not yet committed included
  bool learner = false;  // rebuilding after a wiped disk
  std::string ballot;    // the highest ballot this node promised, "round.node" (a leader's own); empty: none
  std::vector<MemberView> members;
};

}  // namespace warden::coordinator
