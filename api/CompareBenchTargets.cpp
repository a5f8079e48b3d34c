#include "api/CompareBenchTargets.h"

#include <charconv>
#include <chrono>
#include <stdexcept>
#include <thread>

#include <nlohmann/json.hpp>

#include "api/Base64.h"
#include "api/HttpClient.h"
#include "api/SubtreeDelete.h"
#include "api/Url.h"

#ifndef WARDEN_VERSION
#error "WARDEN_VERSION is set by CMakeLists.txt from project(VERSION)"
#endif

namespace warden::api::comparebench {

using json = nlohmann::ordered_json;
using Clock = std::chrono::steady_clock;

namespace {

constexpr auto kLeaderWait = std::chrono::seconds(10);

std::optional<std::uint64_t> decimal(std::string_view text) {
  std::uint64_t n = 0;
  const auto [end, err] = std::from_chars(text.data(), text.data() + text.size(), n);
  if (text.empty() || err != std::errc{} || end != text.data() + text.size()) return {};
  return n;
}

// A JSON number, or a decimal string as etcd's gateway gives 64-bit numbers.
std::optional<std::uint64_t> decimal(const json& value) {
  if (value.is_number_unsigned()) return value.get<std::uint64_t>();
  if (!value.is_string()) return {};
  return decimal(std::string_view(value.get_ref<const std::string&>()));
}

std::string withScheme(const std::string& address) {
  return address.starts_with("http://") ? address : "http://" + address;
}

std::string failure(const std::string& what, const HttpResponse& r) {
  return what + ": " + std::to_string(r.status) + " " + r.body.substr(0, 200);
}

// Asks `ask` for the leader's URL until it has one or kLeaderWait passed; `ask` returns it, or
// nothing and sets `why`.
template <typename Ask>
std::string pollLeader(const char* service, const std::string& url, Ask ask) {
  const auto deadline = Clock::now() + kLeaderWait;
  std::string why;
  while (true) {
    try {
      if (auto leader = ask(why)) return *leader;
    } catch (const HttpClientError& e) {
      why = e.what();
    }
    if (Clock::now() > deadline) throw std::runtime_error(std::string("no ") + service + " leader known at " + url + ": " + why);
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

// ---- Warden: PUT and GET /v1/nodes/<run>/k<i>, SSE watches, its lock API ----

class WardenTarget : public Target {
 public:
  explicit WardenTarget(const Workload& w) : workload_(w), root_("/" + w.run) {
    for (std::size_t k = 0; k < w.keys; ++k) targets_.push_back("/v1/nodes" + percentEncodePath(keyPath(k)));
    value_ = json{{"data", std::string(w.valueSize, 'x')}}.dump();
    watchedTarget_ = "/v1/nodes" + percentEncodePath(root_ + "/watched");
  }

  const char* name() const override { return "warden"; }

  std::string findLeader(const std::string& url) const override {
    HttpClient client({url}, std::chrono::seconds(2));
    return pollLeader("Warden", url, [&](std::string& why) -> std::optional<std::string> {
      const HttpResponse r = client.request("GET", "/v1/status");
      const json status = r.json();
      if (r.status != 200 || !status.is_object() || !status.contains("leader") || status["leader"].is_null()) {
        why = failure("GET /v1/status", r);
        return {};
      }
      for (const auto& m : status.value("members", json::array())) {
        if (m.is_object() && m.value("id", json()) == status["leader"] && m.contains("http") && m["http"].is_string()) {
          return withScheme(m["http"].get<std::string>());
        }
      }
      why = "the leader's HTTP address is not known yet";
      return {};
    });
  }

  std::string version(const std::string&) const override { return std::string("warden ") + WARDEN_VERSION; }

  void prepare(const std::string& leader) const override {
    HttpClient client({leader});
    auto r = client.request("POST", "/v1/nodes" + percentEncodePath(root_), json{{"make_parents", true}}.dump());
    if (r.status != 201) throw std::runtime_error(failure("creating " + root_, r));
    const std::string value(workload_.valueSize, 'x');
    for (std::size_t first = 0; first < workload_.keys; first += 1024) {
      json ops = json::array();
      for (std::size_t k = first; k < std::min(workload_.keys, first + 1024); ++k) {
        ops.push_back({{"op", "set"}, {"path", keyPath(k)}, {"data", value}, {"create", true}});
      }
      r = client.request("POST", "/v1/txn", json{{"ops", ops}}.dump());
      if (r.status != 200) throw std::runtime_error(failure("creating the keys", r));
    }
    r = client.request("PUT", "/v1/nodes" + percentEncodePath(root_ + "/watched"), json{{"data", ""}, {"create", true}}.dump());
    if (r.status != 200) throw std::runtime_error(failure("creating the watched key", r));
  }

  void cleanup(const std::string& leader) const override {
    HttpClient client({leader});
    deleteSubtree(client, root_);
  }

  load::RequestMaker puts() const override {
    return [this](std::mt19937_64& rng, load::RequestWriter& req) -> std::size_t {
      req.set("PUT", targets_[std::uniform_int_distribution<std::size_t>(0, workload_.keys - 1)(rng)], value_);
      return 0;
    };
  }

  load::RequestMaker gets(bool stale) const override {
    return [this, stale](std::mt19937_64& rng, load::RequestWriter& req) -> std::size_t {
      const std::string& target = targets_[std::uniform_int_distribution<std::size_t>(0, workload_.keys - 1)(rng)];
      req.set("GET", target, stale ? "?consistency=stale" : "", {});
      return 0;
    };
  }

  load::RequestMaker watchedPuts() const override {
    return [this](std::mt19937_64&, load::RequestWriter& req) -> std::size_t {
      req.set("PUT", watchedTarget_, value_);
      return 0;
    };
  }

  std::optional<std::uint64_t> writeRevision(const load::Answer& answer) const override {
    const auto header = answer.header("X-Warden-Revision");
    if (answer.status != 200 || !header) return {};
    return decimal(*header);
  }

  std::string watchRequest(const std::string& hostPort) const override {
    return "GET /v1/watch" + percentEncodePath(root_ + "/watched") + "?stream HTTP/1.1\r\nHost: " + hostPort +
           "\r\nAccept: text/event-stream\r\n\r\n";
  }

  // Server-sent events: a message ("id: R", "data: {...}", a blank line) per revision; the
  // progress messages (event: progress) carry no events.
  class Decoder : public StreamDecoder {
   public:
    void line(std::string_view text, std::vector<std::uint64_t>& revisions) override {
      if (!text.empty() && text.back() == '\r') text.remove_suffix(1);
      if (text.empty()) {
        if (hasData_ && (event_.empty() || event_ == "message")) {
          if (auto revision = decimal(std::string_view(id_))) {
            revisions.push_back(*revision);
          } else if (error_.empty()) {
            error_ = "a message with id '" + id_ + "'";
          }
        } else if (event_ == "compacted" && error_.empty()) {
          error_ = "the watch was compacted";
        }
        hasData_ = false;
        event_.clear();
        return;
      }
      const auto colon = text.find(':');
      const std::string_view field = text.substr(0, colon);
      std::string_view value = colon == std::string_view::npos ? std::string_view() : text.substr(colon + 1);
      if (value.starts_with(' ')) value.remove_prefix(1);
      if (field == "id") id_ = value;
      if (field == "event") event_ = value;
      if (field == "data") hasData_ = true;
    }
    bool established() const override { return true; }  // the 200 came: the watch is in place
    const std::string& error() const override { return error_; }

   private:
    std::string id_, event_, error_;
    bool hasData_ = false;
  };
  std::unique_ptr<StreamDecoder> decoder() const override { return std::make_unique<Decoder>(); }

  std::unique_ptr<lockbench::LockService> locks() const override { return lockbench::wardenLocks(); }

 private:
  std::string keyPath(std::size_t k) const { return root_ + "/k" + std::to_string(k); }

  Workload workload_;
  std::string root_;
  std::vector<std::string> targets_;
  std::string value_;
  std::string watchedTarget_;
};

// ---- etcd: POST /v3/kv/put and /v3/kv/range <run>/k<i>, POST /v3/watch, its v3 lock API ----

class EtcdTarget : public Target {
 public:
  explicit EtcdTarget(const Workload& w) : workload_(w) {
    const std::string value = base64Encode(std::string(w.valueSize, 'x'));
    for (std::size_t k = 0; k < w.keys; ++k) {
      const std::string key = base64Encode(w.run + "/k" + std::to_string(k));
      putBodies_.push_back(json{{"key", key}, {"value", value}}.dump());
      getBodies_.push_back(json{{"key", key}}.dump());
      staleGetBodies_.push_back(json{{"key", key}, {"serializable", true}}.dump());
    }
    watchedPut_ = json{{"key", base64Encode(w.run + "/watched")}, {"value", value}}.dump();
  }

  const char* name() const override { return "etcd"; }

  std::string findLeader(const std::string& url) const override {
    HttpClient client({url}, std::chrono::seconds(2));
    return pollLeader("etcd", url, [&](std::string& why) -> std::optional<std::string> {
      const HttpResponse s = client.request("POST", "/v3/maintenance/status", "{}");
      const json status = s.json();
      const auto leader = status.is_object() ? decimal(status.value("leader", json())) : std::nullopt;
      if (s.status != 200 || !leader || *leader == 0) {
        why = failure("POST /v3/maintenance/status", s);
        return {};
      }
      const HttpResponse m = client.request("POST", "/v3/cluster/member/list", "{}");
      const json list = m.json();
      for (const auto& member : list.is_object() ? list.value("members", json::array()) : json::array()) {
        const auto urls = member.is_object() ? member.value("clientURLs", json::array()) : json::array();
        if (decimal(member.value("ID", json())) == leader && !urls.empty() && urls[0].is_string()) {
          return urls[0].get<std::string>();
        }
      }
      why = failure("the leader is not in POST /v3/cluster/member/list", m);
      return {};
    });
  }

  std::string version(const std::string& leader) const override {
    HttpClient client({leader});
    const HttpResponse r = client.request("GET", "/version");
    const json v = r.json();
    if (r.status != 200 || !v.is_object() || !v.contains("etcdserver")) throw std::runtime_error(failure("GET /version", r));
    return "etcd " + v["etcdserver"].get<std::string>();
  }

  // 100 puts per transaction (etcd takes 128 operations in one at most, --max-txn-ops).
  void prepare(const std::string& leader) const override {
    HttpClient client({leader});
    const std::string value = base64Encode(std::string(workload_.valueSize, 'x'));
    for (std::size_t first = 0; first < workload_.keys; first += 100) {
      json ops = json::array();
      for (std::size_t k = first; k < std::min(workload_.keys, first + 100); ++k) {
        ops.push_back({{"request_put", {{"key", base64Encode(workload_.run + "/k" + std::to_string(k))}, {"value", value}}}});
      }
      const HttpResponse r = client.request("POST", "/v3/kv/txn", json{{"success", ops}}.dump());
      if (r.status != 200) throw std::runtime_error(failure("putting the keys", r));
    }
  }

  // Every key whose name starts with the run's (its keys, <run>/..., and its locks, <run>-...).
  void cleanup(const std::string& leader) const override {
    HttpClient client({leader});
    std::string end = workload_.run;
    end.back() = static_cast<char>(end.back() + 1);  // the run ends in a letter or digit
    const HttpResponse r = client.request(
        "POST", "/v3/kv/deleterange", json{{"key", base64Encode(workload_.run)}, {"range_end", base64Encode(end)}}.dump());
    if (r.status != 200) throw std::runtime_error(failure("deleting the keys", r));
  }

  load::RequestMaker puts() const override { return post("/v3/kv/put", putBodies_); }
  load::RequestMaker gets(bool stale) const override { return post("/v3/kv/range", stale ? staleGetBodies_ : getBodies_); }
  load::RequestMaker watchedPuts() const override {
    return [this](std::mt19937_64&, load::RequestWriter& req) -> std::size_t {
      req.set("POST", "/v3/kv/put", watchedPut_);
      return 0;
    };
  }

  std::optional<std::uint64_t> writeRevision(const load::Answer& answer) const override {
    if (answer.status != 200) return {};
    const json body = json::parse(answer.body.begin(), answer.body.end(), nullptr, false);
    if (!body.is_object() || !body.contains("header") || !body["header"].is_object()) return {};
    return decimal(body["header"].value("revision", json()));
  }

  std::string watchRequest(const std::string& hostPort) const override {
    const std::string body = json{{"create_request", {{"key", base64Encode(workload_.run + "/watched")}}}}.dump();
    return "POST /v3/watch HTTP/1.1\r\nHost: " + hostPort + "\r\nContent-Type: application/json\r\nContent-Length: " +
           std::to_string(body.size()) + "\r\n\r\n" + body;
  }

  // The gateway's stream: one JSON object per line, {"result": {"header", "created": true}}
  // first, then {"result": {"header", "events": [{"kv": {"mod_revision", ...}}, ...]}}.
  class Decoder : public StreamDecoder {
   public:
    void line(std::string_view text, std::vector<std::uint64_t>& revisions) override {
      if (text.find_first_not_of(" \r") == std::string_view::npos) return;
      const json message = json::parse(text, nullptr, false);
      const json* result = message.is_object() && message.contains("result") ? &message["result"] : nullptr;
      if (!result || !result->is_object()) return fail("a message without a result: " + std::string(text.substr(0, 200)));
      if (result->value("created", false)) created_ = true;
      if (result->value("canceled", false)) return fail("the watch was canceled: " + std::string(text.substr(0, 200)));
      for (const auto& event : result->value("events", json::array())) {
        const auto revision = event.is_object() && event.contains("kv") && event["kv"].is_object()
                                  ? decimal(event["kv"].value("mod_revision", json()))
                                  : std::nullopt;
        if (!revision) return fail("an event without a mod_revision: " + event.dump().substr(0, 200));
        revisions.push_back(*revision);
      }
    }
    bool established() const override { return created_; }
    const std::string& error() const override { return error_; }

   private:
    void fail(const std::string& what) {
      if (error_.empty()) error_ = what;
    }
    bool created_ = false;
    std::string error_;
  };
  std::unique_ptr<StreamDecoder> decoder() const override { return std::make_unique<Decoder>(); }

  std::unique_ptr<lockbench::LockService> locks() const override { return lockbench::etcdLocks(); }

 private:
  load::RequestMaker post(const char* target, const std::vector<std::string>& bodies) const {
    return [this, target, &bodies](std::mt19937_64& rng, load::RequestWriter& req) -> std::size_t {
      req.set("POST", target, bodies[std::uniform_int_distribution<std::size_t>(0, workload_.keys - 1)(rng)]);
      return 0;
    };
  }

  Workload workload_;
  std::vector<std::string> putBodies_, getBodies_, staleGetBodies_;
  std::string watchedPut_;
};

}  // namespace

std::unique_ptr<Target> wardenTarget(const Workload& workload) { return std::make_unique<WardenTarget>(workload); }
std::unique_ptr<Target> etcdTarget(const Workload& workload) { return std::make_unique<EtcdTarget>(workload); }

}  // namespace warden::api::comparebench
