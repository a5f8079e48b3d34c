#pragma once
// A small blocking HTTP/1.1 client over Beast for the CLI, the benches and the tests: one
// keep-alive connection at a time, to one endpoint of a list, moving on to the next endpoint
// when one fails.
//
// Retries. A request that certainly did not reach a server (the connect failed, or a reused
// keep-alive connection turned out closed) is tried on the next endpoint. A request that may
// have reached one (the connection broke mid-exchange, or the answer was 502/503/504 with
// RetryPolicy::failoverOnUnavailable) is repeated elsewhere only when repeating it is safe: a
// GET or HEAD, or a write carrying an Idempotency-Key (the server answers a repeat of a key with
// the first result). Each endpoint is tried at most RetryPolicy::rounds times per request.

#include <chrono>
#include <cstdint>
#include <memory>
#include <optional>
#include <stdexcept>
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
  std::string endpoint;                   // the endpoint that gave this answer
  // Every endpoint this request was sent to, in order, each with its last outcome:
  // "http://a (Connection refused), http://b (503)". Just the endpoint when it answered first.
  std::string tried;

  nlohmann::ordered_json json() const;  // the body parsed; a JSON null when it is not JSON
};

// No endpoint gave a usable answer (what() names every endpoint tried), or an answer was
// malformed (a non-numeric X-Warden-Revision). A write may or may not have been applied.
class HttpClientError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

struct RetryPolicy {
  // 502, 503 and 504 answers move a safe-to-repeat request to the next endpoint; the last such
  // answer is returned once every attempt is spent. Off: they are returned at once.
  bool failoverOnUnavailable = false;
  unsigned rounds = 2;                                // tries per endpoint and request, >= 1
  std::chrono::milliseconds pause{100};               // between rounds, times the round number
};

struct HttpRequest {
  std::string method;
  std::string target;
  std::string body;
  std::string contentType = "application/json";
  // Sent as the Idempotency-Key header on every attempt; makes a write safe to repeat.
  std::string idempotencyKey;
};

class HttpClient {
 public:
  // Endpoints like "http://127.0.0.1:7070" (throws HttpClientError on a malformed one).
  // `timeout` bounds each attempt (connect, send, answer).
  explicit HttpClient(std::vector<std::string> endpoints,
                      std::chrono::milliseconds timeout = std::chrono::seconds(30), RetryPolicy policy = {});
  ~HttpClient();
  HttpClient(const HttpClient&) = delete;
  HttpClient& operator=(const HttpClient&) = delete;

  // Throws HttpClientError when no endpoint gave a usable answer.
  HttpResponse send(const HttpRequest& request);
  HttpResponse request(const std::string& method, const std::string& target, const std::string& body = {},
                       const std::string& contentType = "application/json");

  // How often a request was sent on to the next endpoint (or round) since this client began.
  std::uint64_t failovers() const;

  void setTimeout(std::chrono::milliseconds timeout);
  void setPolicy(RetryPolicy policy);

  // Splits "a,b,c" and adds "http://" where missing.
  static std::vector<std::string> parseEndpoints(const std::string& list);

  // 32 lowercase hex digits from the system's random source: a fresh Idempotency-Key.
  static std::string newIdempotencyKey();

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
};

}  // namespace warden::api
