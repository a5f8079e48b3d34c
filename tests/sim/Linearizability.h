#pragma once
// A linearizability checker for recorded client histories of a key-value store of registers,
// for the simulator to judge what its clients saw. Keys are independent registers, so each
// key's sub-history is checked on its own (P-compositionality): a history is linearizable iff
// every key's is. Each key is searched as Wing & Gong with Lowe's memoization (as Porcupine
// does): a depth-first search over which pending operation takes effect next, skipping any
// (set of operations taken effect, register value) pair already explored.
//
// Time is the simulator's true time. Operations whose intervals touch (one returns at the same
// microsecond another is invoked) count as concurrent, so clock resolution never produces a
// violation. Every key starts absent.

#include <cstdint>
#include <optional>
#include <string>
#include <vector>

namespace warden::tests::sim {

struct Operation {
  std::uint64_t client = 0;
  std::string key;
  enum class Kind { Read, Write, Cas } kind = Kind::Read;
  std::optional<std::string> value;     // Write/Cas: the value written (nullopt = delete the key)
  std::optional<std::string> expected;  // Cas: the value it must find (nullopt = the key must be absent)
  enum class Outcome { Ok, Failed, Unknown } outcome = Outcome::Ok;
  // Ok: the op returned. For Read, `observed` is what it returned (nullopt = absent). For Cas,
  //     `casSucceeded` says whether the comparison held (a false CAS changed nothing but still
  //     asserts the current value differed from `expected` at its linearization point).
  // Failed: it definitely did not take effect (the server refused it before it could apply); it
  //     is dropped from the history.
  // Unknown: it may or may not have taken effect, at any point after invokedAt (timeouts);
  //     returnedAt is ignored, treated as +infinity. An Unknown Read is dropped.
  std::optional<std::string> observed;
  bool casSucceeded = false;
  std::uint64_t invokedAt = 0, returnedAt = 0;  // true time, microseconds; invokedAt <= returnedAt
};

struct CheckResult {
  bool ok = true;          // linearizable (or the search gave up: see exhausted)
  bool exhausted = false;  // gave up after maxSteps search steps on some key: undecided
  std::string explanation; // when !ok: the key and a short description of the smallest stuck point (e.g. the ops that could not be placed, with client, times and values)
  std::size_t operations = 0;  // ops checked
};

// Checks every key, in key order, each with its own budget of maxSteps search steps (so the
// cost is bounded by keys * maxSteps; the memo holds at most one entry per step). A key that
// runs out of budget is undecided: it sets `exhausted` but not `!ok`, since no violation was
// found. `ok` is false only for a definite violation, or for a malformed history (an Ok op that
// returns before it is invoked), which is a bug in the recorder rather than the store and is
// said so in the explanation. When several keys fail, the first in key order is explained.
// `operations` counts the ops searched: Failed ops and Unknown reads are not.
CheckResult checkLinearizable(const std::vector<Operation>& history, std::uint64_t maxSteps = 5'000'000);

}  // namespace warden::tests::sim
