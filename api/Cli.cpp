#include "api/Cli.h"

#include <chrono>
#include <cstdlib>
#include <fstream>
#include <iostream>
#include <iterator>
#include <set>
#include <sstream>
#include <thread>

#include "api/Args.h"
#include "api/Base64.h"
#include "api/HttpClient.h"
#include "api/Url.h"

namespace warden::api {

using json = nlohmann::ordered_json;

const char* kCliUsage = R"(client commands (flags: --endpoints URL[,URL...], -o json):
  warden get PATH [--children] [--recursive]     print a node's data (-o json: data and stat)
  warden ls PATH                                 list a node's children
  warden put PATH VALUE [--version N] [--create] set a node's data (VALUE - reads stdin)
  warden create PATH [VALUE] [-p] [--sequential] [--ephemeral --session ID]
                                                 create a node (-p: create missing parents)
  warden rm PATH [--recursive] [--version N]     delete a node
  warden txn [FILE]                              run {"ops": [...]} from FILE or stdin
  warden status                                  the node's view of the cluster
  warden session create [--ttl MS] [--name NAME] start a session (ttl 10000 by default); prints its id
  warden session keepalive ID [--every MS]       keep it alive once, or every MS until it is gone
  warden session close ID                        end it: its ephemeral nodes are deleted
  warden session ls [ID]                         list sessions (or one, with its ephemeral nodes)
endpoints default to $WARDEN_ENDPOINTS, else the single node of `warden serve --dev`
(http://127.0.0.1:7070) and then the nodes of scripts/run (7001, 7002, 7003), first that answers
)";

namespace {

constexpr const char* kDefaultEndpoints =
    "http://127.0.0.1:7070,http://127.0.0.1:7001,http://127.0.0.1:7002,http://127.0.0.1:7003";

const std::set<std::string> kCommands = {"get", "ls", "put", "create", "rm", "txn", "status", "session"};

struct CliFailure {
  int exitCode;
  std::string message;
};

std::string readAll(std::istream& in) { return std::string(std::istreambuf_iterator<char>(in), {}); }

std::string nodeTarget(const std::string& path, const std::string& query = {}) {
  if (path.empty() || path.front() != '/') throw UsageError("paths start with '/', got '" + path + "'");
  std::string target = "/v1/nodes" + (path == "/" ? std::string("/") : percentEncodePath(path));
  return query.empty() ? target : target + "?" + query;
}

std::string dataOf(const json& body) {
  if (body.contains("data")) return body["data"].get<std::string>();
  if (body.contains("data_b64")) return base64Decode(body["data_b64"].get<std::string>()).value_or("");
  return {};
}

class Cli {
 public:
  Cli(const std::string& command, const std::vector<std::string>& argv)
      : command_(command),
        args_(argv, {"children", "recursive", "create", "sequential", "ephemeral", "parents"},
              {{"o", "output"}, {"p", "parents"}}) {
    const char* env = std::getenv("WARDEN_ENDPOINTS");
    std::string endpoints = args_.get("endpoints", env && *env ? env : kDefaultEndpoints);
    client_ = std::make_unique<HttpClient>(HttpClient::parseEndpoints(endpoints));
    const std::string output = args_.get("output", "text");
    if (output != "text" && output != "json") throw UsageError("-o takes text or json");
    json_ = output == "json";
  }

  int run() {
    if (command_ == "get") return get();
    if (command_ == "ls") return ls();
    if (command_ == "put") return put();
    if (command_ == "create") return create();
    if (command_ == "rm") return rm();
    if (command_ == "txn") return txn();
    if (command_ == "session") return session();
    return status();
  }

 private:
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

  HttpResponse call(const std::string& method, const std::string& target, const std::string& body = {}) {
    HttpResponse response = client_->request(method, target, body);
    if (response.status >= 400) {
      json error = response.json();
      std::string text = error.is_object() ? error.value("error", "error") + ": " + error.value("message", "")
                                           : "HTTP " + std::to_string(response.status);
      if (json_) std::cout << response.body << "\n";
      throw CliFailure{1, text};
    }
    return response;
  }

  int printJson(const HttpResponse& response) {
    std::cout << (response.body.empty() ? "{}" : response.body) << "\n";
    return 0;
  }

  int get() {
    allow({"children", "recursive"});
    expectPositionals(1);
    std::string query;
    if (args_.has("children")) query = "children";
    if (args_.has("recursive")) query = query.empty() ? "recursive" : query + "&recursive";
    auto response = call("GET", nodeTarget(positional(0, "PATH"), query));
    if (json_ || args_.has("recursive")) return printJson(response);
    json body = response.json();
    std::cout << dataOf(body);
    if (body.contains("data") && !body["data"].get<std::string>().empty() &&
        body["data"].get<std::string>().back() != '\n') {
      std::cout << "\n";
    }
    if (args_.has("children")) {
      for (const auto& name : body["children"]) std::cout << name.get<std::string>() << "\n";
    }
    return 0;
  }

  int ls() {
    allow({});
    expectPositionals(1);
    auto response = call("GET", nodeTarget(args_.positionals().empty() ? "/" : positional(0, "PATH"), "children"));
    if (json_) return printJson(response);
    const json body = response.json();
    for (const auto& name : body["children"]) std::cout << name.get<std::string>() << "\n";
    return 0;
  }

  int put() {
    allow({"version", "create"});
    expectPositionals(2);
    const std::string& path = positional(0, "PATH");
    std::string value = positional(1, "VALUE");
    if (value == "-") value = readAll(std::cin);
    json body = {{"data", value}};
    if (auto version = args_.get("version")) body["version"] = args_.number("version", 0, 0, INT64_MAX);
    if (args_.has("create")) body["create"] = true;
    auto response = call("PUT", nodeTarget(path), body.dump(-1, ' ', false, json::error_handler_t::replace));
    if (json_) return printJson(response);
    json result = response.json();
    std::cout << result["path"].get<std::string>() << " version " << result["stat"]["version"] << " revision "
              << response.revision.value_or(0) << "\n";
    return 0;
  }

  int create() {
    allow({"sequential", "ephemeral", "session", "parents"});
    expectPositionals(2);
    const std::string& path = positional(0, "PATH");
    json body = json::object();
    if (args_.positionals().size() > 1) {
      std::string value = args_.positionals()[1];
      if (value == "-") value = readAll(std::cin);
      body["data"] = value;
    }
    if (args_.has("sequential")) body["sequential"] = true;
    if (args_.has("ephemeral")) body["ephemeral"] = true;
    if (auto session = args_.get("session")) body["session"] = *session;
    if (args_.has("parents")) body["make_parents"] = true;
    auto response = call("POST", nodeTarget(path), body.dump(-1, ' ', false, json::error_handler_t::replace));
    if (json_) return printJson(response);
    std::cout << response.json()["path"].get<std::string>() << "\n";
    return 0;
  }

  int rm() {
    allow({"recursive", "version"});
    expectPositionals(1);
    std::string query;
    if (args_.has("recursive")) query = "recursive";
    if (args_.has("version")) {
      query += (query.empty() ? "" : "&") + std::string("version=") +
               std::to_string(args_.number("version", 0, 0, INT64_MAX));
    }
    const std::string& path = positional(0, "PATH");
    auto response = call("DELETE", nodeTarget(path, query));
    if (json_) {
      std::cout << json{{"path", path}, {"revision", response.revision.value_or(0)}}.dump() << "\n";
      return 0;
    }
    std::cout << "deleted " << path << " at revision " << response.revision.value_or(0) << "\n";
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
    json result = response.json();
    std::cout << "committed at revision " << result["revision"] << "\n";
    for (const auto& op : result["results"]) {
      std::cout << "  " << op["op"].get<std::string>() << " " << op["path"].get<std::string>() << "\n";
    }
    return 0;
  }

  int status() {
    allow({});
    expectPositionals(0);
    auto response = call("GET", "/v1/status");
    if (json_) return printJson(response);
    json s = response.json();
    std::cout << "node " << s["id"] << ", leader " << s["leader"] << ", revision " << s["revision"]
              << ", applied index " << s["applied_index"] << "\n";
    for (const auto& m : s["members"]) {
      auto text = [](const json& v) { return v.is_string() ? v.get<std::string>() : v.dump(); };
      std::cout << "  member " << m["id"] << " " << text(m["role"]) << " http " << text(m["http"]) << " peer "
                << text(m["peer"]) << (m["healthy"].get<bool>() ? "" : " (unhealthy)") << "\n";
    }
    return 0;
  }

  int session() {
    const std::string& action = positional(0, "session command (create, keepalive, close or ls)");
    if (action == "create") {
      allow({"ttl", "name"});
      expectPositionals(1);
      json body = {{"ttl_ms", args_.number("ttl", 10'000, 1000, 600'000)}};
      if (auto name = args_.get("name")) body["name"] = *name;
      auto response = call("POST", "/v1/sessions", body.dump(-1, ' ', false, json::error_handler_t::replace));
      if (json_) return printJson(response);
      std::cout << response.json()["id"].get<std::string>() << "\n";
      return 0;
    }
    if (action == "keepalive") {
      allow({"every"});
      expectPositionals(2);
      const std::string target = "/v1/sessions/" + percentEncodePath(positional(1, "session ID")) + "/keepalive";
      const auto every = args_.get("every") ? args_.number("every", 0, 100, 600'000) : 0;
      for (;;) {
        auto response = call("POST", target);
        if (json_) {
          printJson(response);
        } else {
          json body = response.json();
          std::cout << body["id"].get<std::string>() << " alive, ttl " << body["ttl_ms"] << " ms" << std::endl;
        }
        if (every == 0) return 0;
        std::this_thread::sleep_for(std::chrono::milliseconds(every));
      }
    }
    if (action == "close") {
      allow({});
      expectPositionals(2);
      const std::string& id = positional(1, "session ID");
      auto response = call("DELETE", "/v1/sessions/" + percentEncodePath(id));
      if (json_) {
        std::cout << json{{"id", id}, {"revision", response.revision.value_or(0)}}.dump() << "\n";
        return 0;
      }
      std::cout << "closed " << id << " at revision " << response.revision.value_or(0) << "\n";
      return 0;
    }
    if (action == "ls") {
      allow({});
      expectPositionals(2);
      if (args_.positionals().size() == 2) {
        auto response = call("GET", "/v1/sessions/" + percentEncodePath(args_.positionals()[1]));
        if (json_) return printJson(response);
        json s = response.json();
        std::cout << s["id"].get<std::string>() << " ttl " << s["ttl_ms"] << " ms"
                  << (s["name"].get<std::string>().empty() ? "" : " name " + s["name"].get<std::string>()) << "\n";
        for (const auto& path : s["ephemerals"]) std::cout << "  " << path.get<std::string>() << "\n";
        return 0;
      }
      auto response = call("GET", "/v1/sessions");
      if (json_) return printJson(response);
      const json body = response.json();  // the loop below must not range over a temporary
      for (const auto& s : body["sessions"]) {
        std::cout << s["id"].get<std::string>() << "  ttl " << s["ttl_ms"] << " ms  " << s["ephemerals"].size()
                  << " ephemeral" << (s["ephemerals"].size() == 1 ? "" : "s")
                  << (s["name"].get<std::string>().empty() ? "" : "  " + s["name"].get<std::string>()) << "\n";
      }
      return 0;
    }
    throw UsageError("unknown session command '" + action + "' (create, keepalive, close or ls)");
  }

  std::string command_;
  Args args_;
  std::unique_ptr<HttpClient> client_;
  bool json_ = false;
};

}  // namespace

bool isCliCommand(const std::string& command) { return kCommands.count(command) > 0; }

int runCli(const std::string& command, const std::vector<std::string>& args) {
  try {
    return Cli(command, args).run();
  } catch (const UsageError& e) {
    std::cerr << "warden " << command << ": " << e.what() << "\n\n" << kCliUsage;
    return 2;
  } catch (const CliFailure& e) {
    std::cerr << "warden " << command << ": " << e.message << "\n";
    return e.exitCode;
  } catch (const HttpClientError& e) {
    std::cerr << "warden " << command << ": " << e.what() << "\n";
    return 3;
  }
}

}  // namespace warden::api
