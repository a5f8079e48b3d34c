#include "api/CliLockWorkers.h"

#include <chrono>
#include <utility>

#include "api/CliReply.h"
#include "api/CliRequest.h"

namespace warden::api::clilock {

using namespace clireply;
using namespace clirequest;

// Set when a thread was left running in a request at the end: the process then ends with
// std::_Exit instead of a return through static destructors.
std::atomic<bool> threadLeftBehind{false};

void Background::finishBy(Clock::time_point deadline) {
  if (!thread_.joinable()) return;
  while (!done_->load() && Clock::now() < deadline) std::this_thread::sleep_for(milliseconds(5));
  if (done_->load()) {
    thread_.join();
  } else {
    thread_.detach();
    threadLeftBehind = true;
  }
}

// ---- The session's keepalives ------------------------------------------------------------

void keepAlive(const std::shared_ptr<KeeperState>& s) {
  const milliseconds every = s->ttl / 3;
  // One round over the endpoints per keepalive, each attempt bounded by the cadence, so that a
  // node stuck waiting for a quorum does not hold up the next keepalive.
  HttpClient client(s->endpoints, std::clamp(every, milliseconds(1000), milliseconds(10'000)),
                    RetryPolicy{.failoverOnUnavailable = true, .rounds = 1});
  const std::string target = sessionTarget(s->id) + "/keepalive";
  Clock::time_point next;
  {
    std::lock_guard lock(s->mutex);
    next = s->ackedSent + every;
  }
  for (;;) {
    if (s->sleepUntil(next)) return;
    const auto sent = Clock::now();
    std::string problem;
    try {
      HttpResponse response = client.send(HttpRequest{"POST", target, {}, {}, HttpClient::newIdempotencyKey()});
      std::lock_guard lock(s->mutex);
      if (response.status < 300) {
        s->ackedSent = std::max(s->ackedSent, sent);
      } else if (response.status == 404) {
        s->gone = "session " + s->id + " is gone (" + describeError(response) + ")";
        return;
      } else {
        problem = describeError(response);
      }
    } catch (const HttpClientError& e) {
      problem = e.what();
    }
    if (!problem.empty() && !s->stopped()) say("keepalive of session " + s->id + " not acknowledged: " + problem);
    next = std::max(sent + every, Clock::now());
  }
}

// ---- Asking for the lock (the leadership) ------------------------------------------------

milliseconds remaining(const AcquireState& s) {
  if (!s.deadline) return kMaxWait;
  const auto left = std::chrono::duration_cast<milliseconds>(*s.deadline - Clock::now());
  return std::clamp(left, milliseconds(0), kMaxWait);
}

// After a 404 to an acquire or a campaign: whether the session is really gone. (A waiting
// acquire that a client gave up on withdraws the session's request when its wait_ms ends, even
// while a newer acquire of the same session waits on that request: the newer one is then
// answered 404 session_not_found with the session alive.)
std::optional<bool> sessionGone(HttpClient& client, const std::string& id) {
  try {
    const HttpResponse response = client.send(HttpRequest{"GET", sessionTarget(id), {}, {}, {}});
    if (response.status == 404) return true;
    if (response.status == 200) return false;
  } catch (const HttpClientError&) {
  }
  return std::nullopt;
}

std::variant<Grant, Denied> acquire(AcquireState& s) {
  HttpClient client(s.endpoints, kMaxWait + kAnswerGrace, RetryPolicy{.failoverOnUnavailable = true});
  const std::string what = s.election ? "leadership of election " + s.name : "lock " + s.name;
  milliseconds pause = kFirstPause;
  while (!s.stopped()) {
    const milliseconds wait = remaining(s);
    json body = {{"session", s.id}};
    if (s.election) {
      // wait_ms 0, then a blocking read of the election: a campaign that waits is not answered
      // when its candidacy led before the wait began (at once, or between two campaigns).
      body["value"] = s.owner.value_or("");
      body["wait_ms"] = 0;
    } else {
      body["wait_ms"] = wait.count();
      if (s.shared) body["mode"] = "shared";
      if (s.owner) body["owner"] = *s.owner;
    }
    HttpResponse response;
    try {
      client.setTimeout((s.election ? milliseconds(0) : wait) + kAnswerGrace);
      // A repeat is harmless: a session asking again finds its own request (API.md).
      response = client.send(HttpRequest{"POST", queueTarget(s.election, s.name, s.election ? "campaign" : "acquire"),
                                         body.dump(), "application/json", HttpClient::newIdempotencyKey()});
    } catch (const HttpClientError&) {
      if (s.pause(pause)) break;
      continue;
    }
    if (response.status == 200) {
      try {
        return Grant{unsignedField(parseObject(response), s.election ? "term" : "token")};
      } catch (const BadReply& e) {
        return Denied{ExitCode::Unavailable, "malformed reply from " + response.endpoint + ": " + e.what};
      }
    }
    const bool locked = response.status == 409 && response.json().value("error", "") == "locked";
    if (locked || response.status == 202) {
      if (s.deadline && Clock::now() >= *s.deadline) {
        return Denied{ExitCode::NotAcquired, what + " not granted within --wait"};
      }
      if (response.status == 202) {
        const std::string target = queueTarget(true, s.name) +
                                   "?index=" + std::to_string(response.revision.value_or(0)) +
                                   "&wait_ms=" + std::to_string(std::min(remaining(s), kWatchWait).count());
        try {
          client.setTimeout(kWatchWait + kAnswerGrace);
          client.send(HttpRequest{"GET", target, {}, {}, {}});
        } catch (const HttpClientError&) {
          if (s.pause(pause)) break;
        }
        if (!response.revision && s.pause(pause)) break;  // no index to wait on: do not spin
      }
      continue;
    }
    if (response.status == 404) {
      const auto gone = sessionGone(client, s.id);
      if (gone && *gone) return Denied{ExitCode::NotFound, "session " + s.id + " ended before it was granted " + what};
      if (!gone && s.pause(pause)) break;
      continue;
    }
    if (response.status >= 500 || response.status == 429) {
      if (s.pause(pause)) break;
      continue;
    }
    return Denied{exitCodeForStatus(response.status), describeError(response)};
  }
  return Denied{ExitCode::Unavailable, "stopped"};
}

// ---- Watching the grant ------------------------------------------------------------------

std::optional<std::string> notHeld(const WatchState& s, const json& body) {
  if (s.election) {
    const json& leader = member(body, "leader");
    if (leader.is_object() && text(leader, "session") == s.id && unsignedField(leader, "term") == s.token) return {};
    return "session " + s.id + " no longer leads election " + s.name + " in term " + std::to_string(s.token) +
           (leader.is_object() ? " (the leader is session " + text(leader, "session") + ")" : " (no leader)");
  }
  for (const json& holder : array(body, "holders")) {
    if (text(holder, "session") == s.id && unsignedField(holder, "token") == s.token) return {};
  }
  return "session " + s.id + " no longer holds lock " + s.name + " with token " + std::to_string(s.token);
}

void watchGrant(const std::shared_ptr<WatchState>& s) {
  HttpClient client(s->endpoints, kWatchWait + kAnswerGrace, RetryPolicy{.failoverOnUnavailable = true});
  std::uint64_t index = s->token;
  milliseconds pause = kFirstPause;
  while (!s->stopped()) {
    const std::string target = queueTarget(s->election, s->name) + "?index=" + std::to_string(index) +
                               "&wait_ms=" + std::to_string(kWatchWait.count());
    std::optional<std::string> why;
    try {
      const HttpResponse response = client.send(HttpRequest{"GET", target, {}, {}, {}});
      if (response.status != 200 || response.revision.value_or(0) < s->token) {
        if (s->pause(pause)) return;
        continue;
      }
      why = notHeld(*s, parseObject(response));
      index = std::max(index, *response.revision);
      pause = kFirstPause;
    } catch (const HttpClientError&) {
      if (s->pause(pause)) return;
      continue;
    } catch (const BadReply&) {
      if (s->pause(pause)) return;
      continue;
    } catch (const nlohmann::json::exception&) {
      if (s->pause(pause)) return;
      continue;
    }
    if (why) {
      std::lock_guard lock(s->mutex);
      if (!s->stopping) s->lost = std::move(why);
      return;
    }
  }
}

}  // namespace warden::api::clilock
