#pragma once
#include <string>
#include <vector>

namespace warden::api {

// `warden bench ...`: an HTTP/1.1 keep-alive load generator against a running node. Its nodes go
// under a fresh `--prefix`-<random> node (default /bench-<random>), deleted at the end unless
// --keep. Exit codes: 0 done without errors, 1 some requests failed, 2 usage, 3 the node could
// not be reached or the run's nodes could not be prepared or deleted.
int runBench(const std::vector<std::string>& args);

}  // namespace warden::api
