#pragma once
// GET /v1/watch/{path} (API.md "Watches"): long-poll and Server-Sent Events over this node's
// watch history (coordinator/watch), and the wait behind blocking reads (?index=R&wait_ms=W).

#include <chrono>
#include <cstdint>
#include <functional>
#include <string>

#include "api/Hangup.h"
#include "api/Reads.h"
#include "api/Reply.h"
#include "coordinator/Node.h"

namespace warden::api {

class WatchApi {
 public:
  // `progressEvery`: how often an idle stream says how far it is complete.
  WatchApi(coordinator::Node& node, std::chrono::milliseconds progressEvery);

  void handle(const Request& request, const std::string& path, const Query& query, const Respond& respond);

  // Blocking reads: `ready` runs once (on some other thread) when the node at `path` (with
  // `children`: its child set) changed after revision `index` here, or once `wait` passed.
  // ApiError 429 when too many watch already.
  // A blocking read (?index=R&wait_ms=W): once `path` (with `children` its child set; with
  // `recursive` its subtree) changed after R here, or at the deadline, answers as the rest of the
  // query asks (answerRead). False, and nothing done, when the query has no index.
  bool blockingRead(const std::string& path, bool children, bool recursive, const Query& query,
                    std::function<Reply()> build, const Respond& respond);

  // `recursive`: any change in the node's subtree counts. `hangup` (when given) ends the wait
  // early, as at its deadline, if the client hangs up.
  void waitForChange(const std::string& path, bool children, std::uint64_t index, std::chrono::milliseconds wait,
                     std::function<void()> ready, bool recursive = false,
                     const std::shared_ptr<Hangup>& hangup = nullptr);

 private:
  // Waits this long at most for the history to hold the writes this node acknowledged already.
  static constexpr std::chrono::milliseconds kHistoryCatchUp{5000};
  void watch(const Request& request, const std::string& path, const Query& query, const Respond& respond);

  coordinator::Node& node_;
  std::chrono::milliseconds progressEvery_;
};

}  // namespace warden::api
