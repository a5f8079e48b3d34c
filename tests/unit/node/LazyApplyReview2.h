#pragma once
// Helpers of the review-5 and review-6 schedules (LazyApplyReviewTest.cpp, LazyApplyReview2Test.cpp,
// LazyApplyReview2HistoryTest.cpp): a 3-node net whose applies commit only when the code forces
// them, and writes and reads driven through it.

#include <catch2/catch.hpp>

#include <optional>

#include "tests/unit/node/NodeNetHelpers.h"

namespace warden::tests::node::review6 {

namespace wire = warden::coordinator::node;

constexpr std::uint64_t kNeverUs = 3'600'000'000;  // an hour: only forced commits happen

inline bool visible(NodeNet& net, NodeId id, const std::string& path) {
  return net.read(id, [&](const StateMachine& sm, auto& txn) { return sm.tree().get(txn, path).has_value(); });
}

inline std::optional<Stat> statOf(NodeNet& net, NodeId id, const std::string& path) {
  return net.read(id, [&](const StateMachine& sm, auto& txn) -> std::optional<Stat> {
    auto record = sm.tree().get(txn, path);
    if (!record) return std::nullopt;
    return record->stat;
  });
}

inline std::uint64_t committedApplied(NodeNet& net, NodeId id) {
  return net.read(id, [](const StateMachine& sm, auto& txn) { return sm.appliedIndex(txn); });
}

inline bool sessionCommitted(NodeNet& net, NodeId id, std::uint64_t session) {
  return net.read(id, [&](const StateMachine& sm, auto& txn) { return sm.sessions().get(txn, session).has_value(); });
}

inline NodeNet lazyNet(std::uint64_t delayUs = kNeverUs, NodeNet::Tune more = {}) {
  return NodeNet(3, {}, [=](NodeId id, ClusterOptions& o) {
    o.applyCommitDelayUs = delayUs;
    if (more) more(id, o);
  });
}

// Submits `command` at `at`, answered as soon as applied; runs until answered.
inline CommandResult submitApplied(NodeNet& net, NodeId at, Command command, const std::vector<NodeId>& ticking = {1, 2, 3},
                            const NodeNet::Filter& deliver = all, const NodeNet::Filter& drop = none) {
  std::optional<CommandResult> result;
  net.core(at).submit(std::move(command), [&](CommandResult r) { result = std::move(r); }, AnswerWhen::Applied);
  net.runUntil(ticking, deliver, [&] { return result.has_value(); }, drop);
  REQUIRE(result);
  return *result;
}

// The same, answered once visible (what locks, elections and sessions use).
inline CommandResult submitVisible(NodeNet& net, NodeId at, Command command, const std::vector<NodeId>& ticking = {1, 2, 3}) {
  std::optional<CommandResult> result;
  net.core(at).submit(std::move(command), [&](CommandResult r) { result = std::move(r); });
  net.runUntil(ticking, all, [&] { return result.has_value(); });
  REQUIRE(result);
  return *result;
}

// A read barrier at `at`, begun now; whether the state it releases holds `path`.
inline std::optional<bool> readSees(NodeNet& net, NodeId at, const std::string& path,
                             const std::vector<NodeId>& ticking = {1, 2, 3}) {
  std::optional<bool> seen;
  net.core(at).readBarrier([&](Status s) {
    if (s == Status::Ok) seen = visible(net, at, path);
  });
  net.runUntil(ticking, all, [&] { return seen.has_value(); }, none, 300);
  return seen;
}

inline bool readIndexRequest(const Frame& f) { return f.isKind(wire::Frame::ReadIndexRequest); }
inline bool readIndexReply(const Frame& f) { return f.isKind(wire::Frame::ReadIndexReply); }

}  // namespace warden::tests::node::review6
