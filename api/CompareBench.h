#pragma once
#include <string>
#include <vector>

namespace warden::api {

// `warden bench-compare ...` (issue 14): Warden beside etcd, both driven by the same load
// generator (api/LoadDriver.h) at each one's leader, in alternating runs (Warden, etcd, Warden,
// etcd, ... --rounds times): puts at several connection counts, linearizable and stale gets,
// uncontended lock cycles (api/LockBenchCycles.h) and the delay of a watch's events behind
// paced writes (api/CompareBenchWatch.h). Prints a table of each figure for both and the ratio
// Warden/etcd, each service's best run of a figure, and the servers' CPU per operation (every
// member's, from /proc, given --warden-pids and --etcd-pids). Everything it writes is under its
// own name (--prefix-<random>) and deleted at the end. Exit codes: 0 done, 1 some requests
// failed or events went missing, 2 usage, 3 a service could not be reached, prepared or cleaned.
int runCompareBench(const std::vector<std::string>& args);

}  // namespace warden::api
