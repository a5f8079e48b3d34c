#pragma once
// The vocabulary of the Paxos core: ballots, slots, values, and time as the core sees it.

#include <compare>
#include <cstdint>
#include <string>
#include <vector>

namespace warden::coordinator::paxos {

using NodeId = std::uint64_t;
using Slot = std::uint64_t;  // log position, from 1; 0 means "none"
// Microseconds on the calling replica's own monotonic clock. The core never reads a clock.
using Time = std::uint64_t;

// A ballot (round, node): totally ordered, round first. Each node only makes ballots with its
// own id, so two proposers never share one. {0, 0} is below every real ballot.
struct Ballot {
  std::uint64_t round = 0;
  NodeId node = 0;

  auto operator<=>(const Ballot&) const = default;
  bool isZero() const { return round == 0 && node == 0; }
};

// What one slot carries: a batch of opaque commands, or a no-op that fills a gap.
struct Value {
  bool noop = false;
  std::vector<std::string> commands;

  static Value makeNoop() { return Value{true, {}}; }
  bool operator==(const Value&) const = default;
};

std::string toString(const Ballot& ballot);

// Roughly what a value weighs on the wire: its commands and a little framing each.
std::size_t wireSize(const Value& value);

}  // namespace warden::coordinator::paxos
