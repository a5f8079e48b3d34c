#include "api/LockBenchClient.h"

#include <algorithm>
#include <charconv>
#include <stdexcept>

#include <nlohmann/json.hpp>

#include "api/Base64.h"
#include "api/Percentile.h"
#include "api/Url.h"

namespace warden::api::lockbench {

using json = nlohmann::ordered_json;

// ---- Connection ----

void Connection::send(const Call& call, std::chrono::milliseconds timeout, Done done) {
  done_ = std::move(done);
  req_ = {};
  req_.version(11);
  req_.method(call.method);
  req_.target(call.target);
  req_.keep_alive(true);
  req_.set(http::field::host, endpoint_.address().to_string() + ":" + std::to_string(endpoint_.port()));
  if (!call.body.empty()) {
    req_.set(http::field::content_type, "application/json");
    req_.body() = call.body;
  }
  req_.prepare_payload();
  stream_.expires_after(timeout);  // bounds the connect, the write and the read
  if (connected_) return write();
  stream_.async_connect(endpoint_, [self = shared_from_this()](beast::error_code ec) {
    if (ec) return self->finish(ec);
    self->connected_ = true;
    self->write();
  });
}

void Connection::write() {
  http::async_write(stream_, req_, [self = shared_from_this()](beast::error_code ec, std::size_t) {
    if (ec) return self->finish(ec);
    self->res_ = {};
    http::async_read(self->stream_, self->buffer_, self->res_,
                     [self](beast::error_code ec2, std::size_t) { self->finish(ec2); });
  });
}

void Connection::finish(beast::error_code ec) {
  if (ec || !res_.keep_alive()) close();
  Done done = std::move(done_);  // the handler may send the next request, which sets done_
  done(ec, res_);
}

void Connection::close() {
  beast::error_code ignored;
  stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
  stream_.socket().close(ignored);
  buffer_.clear();
  connected_ = false;
}

// ---- the services ----

namespace {

json parsed(const Response& r) { return json::parse(r.body(), nullptr, false); }

// Warden's lock API: POST /v1/sessions, /v1/locks/{name}/acquire and /release.
class WardenLocks : public LockService {
 public:
  const char* name() const override { return "warden"; }
  const char* ownerKind() const override { return "session"; }

  Call open(std::uint64_t ttlMs) const override {
    return {http::verb::post, "/v1/sessions", json{{"ttl_ms", ttlMs}, {"name", "bench-locks"}}.dump()};
  }
  std::optional<std::string> opened(const Response& r) const override {
    const json body = parsed(r);
    if (r.result_int() != 201 || !body.is_object() || !body.contains("id") || !body["id"].is_string()) return {};
    return body["id"].get<std::string>();
  }

  Call acquire(const std::string& lock, const std::string& owner, std::uint64_t waitMs) const override {
    return {http::verb::post, target(lock, "/acquire"), json{{"session", owner}, {"wait_ms", waitMs}}.dump()};
  }
  std::optional<Grant> granted(const Response& r) const override {
    const json body = parsed(r);
    if (r.result_int() != 200 || !body.is_object() || !body.contains("token") || !body["token"].is_number_unsigned()) {
      return {};
    }
    const auto token = body["token"].get<std::uint64_t>();
    return Grant{std::to_string(token), token};
  }

  Call release(const std::string& lock, const std::string& owner, const Grant& grant) const override {
    return {http::verb::post, target(lock, "/release"), json{{"session", owner}, {"token", grant.token.value_or(0)}}.dump()};
  }
  bool released(const Response& r) const override { return r.result_int() == 200; }
  std::optional<std::uint64_t> releaseRevision(const Response& r) const override {
    const auto header = r.find("X-Warden-Revision");
    if (header == r.end()) return {};
    std::uint64_t value = 0;
    const auto text = header->value();
    if (std::from_chars(text.data(), text.data() + text.size(), value).ec != std::errc{}) return {};
    return value;
  }

  Call close(const std::string& owner) const override { return {http::verb::delete_, "/v1/sessions/" + owner, ""}; }
  bool closed(const Response& r) const override { return r.result_int() == 204; }

  Call queue(const std::string& lock) const override { return {http::verb::get, target(lock, ""), ""}; }
  std::optional<std::vector<std::string>> waiting(const Response& r) const override {
    if (r.result_int() == 404) return std::vector<std::string>{};  // nobody holds or waits
    const json body = parsed(r);
    if (r.result_int() != 200 || !body.is_object() || !body.contains("waiters") || !body["waiters"].is_array()) return {};
    std::vector<std::string> sessions;
    for (const auto& w : body["waiters"]) {
      if (!w.is_object() || !w.contains("session") || !w["session"].is_string()) return {};
      sessions.push_back(w["session"].get<std::string>());
    }
    return sessions;
  }

 private:
  static std::string target(const std::string& lock, const char* action) {
    return "/v1/locks/" + percentEncodePath(lock) + action;
  }
};

// etcd's v3 lock API through its JSON gateway: a lock named N is held through the key N/<lease
// in hex> that Lock creates under the owner's lease; the lowest create revision under N/ holds
// it. Keys, names and values travel in base64; 64-bit ids as decimal strings.
class EtcdLocks : public LockService {
 public:
  const char* name() const override { return "etcd"; }
  const char* ownerKind() const override { return "lease"; }

  Call open(std::uint64_t ttlMs) const override {
    return {http::verb::post, "/v3/lease/grant", json{{"TTL", std::max<std::uint64_t>(1, ttlMs / 1000)}}.dump()};
  }
  std::optional<std::string> opened(const Response& r) const override {
    const json body = parsed(r);
    if (r.result_int() != 200 || !body.is_object() || !body.contains("ID")) return {};
    if (body["ID"].is_string()) return body["ID"].get<std::string>();
    if (body["ID"].is_number_integer()) return std::to_string(body["ID"].get<std::int64_t>());
    return {};
  }

  Call acquire(const std::string& lock, const std::string& owner, std::uint64_t) const override {
    return {http::verb::post, "/v3/lock/lock", json{{"name", base64Encode(lock)}, {"lease", owner}}.dump()};
  }
  std::optional<Grant> granted(const Response& r) const override {
    const json body = parsed(r);
    if (r.result_int() != 200 || !body.is_object() || !body.contains("key") || !body["key"].is_string()) return {};
    return Grant{body["key"].get<std::string>(), std::nullopt};
  }

  Call release(const std::string&, const std::string&, const Grant& grant) const override {
    return {http::verb::post, "/v3/lock/unlock", json{{"key", grant.handle}}.dump()};
  }
  bool released(const Response& r) const override { return r.result_int() == 200; }
  std::optional<std::uint64_t> releaseRevision(const Response&) const override { return {}; }

  Call close(const std::string& owner) const override {
    return {http::verb::post, "/v3/lease/revoke", json{{"ID", owner}}.dump()};
  }
  bool closed(const Response& r) const override { return r.result_int() == 200; }

  Call queue(const std::string& lock) const override {
    return {http::verb::post, "/v3/kv/range",
            json{{"key", base64Encode(lock + "/")},
                 {"range_end", base64Encode(lock + "0")},  // '0' follows '/': every key under N/
                 {"keys_only", true},
                 {"sort_order", "ASCEND"},
                 {"sort_target", "CREATE"}}
                .dump()};
  }
  // Every key after the first (the holder's), as the decimal lease id that made it.
  std::optional<std::vector<std::string>> waiting(const Response& r) const override {
    const json body = parsed(r);
    if (r.result_int() != 200 || !body.is_object()) return {};
    std::vector<std::string> leases;
    if (!body.contains("kvs")) return leases;  // the gateway leaves out an empty list
    for (const auto& kv : body["kvs"]) {
      if (!kv.is_object() || !kv.contains("key") || !kv["key"].is_string()) return {};
      const auto key = base64Decode(kv["key"].get<std::string>());
      const std::size_t slash = key ? key->rfind('/') : std::string::npos;
      if (slash == std::string::npos) return {};
      std::uint64_t lease = 0;
      const char* hex = key->data() + slash + 1;
      if (std::from_chars(hex, key->data() + key->size(), lease, 16).ec != std::errc{}) return {};
      leases.push_back(std::to_string(static_cast<std::int64_t>(lease)));
    }
    if (!leases.empty()) leases.erase(leases.begin());
    return leases;
  }
};

}  // namespace

std::unique_ptr<LockService> wardenLocks() { return std::make_unique<WardenLocks>(); }
std::unique_ptr<LockService> etcdLocks() { return std::make_unique<EtcdLocks>(); }

// ---- helpers ----

tcp::endpoint resolveEndpoint(net::io_context& ioc, const std::string& url) {
  std::string hostPort = url.starts_with("http://") ? url.substr(7) : url;
  while (!hostPort.empty() && hostPort.back() == '/') hostPort.pop_back();
  const std::size_t colon = hostPort.rfind(':');
  if (colon == std::string::npos || colon == 0) throw std::runtime_error("'" + url + "' is not http://host:port");
  beast::error_code ec;
  const auto results = tcp::resolver(ioc).resolve(hostPort.substr(0, colon), hostPort.substr(colon + 1), ec);
  if (ec || results.empty()) throw std::runtime_error("cannot resolve " + url + ": " + ec.message());
  return results.begin()->endpoint();
}

std::string describe(beast::error_code ec, const Response& r) {
  std::string line = ec ? ec.message() : std::to_string(r.result_int()) + " " + r.body().substr(0, 200);
  for (char& ch : line) {
    if (static_cast<unsigned char>(ch) < 0x20) ch = ' ';
  }
  return line;
}

void Latencies::add(Clock::duration d) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  micros_.push_back(static_cast<std::uint32_t>(std::clamp<long long>(us, 0, 0xffffffffLL)));
}

double Latencies::ms(double q) { return percentileMs(micros_, q); }

}  // namespace warden::api::lockbench
