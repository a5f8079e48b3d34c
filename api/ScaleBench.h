#pragma once
#include <string>
#include <vector>

namespace warden::api {

// `warden bench-scale load|ready ...`, the two halves of `scripts/bench --scale N` that need more
// than curl (the script starts, stops, kills and wipes the nodes):
//   load   creates N nodes of --value-size bytes under --prefix (parents p<i / fanout>, children
//          k<i>) with transactions of up to 1024 creates, over several connections, and prints
//          the rate. It holds one request body per connection, whatever N.
//   ready  polls a (re)started node until it serves a linearizable read, printing how long after
//          --since-ns (the process's start) it answered /healthz, /readyz and the read, while an
//          optional paced writer sends puts to another node; prints the leader and ballot after.
// Exit codes: 0 done, 1 not ready within --timeout or a write failed, 2 usage, 3 a node could not
// be reached or the load failed.
int runScaleBench(const std::vector<std::string>& args);

}  // namespace warden::api
