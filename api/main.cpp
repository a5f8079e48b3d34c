// The one `warden` binary: the server (`serve`), the client commands and the load generator.

#include <iostream>
#include <string>
#include <vector>

#include "api/Bench.h"
#include "api/Cli.h"
#include "api/Serve.h"
#include "api/SessionBench.h"

namespace {

const char* kUsage = R"(warden — a lock and coordination service

usage: warden serve --dev                          run one node on 127.0.0.1:7070
       warden serve --help                         every serve flag
       warden bench [flags]                        load-test a running node
       warden bench-sessions [flags]               hold many sessions open with keepalives
       warden COMMAND [args]                       talk to a running node

)";

}  // namespace

int main(int argc, char** argv) {
  std::vector<std::string> args(argv + 1, argv + argc);
  if (args.empty() || args[0] == "--help" || args[0] == "-h" || args[0] == "help") {
    std::cout << kUsage << warden::api::kCliUsage;
    return args.empty() ? 2 : 0;
  }
  const std::string command = args[0];
  std::vector<std::string> rest(args.begin() + 1, args.end());
  if (command == "serve") return warden::api::runServe(rest);
  if (command == "bench") return warden::api::runBench(rest);
  if (command == "bench-sessions") return warden::api::runSessionBench(rest);
  if (warden::api::isCliCommand(command)) return warden::api::runCli(command, rest);
  std::cerr << "warden: unknown command '" << command << "'\n\n" << kUsage << warden::api::kCliUsage;
  return 2;
}
