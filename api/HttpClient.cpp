#include "api/HttpClient.h"

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

namespace {

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

}  // namespace

struct HttpClient::Impl {
  net::io_context ioc;
  std::optional<beast::tcp_stream> stream;
  beast::flat_buffer buffer;
  std::vector<Endpoint> endpoints;
  std::size_t current = 0;
  std::chrono::milliseconds timeout;

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

  beast::error_code exchange(http::request<http::string_body>& req, HttpResponse& response) {
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
    auto revision = res["X-Warden-Revision"];
    if (!revision.empty()) response.revision = std::stoull(std::string(revision));
    if (!res.keep_alive()) stream.reset();
    return {};
  }
};

HttpClient::HttpClient(std::vector<std::string> endpoints, std::chrono::milliseconds timeout)
    : impl_(std::make_unique<Impl>()) {
  if (endpoints.empty()) throw HttpClientError("no endpoints");
  for (const auto& e : endpoints) impl_->endpoints.push_back(parseEndpoint(e));
  impl_->timeout = timeout;
}

HttpClient::~HttpClient() = default;

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

HttpResponse HttpClient::request(const std::string& method, const std::string& target, const std::string& body,
                                 const std::string& contentType) {
  http::request<http::string_body> req{http::string_to_verb(method), target, 11};
  if (req.method() == http::verb::unknown) req.method_string(method);
  req.set(http::field::user_agent, "warden-cli");
  req.keep_alive(true);
  if (!body.empty()) {
    req.set(http::field::content_type, contentType);
    req.body() = body;
  }
  std::string lastError = "no endpoint tried";
  const std::size_t attempts = impl_->endpoints.size() * 2;
  for (std::size_t attempt = 0; attempt < attempts; ++attempt) {
    const Endpoint& endpoint = impl_->endpoints[impl_->current];
    req.set(http::field::host, endpoint.host + ":" + endpoint.port);
    req.prepare_payload();
    const bool reused = impl_->stream.has_value();
    if (!reused) {
      if (auto ec = impl_->connect(endpoint)) {
        lastError = endpoint.text + ": " + ec.message();
        impl_->stream.reset();
        impl_->current = (impl_->current + 1) % impl_->endpoints.size();
        continue;
      }
    }
    HttpResponse response;
    if (auto ec = impl_->exchange(req, response)) {
      lastError = endpoint.text + ": " + ec.message();
      impl_->stream.reset();
      // A reused keep-alive connection the server had closed: retry on a fresh one. A fresh
      // connection that failed mid-exchange may have reached the server, so do not repeat it.
      if (reused) continue;
      break;
    }
    return response;
  }
  throw HttpClientError("no answer from " + lastError);
}

}  // namespace warden::api
