#pragma once
// Checks shared by the HTTP tests.

#include <catch2/catch.hpp>

#include <string>

#include "tests/http/TestServer.h"

namespace warden::tests {

// An API.md error: the status, the code, a non-empty message, as JSON.
inline void requireError(const api::HttpResponse& r, unsigned status, const std::string& code) {
  INFO(r.body);
  REQUIRE(r.status == status);
  nlohmann::ordered_json body = r.json();
  REQUIRE(body.is_object());
  CHECK(body["error"] == code);
  CHECK(body["message"].is_string());
  CHECK_FALSE(body["message"].get<std::string>().empty());
  CHECK(r.contentType == "application/json");
}

inline std::uint64_t revisionOf(TestServer& server) {
  return server.request("GET", "/v1/status").json()["revision"];
}

}  // namespace warden::tests
