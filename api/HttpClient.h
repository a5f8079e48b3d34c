#pragma once
// A small blocking HTTP/1.1 client over Beast for the CLI and the tests: one keep-alive
// connection, reconnects when the server closed it, tries the next endpoint when one is down.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include <nlohmann/json.hpp>

namespace warden::api {

struct HttpResponse {
  unsigned status = 0;
  std::string body;
  std::string contentType;
  std::optional<std::uint64_t> revision;  // X-Warden-Revision
  std::string allow;                      // Allow, on a 405

  nlohmann::ordered_json json() const;  // the body parsed; a JSON null when it is not JSON
};

class HttpClientError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class HttpClient {
 public:
  // Endpoints like "http://127.0.0.1:7070" (throws HttpClientError on a malformed one).
  explicit HttpClient(std::vector<std::string> endpoints,
                      std::chrono::milliseconds timeout = std::chrono::seconds(30));
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Throws HttpClientError when no endpoint answered within the timeout.
  HttpResponse request(const std::string& method, const std::string& target, const std::string& body = {},
                       const std::string& contentType = "application/json");

  // Splits "a,b,c" and adds "http://" where missing.
  static std::vector<std::string> parseEndpoints(const std::string& list);

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace warden::api
