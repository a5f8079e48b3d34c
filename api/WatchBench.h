#pragma once
#include <string>
#include <vector>

namespace warden::api {

// `warden bench-watch ...` (issue 11): holds many Server-Sent Events watch streams open on one
// node while a writer puts at a fixed rate, and reports the delay from a write's acknowledgement
// to each watcher's receipt of its event, the server's memory per open watcher (given its pid),
// and the writer's throughput with and without the watchers.
//
// Watcher i streams `GET /v1/watch/<root>/k<i % keys>?stream` over its own raw TCP connection, so
// each write to one of the keys fans out to about watchers/keys streams. The streams run on one
// io_context (--threads, default 1); the writer has its own thread, so that an acknowledgement is
// timestamped without waiting behind the watchers' reads. The run's nodes go under a fresh
// `--prefix`-<random> node, deleted at the end. Exit codes: 0 every expected event arrived and
// nothing failed, 1 otherwise, 2 usage, 3 the node could not be reached or prepared.
int runWatchBench(const std::vector<std::string>& args);

}  // namespace warden::api
