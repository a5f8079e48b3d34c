#pragma once
// SplitMix64 from a fixed seed, behind the Paxos core's Random port: reproducible, yet spread
// enough to break election ties. For scripted tests.

#include <cstdint>

#include "coordinator/paxos/Random.h"

namespace warden::tests {

class SplitMixRandom : public coordinator::paxos::Random {
 public:
  explicit SplitMixRandom(std::uint64_t seed = 12345) : state_(seed) {}
  std::uint64_t next() override {
    std::uint64_t z = (state_ += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  }
  void reseed(std::uint64_t seed) { state_ = seed; }

 private:
  std::uint64_t state_;
};

}  // namespace warden::tests
