#pragma once
// The watch figure of `warden bench-compare` (api/CompareBench.cpp): one watch stream on one
// key of a service (Warden: SSE from GET /v1/watch/...?stream; etcd: its gateway's streaming
// POST /v3/watch), a writer putting that key at a paced rate through the same load generator
// as every other figure (api/LoadDriver.h), and the delay from each write's acknowledgement to
// the receipt of its event, matched by revision.

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "api/CompareBenchTargets.h"
#include "api/LoadDriver.h"

namespace warden::api::comparebench {

struct WatchConfig {
  double rate = 200;            // writes per second
  std::size_t connections = 4;  // of the writer
  unsigned threads = 2;
  double warmupSeconds = 1;     // writes whose events are not counted
  double seconds = 10;
  std::vector<long> serverPids;
};

struct WatchRun {
  load::LoadResult writes;               // the writer's, with the servers' CPU
  // Per write acknowledged in the window whose event came: from the acknowledgement (0 when the
  // event came first) and from the write's sending to the event's receipt.
  std::vector<std::uint32_t> delayMicros, fromSendMicros;
  std::size_t acked = 0;     // writes acknowledged within the window, with a revision
  std::size_t received = 0;  // of those, the ones whose event came (within 3 s of the last ack)
  std::size_t early = 0;     // events that came before their write's acknowledgement (delay 0)
  std::string error;         // the stream's first problem, empty if none
};

// Opens the stream on `leader`, waits (up to 10 s) until the service confirms it, writes, waits
// for the last events, closes the stream. Throws std::runtime_error when the stream could not
// be opened.
WatchRun runWatch(const Target& target, const std::string& leader, const WatchConfig& config);

}  // namespace warden::api::comparebench
