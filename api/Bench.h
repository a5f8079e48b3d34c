#pragma once
#include <string>
#include <vector>

namespace warden::api {

// `warden bench ...`: an HTTP/1.1 keep-alive load generator against a running node.
int runBench(const std::vector<std::string>& args);

}  // namespace warden::api
