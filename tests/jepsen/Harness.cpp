#include "tests/jepsen/Harness.h"

#include <unistd.h>

#include <atomic>
#include <filesystem>
#include <sstream>
#include <stdexcept>

namespace warden::tests::jepsen {

namespace {

std::string env(const char* name, const std::string& otherwise) {
  const char* value = std::getenv(name);
  return value && *value ? value : otherwise;
}

}  // namespace

Config Config::fromEnvironment() {
  Config c;
  c.time = std::chrono::seconds(std::stoul(env("WARDEN_JEPSEN_TIME", "20")));
  c.nodes = std::stoul(env("WARDEN_JEPSEN_NODES", "3"));
  if (c.nodes != 3 && c.nodes != 5) throw std::invalid_argument("WARDEN_JEPSEN_NODES is 3 or 5");
  const std::string nemesis = env("WARDEN_JEPSEN_NEMESIS", "all");
  if (nemesis == "none") {
    c.faults.clear();
  } else if (nemesis != "all") {
    c.faults.clear();
    std::stringstream list(nemesis);
    for (std::string fault; std::getline(list, fault, ',');) {
      if (fault != "kill" && fault != "pause" && fault != "partition" && fault != "delay" && fault != "wipe") {
        throw std::invalid_argument("WARDEN_JEPSEN_NEMESIS: unknown fault '" + fault + "'");
      }
      c.faults.insert(fault);
    }
  }
  c.seed = std::stoull(env("WARDEN_JEPSEN_SEED", std::to_string(Clock::now().time_since_epoch().count() % 1'000'000)));
  c.keep = env("WARDEN_JEPSEN_KEEP", "");
  return c;
}

std::string Config::describe() const {
  std::string faultList;
  for (const auto& f : faults) faultList += (faultList.empty() ? "" : ",") + f;
  return std::to_string(nodes) + " nodes, " + std::to_string(time.count()) + " s, nemesis " +
         (faultList.empty() ? "none" : faultList) + ", seed " + std::to_string(seed);
}

std::string keepDirectory(const Config& config, const std::string& workload) {
  static std::atomic<int> runs{0};
  const std::string base = config.keep.empty() ? "/tmp/warden-jepsen-" + std::to_string(::getpid()) : config.keep;
  const std::string dir = base + "/" + workload + "-" + std::to_string(++runs);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace warden::tests::jepsen
