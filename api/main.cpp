// The one `warden` binary: the server (`serve`), the client commands and the load generators.

#include <iostream>
#include <string>
#include <vector>

#include "api/Cli.h"
#include "api/Serve.h"
#ifndef WARDEN_NO_BENCH
#include "api/Bench.h"
#include "api/CompareBench.h"
#include "api/LockBench.h"
#include "api/ScaleBench.h"
#include "api/SessionBench.h"
#include "api/WatchBench.h"
#endif

#ifndef WARDEN_VERSION
#error "WARDEN_VERSION is set by CMakeLists.txt from project(VERSION)"
#endif

namespace {

const char* kUsage = R"(warden — a lock and coordination service

usage: warden serve --dev                          run one node on 127.0.0.1:7070
       warden serve --help                         every serve flag
       warden bench [flags]                        load-test a running node
       warden bench-sessions [flags]               hold many sessions open with keepalives
       warden bench-watch [flags]                  hold many watch streams open while writing
       warden bench-locks [flags]                  lock cycles and 1,000 waiters, beside etcd's locks
       warden bench-compare [flags]                puts, gets, locks and watches beside etcd, same load
       warden bench-scale load|ready [flags]       load N nodes; time a restarted node to ready
       warden COMMAND [args]                       talk to a running node
       warden --version                            print the version

)";

int usageError(const std::string& problem) {
  std::cerr << "warden: " << problem << " (warden --help lists the commands)\n";
  return static_cast<int>(warden::api::ExitCode::Usage);
}

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  // Flags before the command: --help, --version, and the client's global flags, which are
  // handed to the command ahead of its own words (so a "--" among those still ends the flags).
  std::vector<std::string> global;
  std::size_t i = 0;
  for (; i < args.size() && args[i].size() > 1 && args[i][0] == '-'; ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      std::cout << kUsage << warden::api::kCliUsage;
      return 0;
    }
    if (arg == "--version") {
      std::cout << "warden " << WARDEN_VERSION << "\n";
      return 0;
    }
    const bool valued = arg == "--endpoints" || arg == "--output" || arg == "-o";
    if (!valued && !arg.starts_with("--endpoints=") && !arg.starts_with("--output=")) {
      return usageError("unknown flag " + arg + " before the command");
    }
    global.push_back(arg);
    if (valued) {
      if (i + 1 >= args.size()) return usageError(arg + " needs a value");
      global.push_back(args[++i]);
    }
  }
  if (i == args.size()) {
    std::cout << kUsage << warden::api::kCliUsage;
    return usageError("no command given");
  }
  const std::string command = args[i];
  std::vector<std::string> rest = global;
  rest.insert(rest.end(), args.begin() + static_cast<std::ptrdiff_t>(i) + 1, args.end());
  if (command == "help") {
    std::cout << kUsage << warden::api::kCliUsage;
    return 0;
  }
  if (command == "version") {
    if (!rest.empty()) return usageError("version takes no arguments");
    std::cout << "warden " << WARDEN_VERSION << "\n";
    return 0;
  }
  if (command == "serve") return warden::api::runServe(rest);
#ifndef WARDEN_NO_BENCH
  if (command == "bench") return warden::api::runBench(rest);
  if (command == "bench-sessions") return warden::api::runSessionBench(rest);
  if (command == "bench-watch") return warden::api::runWatchBench(rest);
  if (command == "bench-locks") return warden::api::runLockBench(rest);
  if (command == "bench-compare") return warden::api::runCompareBench(rest);
  if (command == "bench-scale") return warden::api::runScaleBench(rest);
#else
  if (command.rfind("bench", 0) == 0) {
    std::cerr << "warden: this build has no load generators (configured with -DWARDEN_BENCH=OFF)\n";
    return 2;
  }
#endif
  if (warden::api::isCliCommand(command)) return warden::api::runCli(command, rest);
  return usageError("unknown command '" + command + "'");
}
