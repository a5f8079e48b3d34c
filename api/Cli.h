#pragma once
#include <string>
#include <vector>

namespace warden::api {

// The client commands of the `warden` binary (get, put, create, rm, ls, txn, status).
// Returns the exit code: 0 ok, 1 the server refused, 2 usage, 3 no server reachable.
int runCli(const std::string& command, const std::vector<std::string>& args);
bool isCliCommand(const std::string& command);
extern const char* kCliUsage;

}  // namespace warden::api
