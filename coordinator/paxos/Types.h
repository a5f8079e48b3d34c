#pragma once
// The vocabulary of the Paxos core: ballots, slots, values, and time as the core sees it.

#include <compare>
#include <cstdint>
#include <initializer_list>
#include <memory>
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

// A slot's batch of opaque commands, shared between its copies: the leader's proposal, the
// Accepts it sends, each acceptor's vote and its record, and the chosen entry all hold one batch
// (copying it a copy per holder was a sixth of every driver's allocations). Never changed once
// shared: the writers below copy first when another holder sees it.
class Commands {
 public:
  using List = std::vector<std::string>;

  Commands() = default;
  Commands(List list) : list_(list.empty() ? nullptr : std::make_shared<List>(std::move(list))) {}
  Commands(std::initializer_list<std::string> list) : Commands(List(list)) {}

  const List& list() const { return list_ ? *list_ : none(); }
  std::size_t size() const { return list().size(); }
  bool empty() const { return list().empty(); }
  List::const_iterator begin() const { return list().begin(); }
  List::const_iterator end() const { return list().end(); }
  const std::string& operator[](std::size_t i) const { return list()[i]; }

  void reserve(std::size_t n) { own().reserve(n); }
  void push_back(std::string command) { own().push_back(std::move(command)); }
  template <typename... Args>
  std::string& emplace_back(Args&&... args) {
    return own().emplace_back(std::forward<Args>(args)...);
  }

  friend bool operator==(const Commands& a, const Commands& b) { return a.list_ == b.list_ || a.list() == b.list(); }
  friend bool operator==(const Commands& a, const List& b) { return a.list() == b; }

 private:
  static const List& none() {
    static const List none;
    return none;
  }
  // Ours alone before a change: a holder that shares it (use_count() > 1) keeps what it saw. A
  // count of one cannot grow behind our back: only a copy of this very pointer could share it.
  List& own() {
    if (!list_) {
      list_ = std::make_shared<List>();
    } else if (list_.use_count() > 1) {
      list_ = std::make_shared<List>(*list_);
    }
    return *list_;
  }

  std::shared_ptr<List> list_;
};

// What one slot carries: a batch of opaque commands, or a no-op that fills a gap.
struct Value {
  bool noop = false;
  Commands commands;

  static Value makeNoop() { return Value{true, {}}; }
  bool operator==(const Value&) const = default;
};

std::string toString(const Ballot& ballot);

// Roughly what a value weighs on the wire: its commands and a little framing each.
std::size_t wireSize(const Value& value);

}  // namespace warden::coordinator::paxos
