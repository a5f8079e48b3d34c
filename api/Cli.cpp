#include "api/Cli.h"

#include <algorithm>
#include <chrono>
#include <cstdlib>
#include <fstream>
#include <functional>
#include <iostream>
#include <iterator>
#include <map>
#include <set>
#include <thread>

#include "api/Args.h"
#include "api/Base64.h"
#include "api/CliLock.h"
#include "api/CliReply.h"
#include "api/CliRequest.h"
#include "api/CliWatch.h"
#include "api/HttpClient.h"
#include "api/SubtreeDelete.h"
#include "api/Url.h"
#include "coordinator/Utf8.h"

namespace warden::api {

using json = nlohmann::ordered_json;

const char* kCliUsage = R"(client commands:
  warden get PATH                  print a node's data: text with a newline added if it lacks
                                   one; data that is not text, byte for byte as stored
  warden get PATH --children       print only its children's names, one per line
  warden get PATH --recursive      print its subtree as JSON (-r too)
  warden ls [PATH]                 its children's names, one per line (PATH defaults to /)
  warden put PATH VALUE [--version N] [--create]
                                   set a node's data (VALUE - reads stdin); --version N: only if
                                   the node is at version N; --create: create it when missing
  warden create PATH [VALUE] [-p] [--sequential] [--ephemeral --session ID]
                                   create a node (-p or --parents: create missing parents too)
  warden rm PATH [-r] [--version N]
                                   delete a node (-r or --recursive: with its whole subtree; one
                                   larger than the server's --max-txn-nodes goes in batches,
                                   deepest nodes first, unless --version is given)
  warden txn [FILE]                run {"ops": [...]} from FILE or stdin
  warden status                    the node's view of the cluster
  warden session create [--ttl MS] [--name NAME]
                                   open a session (ttl 10000 by default); prints its id
  warden session keepalive ID [--every MS]
                                   keep it alive once, or every MS ms, through failovers, until
                                   it is gone
  warden session close ID          close it: its ephemeral nodes are deleted
  warden session ls [ID]           list sessions (or one, with its ephemeral nodes)
  warden watch PATH [-r] [--since R] [--count N]
                                   print PATH's changes (-r: its subtree's) as they come, after
                                   revision R (default: now), until Ctrl-C or N events are out
  warden lock NAME [--shared] [--ttl MS] [--wait MS] [--grace MS] [--owner TEXT] -- CMD [ARG...]
                                   run CMD holding lock NAME ($WARDEN_LOCK_TOKEN, $WARDEN_SESSION)
                                   through a session of its own (--ttl, default 10000); CMD is
                                   stopped (SIGTERM to its process group, SIGKILL after --grace,
                                   default 5000) as soon as the session is lost or not confirmed
                                   within 4/5 of its ttl; --wait: give up after MS
  warden elect NAME VALUE [--ttl MS] [--wait MS] [--grace MS] -- CMD [ARG...]
                                   the same as leader of election NAME ($WARDEN_ELECTION_TERM)
  warden locks                     the names of the locks held or waited for
  warden lock-info NAME            a lock's holders and waiters
  warden leader NAME [--watch]     an election's leader (--watch: and each change after)
  warden version                   print the version (also: warden --version)

flags go before or after the command:
  --endpoints URL[,URL...]         the nodes to ask, in turn (default $WARDEN_ENDPOINTS, else
                                   http://127.0.0.1:7070, then :7001, :7002, :7003)
  -o json, --output json           print the server's JSON replies as they are, one per line
                                   (nothing for a reply without a body: rm, session close)
  --flag=true|false|1|0            a boolean flag takes a value only after '='
  --                               ends the flags: warden put /x -- --not-a-flag
VALUE is stored byte for byte: a value that is not UTF-8 text, or holds a NUL byte, is sent
as base64 (data_b64). A node that is unreachable or answers 503 is left for the next endpoint;
a write is sent again there with the same Idempotency-Key.
exit codes: 0 done; 1 the server refused (4xx other than 404; its error code and message are
printed); 2 usage error; 3 unavailable (no endpoint answered, 5xx after retries, or a reply that
could not be understood: a write may or may not have been applied); 4 not found (404:
not_found, no_parent, session_not_found). An error is one line on stderr, starting "warden: ".
lock and elect exit with CMD's status (128+N if signal N ended it); 5 not granted within --wait;
6 the session was lost while CMD ran and CMD was stopped; 126/127 CMD not executable/not found;
before CMD runs, 1-4 as above and 128+N when signal N ended the wait. leader: 4 no leader.
)";

ExitCode exitCodeForStatus(unsigned status) {
  if (status < 300) return ExitCode::Ok;
  if (status == 404) return ExitCode::NotFound;
  if (status >= 400 && status < 500) return ExitCode::Refused;
  return ExitCode::Unavailable;
}

namespace {

using namespace clireply;
using namespace clirequest;

constexpr const char* kDefaultEndpoints =
    "http://127.0.0.1:7070,http://127.0.0.1:7001,http://127.0.0.1:7002,http://127.0.0.1:7003";

const std::set<std::string> kCommands = {"get", "ls", "put", "create", "rm", "txn", "status", "session", "watch",
                                         "lock", "elect", "locks", "lock-info", "leader"};

// Each command's (and session sub-command's) synopsis, for its usage error.
const std::map<std::string, std::string> kSynopsis = {
    {"get", "warden get PATH [--children | --recursive]"},
    {"ls", "warden ls [PATH]"},
    {"put", "warden put PATH VALUE|- [--version N] [--create]"},
    {"create", "warden create PATH [VALUE|-] [-p] [--sequential] [--ephemeral --session ID]"},
    {"rm", "warden rm PATH [-r | --recursive] [--version N]"},
    {"txn", "warden txn [FILE|-]"},
    {"status", "warden status"},
    {"watch", "warden watch PATH [-r | --recursive] [--since R] [--count N]"},
    {"session", "warden session create|keepalive|close|ls ..."},
    {"lock", "warden lock NAME [--shared] [--ttl MS] [--wait MS] [--grace MS] [--owner TEXT] -- CMD [ARG...]"},
    {"elect", "warden elect NAME VALUE [--ttl MS] [--wait MS] [--grace MS] -- CMD [ARG...]"},
    {"locks", "warden locks"}, {"lock-info", "warden lock-info NAME"}, {"leader", "warden leader NAME [--watch]"},
    {"session create", "warden session create [--ttl MS] [--name NAME]"},
    {"session keepalive", "warden session keepalive ID [--every MS]"},
    {"session close", "warden session close ID"},
    {"session ls", "warden session ls [ID]"},
};

// At most this many pages of one list: a bound on a server that never stops paging.
constexpr std::size_t kMaxPages = 1'000'000;

std::string readAll(std::istream& in) { return std::string(std::istreambuf_iterator<char>(in), {}); }

std::string nodeTarget(const std::string& path) {
  if (path.empty() || path.front() != '/') throw UsageError("paths start with '/', got '" + path + "'");
  return "/v1/nodes" + (path == "/" ? std::string("/") : percentEncodePath(path));
}

std::string withQuery(const std::string& target, const std::string& query) {
  return query.empty() ? target : target + "?" + query;
}

// Node data for a request body: "data" for UTF-8 text without NUL bytes, else "data_b64", so
// that the node stores exactly these bytes.
void setData(json& body, const std::string& bytes) {
  if (coordinator::isValidUtf8(bytes) && bytes.find('\0') == std::string::npos) {
    body["data"] = bytes;
  } else {
    body["data_b64"] = base64Encode(bytes);
  }
}

class Cli {
 public:
  Cli(const std::string& command, const std::vector<std::string>& argv)
      : command_(command),
        args_(argv, {"children", "recursive", "create", "sequential", "ephemeral", "parents", "shared", "watch"},
              {{"o", "output"}, {"p", "parents"}, {"r", "recursive"}}) {
    const std::string output = args_.get("output", "text");
    if (output != "text" && output != "json") throw UsageError("-o takes text or json");
    json_ = output == "json";
    const char* env = std::getenv("WARDEN_ENDPOINTS");
    endpoints_ = HttpClient::parseEndpoints(args_.get("endpoints", env && *env ? env : kDefaultEndpoints));
    if (endpoints_.empty()) throw UsageError("--endpoints lists no endpoint");
    try {
      client_ = std::make_unique<HttpClient>(endpoints_, std::chrono::seconds(30),
                                             RetryPolicy{.failoverOnUnavailable = true});
    } catch (const HttpClientError& e) {
      throw UsageError(e.what());
    }
  }

  // The synopsis of the command (or session sub-command) being run, for usage errors.
  std::string synopsis() const {
    if (command_ == "session" && !args_.positionals().empty()) {
      auto it = kSynopsis.find("session " + args_.positionals()[0]);
      if (it != kSynopsis.end()) return it->second;
    }
    auto it = kSynopsis.find(command_);
    return it == kSynopsis.end() ? "warden --help" : it->second;
  }

  int run() {
    try {
      return dispatch();
    } catch (const BadReply& e) {
      throw CliFailure{ExitCode::Unavailable, "malformed reply from " + lastEndpoint_ + ": " + e.what};
    } catch (const nlohmann::json::exception& e) {
      throw CliFailure{ExitCode::Unavailable, "malformed reply from " + lastEndpoint_ + ": " + e.what()};
    }
  }

 private:
  int dispatch() {
    if (command_ == "get") return get();
    if (command_ == "ls") return ls();
    if (command_ == "put") return put();
    if (command_ == "create") return create();
    if (command_ == "rm") return rm();
    if (command_ == "txn") return txn();
    if (command_ == "session") return session();
    if (command_ == "status") return status();
    if (command_ == "watch") return runWatch(*client_, endpoints_, args_, json_);
    if (isLockCommand(command_)) return runLockCommand(command_, *client_, endpoints_, args_, json_);
    throw UsageError("unknown command '" + command_ + "'");
  }

  const std::string& positional(std::size_t i, const char* what) {
    if (args_.positionals().size() <= i) throw UsageError(std::string("missing ") + what);
    return args_.positionals()[i];
  }

  void expectPositionals(std::size_t max) {
    if (args_.positionals().size() > max) throw UsageError("unexpected argument '" + args_.positionals()[max] + "'");
  }

  void allow(std::set<std::string> flags) {
    flags.insert({"endpoints", "output"});
    args_.allow(flags);
  }

  // A value argument: "-" reads stdin to its end.
  static std::string valueArgument(const std::string& value) { return value == "-" ? readAll(std::cin) : value; }

  // Sends the request (a write with a fresh Idempotency-Key, kept across its retries) and
  // returns a 2xx answer; anything else becomes a CliFailure.
  HttpResponse call(const std::string& method, const std::string& target, const std::string& body = {}) {
    HttpResponse response = exchange(method, target, body);
    if (response.status >= 300) fail(response);
    return response;
  }

  // As call(), but returns whatever the server answered.
  HttpResponse exchange(const std::string& method, const std::string& target, const std::string& body = {}) {
    HttpRequest request{method, target, body, "application/json", {}};
    if (method != "GET" && method != "HEAD") request.idempotencyKey = HttpClient::newIdempotencyKey();
    HttpResponse response = client_->send(request);
    lastEndpoint_ = response.endpoint;
    return response;
  }

  [[noreturn]] void fail(const HttpResponse& response) {
    if (json_ && !response.body.empty()) printJson(response);
    throw CliFailure{exitCodeForStatus(response.status), describeError(response)};
  }

  // The server's reply as it is, one per line (nothing for a reply without a body).
  int printJson(const HttpResponse& response) {
    if (response.body.empty()) return 0;
    std::cout << response.body << (response.body.back() == '\n' ? "" : "\n");
    return 0;
  }

  static std::string revisionText(const HttpResponse& response) {
    return response.revision ? std::to_string(*response.revision) : "unknown";
  }

  // GETs target?query, then again with after=<next> while a reply carries "next" (the contract
  // of paginated lists; a server that does not paginate sends no "next").
  void forEachPage(const std::string& target, const std::string& query,
                   const std::function<void(const HttpResponse&)>& page) {
    std::string after;
    for (std::size_t pages = 0;; ++pages) {
      if (pages == kMaxPages) throw BadReply{"more than " + std::to_string(kMaxPages) + " pages"};
      std::string fullQuery = query;
      if (!after.empty()) fullQuery += (fullQuery.empty() ? "" : "&") + std::string("after=") + percentEncodePath(after);
      HttpResponse response = call("GET", withQuery(target, fullQuery));
      page(response);
      json body = parseObject(response);
      if (!body.contains("next") || body["next"].is_null()) return;
      std::string next = text(body, "next");
      if (next.empty() || next == after) throw BadReply{"the page cursor \"next\" does not move on"};
      after = std::move(next);
    }
  }

  void listChildren(const std::string& path) {
    forEachPage(nodeTarget(path), "children", [this](const HttpResponse& response) {
      if (json_) {
        printJson(response);
        return;
      }
      const json body = parseObject(response);  // a range-for must not range over a temporary's member
      for (const auto& name : array(body, "children")) std::cout << stringItem(name) << "\n";
    });
  }

  int get() {
    allow({"children", "recursive"});
    expectPositionals(1);
    const std::string& path = positional(0, "PATH");
    if (args_.has("recursive")) return printJson(call("GET", withQuery(nodeTarget(path), "recursive")));
    if (args_.has("children")) {
      listChildren(path);
      return 0;
    }
    auto response = call("GET", nodeTarget(path));
    if (json_) return printJson(response);
    json body = parseObject(response);
    const std::string data = dataOf(body);
    std::cout << data;
    if (body.contains("data") && !data.empty() && data.back() != '\n') std::cout << "\n";
    return 0;
  }

  int ls() {
    allow({});
    expectPositionals(1);
    listChildren(args_.positionals().empty() ? "/" : positional(0, "PATH"));
    return 0;
  }

  int put() {
    allow({"version", "create"});
    expectPositionals(2);
    const std::string& path = positional(0, "PATH");
    json body = json::object();
    setData(body, valueArgument(positional(1, "VALUE")));
    if (args_.has("version")) body["version"] = args_.number("version", 0, 0, INT64_MAX);
    if (args_.has("create")) body["create"] = true;
    auto response = call("PUT", nodeTarget(path), body.dump());
    if (json_) return printJson(response);
    json result = parseObject(response);
    std::cout << text(result, "path") << " version " << scalar(member(result, "stat"), "version") << " revision "
              << revisionText(response) << "\n";
    return 0;
  }

  int create() {
    allow({"sequential", "ephemeral", "session", "parents"});
    expectPositionals(2);
    const std::string& path = positional(0, "PATH");
    json body = json::object();
    if (args_.positionals().size() > 1) setData(body, valueArgument(args_.positionals()[1]));
    if (args_.has("sequential")) body["sequential"] = true;
    if (args_.has("ephemeral")) body["ephemeral"] = true;
    if (auto session = args_.get("session")) body["session"] = textArgument("--session", *session);
    if (args_.has("parents")) body["make_parents"] = true;
    auto response = call("POST", nodeTarget(path), body.dump());
    if (json_) return printJson(response);
    std::cout << text(parseObject(response), "path") << "\n";
    return 0;
  }

  int rm() {
    allow({"recursive", "version"});
    expectPositionals(1);
    const std::string& path = positional(0, "PATH");
    const bool recursive = args_.has("recursive");
    if (recursive && !args_.has("version")) return rmTree(path);
    std::string query = recursive ? "recursive" : "";
    if (args_.has("version")) {
      query += (query.empty() ? "" : "&") + std::string("version=") +
               std::to_string(args_.number("version", 0, 0, INT64_MAX));
    }
    HttpResponse response = exchange("DELETE", withQuery(nodeTarget(path), query));
    if (recursive && isOverWriteLimit(response)) {
      // Batches would delete the children whatever the node's version: all or nothing here.
      if (json_) printJson(response);
      throw CliFailure{ExitCode::Refused, describeError(response) +
                                              " (with --version the subtree must go in one write; without it, "
                                              "warden rm -r deletes it in batches)"};
    }
    if (response.status >= 300) fail(response);
    if (json_) return printJson(response);
    std::cout << "deleted " << path << " at revision " << revisionText(response) << "\n";
    return 0;
  }

  // rm -r without --version: in one write, or in batches, bottom up, where the subtree is more
  // than one write may delete (the server's --max-txn-nodes; see api/SubtreeDelete.h).
  int rmTree(const std::string& path) {
    nodeTarget(path);  // a usage error for a malformed path, before any request
    SubtreeDeleted deleted;
    try {
      deleted = deleteSubtree(*client_, path);
    } catch (const SubtreeDeleteError& e) {
      const HttpResponse& response = e.response();
      lastEndpoint_ = response.endpoint;
      if (response.status < 300) throw BadReply{e.what()};
      if (json_ && !response.body.empty()) printJson(response);
      if (e.batches() == 0 && e.path() == path) {
        throw CliFailure{exitCodeForStatus(response.status), describeError(response)};  // as a plain delete
      }
      throw CliFailure{exitCodeForStatus(response.status),
                       std::string(e.what()) + (response.status >= 500 ? " (tried " + response.tried + ")" : "") +
                           "; " + std::to_string(e.batches()) + " batches of the subtree were deleted before"};
    }
    if (deleted.batches > 1) {
      std::cerr << "warden: deleted " << oneLine(path) << " in " << deleted.batches
                << " batches: more than the server's --max-txn-nodes" << std::endl;
    }
    if (json_) return 0;  // a delete's reply has no body
    std::cout << "deleted " << path << " at revision "
              << (deleted.revision ? std::to_string(*deleted.revision) : "unknown") << "\n";
    return 0;
  }

  int txn() {
    allow({});
    expectPositionals(1);
    std::string body;
    if (args_.positionals().empty() || args_.positionals()[0] == "-") {
      body = readAll(std::cin);
    } else {
      std::ifstream file(args_.positionals()[0], std::ios::binary);
      if (!file) throw UsageError("cannot read " + args_.positionals()[0]);
      body = readAll(file);
    }
    auto response = call("POST", "/v1/txn", body);
    if (json_) return printJson(response);
    json result = parseObject(response);
    std::cout << "committed at revision " << scalar(result, "revision") << "\n";
    for (const auto& op : array(result, "results")) {
      std::cout << "  " << text(op, "op") << " " << text(op, "path") << "\n";
    }
    return 0;
  }

  int status() {
    allow({});
    expectPositionals(0);
    auto response = call("GET", "/v1/status");
    if (json_) return printJson(response);
    json s = parseObject(response);
    std::cout << "node " << scalar(s, "id") << ", leader " << scalar(s, "leader") << ", revision "
              << scalar(s, "revision") << ", applied index " << scalar(s, "applied_index") << "\n";
    for (const auto& m : array(s, "members")) {
      const json& healthy = member(m, "healthy");
      std::cout << "  member " << scalar(m, "id") << " " << scalar(m, "role") << " http " << scalar(m, "http")
                << " peer " << scalar(m, "peer") << (healthy == true ? "" : " (unhealthy)") << "\n";
    }
    return 0;
  }

  void printSession(const json& s) {
    const std::string name = text(s, "name");
    std::cout << text(s, "id") << " ttl " << scalar(s, "ttl_ms") << " ms" << (name.empty() ? "" : " name " + name)
              << "\n";
    for (const auto& path : array(s, "ephemerals")) std::cout << "  " << stringItem(path) << "\n";
  }

  void printKeptAlive(const HttpResponse& response) {
    if (json_) {
      printJson(response);
    } else {
      json body = parseObject(response);
      std::cout << text(body, "id") << " alive, ttl " << scalar(body, "ttl_ms") << " ms\n";
    }
    std::cout.flush();
  }

  // Sends a keepalive every `every` until the session is gone (404). A tick that finds no
  // endpoint able to answer (unreachable, 503, 429) is reported on stderr and the next tick
  // comes on time: the session survives a failover that lasts less than its ttl.
  int keepaliveEvery(const std::string& id, std::chrono::milliseconds every) {
    // One round over the endpoints per tick, each attempt bounded by the cadence, so that a
    // node stuck waiting for a quorum does not hold up the next tick.
    client_->setPolicy(RetryPolicy{.failoverOnUnavailable = true, .rounds = 1});
    client_->setTimeout(std::clamp(every, std::chrono::milliseconds(1000), std::chrono::milliseconds(30'000)));
    const std::string target = sessionTarget(id) + "/keepalive";
    auto next = std::chrono::steady_clock::now();
    for (;;) {
      try {
        HttpResponse response = client_->send(HttpRequest{"POST", target, {}, {}, HttpClient::newIdempotencyKey()});
        lastEndpoint_ = response.endpoint;
        if (response.status < 300) {
          printKeptAlive(response);
        } else if (response.status == 404) {
          if (json_) printJson(response);
          throw CliFailure{ExitCode::NotFound, "session " + id + " is gone: " + describeError(response)};
        } else if (response.status >= 500 || response.status == 429) {
          std::cerr << "warden: keepalive of " << id << " not acknowledged, trying again in " << every.count()
                    << " ms: " << oneLine(describeError(response)) << std::endl;
        } else {
          fail(response);
        }
      } catch (const HttpClientError& e) {
        std::cerr << "warden: keepalive of " << id << " not acknowledged, trying again in " << every.count()
                  << " ms: " << oneLine(e.what()) << std::endl;
      }
      next += every;
      const auto now = std::chrono::steady_clock::now();
      if (next < now) next = now;  // late after a slow tick: send at once, then keep the cadence
      std::this_thread::sleep_until(next);
    }
  }

  int session() {
    const std::string& action = positional(0, "session command (create, keepalive, close or ls)");
    if (action == "create") {
      allow({"ttl", "name"});
      expectPositionals(1);
      json body = {{"ttl_ms", args_.number("ttl", 10'000, 1000, 600'000)}};
      if (auto name = args_.get("name")) body["name"] = textArgument("--name", *name);
      auto response = call("POST", "/v1/sessions", body.dump());
      if (json_) return printJson(response);
      std::cout << text(parseObject(response), "id") << "\n";
      return 0;
    }
    if (action == "keepalive") {
      allow({"every"});
      expectPositionals(2);
      const std::string& id = positional(1, "session ID");
      if (args_.has("every")) return keepaliveEvery(id, std::chrono::milliseconds(args_.number("every", 0, 100, 600'000)));
      printKeptAlive(call("POST", sessionTarget(id) + "/keepalive"));
      return 0;
    }
    if (action == "close") {
      allow({});
      expectPositionals(2);
      const std::string& id = positional(1, "session ID");
      auto response = call("DELETE", sessionTarget(id));
      if (json_) return printJson(response);
      std::cout << "closed " << id << " at revision " << revisionText(response) << "\n";
      return 0;
    }
    if (action == "ls") {
      allow({});
      expectPositionals(2);
      if (args_.positionals().size() == 2) {
        auto response = call("GET", sessionTarget(args_.positionals()[1]));
        if (json_) return printJson(response);
        printSession(parseObject(response));
        return 0;
      }
      forEachPage("/v1/sessions", "", [this](const HttpResponse& response) {
        if (json_) {
          printJson(response);
          return;
        }
        const json body = parseObject(response);
        for (const auto& s : array(body, "sessions")) {
          const std::string name = text(s, "name");
          const std::size_t ephemerals = array(s, "ephemerals").size();
          std::cout << text(s, "id") << "  ttl " << scalar(s, "ttl_ms") << " ms  " << ephemerals << " ephemeral"
                    << (ephemerals == 1 ? "" : "s") << (name.empty() ? "" : "  " + name) << "\n";
        }
      });
      return 0;
    }
    throw UsageError("unknown session command '" + action + "' (create, keepalive, close or ls)");
  }

  std::string command_;
  Args args_;
  std::vector<std::string> endpoints_;
  std::unique_ptr<HttpClient> client_;
  bool json_ = false;
  std::string lastEndpoint_;  // the endpoint of the last answer, for messages
};

int report(ExitCode code, const std::string& message) {
  std::cerr << "warden: " << oneLine(message) << std::endl;
  return static_cast<int>(code);
}

}  // namespace

bool isCliCommand(const std::string& command) { return kCommands.count(command) > 0; }

int runCli(const std::string& command, const std::vector<std::string>& args) {
  if (asksForHelp(args)) {
    std::cout << kCliUsage;
    return 0;
  }
  std::string synopsis = kSynopsis.count(command) ? kSynopsis.at(command) : "warden --help";
  try {
    Cli cli(command, args);
    synopsis = cli.synopsis();
    return cli.run();
  } catch (const UsageError& e) {
    return report(ExitCode::Usage, std::string(e.what()) + " (usage: " + synopsis + ")");
  } catch (const CliFailure& e) {
    return report(e.exitCode, e.message);
  } catch (const HttpClientError& e) {
    return report(ExitCode::Unavailable, e.what());
  } catch (const std::exception& e) {
    return report(ExitCode::Unavailable, std::string("unexpected failure: ") + e.what());
  }
}

}  // namespace warden::api
