#include "api/WatchApi.h"

#include <mutex>

#include "api/JsonCodec.h"

namespace warden::api {

using json = nlohmann::ordered_json;
using coordinator::watch::Event;
using coordinator::watch::EventType;
using coordinator::watch::Filter;
using coordinator::watch::History;
using coordinator::watch::WatchHub;

namespace {

// One answer (a long-poll's, or one read of a stream) holds at most about this much; it never
// splits a revision, so a single large txn may exceed it.
constexpr std::size_t kPageEvents = 1000;
constexpr std::size_t kPageBytes = std::size_t{4} << 20;
// A stream holds one piece at a time while its socket takes it: smaller, since thousands of
// streams may each hold one.
constexpr std::size_t kStreamPageEvents = 256;
constexpr std::size_t kStreamPageBytes = std::size_t{64} << 10;
constexpr std::uint64_t kDefaultWaitMs = 30'000;
constexpr std::uint64_t kMaxWaitMs = 300'000;

json eventJson(const Event& e) {
  json out = {{"type", coordinator::watch::typeName(e.type)}, {"path", e.path}, {"revision", e.revision}};
  if (e.type == EventType::Children) return out;
  out["stat"] = statJson(e.stat);
  if (e.type != EventType::Deleted) putData(out, e.data);
  return out;
}

ApiError compacted(std::uint64_t since, std::uint64_t floor) {
  return ApiError(410, "compacted",
                  "revision " + std::to_string(since) + " is older than this node's watch history, which starts after " +
                      std::to_string(floor) + "; read the current state and watch from its revision",
                  json{{"compact_revision", floor}});
}

std::uint64_t parseRevision(const std::string& text, const char* what) {
  if (text.empty() || text.size() > 19 || text.find_first_not_of("0123456789") != std::string::npos) {
    throw ApiError(400, "invalid_argument", std::string(what) + " must be a revision (a non-negative integer)");
  }
  return std::stoull(text);
}

// A wait for the first matching events after `since` (or the deadline): the long-poll, and the
// blocking read. Kept alive by its deadline; woken through a weak reference.
class Wait : public std::enable_shared_from_this<Wait> {
 public:
  // finish(page) runs once: the page (events may be empty at the deadline), or nullopt when
  // `since` fell out of the history meanwhile.
  using Finish = std::function<void(std::optional<History::Page>)>;
  using Accept = std::function<bool(const Event&)>;

  Wait(WatchHub& hub, Filter filter, std::uint64_t since, Accept accept, Finish finish)
      : hub_(hub), filter_(std::move(filter)), since_(since), accept_(std::move(accept)), finish_(std::move(finish)) {}

  // False when too many watch already.
  bool start(std::chrono::milliseconds wait) {
    std::weak_ptr<Wait> weak = weak_from_this();
    {
      std::lock_guard lock(mutex_);  // a wake may come before the handle is stored
      watcher_ = hub_.watch(filter_, since_, [weak] {
        if (auto self = weak.lock()) self->check(false);
      });
      if (!watcher_) return false;
    }
    hub_.at(WatchHub::Clock::now() + wait, [self = shared_from_this()] { self->check(true); });
    check(false);
    return true;
  }

  // Ends the wait now, as at its deadline (its client hung up).
  void end() { check(true); }

 private:
  void check(bool deadline) {
    std::unique_lock lock(mutex_);
    if (!finish_ || !watcher_) return;
    // The hub moves the watcher's cursor past what it read: events `accept` turns down are
    // not looked at again.
    auto page = hub_.read(*watcher_, kPageEvents, kPageBytes);
    if (page && accept_) std::erase_if(page->events, [this](const Event& e) { return !accept_(e); });
    if (page && page->events.empty() && !deadline) return;
    Finish finish = std::move(finish_);
    finish_ = nullptr;
    lock.unlock();
    watcher_.reset();
    finish(std::move(page));
  }

  WatchHub& hub_;
  Filter filter_;
  std::uint64_t since_;
  Accept accept_;
  std::mutex mutex_;
  Finish finish_;
  std::unique_ptr<WatchHub::Watcher> watcher_;
};

// A Server-Sent Events stream: one message per revision with matching events, a progress
// message when idle, and a final `compacted` message if it falls out of the history.
class EventStream : public ReplyStream, public std::enable_shared_from_this<EventStream> {
 public:
  EventStream(WatchHub& hub, Filter filter, std::uint64_t since, std::chrono::milliseconds progressEvery)
      : hub_(hub), filter_(std::move(filter)), cursor_(since), progressEvery_(progressEvery) {}

  bool start() {
    std::weak_ptr<EventStream> weak = weak_from_this();
    {
      std::lock_guard lock(mutex_);
      watcher_ = hub_.watch(filter_, cursor_, [weak] {
        if (auto self = weak.lock()) self->pump();
      });
      if (!watcher_) return false;
    }
    scheduleProgress();
    return true;
  }

  void next(Give give) override {
    {
      std::lock_guard lock(mutex_);
      if (ended_) {
        give(std::nullopt);
        return;
      }
      give_ = std::move(give);
    }
    pump();
  }

  void cancel() override {
    std::unique_ptr<WatchHub::Watcher> gone;
    std::lock_guard lock(mutex_);
    ended_ = true;
    give_ = nullptr;
    gone = std::move(watcher_);
  }

 private:
  void scheduleProgress() {
    std::weak_ptr<EventStream> weak = weak_from_this();
    hub_.at(WatchHub::Clock::now() + progressEvery_, [weak] {
      auto self = weak.lock();
      if (!self) return;
      {
        std::lock_guard lock(self->mutex_);
        if (self->ended_) return;
        self->progressDue_ = true;
      }
      self->pump();
      self->scheduleProgress();
    });
  }

  void pump() {
    std::unique_lock lock(mutex_);
    if (!give_ || ended_ || !watcher_) return;
    std::string out;
    auto page = hub_.read(*watcher_, kStreamPageEvents, kStreamPageBytes);
    if (!page) {
      // Too slow, or the history started over (a snapshot): it cannot be complete any more.
      out = "event: compacted\ndata: " +
            dumpJson(json{{"revision", cursor_}, {"compact_revision", hub_.floor()},
                          {"message", "events after revision " + std::to_string(cursor_) +
                                          " are no longer in this node's history; read the current state and watch from its revision"}}) +
            "\n\n";
      ended_ = true;
    } else {
      for (auto it = page->events.begin(); it != page->events.end();) {
        const std::uint64_t revision = it->revision;
        json events = json::array();
        for (; it != page->events.end() && it->revision == revision; ++it) events.push_back(eventJson(*it));
        out += "id: " + std::to_string(revision) + "\ndata: " +
               dumpJson(json{{"revision", revision}, {"events", std::move(events)}}) + "\n\n";
      }
      cursor_ = page->upTo;
      if (out.empty() && progressDue_) {
        out = "id: " + std::to_string(cursor_) + "\nevent: progress\ndata: " + dumpJson(json{{"revision", cursor_}}) + "\n\n";
      }
    }
    if (out.empty()) return;  // nothing new: wait for a wake or the next progress
    progressDue_ = false;
    Give give = std::move(give_);
    give_ = nullptr;
    lock.unlock();
    give(std::move(out));
  }

  WatchHub& hub_;
  Filter filter_;
  std::uint64_t cursor_;  // everything the filter matches up to here was given
  std::chrono::milliseconds progressEvery_;
  std::mutex mutex_;
  Give give_;
  bool ended_ = false;
  bool progressDue_ = false;
  std::unique_ptr<WatchHub::Watcher> watcher_;
};

}  // namespace

WatchApi::WatchApi(coordinator::Node& node, std::chrono::milliseconds progressEvery)
    : node_(node), progressEvery_(progressEvery) {}

void WatchApi::handle(const Request& request, const std::string& path, const Query& query, const Respond& respond) {
  // A write the nodes API answered before its apply committed (AnswerWhen::Applied) reaches the
  // history at that commit, a moment later. A watch begun after such an answer starts once the
  // history holds it: it sees (or starts after) what its client saw acknowledged here.
  const std::uint64_t acknowledged = node_.revision();
  if (node_.watches().revision() >= acknowledged) return watch(request, path, query, respond);
  const bool queued = node_.waitForRevision(acknowledged, kHistoryCatchUp, [this, request, path, query, respond](bool) {
    // Runs where the history was fed: nothing may escape into it.
    try {
      watch(request, path, query, respond);
    } catch (const ApiError& e) {
      respond(errorReply(e, node_.revision()));
    } catch (const std::exception& e) {
      respond(errorReply(500, "internal", e.what(), node_.revision()));
    }
  });
  if (!queued) throw ApiError(429, "too_many_requests", "too many requests wait for this node's watch history");
}

void WatchApi::watch(const Request& request, const std::string& path, const Query& query, const Respond& respond) {
  if (request.method != "GET") {
    respond(methodNotAllowed(request.method, "/v1/watch/{path}", "GET", node_.revision()));
    return;
  }
  allowOnly(query, {"recursive", "since", "wait_ms", "stream"});
  Filter filter{path, queryFlag(query, "recursive")};
  const bool stream = queryFlag(query, "stream");
  WatchHub& hub = node_.watches();
  std::uint64_t since = hub.revision();  // default: from now
  if (auto it = query.find("since"); it != query.end()) since = parseRevision(it->second, "since");
  // A browser's EventSource reconnects to the same URL and says where it stopped.
  if (stream && request.lastEventId && !request.lastEventId->empty()) since = parseRevision(*request.lastEventId, "Last-Event-ID");
  const auto waitMs = queryNumber(query, "wait_ms");
  if (waitMs && stream) throw ApiError(400, "invalid_argument", "wait_ms bounds a long-poll; a stream has none");
  if (waitMs && *waitMs > kMaxWaitMs) throw ApiError(400, "invalid_argument", "wait_ms is at most 300000");
  // Test-only defect (--test-bug watch-from-floor): what a watch that forgets it may have lost
  // events does, shown caught by the outside-in watch check.
  const bool fromFloor = !stream && node_.bugs().watchFromFloor;
  if (fromFloor) since = std::max(since, hub.floor());
  if (since < hub.floor()) throw compacted(since, hub.floor());

  auto tooMany = [] {
    return ApiError(429, "too_many_requests", "this node serves the most watchers it may (--max-watchers)");
  };
  if (stream) {
    auto events = std::make_shared<EventStream>(hub, std::move(filter), since, progressEvery_);
    if (!events->start()) throw tooMany();
    Reply reply;
    reply.contentType = "text/event-stream";
    reply.revision = node_.revision();
    reply.stream = std::move(events);
    respond(std::move(reply));
    return;
  }
  auto wait = std::make_shared<Wait>(hub, std::move(filter), since, nullptr,
                                     [this, respond, since, fromFloor](std::optional<History::Page> page) {
    if (!page && fromFloor) page = History::Page{{}, node_.watches().floor()};
    if (!page) {
      respond(errorReply(compacted(since, node_.watches().floor()), node_.revision()));
      return;
    }
    json events = json::array();
    for (const Event& e : page->events) events.push_back(eventJson(e));
    respond(jsonReply(200, json{{"events", std::move(events)}, {"revision", page->upTo}}, node_.revision()));
  });
  if (!wait->start(std::chrono::milliseconds(waitMs.value_or(kDefaultWaitMs)))) throw tooMany();
}

bool WatchApi::blockingRead(const std::string& path, bool children, bool recursive, const Query& query,
                            std::function<Reply()> build, const Respond& respond) {
  const auto index = queryNumber(query, "index");
  if (!index) return false;
  // Checked in full before it waits.
  if (query.count("min_revision")) throw ApiError(400, "invalid_argument", "index and min_revision do not go together");
  const auto waitMs = queryNumber(query, "wait_ms").value_or(kDefaultWaitMs);
  if (waitMs > kMaxWaitMs) throw ApiError(400, "invalid_argument", "wait_ms is at most 300000");
  Query rest = query;
  rest.erase("index");
  rest.erase("wait_ms");
  answerReadChecks(rest);
  waitForChange(path, children, *index, std::chrono::milliseconds(waitMs),
                [this, rest, build = std::move(build), respond] {
                  try {
                    answerRead(node_, rest, build, respond);
                  } catch (const ApiError& e) {
                    respond(errorReply(e, node_.revision()));
                  }
                },
                recursive);
  return true;
}

void WatchApi::waitForChange(const std::string& path, bool children, std::uint64_t index, std::chrono::milliseconds wait,
                             std::function<void()> ready, bool recursive, const std::shared_ptr<Hangup>& hangup) {
  WatchHub& hub = node_.watches();
  // Older than the history: whether it changed since is unknown here, so answer at once.
  if (index < hub.floor()) return ready();
  auto accept = [children, recursive](const Event& e) {
    // The node's own creation and deletion count either way.
    if (recursive) return true;
    return children ? e.type != EventType::Changed : e.type != EventType::Children;
  };
  auto waiting = std::make_shared<Wait>(hub, Filter{path, recursive}, index, accept,
                                        [ready = std::move(ready)](std::optional<History::Page>) { ready(); });
  if (!waiting->start(wait)) throw ApiError(429, "too_many_requests", "this node serves the most watchers it may (--max-watchers)");
  if (hangup) {
    hangup->onHangup([weak = std::weak_ptr<Wait>(waiting)] {
      if (auto w = weak.lock()) w->end();
    });
  }
}

}  // namespace warden::api
