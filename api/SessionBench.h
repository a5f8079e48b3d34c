#pragma once
#include <string>
#include <vector>

namespace warden::api {

// `warden bench-sessions ...`: opens many sessions, then keeps every one alive every ttl/3 (an
// open-loop schedule spread evenly over time and over the endpoints) and reports the rate
// sustained, latencies, sessions lost, and, given the leader's pid, its CPU and memory.
int runSessionBench(const std::vector<std::string>& args);

}  // namespace warden::api
