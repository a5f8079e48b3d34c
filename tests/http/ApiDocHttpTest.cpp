// docs/API.md is the contract a clone carries: every route it documents (a "### METHOD /path"
// heading) must be served by a real node — answered by its handler, not "no route" or 405.

#include <catch2/catch.hpp>

#include <fstream>
#include <regex>
#include <sstream>

#include "tests/http/Expect.h"

using namespace warden::tests;
using json = nlohmann::ordered_json;

namespace {

struct Route {
  std::string method, path;
};

std::vector<Route> documentedRoutes() {
  std::ifstream in(WARDEN_SOURCE_DIR "/docs/API.md");
  REQUIRE(in);
  std::vector<Route> routes;
  const std::regex heading(R"(^### (GET|HEAD|PUT|POST|DELETE) (/\S*)\s*$)");
  std::string line;
  while (std::getline(in, line)) {
    std::smatch m;
    if (std::regex_match(line, m, heading)) routes.push_back({m[1], m[2]});
  }
  return routes;
}

std::string fill(std::string path, const std::string& session) {
  path = std::regex_replace(path, std::regex(R"(\{path\})"), "apidoc");
  path = std::regex_replace(path, std::regex(R"(\{id\})"), session);
  return std::regex_replace(path, std::regex(R"(\{name\})"), "apidoc");
}

}  // namespace

TEST_CASE("every route docs/API.md documents is served") {
  const auto routes = documentedRoutes();
  REQUIRE(routes.size() >= 15);
  TestServer server;
  auto created = server.request("POST", "/v1/sessions", json{{"ttl_ms", 60000}}.dump());
  REQUIRE(created.status == 201);
  const std::string session = created.json()["id"];
  REQUIRE(server.request("PUT", "/v1/nodes/apidoc", json{{"data", "x"}, {"create", true}}.dump())
              .status == 200);
  for (const auto& route : routes) {
    const std::string target = fill(route.path, session);
    std::string body;
    if (route.method == "POST" || route.method == "PUT") body = "{}";
    if (route.path == "/v1/txn") body = json{{"ops", json::array()}}.dump();
    auto r = server.request(route.method, target, body);
    INFO(route.method << " " << target << " -> " << r.status << " " << r.body);
    CHECK(r.status != 405);
    CHECK(r.body.find("no route") == std::string::npos);
    CHECK(r.status < 500);
  }
}
