#pragma once
// The command-line flags that warden_sim (main.cpp) and warden_nodesim (nodesim_main.cpp) share:
// which seeds, which cluster sizes, tracing and a planted bug. Each adds its own flags and usage.

#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <optional>
#include <string>
#include <vector>

namespace warden::tests::sim {

struct SeedFlags {
  std::uint64_t seeds = 100, first = 1;
  std::optional<std::uint64_t> single;
  std::string replicas = "both";
  bool trace = false;
  std::string bug;

  // Once parsed: the cluster sizes to run; with --seed, first narrows the run to that one seed
  // (and one size).
  std::vector<std::size_t> finish() {
    std::vector<std::size_t> sizes;
    if (replicas == "3" || replicas == "both") sizes.push_back(3);
    if (replicas == "5" || replicas == "both") sizes.push_back(5);
    if (single) {
      seeds = 1;
      first = *single;
      if (sizes.size() > 1) sizes = {3};
    }
    return sizes;
  }
};

// The value after the flag at argv[i], stepping i past it; exits with 2 when there is none.
inline std::string flagValue(int argc, char** argv, int& i) {
  if (i + 1 >= argc) {
    std::fprintf(stderr, "%s needs a value\n", argv[i]);
    std::exit(2);
  }
  return argv[++i];
}

// Takes the flag at argv[i] (and its value) if it is one of the shared ones.
inline bool parseSeedFlag(SeedFlags& f, int argc, char** argv, int& i) {
  const std::string a = argv[i];
  if (a == "--seeds") f.seeds = std::stoull(flagValue(argc, argv, i));
  else if (a == "--first") f.first = std::stoull(flagValue(argc, argv, i));
  else if (a == "--seed") f.single = std::stoull(flagValue(argc, argv, i));
  else if (a == "--replicas") f.replicas = flagValue(argc, argv, i);
  else if (a == "--trace") f.trace = true;
  else if (a == "--bug") f.bug = flagValue(argc, argv, i);
  else return false;
  return true;
}

}  // namespace warden::tests::sim
