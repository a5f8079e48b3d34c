#include "api/ProcStats.h"

#include <sys/resource.h>
#include <unistd.h>

#include <filesystem>
#include <fstream>
#include <sstream>
#include <string>

namespace warden::api {

namespace {
// User + system seconds from a /proc/.../stat file.
double statCpuSeconds(const std::string& path) {
  std::ifstream in(path);
  std::string line;
  std::getline(in, line);
  const auto close = line.rfind(')');  // the command name may hold spaces
  if (close == std::string::npos) return 0;
  std::istringstream fields(line.substr(close + 2));
  std::string skip;
  for (int i = 0; i < 11; ++i) fields >> skip;  // state .. cmajflt: fields 3 to 13
  unsigned long long utime = 0, stime = 0;
  fields >> utime >> stime;
  return static_cast<double>(utime + stime) / static_cast<double>(sysconf(_SC_CLK_TCK));
}
}  // namespace

double cpuSeconds(long pid) { return statCpuSeconds("/proc/" + std::to_string(pid) + "/stat"); }

std::map<long, ThreadUsage> threadUsage(long pid) {
  std::map<long, ThreadUsage> out;
  const std::string dir = "/proc/" + std::to_string(pid) + "/task";
  std::error_code ec;
  for (const auto& entry : std::filesystem::directory_iterator(dir, ec)) {
    const std::string tid = entry.path().filename().string();
    ThreadUsage t;
    std::ifstream comm(entry.path() / "comm");
    if (!std::getline(comm, t.name)) continue;  // gone meanwhile
    t.cpuSeconds = statCpuSeconds((entry.path() / "stat").string());
    std::ifstream status(entry.path() / "status");
    std::string key;
    while (status >> key) {
      if (key == "voluntary_ctxt_switches:") {
        status >> t.voluntarySwitches;
        break;
      }
      std::string rest;
      std::getline(status, rest);
    }
    out[std::stol(tid)] = std::move(t);
  }
  return out;
}

double rssBytes(long pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/status");
  std::string key;
  while (in >> key) {
    if (key == "VmRSS:") {
      double kb = 0;
      in >> kb;
      return kb * 1024;
    }
    std::string rest;
    std::getline(in, rest);
  }
  return 0;
}

double ownCpuSeconds() {
  rusage usage{};
  getrusage(RUSAGE_SELF, &usage);
  auto seconds = [](const timeval& t) { return static_cast<double>(t.tv_sec) + static_cast<double>(t.tv_usec) / 1e6; };
  return seconds(usage.ru_utime) + seconds(usage.ru_stime);
}

}  // namespace warden::api
