// The HTTP client of the CLI, against a real node and against scripted fake nodes where a real
// one cannot be made to misbehave (503s, hang-ups).

#include <catch2/catch.hpp>
#include <chrono>

#include "api/HttpClient.h"
#include "tests/http/FakeServer.h"
#include "tests/http/TestServer.h"

using namespace warden::tests;
using namespace std::chrono_literals;

namespace {

const std::string kUnavailable = FakeServer::reply(503, R"({"error":"no_quorum","message":"no leader"})");

}  // namespace

TEST_CASE("a write whose connection broke mid-exchange is repeated elsewhere only under an Idempotency-Key") {
  TestServer server;
  FakeServer hangUp([](const FakeServer::Request&) { return std::string(); });  // reads, then closes
  const std::vector<std::string> endpoints = {hangUp.endpoint(), server.endpoint()};

  warden::api::HttpClient plain(endpoints, 5s, warden::api::RetryPolicy{.failoverOnUnavailable = true});
  CHECK_THROWS_AS(plain.request("POST", "/v1/nodes/once"), warden::api::HttpClientError);
  CHECK(server.request("GET", "/v1/nodes/once").status == 404);  // not sent twice

  warden::api::HttpClient keyed(endpoints, 5s, warden::api::RetryPolicy{.failoverOnUnavailable = true});
  auto response = keyed.send({"POST", "/v1/nodes/once", "", "application/json", "0123456789abcdef0123456789abcdef"});
  CHECK(response.status == 201);
  CHECK(response.endpoint == server.endpoint());
  CHECK_THAT(response.tried, Catch::StartsWith(hangUp.endpoint() + " (") && Catch::EndsWith(server.endpoint() + " (201)"));
  CHECK(hangUp.requests().size() == 2);
  CHECK(hangUp.requests().back().header("idempotency-key") == "0123456789abcdef0123456789abcdef");

  // Without failoverOnUnavailable a 503 is the answer (the tests' own clients see it as it is).
  FakeServer unavailable([](const FakeServer::Request&) { return kUnavailable; });
  warden::api::HttpClient strict({unavailable.endpoint(), server.endpoint()});
  CHECK(strict.request("GET", "/v1/nodes/once").status == 503);

  // With it, a GET goes on to the node that answers; with nowhere to go, the last 503 comes back
  // naming every endpoint tried.
  warden::api::HttpClient failover({unavailable.endpoint(), server.endpoint()}, 5s,
                                   warden::api::RetryPolicy{.failoverOnUnavailable = true});
  CHECK(failover.request("GET", "/v1/nodes/once").status == 200);
  FakeServer other([](const FakeServer::Request&) { return kUnavailable; });
  warden::api::HttpClient stuck({unavailable.endpoint(), other.endpoint()}, 5s,
                                warden::api::RetryPolicy{.failoverOnUnavailable = true});
  auto last = stuck.request("GET", "/v1/nodes/once");
  CHECK(last.status == 503);
  CHECK(last.tried == unavailable.endpoint() + " (503 no_quorum), " + other.endpoint() + " (503 no_quorum)");
}
