#pragma once
// `warden watch PATH [--recursive] [--since R] [--count N]`: long-polls GET /v1/watch/PATH and
// prints each event as it comes (text: one line per event; -o json: the server's event object,
// one per line), until SIGINT or SIGTERM (exit 0) or until N events are out.
//
// Contract: no event is printed twice and none is skipped, across failovers too. Every request
// after the first names `since`; the next `since` is the answer's `revision` (never lower than
// the last one); an event at or below `since` is never printed. A request that fails (the node
// is unreachable, breaks the connection, answers 502/503/504) goes to the next endpoint with the
// same `since` (HttpClient repeats a GET there); revisions are cluster-wide, so any node goes on
// where the last one stopped, or answers 410 compacted when its history no longer reaches back.
// Without --since the first request (wait_ms=0) asks where "now" is, and the watch starts there.
//
// A watch that has had an answer rides through outages: when no endpoint answers it says so on
// stderr and tries again, pausing longer each time (up to 5 s). Before the first answer the
// usual exit codes apply (3: no endpoint answered). A 410 ends it with exit code 1 and one line
// on stderr naming compact_revision.

#include <string>
#include <vector>

#include "api/Args.h"
#include "api/HttpClient.h"

namespace warden::api {

// `args` holds the command's words (PATH and the flags); `json` is -o json. Throws UsageError
// and CliFailure (api/Cli.h) as the other commands do; returns the exit code otherwise.
// Blocks SIGINT and SIGTERM in the calling thread (and those it starts): call it before any
// other thread exists. `endpoints` are the client's: a node whose history does not reach back
// far enough (410, e.g. it restarted) is passed over for the next.
int runWatch(HttpClient& client, const std::vector<std::string>& endpoints, const Args& args, bool json);

}  // namespace warden::api
