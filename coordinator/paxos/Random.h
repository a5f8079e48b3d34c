#pragma once
#include <cstdint>

namespace warden::coordinator::paxos {

// Randomness enters the core only through this port (election timeouts), so a seeded simulator
// replays a run exactly.
class Random {
 public:
  virtual ~Random() = default;
  virtual std::uint64_t next() = 0;
  // Uniform in [0, bound); bound > 0.
  std::uint64_t below(std::uint64_t bound) { return next() % bound; }
};

}  // namespace warden::coordinator::paxos
