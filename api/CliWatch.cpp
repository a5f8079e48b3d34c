#include "api/CliWatch.h"

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <cstdint>
#include <cstdlib>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <thread>
#include <vector>

#include "api/Cli.h"
#include "api/CliReply.h"
#include "api/Url.h"

namespace warden::api {

namespace {

using namespace clireply;

constexpr std::uint64_t kWaitMs = 30'000;  // each long-poll's bound
// An attempt waits this much longer than the poll it carries before it gives up on the node.
constexpr std::chrono::milliseconds kAnswerGrace{10'000};
constexpr std::chrono::milliseconds kFirstPause{250};
constexpr std::chrono::milliseconds kMaxPause{5'000};

// Held while events are printed: a signal ends the process between two answers' output, never
// in the middle of a line.
std::mutex outputMutex;

// SIGINT and SIGTERM end the watch with exit 0, once stdout is flushed. They are blocked here
// (and in every thread started afterwards) and taken by one thread that waits for them.
void exitCleanlyOnSignals() {
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  std::thread([signals] {
    int signal = 0;
    while (sigwait(&signals, &signal) != 0) {
    }
    std::lock_guard lock(outputMutex);
    std::cout.flush();
    std::_Exit(static_cast<int>(ExitCode::Ok));
  }).detach();
}

std::uint64_t revisionOf(const json& object, const char* key) {
  const json& value = member(object, key);
  if (!value.is_number_unsigned()) throw BadReply{std::string("\"") + key + "\" is not a revision"};
  return value.get<std::uint64_t>();
}

// Control characters (newlines included) become spaces: one line stays one line.
std::string flatten(std::string text) {
  std::replace_if(
      text.begin(), text.end(), [](char c) { return static_cast<unsigned char>(c) < 0x20 || c == 0x7f; }, ' ');
  return text;
}

// "3 changed /cfg data=\"v1\"": the revision, the type, the path, and the data (as a JSON string,
// so that it stays on one line) unless the event has none.
std::string eventLine(const json& event) {
  std::string line =
      std::to_string(revisionOf(event, "revision")) + " " + text(event, "type") + " " + text(event, "path");
  if (event.contains("data")) line += " data=" + json(text(event, "data")).dump();
  if (event.contains("data_b64")) line += " data_b64=" + text(event, "data_b64");
  // A path holds no control characters (API.md), but this is the server's word: keep one line.
  return flatten(std::move(line));
}

std::string errorText(const HttpResponse& response) {
  json body = response.json();
  if (body.is_object() && body.contains("error") && body["error"].is_string()) {
    std::string text = body["error"].get<std::string>();
    if (body.contains("message") && body["message"].is_string()) text += ": " + body["message"].get<std::string>();
    return text;
  }
  return "HTTP " + std::to_string(response.status) + " from " + response.endpoint;
}

class Watch {
 public:
  Watch(HttpClient& client, std::vector<std::string> endpoints, const Args& args, bool json)
      : client_(&client), endpoints_(std::move(endpoints)), json_(json) {
    args.allow({"recursive", "since", "count", "endpoints", "output"});
    if (args.positionals().size() > 1) throw UsageError("unexpected argument '" + args.positionals()[1] + "'");
    if (args.positionals().empty()) throw UsageError("missing PATH");
    const std::string& path = args.positionals()[0];
    if (path.empty() || path.front() != '/') throw UsageError("paths start with '/', got '" + path + "'");
    target_ = "/v1/watch" + (path == "/" ? std::string("/") : percentEncodePath(path));
    path_ = path;
    recursive_ = args.has("recursive");
    if (args.has("since")) since_ = static_cast<std::uint64_t>(args.number("since", 0, 0, INT64_MAX));
    if (args.has("count")) left_ = static_cast<std::uint64_t>(args.number("count", 0, 1, INT64_MAX));
  }

  int run() {
    client_->setTimeout(std::chrono::milliseconds(kWaitMs) + kAnswerGrace);
    exitCleanlyOnSignals();
    std::chrono::milliseconds pause = kFirstPause;
    for (;;) {
      std::optional<HttpResponse> response;
      try {
        response = client_->send(HttpRequest{"GET", nextTarget(), {}, {}, {}});
      } catch (const HttpClientError& e) {
        if (!answered_) throw;
        retryLater(e.what(), pause);
        continue;
      }
      if (response->status == 410 && compactedInARow_ + 1 < endpoints_.size()) {
        // That node's history starts later (it restarted, or installed a snapshot): another
        // node's may still reach back to `since`. Ask the others first from now on.
        compactedInARow_++;
        passOver(response->endpoint);
        continue;
      }
      if (response->status == 200) {
        answered_ = true;
        compactedInARow_ = 0;
        pause = kFirstPause;
        if (take(*response)) return static_cast<int>(ExitCode::Ok);
        continue;
      }
      if (answered_ && (response->status >= 500 || response->status == 429)) {
        retryLater(errorText(*response) + " (tried " + response->tried + ")", pause);
        continue;
      }
      fail(*response);
    }
  }

 private:
  // Without --since, the first request asks for "now" and returns at once.
  std::string nextTarget() const {
    const std::string query =
        since_ ? "since=" + std::to_string(*since_) + "&wait_ms=" + std::to_string(kWaitMs) : "wait_ms=0";
    return target_ + "?" + query + (recursive_ ? "&recursive" : "");
  }

  // Prints the answer's events after `since` and moves `since` to its revision; a malformed
  // answer prints nothing. True once --count events are out.
  bool take(const HttpResponse& response) {
    const std::uint64_t since = since_.value_or(0);
    std::uint64_t upTo = 0;
    std::vector<std::string> lines;
    try {
      const json body = parseObject(response);
      upTo = revisionOf(body, "revision");
      std::uint64_t previous = 0;
      for (const json& event : array(body, "events")) {
        const std::uint64_t revision = revisionOf(event, "revision");
        if (revision < previous) throw BadReply{"events out of revision order"};
        if (revision > upTo) throw BadReply{"an event's revision is past the answer's \"revision\""};
        previous = revision;
        std::string line = eventLine(event);  // checks the event's shape with -o json too
        if (since_ && revision <= since) continue;  // already printed (or from before --since)
        lines.push_back(json_ ? event.dump() : std::move(line));
      }
    } catch (const BadReply& e) {
      throw CliFailure{ExitCode::Unavailable, "malformed reply from " + response.endpoint + ": " + e.what};
    } catch (const nlohmann::json::exception& e) {
      throw CliFailure{ExitCode::Unavailable, "malformed reply from " + response.endpoint + ": " + e.what()};
    }
    std::lock_guard lock(outputMutex);
    for (const std::string& line : lines) {
      std::cout << line << "\n";
      if (left_ && --*left_ == 0) break;
    }
    std::cout.flush();
    // A node behind the last one may answer with its own, lower revision: never go back.
    since_ = std::max(upTo, since);
    return left_ && *left_ == 0;
  }

  // No endpoint gave a usable answer: say so, pause, and ask again from the same `since`.
  void retryLater(const std::string& why, std::chrono::milliseconds& pause) {
    {
      std::lock_guard lock(outputMutex);
      std::cerr << "warden: watch of " << path_ << " paused, trying again in " << pause.count()
                << " ms from revision " << since_.value_or(0) << ": " << flatten(why) << std::endl;
    }
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, kMaxPause);
  }

  [[noreturn]] void fail(const HttpResponse& response) {
    if (json_ && !response.body.empty()) {
      std::lock_guard lock(outputMutex);
      std::cout << response.body << (response.body.back() == '\n' ? "" : "\n") << std::flush;
    }
    std::string message = errorText(response);
    json body = response.json();
    if (response.status == 410 && body.is_object() && body.contains("compact_revision")) {
      message = "compacted: revision " + std::to_string(since_.value_or(0)) + " is older than the watch history of " +
                response.endpoint + "; compact_revision " + body["compact_revision"].dump() +
                " is the oldest --since it accepts (read the current state and watch from its revision)";
    } else if (response.status >= 500) {
      message += " (tried " + response.tried + ")";
    }
    throw CliFailure{exitCodeForStatus(response.status), message};
  }

  // Puts `endpoint` last and asks through a client of that order from now on.
  void passOver(const std::string& endpoint) {
    auto it = std::find(endpoints_.begin(), endpoints_.end(), endpoint);
    if (it != endpoints_.end()) std::rotate(endpoints_.begin(), std::next(it), endpoints_.end());
    own_ = std::make_unique<HttpClient>(endpoints_, std::chrono::milliseconds(kWaitMs) + kAnswerGrace,
                                        RetryPolicy{.failoverOnUnavailable = true});
    client_ = own_.get();
  }

  HttpClient* client_;
  std::unique_ptr<HttpClient> own_;  // once the order changed
  std::vector<std::string> endpoints_;
  std::size_t compactedInARow_ = 0;  // 410s since the last answer: all of them, and it fails
  bool json_;
  std::string path_;
  std::string target_;
  bool recursive_ = false;
  std::optional<std::uint64_t> since_;  // every event up to it was printed (or skipped by --since)
  std::optional<std::uint64_t> left_;   // --count: events still to print
  bool answered_ = false;               // a 200 came: outages from now on are waited out
};

}  // namespace

int runWatch(HttpClient& client, const std::vector<std::string>& endpoints, const Args& args, bool json) {
  return Watch(client, endpoints, args, json).run();
}

}  // namespace warden::api
