#include "api/HttpClient.h"

#include <algorithm>
#include <charconv>
#include <cstdio>
#include <random>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>

namespace warden::api {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

nlohmann::ordered_json HttpResponse::json() const {
  auto parsed = nlohmann::ordered_json::parse(body, nullptr, false);
  return parsed.is_discarded() ? nlohmann::ordered_json(nullptr) : parsed;
}

// Named, not anonymous: HttpClient::Impl holds Endpoints, and in a unity build (a file included
// into another) GCC warns of a member whose type has internal linkage.
namespace endpoint {

struct Endpoint {
  std::string host;
  std::string port;
  std::string text;
};

Endpoint parseEndpoint(const std::string& text) {
  std::string rest = text;
  if (rest.starts_with("http://")) rest = rest.substr(7);
  while (!rest.empty() && rest.back() == '/') rest.pop_back();
  std::size_t colon = rest.rfind(':');
  if (colon == std::string::npos || colon == 0 || colon + 1 == rest.size()) {
    throw HttpClientError("endpoint '" + text + "' is not of the form http://host:port");
  }
  return Endpoint{rest.substr(0, colon), rest.substr(colon + 1), text};
}

}  // namespace endpoint

using endpoint::Endpoint;
using endpoint::parseEndpoint;

struct HttpClient::Impl {
  net::io_context ioc;
  std::optional<beast::tcp_stream> stream;
  beast::flat_buffer buffer;
  std::vector<Endpoint> endpoints;
  std::size_t current = 0;
  std::chrono::milliseconds timeout;
  RetryPolicy policy;
  std::uint64_t failovers = 0;

  // Runs the io_context until the operation started by `start` completes.
  template <typename Start>
  beast::error_code run(Start start) {
    beast::error_code result = net::error::would_block;
    start(result);
    ioc.restart();
    ioc.run();
    return result;
  }

  beast::error_code connect(const Endpoint& endpoint) {
    stream.emplace(ioc);
    buffer.clear();
    tcp::resolver resolver(ioc);
    beast::error_code ec;
    auto results = resolver.resolve(endpoint.host, endpoint.port, ec);
    if (ec) return ec;
    stream->expires_after(timeout);
    return run([&](beast::error_code& out) {
      stream->async_connect(results, [&out](beast::error_code e, const tcp::endpoint&) { out = e; });
    });
  }

  // Sends the request and reads the answer. `malformed` is set (and the error code clear) when
  // an answer arrived that breaks the contract.
  beast::error_code exchange(http::request<http::string_body>& req, HttpResponse& response, std::string& malformed) {
    stream->expires_after(timeout);
    beast::error_code ec = run([&](beast::error_code& out) {
      http::async_write(*stream, req, [&out](beast::error_code e, std::size_t) { out = e; });
    });
    if (ec) return ec;
    http::response_parser<http::string_body> parser;
    parser.body_limit(std::uint64_t{1} << 30);
    if (req.method() == http::verb::head) parser.skip(true);
    ec = run([&](beast::error_code& out) {
      http::async_read(*stream, buffer, parser, [&out](beast::error_code e, std::size_t) { out = e; });
    });
    if (ec) return ec;
    auto& res = parser.get();
    response.status = res.result_int();
    response.body = std::move(res.body());
    response.contentType = std::string(res[http::field::content_type]);
    response.allow = std::string(res[http::field::allow]);
    const auto revision = res["X-Warden-Revision"];
    if (!revision.empty()) {
      std::uint64_t value = 0;
      auto [end, error] = std::from_chars(revision.data(), revision.data() + revision.size(), value);
      if (error != std::errc() || end != revision.data() + revision.size()) {
        malformed = "X-Warden-Revision '" + std::string(revision.substr(0, 40)) + "' is not a number";
      } else {
        response.revision = value;
      }
    }
    if (!res.keep_alive()) stream.reset();
    return {};
  }
};

namespace {

// The endpoints one request was sent to, in the order first tried, each with its last outcome.
class Attempts {
 public:
  void note(const std::string& endpoint, std::string outcome) {
    for (auto& [e, o] : list_) {
      if (e == endpoint) {
        o = std::move(outcome);
        return;
      }
    }
    list_.emplace_back(endpoint, std::move(outcome));
  }

  std::string summary() const {
    std::string out;
    for (const auto& [e, o] : list_) out += (out.empty() ? "" : ", ") + e + " (" + o + ")";
    return out.empty() ? "no endpoint" : out;
  }

 private:
  std::vector<std::pair<std::string, std::string>> list_;
};

std::string statusOutcome(const HttpResponse& response) {
  std::string outcome = std::to_string(response.status);
  auto body = response.json();
  if (body.is_object() && body.contains("error") && body["error"].is_string()) {
    outcome += " " + body["error"].get<std::string>().substr(0, 64);
  }
  return outcome;
}

bool isUnavailable(unsigned status) { return status == 502 || status == 503 || status == 504; }

}  // namespace

HttpClient::HttpClient(std::vector<std::string> endpoints, std::chrono::milliseconds timeout, RetryPolicy policy)
    : impl_(std::make_unique<Impl>()) {
  if (endpoints.empty()) throw HttpClientError("no endpoints");
  for (const auto& e : endpoints) impl_->endpoints.push_back(parseEndpoint(e));
  impl_->timeout = timeout;
  setPolicy(policy);
}

HttpClient::~HttpClient() = default;

std::uint64_t HttpClient::failovers() const { return impl_->failovers; }

void HttpClient::setTimeout(std::chrono::milliseconds timeout) { impl_->timeout = timeout; }

void HttpClient::setPolicy(RetryPolicy policy) {
  policy.rounds = std::max(policy.rounds, 1u);
  impl_->policy = policy;
}

std::vector<std::string> HttpClient::parseEndpoints(const std::string& list) {
  std::vector<std::string> out;
  std::size_t start = 0;
  while (start <= list.size()) {
    std::size_t comma = list.find(',', start);
    if (comma == std::string::npos) comma = list.size();
    std::string item = list.substr(start, comma - start);
    if (!item.empty()) out.push_back(item.starts_with("http://") ? item : "http://" + item);
    start = comma + 1;
  }
  return out;
}

std::string HttpClient::newIdempotencyKey() {
  std::random_device random;
  char text[33];
  std::snprintf(text, sizeof text, "%08x%08x%08x%08x", random(), random(), random(), random());
  return text;
}

HttpResponse HttpClient::request(const std::string& method, const std::string& target, const std::string& body,
                                 const std::string& contentType) {
  return send(HttpRequest{method, target, body, contentType, {}});
}

HttpResponse HttpClient::send(const HttpRequest& request) {
  http::request<http::string_body> req{http::string_to_verb(request.method), request.target, 11};
  if (req.method() == http::verb::unknown) req.method_string(request.method);
  req.set(http::field::user_agent, "warden-cli");
  req.keep_alive(true);
  if (!request.idempotencyKey.empty()) req.set("Idempotency-Key", request.idempotencyKey);
  if (!request.body.empty()) {
    req.set(http::field::content_type, request.contentType);
    req.body() = request.body;
  }
  const bool repeatable =
      req.method() == http::verb::get || req.method() == http::verb::head || !request.idempotencyKey.empty();
  Impl& impl = *impl_;
  Attempts attempts;
  std::optional<HttpResponse> unavailable;  // the last 502/503/504 answer
  const std::size_t first = impl.current;
  unsigned round = 1;
  // Moves to the next endpoint; false once every endpoint had its `rounds` tries.
  auto moveOn = [&] {
    impl.stream.reset();
    impl.current = (impl.current + 1) % impl.endpoints.size();
    if (impl.current == first) {
      if (++round > impl.policy.rounds) return false;
      std::this_thread::sleep_for(impl.policy.pause * (round - 1));
    }
    impl.failovers++;
    return true;
  };
  for (;;) {
    const Endpoint& endpoint = impl.endpoints[impl.current];
    req.set(http::field::host, endpoint.host + ":" + endpoint.port);
    req.prepare_payload();
    const bool reused = impl.stream.has_value();
    if (!reused) {
      if (auto ec = impl.connect(endpoint)) {
        attempts.note(endpoint.text, ec.message());
        if (moveOn()) continue;
        break;
      }
    }
    HttpResponse response;
    std::string malformed;
    if (auto ec = impl.exchange(req, response, malformed)) {
      attempts.note(endpoint.text, ec.message());
      impl.stream.reset();
      // A reused keep-alive connection the server had closed: retry on a fresh one. A fresh
      // connection that failed mid-exchange may have reached the server: only a request that is
      // safe to repeat goes on.
      if (reused) continue;
      if (repeatable && moveOn()) continue;
      break;
    }
    if (!malformed.empty()) {
      impl.stream.reset();
      throw HttpClientError("malformed reply from " + endpoint.text + ": " + malformed);
    }
    attempts.note(endpoint.text, statusOutcome(response));
    response.endpoint = endpoint.text;
    if (impl.policy.failoverOnUnavailable && repeatable && isUnavailable(response.status)) {
      unavailable = std::move(response);
      if (moveOn()) continue;
      break;
    }
    response.tried = attempts.summary();
    return response;
  }
  if (unavailable) {
    unavailable->tried = attempts.summary();
    return std::move(*unavailable);
  }
  throw HttpClientError("no answer from " + attempts.summary());
}

}  // namespace warden::api
