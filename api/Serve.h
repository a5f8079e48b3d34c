#pragma once
#include <string>
#include <vector>

namespace warden::api {

// `warden serve ...`: runs a node until SIGINT or SIGTERM. Returns the process exit code.
int runServe(const std::vector<std::string>& args);

}  // namespace warden::api
