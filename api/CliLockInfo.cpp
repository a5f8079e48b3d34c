// warden locks, warden lock-info NAME, warden leader NAME [--watch]: reading locks and
// elections (api/CliLock.h has the commands' contract).

#include <pthread.h>
#include <signal.h>

#include <algorithm>
#include <iostream>
#include <thread>

#include "api/Cli.h"
#include "api/CliLockParts.h"
#include "api/CliReply.h"
#include "api/Url.h"

namespace warden::api::clilock {

using namespace clireply;
using json = nlohmann::ordered_json;

namespace {

// ---- warden locks, lock-info, leader -----------------------------------------------------

class Reader {
 public:
  Reader(const std::string& command, HttpClient& client, const Args& args, bool json)
      : command_(command), client_(client), args_(args), json_(json) {}

  int run() {
    try {
      if (command_ == "locks") return locks();
      if (command_ == "lock-info") return lockInfo();
      return leader();
    } catch (const BadReply& e) {
      throw CliFailure{ExitCode::Unavailable, "malformed reply from " + lastEndpoint_ + ": " + e.what};
    } catch (const nlohmann::json::exception& e) {
      throw CliFailure{ExitCode::Unavailable, "malformed reply from " + lastEndpoint_ + ": " + e.what()};
    }
  }

 private:
  const std::string& onlyName() {
    if (args_.positionals().empty()) throw UsageError("missing NAME");
    if (args_.positionals().size() > 1) throw UsageError("unexpected argument '" + args_.positionals()[1] + "'");
    return nameArgument(args_.positionals()[0]);
  }

  HttpResponse get(const std::string& target) {
    HttpResponse response = client_.send(HttpRequest{"GET", target, {}, {}, {}});
    lastEndpoint_ = response.endpoint;
    return response;
  }

  [[noreturn]] void fail(const HttpResponse& response) {
    printJson(response);
    throw CliFailure{exitCodeForStatus(response.status), describeError(response)};
  }

  void printJson(const HttpResponse& response) {
    if (!json_ || response.body.empty()) return;
    std::lock_guard lock(outputMutex);
    std::cout << response.body << (response.body.back() == '\n' ? "" : "\n") << std::flush;
  }

  // The children of /_warden/locks, a page at a time; none when the node does not exist.
  int locks() {
    args_.allow({"endpoints", "output"});
    if (!args_.positionals().empty()) throw UsageError("unexpected argument '" + args_.positionals()[0] + "'");
    std::string after;
    for (std::size_t pages = 0; pages < kMaxPages; ++pages) {
      const HttpResponse response =
          get("/v1/nodes/_warden/locks?children" + (after.empty() ? "" : "&after=" + percentEncodePath(after)));
      if (response.status == 404) return 0;
      if (response.status != 200) fail(response);
      const json body = parseObject(response);
      if (json_) {
        printJson(response);
      } else {
        for (const json& name : array(body, "children")) std::cout << oneLine(stringItem(name)) << "\n";
      }
      if (!body.contains("next") || body["next"].is_null()) return 0;
      std::string next = text(body, "next");
      if (next.empty() || next == after) throw BadReply{"the page cursor \"next\" does not move on"};
      after = std::move(next);
    }
    throw BadReply{"more than " + std::to_string(kMaxPages) + " pages"};
  }

  int lockInfo() {
    args_.allow({"endpoints", "output"});
    const std::string& name = onlyName();
    const HttpResponse response = get(queueTarget(false, name));
    if (response.status != 200) fail(response);
    if (json_) {
      printJson(response);
      return 0;
    }
    const json body = parseObject(response);
    const json& holders = array(body, "holders");
    const json& waiters = array(body, "waiters");
    std::cout << oneLine(name) << ": " << holders.size() << (holders.size() == 1 ? " holder, " : " holders, ")
              << waiters.size() << " waiting" << (body.value("truncated", false) ? " (the first 10,000 shown)" : "")
              << "\n";
    auto owner = [](const json& entry) {
      const std::string ownerText = text(entry, "owner");
      return ownerText.empty() ? std::string() : " owner " + oneLine(ownerText);
    };
    for (const json& h : holders) {
      std::cout << "  holder " << text(h, "session") << " " << text(h, "mode") << " token " << unsignedField(h, "token")
                << " since " << unsignedField(h, "since") << owner(h) << "\n";
    }
    for (const json& w : waiters)
      std::cout << "  waiter " << text(w, "session") << " " << text(w, "mode") << owner(w) << "\n";
    return 0;
  }

  // "VALUE (term T, session S)", or "(no leader)".
  static std::string leaderLine(const json& leader) {
    if (leader.is_null()) return "(no leader)";
    return oneLine(text(leader, "value")) + " (term " + std::to_string(unsignedField(leader, "term")) + ", session " +
           text(leader, "session") + ")";
  }

  void print(const HttpResponse& response, const json& leader) {
    if (json_) return printJson(response);
    const std::string line = leaderLine(leader);
    std::lock_guard lock(outputMutex);
    std::cout << line << "\n" << std::flush;
  }

  int leader() {
    args_.allow({"watch", "endpoints", "output"});
    const std::string& name = onlyName();
    if (!args_.has("watch")) {
      const HttpResponse response = get(queueTarget(true, name));
      if (response.status != 200) fail(response);
      const json leader = member(parseObject(response), "leader");
      if (!leader.is_null() && !leader.is_object()) throw BadReply{"\"leader\" is neither an object nor null"};
      print(response, leader);
      if (leader.is_null()) throw CliFailure{ExitCode::NotFound, "election " + name + " has no leader"};
      return 0;
    }
    return watchLeader(name);
  }

  // Prints the leader, then each change of it (a new leader, term or value), until SIGINT or
  // SIGTERM (exit 0). Each read blocks on the election after the last answer's revision
  // (never lowered); once answered, an outage is waited out (a line on stderr, pauses
  // doubling to 5 s).
  int watchLeader(const std::string& name) {
    exitCleanlyOnSignals();
    client_.setTimeout(kWatchWait + kAnswerGrace);
    std::optional<std::uint64_t> index;
    std::optional<json> shown;
    milliseconds pause = kFirstPause;
    for (;;) {
      std::string target = queueTarget(true, name);
      if (index) target += "?index=" + std::to_string(*index) + "&wait_ms=" + std::to_string(kWatchWait.count());
      HttpResponse response;
      try {
        response = get(target);
      } catch (const HttpClientError& e) {
        if (!index) throw;
        waitOut(name, e.what(), pause);
        continue;
      }
      if (response.status != 200) {
        if (index && (response.status >= 500 || response.status == 429)) {
          waitOut(name, describeError(response), pause);
          continue;
        }
        fail(response);
      }
      pause = kFirstPause;
      const json leader = member(parseObject(response), "leader");
      if (!leader.is_null() && !leader.is_object()) throw BadReply{"\"leader\" is neither an object nor null"};
      json key = leader.is_object() ? json{leader.value("session", json()), leader.value("term", json()),
                                           leader.value("value", json())}
                                    : json();
      if (!shown || *shown != key) print(response, leader);
      shown = std::move(key);
      index = std::max(index.value_or(0), response.revision.value_or(0));
      if (!response.revision) std::this_thread::sleep_for(kFirstPause);  // nothing to block on: do not spin
    }
  }

  void waitOut(const std::string& name, const std::string& why, milliseconds& pause) {
    say("watch of election " + name + " paused, trying again in " + std::to_string(ms(pause)) + " ms: " + why);
    std::this_thread::sleep_for(pause);
    pause = std::min(pause * 2, kMaxPause);
  }

  // SIGINT and SIGTERM end the watch with exit 0 between two lines of output.
  static void exitCleanlyOnSignals() {
    const sigset_t signals = signalSet({SIGINT, SIGTERM});
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

  std::string command_;
  HttpClient& client_;
  const Args& args_;
  bool json_;
  std::string lastEndpoint_;
};

}  // namespace

int runReader(const std::string& command, HttpClient& client, const Args& args, bool json) {
  return Reader(command, client, args, json).run();
}

}  // namespace warden::api::clilock
