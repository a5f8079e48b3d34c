#include "tests/sim/Linearizability.h"

#include <algorithm>
#include <limits>
#include <map>
#include <sstream>
#include <tuple>
#include <unordered_set>
#include <utility>

namespace warden::tests::sim {

namespace {

constexpr std::uint64_t kForever = std::numeric_limits<std::uint64_t>::max();
constexpr std::size_t kNil = std::numeric_limits<std::size_t>::max();
constexpr std::size_t kMaxShownValue = 40;   // explanations stay readable with large values
constexpr std::size_t kMaxShownPending = 8;  // ...and with many concurrent ops

using ValueId = std::uint32_t;
constexpr ValueId kAbsent = 0;

std::string describeValue(const std::optional<std::string>& value) {
  if (!value) return "<absent>";
  if (value->size() <= kMaxShownValue) return "\"" + *value + "\"";
  return "\"" + value->substr(0, kMaxShownValue) + "...\"";
}

std::string describeOp(const Operation& op) {
  const bool unknown = op.outcome == Operation::Outcome::Unknown;
  std::ostringstream out;
  out << "client " << op.client << " ";
  if (op.kind == Operation::Kind::Read) out << "Read";
  if (op.kind == Operation::Kind::Write) out << (op.value ? "Write " + describeValue(op.value) : "Delete");
  if (op.kind == Operation::Kind::Cas) out << "Cas " << describeValue(op.expected) << " to " << describeValue(op.value);
  out << " [" << op.invokedAt << ", " << (unknown ? std::string("?") : std::to_string(op.returnedAt)) << "]";
  if (op.kind == Operation::Kind::Read) out << " -> " << describeValue(op.observed);
  if (op.kind == Operation::Kind::Cas && !unknown) out << " -> " << (op.casSucceeded ? "succeeded" : "failed");
  return out.str();
}

// Values are interned per key so that the memo and the search stack hold small integers, not
// strings; equal ids mean equal values, and id 0 is "absent".
class ValueTable {
 public:
  ValueId intern(const std::optional<std::string>& value) {
    if (!value) return kAbsent;
    const auto [it, inserted] = ids_.try_emplace(*value, static_cast<ValueId>(names_.size() + 1));
    if (inserted) names_.push_back(*value);
    return it->second;
  }
  std::string describe(ValueId id) const { return describeValue(id == kAbsent ? std::nullopt : std::optional(names_[id - 1])); }

 private:
  std::map<std::string, ValueId> ids_;
  std::vector<std::string> names_;
};

struct KeyOp {
  const Operation* source = nullptr;
  ValueId value = kAbsent, expected = kAbsent, observed = kAbsent;
  bool unknown = false;
  std::uint64_t returnedAt = 0;  // kForever when unknown: it may take effect at any later time
};

// The register's sequential specification: the value after `op` takes effect on `state`, or
// nullopt when what the op reported could not have happened on that state. An Unknown Cas
// reported nothing, so it is possible on any state and applies only where it would match.
std::optional<ValueId> applyOp(const KeyOp& op, ValueId state) {
  switch (op.source->kind) {
    case Operation::Kind::Read:
      if (op.observed == state) return state;
      return std::nullopt;
    case Operation::Kind::Write:
      return op.value;
    case Operation::Kind::Cas:
      if (op.unknown) return op.expected == state ? op.value : state;
      if (op.source->casSucceeded) return op.expected == state ? std::optional(op.value) : std::nullopt;
      return op.expected != state ? std::optional(state) : std::nullopt;
  }
  return std::nullopt;
}

// A memo entry: which ops have taken effect and the value they left. Two search paths reaching
// the same pair have the same futures, so the second one is pruned (Lowe's memoization).
struct MemoKey {
  std::vector<std::uint64_t> linearized;
  ValueId state = kAbsent;
  bool operator==(const MemoKey&) const = default;
};

std::uint64_t mix(std::uint64_t z) {  // SplitMix64's finalizer: every input bit reaches every output bit
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
  return z ^ (z >> 31);
}

struct MemoKeyHash {
  std::size_t operator()(const MemoKey& key) const {
    std::uint64_t h = mix(key.state + 0x9e3779b97f4a7c15ull);
    for (std::uint64_t word : key.linearized) h = mix(h + 0x9e3779b97f4a7c15ull + word);
    return static_cast<std::size_t>(h);
  }
};

// One key's search. Calls and returns, in time order, form a doubly linked list behind a head
// sentinel. Letting an op take effect unlinks its call and return ("lift"); backtracking relinks
// them in the reverse order ("unlift"), so the list always holds exactly the ops not yet placed,
// still in time order. Only a call that precedes every remaining return may be placed next, so
// the scan from the head stops at the first return: that op's deadline has come with nothing
// placeable, and the last choice on the stack is undone.
class KeySearch {
 public:
  enum class Verdict { Linearizable, Violation, Exhausted };

  KeySearch(std::vector<KeyOp> ops, ValueTable values) : ops_(std::move(ops)), values_(std::move(values)) {
    std::vector<std::tuple<std::uint64_t, bool, std::size_t>> entries;  // (time, is return, op)
    for (std::size_t i = 0; i < ops_.size(); ++i) {
      entries.emplace_back(ops_[i].source->invokedAt, false, i);
      entries.emplace_back(ops_[i].returnedAt, true, i);
    }
    std::sort(entries.begin(), entries.end());  // at equal times calls first: touching ops overlap
    nodes_.resize(entries.size() + 1);
    std::vector<std::size_t> callOf(ops_.size()), returnOf(ops_.size());
    for (std::size_t k = 0; k < entries.size(); ++k) {
      const auto [time, isReturn, op] = entries[k];
      Node& node = nodes_[k + 1];
      node.prev = k;
      node.next = k + 2 < nodes_.size() ? k + 2 : kNil;
      node.op = op;
      (isReturn ? returnOf : callOf)[op] = k + 1;
    }
    nodes_[kHead].next = entries.empty() ? kNil : 1;
    for (std::size_t i = 0; i < ops_.size(); ++i) nodes_[callOf[i]].match = returnOf[i];
    linearized_.assign((ops_.size() + 63) / 64, 0);
  }

  Verdict run(std::uint64_t maxSteps) {
    std::unordered_set<MemoKey, MemoKeyHash> memo;
    ValueId state = kAbsent;
    std::size_t cur = nodes_[kHead].next;
    for (std::uint64_t steps = 0; nodes_[kHead].next != kNil; ++steps) {
      if (steps >= maxSteps) return Verdict::Exhausted;
      const Node& node = nodes_[cur];
      if (node.match != kNil) {
        if (const std::optional<ValueId> next = applyOp(ops_[node.op], state)) {
          flip(node.op);
          if (memo.insert(MemoKey{linearized_, *next}).second) {
            stack_.push_back(Frame{cur, state});
            state = *next;
            lift(cur);
            cur = nodes_[kHead].next;
            continue;
          }
          flip(node.op);
        }
        cur = node.next;  // never kNil: the call's own return is still further on
        continue;
      }
      noteStuck(cur, state);
      if (stack_.empty()) return Verdict::Violation;
      const Frame top = stack_.back();
      stack_.pop_back();
      state = top.stateBefore;
      flip(nodes_[top.call].op);
      unlift(top.call);
      cur = nodes_[top.call].next;
    }
    return Verdict::Linearizable;
  }

  // The deepest point the search reached. The first time it is stuck there, no deeper memo entry
  // exists yet, so every pending op was refused by the register itself, not pruned.
  std::string explainStuck() const {
    if (!stuck_) return "no stuck point recorded";
    const Stuck& s = *stuck_;
    const Operation& blocked = *ops_[s.blocked].source;
    std::ostringstream out;
    out << "at most " << s.placed << " of " << ops_.size() << " ops can take effect in an order that respects real time";
    if (s.lastPlaced != kNil) out << " (the last " << describeOp(*ops_[s.lastPlaced].source) << ")";
    out << ", leaving the value " << values_.describe(s.state) << "; then " << describeOp(blocked)
        << " must take effect by " << blocked.returnedAt << " but cannot";
    if (!s.others.empty()) {
      out << ", nor can any other op pending then: ";
      for (std::size_t i = 0; i < s.others.size(); ++i) out << (i > 0 ? "; " : "") << describeOp(*ops_[s.others[i]].source);
      if (s.moreOthers > 0) out << "; and " << s.moreOthers << " more";
    }
    return out.str();
  }

 private:
  struct Node {
    std::size_t prev = kNil, next = kNil;
    std::size_t match = kNil;  // a call's return; kNil marks a return (or the head)
    std::size_t op = kNil;
  };
  struct Frame {
    std::size_t call;
    ValueId stateBefore;
  };
  struct Stuck {
    std::size_t placed = 0;
    ValueId state = kAbsent;
    std::size_t lastPlaced = kNil, blocked = kNil;  // ops
    std::vector<std::size_t> others;                // pending ops besides `blocked`, the first few
    std::size_t moreOthers = 0;
  };
  static constexpr std::size_t kHead = 0;

  void flip(std::size_t op) { linearized_[op / 64] ^= std::uint64_t{1} << (op % 64); }

  void lift(std::size_t call) {
    const Node& c = nodes_[call];
    nodes_[c.prev].next = c.next;
    nodes_[c.next].prev = c.prev;
    const Node& r = nodes_[c.match];
    nodes_[r.prev].next = r.next;
    if (r.next != kNil) nodes_[r.next].prev = r.prev;
  }

  // Relies on strict LIFO order with lift: the neighbours each node remembers are current again.
  void unlift(std::size_t call) {
    const Node& c = nodes_[call];
    const Node& r = nodes_[c.match];
    nodes_[r.prev].next = c.match;
    if (r.next != kNil) nodes_[r.next].prev = c.match;
    nodes_[c.prev].next = call;
    nodes_[c.next].prev = call;
  }

  void noteStuck(std::size_t returnNode, ValueId state) {
    if (stuck_ && stuck_->placed >= stack_.size()) return;
    Stuck s;
    s.placed = stack_.size();
    s.state = state;
    s.lastPlaced = stack_.empty() ? kNil : nodes_[stack_.back().call].op;
    s.blocked = nodes_[returnNode].op;
    for (std::size_t n = nodes_[kHead].next; n != returnNode && n != kNil; n = nodes_[n].next) {
      if (nodes_[n].match == kNil || nodes_[n].op == s.blocked) continue;
      if (s.others.size() == kMaxShownPending) ++s.moreOthers;
      if (s.others.size() < kMaxShownPending) s.others.push_back(nodes_[n].op);
    }
    stuck_ = std::move(s);
  }

  std::vector<KeyOp> ops_;
  ValueTable values_;
  std::vector<Node> nodes_;  // [0] is the head; then one call and one return per op
  std::vector<std::uint64_t> linearized_;
  std::vector<Frame> stack_;
  std::optional<Stuck> stuck_;
};

}  // namespace

CheckResult checkLinearizable(const std::vector<Operation>& history, std::uint64_t maxSteps) {
  CheckResult result;
  std::map<std::string, std::vector<const Operation*>> byKey;
  for (const Operation& op : history) {
    if (op.outcome == Operation::Outcome::Failed) continue;
    if (op.outcome == Operation::Outcome::Unknown && op.kind == Operation::Kind::Read) continue;
    if (op.outcome == Operation::Outcome::Ok && op.returnedAt < op.invokedAt) {
      result.ok = false;
      result.explanation = "malformed history (a recorder bug, not a store bug): key " + describeValue(op.key) + ": " +
                           describeOp(op) + " returns before it is invoked";
      return result;
    }
    byKey[op.key].push_back(&op);
  }
  std::size_t failedKeys = 0;
  for (const auto& [key, keyHistory] : byKey) {
    ValueTable values;
    std::vector<KeyOp> ops;
    for (const Operation* op : keyHistory) {
      KeyOp k;
      k.source = op;
      k.value = values.intern(op->value);
      k.expected = values.intern(op->expected);
      k.observed = values.intern(op->observed);
      k.unknown = op->outcome == Operation::Outcome::Unknown;
      k.returnedAt = k.unknown ? kForever : op->returnedAt;
      ops.push_back(k);
    }
    result.operations += ops.size();
    KeySearch search(std::move(ops), std::move(values));
    switch (search.run(maxSteps)) {
      case KeySearch::Verdict::Linearizable:
        break;
      case KeySearch::Verdict::Exhausted:
        result.exhausted = true;
        break;
      case KeySearch::Verdict::Violation:
        result.ok = false;
        if (failedKeys++ == 0) result.explanation = "key " + describeValue(key) + " is not linearizable: " + search.explainStuck();
        break;
    }
  }
  if (failedKeys > 1) result.explanation += " (and " + std::to_string(failedKeys - 1) + " more keys are not linearizable)";
  return result;
}

}  // namespace warden::tests::sim
