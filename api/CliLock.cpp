#include "api/CliLock.h"

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <atomic>
#include <cerrno>
#include <cstdint>
#include <cstdlib>
#include <cstring>
#include <iostream>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <variant>

#include "api/ChildProcess.h"
#include "api/Cli.h"
#include "api/CliLockParts.h"
#include "api/CliLockWorkers.h"
#include "api/CliReply.h"
#include "api/CliRequest.h"
#include "api/Url.h"
#include "coordinator/Utf8.h"

extern char** environ;

namespace warden::api {

namespace clilock {

using namespace clireply;
using namespace clirequest;

// Held while a line goes to stdout or stderr: threads print whole lines.
std::mutex outputMutex;

void say(const std::string& line) {
  std::lock_guard lock(outputMutex);
  std::cerr << "warden: " << oneLine(line) << std::endl;
}

long long ms(milliseconds d) { return static_cast<long long>(d.count()); }

std::string signalName(int signal) {
  switch (signal) {
    case SIGINT:
      return "SIGINT";
    case SIGTERM:
      return "SIGTERM";
    case SIGHUP:
      return "SIGHUP";
    case SIGQUIT:
      return "SIGQUIT";
    default:
      return "signal " + std::to_string(signal);
  }
}

sigset_t signalSet(std::initializer_list<int> signals) {
  sigset_t set;
  sigemptyset(&set);
  for (int s : signals) sigaddset(&set, s);
  return set;
}

const sigset_t kStopSignals = signalSet({SIGINT, SIGTERM, SIGHUP, SIGQUIT});
const sigset_t kSupervised = signalSet({SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGCHLD});

// One of `set` if it comes within `limit` (already pending included), else 0.
int waitSignal(const sigset_t& set, milliseconds limit) {
  limit = std::max(limit, milliseconds(0));
  timespec timeout{static_cast<time_t>(limit.count() / 1000), static_cast<long>(limit.count() % 1000) * 1'000'000};
  const int signal = ::sigtimedwait(&set, nullptr, &timeout);
  return signal > 0 ? signal : 0;
}

// A lock or election name: one path component (the server checks the rest).
const std::string& nameArgument(const std::string& name) {
  if (name.empty() || name.find('/') != std::string::npos) {
    throw UsageError("NAME is one path component: not empty, no '/' (got '" + name + "')");
  }
  if (!coordinator::isValidUtf8(name)) throw UsageError("NAME must be UTF-8 text");
  return name;
}

std::string queueTarget(bool election, const std::string& name, const std::string& action) {
  return std::string(election ? "/v1/elections/" : "/v1/locks/") + percentEncodePath(name) +
         (action.empty() ? "" : "/" + action);
}

std::uint64_t unsignedField(const json& object, const char* key) {
  const json& value = member(object, key);
  if (!value.is_number_unsigned()) throw BadReply{std::string("\"") + key + "\" is not a whole number"};
  return value.get<std::uint64_t>();
}

// ---- warden lock, warden elect -----------------------------------------------------------

class Hold {
 public:
  Hold(const std::string& command, HttpClient& client, std::vector<std::string> endpoints, const Args& args)
      : client_(client), endpoints_(std::move(endpoints)), election_(command == "elect") {
    if (election_) {
      args.allow({"ttl", "wait", "grace", "endpoints", "output"});
    } else {
      args.allow({"shared", "ttl", "wait", "grace", "owner", "endpoints", "output"});
    }
    const auto& words = args.positionals();
    const std::size_t before = election_ ? 2 : 1;  // NAME [VALUE]
    if (!args.afterDashes()) throw UsageError("CMD goes after --");
    const std::size_t dashes = *args.afterDashes();
    if (dashes < 1) throw UsageError("missing NAME");
    if (dashes < before) throw UsageError("missing VALUE");
    if (dashes > before) throw UsageError("unexpected argument '" + words[before] + "' (CMD goes after --)");
    if (words.size() == dashes) throw UsageError("missing CMD after --");
    name_ = nameArgument(words[0]);
    if (election_) value_ = textArgument("VALUE", words[1]);
    if (auto owner = args.get("owner")) value_ = textArgument("--owner", *owner);
    command_.assign(words.begin() + static_cast<std::ptrdiff_t>(dashes), words.end());
    shared_ = args.has("shared");
    ttl_ = milliseconds(args.number("ttl", 10'000, 1000, 600'000));
    grace_ = milliseconds(args.number("grace", 5000, 0, 600'000));
    if (args.has("wait")) wait_ = milliseconds(args.number("wait", 0, 0, 1'000'000'000'000));
    what_ = election_ ? "leadership of election " + name_ : "lock " + name_;
  }

  int run() {
    const std::optional<std::string> program = ChildProcess::find(command_[0]);
    if (!program) {
      say(command_[0] + ": command not found");
      return 127;
    }
    sigset_t before;
    pthread_sigmask(SIG_BLOCK, &kSupervised, &before);
    inherited_ = ChildProcess::openDescriptors();  // before this command opened any of its own
    openSession();
    int code = 0;
    try {
      code = holdAndRun(*program, before);
    } catch (const std::exception& e) {
      // Only a broken invariant or memory gets here: CMD does not outlive it.
      if (child_ && child_->groupAlive()) child_->stopGroup(grace_);
      say(std::string("unexpected failure: ") + e.what());
      code = static_cast<int>(ExitCode::Unavailable);
      finish(false);
    }
    return code;
  }

 private:
  void openSession() {
    // Named after the command for `warden session ls` (a NAME too long for that is refused anyway).
    std::string label = std::string(election_ ? "warden elect " : "warden lock ") + name_;
    if (label.size() > 1024) label = election_ ? "warden elect" : "warden lock";
    const json body = {{"ttl_ms", ttl_.count()}, {"name", label}};
    const auto sent = Clock::now();
    const HttpResponse response = client_.send(
        HttpRequest{"POST", "/v1/sessions", body.dump(), "application/json", HttpClient::newIdempotencyKey()});
    if (response.status >= 300) throw CliFailure{exitCodeForStatus(response.status), describeError(response)};
    try {
      session_ = text(parseObject(response), "id");
    } catch (const BadReply& e) {
      throw CliFailure{ExitCode::Unavailable, "malformed reply from " + response.endpoint + ": " + e.what};
    }
    keeper_ = std::make_shared<KeeperState>();
    keeper_->endpoints = endpoints_;
    keeper_->id = session_;
    keeper_->ttl = ttl_;
    keeper_->ackedSent = sent;
    keeperThread_.start([s = keeper_] { keepAlive(s); });
  }

  // Until when the session is known to live, less a fifth of its ttl for clocks and delays.
  Clock::time_point confirmedUntil() {
    std::lock_guard lock(keeper_->mutex);
    return keeper_->ackedSent + ttl_ - ttl_ / 5;
  }

  // Why the session (and with it the lock) can no longer be vouched for, if it cannot.
  std::optional<std::string> lostBecause() {
    {
      std::lock_guard lock(keeper_->mutex);
      if (keeper_->gone) return keeper_->gone;
    }
    if (watch_) {
      std::lock_guard lock(watch_->mutex);
      if (watch_->lost) return watch_->lost;
    }
    if (Clock::now() >= confirmedUntil()) {
      return "no keepalive of session " + session_ + " acknowledged within " + std::to_string(ms(ttl_ - ttl_ / 5)) +
             " ms (4/5 of its ttl)";
    }
    return std::nullopt;
  }

  // Before CMD runs, a lost session is a command's usual failure: 4 gone, 3 unconfirmed.
  ExitCode lostBeforeStart() {
    std::lock_guard lock(keeper_->mutex);
    return keeper_->gone ? ExitCode::NotFound : ExitCode::Unavailable;
  }

  int holdAndRun(const std::string& program, const sigset_t& mask) {
    // Ask for the lock on a thread of its own: this one watches signals and the session.
    auto asking = std::make_shared<AcquireState>();
    asking->endpoints = endpoints_;
    asking->id = session_;
    asking->name = name_;
    asking->election = election_;
    asking->shared = shared_;
    asking->owner = value_;
    if (wait_) asking->deadline = Clock::now() + *wait_;
    Background acquirer;
    acquirer.start([s = asking] {
      auto outcome = acquire(*s);
      std::lock_guard lock(s->mutex);
      s->outcome = std::move(outcome);
    });
    std::optional<Grant> grant;
    while (!grant) {
      const int signal = waitSignal(kStopSignals, kTick);
      std::optional<Denied> denied;
      if (signal) {
        denied = Denied{static_cast<ExitCode>(128 + signal),
                        signalName(signal) + " while waiting for " + what_ + ": its session is closed"};
      } else if (auto lost = lostBecause()) {
        denied = Denied{lostBeforeStart(), *lost + " before " + what_ + " was granted"};
      } else {
        std::lock_guard lock(asking->mutex);
        if (asking->outcome && std::holds_alternative<Grant>(*asking->outcome))
          grant = std::get<Grant>(*asking->outcome);
        if (asking->outcome && std::holds_alternative<Denied>(*asking->outcome))
          denied = std::get<Denied>(*asking->outcome);
      }
      if (denied) {
        say(denied->message);
        asking->stop();
        finish(false);  // the close ends a waiting acquire at once
        acquirer.finishBy(Clock::now() + kThreadExit);
        return static_cast<int>(denied->code);
      }
    }
    acquirer.finishBy(Clock::now() + kThreadExit);
    token_ = grant->token;
    if (auto lost = lostBecause()) {  // between the grant and now
      say(*lost + " once " + what_ + " was granted; CMD not started");
      finish(true);
      return static_cast<int>(lostBeforeStart());
    }
    return runCommand(program, mask);
  }

  int runCommand(const std::string& program, const sigset_t& mask) {
    std::vector<std::pair<std::string, std::string>> ours = {{"WARDEN_SESSION", session_}};
    ours.emplace_back(election_ ? "WARDEN_ELECTION_TERM" : "WARDEN_LOCK_TOKEN", std::to_string(token_));
    auto started = ChildProcess::start(program, command_, environment(ours), inherited_, mask);
    if (const int* error = std::get_if<int>(&started)) {
      say(command_[0] + ": " + std::strerror(*error));
      finish(true);
      return *error == ENOENT ? 127 : 126;
    }
    child_ = std::get<ChildProcess>(std::move(started));
    watch_ = std::make_shared<WatchState>();
    watch_->endpoints = endpoints_;
    watch_->id = session_;
    watch_->name = name_;
    watch_->election = election_;
    watch_->token = token_;
    watchThread_.start([s = watch_] { watchGrant(s); });
    for (;;) {
      if (auto lost = lostBecause()) return stopLost(*lost);
      const auto untilUnconfirmed = std::chrono::duration_cast<milliseconds>(confirmedUntil() - Clock::now());
      const int signal = waitSignal(kSupervised, std::min(kTick, untilUnconfirmed + milliseconds(1)));
      if (signal && signal != SIGCHLD) child_->signalGroup(signal);
      if (child_->reap()) break;
    }
    const int code = ChildProcess::exitCodeOf(*child_->status());
    if (child_->groupAlive()) {
      say("CMD exited and left processes running in its process group " + std::to_string(child_->pid()) +
          ": stopping them before " + what_ + " is given up");
      child_->stopGroup(grace_);
    }
    finish(true);
    return code;
  }

  // The session is lost, or can no longer be confirmed: CMD must stop before anyone else may
  // be granted the lock.
  int stopLost(const std::string& why) {
    child_->terminateGroup();
    say("lost " + what_ + ": " + why + "; stopping CMD (process group " + std::to_string(child_->pid()) +
        "): SIGTERM now, SIGKILL after " + std::to_string(ms(grace_)) + " ms");
    child_->killGroupAfter(grace_);
    finish(false, true);
    return static_cast<int>(ExitCode::Lost);
  }

  // The end: releases the lock by its token (resigns) when `release`, closes the session, and
  // stops the threads. Each request is bounded; a failure is one line on stderr (the close's
  // none when `quiet`: the session is already taken for lost).
  void finish(bool release, bool quiet = false) {
    keeper_->stop();
    if (watch_) watch_->stop();
    client_.setTimeout(kCleanupTimeout);
    client_.setPolicy(RetryPolicy{.failoverOnUnavailable = true, .rounds = 1});
    if (release) {
      json body = {{"session", session_}};
      if (!election_) body["token"] = token_;
      try {
        const HttpResponse response =
            client_.send(HttpRequest{"POST", queueTarget(election_, name_, election_ ? "resign" : "release"),
                                     body.dump(), "application/json", HttpClient::newIdempotencyKey()});
        if (response.status != 200) {
          say(what_ + " not given up: " + describeError(response) +
              (response.status == 409 || response.status == 404 ? " (it was no longer held when CMD ended)" : ""));
        }
      } catch (const HttpClientError& e) {
        say(what_ + " not given up: " + e.what() + "; the session's close or expiry gives it up");
      }
    }
    try {
      const HttpResponse response =
          client_.send(HttpRequest{"DELETE", sessionTarget(session_), {}, {}, HttpClient::newIdempotencyKey()});
      if (response.status >= 300 && response.status != 404 && !quiet) {
        say("session " + session_ + " not closed: " + describeError(response) + "; it expires within " +
            std::to_string(ms(ttl_)) + " ms");
      }
    } catch (const HttpClientError& e) {
      if (!quiet)
        say("session " + session_ + " not closed: " + e.what() + "; it expires within " + std::to_string(ms(ttl_)) +
            " ms");
    }
    const auto deadline = Clock::now() + kThreadExit;
    keeperThread_.finishBy(deadline);
    watchThread_.finishBy(deadline);
  }

  // This process's environment with `ours` set (replacing any of the same name).
  static std::vector<std::string> environment(const std::vector<std::pair<std::string, std::string>>& ours) {
    std::vector<std::string> env;
    for (char** var = environ; var && *var; ++var) {
      const std::string_view entry(*var);
      const bool replaced = std::any_of(ours.begin(), ours.end(), [&](const auto& kv) {
        return entry.size() > kv.first.size() && entry.starts_with(kv.first) && entry[kv.first.size()] == '=';
      });
      if (!replaced) env.emplace_back(entry);
    }
    for (const auto& [key, value] : ours) env.push_back(key + "=" + value);
    return env;
  }

  HttpClient& client_;
  std::vector<std::string> endpoints_;
  bool election_;
  std::string name_, what_;
  std::optional<std::string> value_;  // lock: --owner; election: VALUE
  std::vector<std::string> command_;
  bool shared_ = false;
  milliseconds ttl_{}, grace_{};
  std::optional<milliseconds> wait_;
  std::vector<int> inherited_;  // descriptors CMD inherits (this process's own are closed)
  std::string session_;
  std::uint64_t token_ = 0;
  std::optional<ChildProcess> child_;
  std::shared_ptr<KeeperState> keeper_;
  std::shared_ptr<WatchState> watch_;
  // Declared last: destroyed (joined or left behind) first.
  Background keeperThread_, watchThread_;
};

const std::set<std::string> kLockCommands = {"lock", "elect", "locks", "lock-info", "leader"};

}  // namespace clilock

using namespace clilock;

bool isLockCommand(const std::string& command) { return kLockCommands.count(command) > 0; }

int runLockCommand(const std::string& command, HttpClient& client, const std::vector<std::string>& endpoints,
                   const Args& args, bool json) {
  if (command != "lock" && command != "elect") return runReader(command, client, args, json);
  int code = 0;
  {
    Hold hold(command, client, endpoints, args);
    code = hold.run();
  }
  if (threadLeftBehind) {
    std::lock_guard lock(outputMutex);
    std::cout.flush();
    std::cerr.flush();
    std::_Exit(code);
  }
  return code;
}

}  // namespace warden::api
