// Fuzzes the HTTP edge end to end, without sockets: raw bytes are parsed as HTTP/1.1 requests by
// Beast's parser with the limits HttpConnection sets, and each request goes to a Router over a
// real single-member Node (LocalLog, LMDB in a temporary directory, fsync off), as
// `warden serve --dev` runs it. Up to four pipelined requests per input share the node's state,
// so a create can be followed by reads and writes of what it made.
//
// Bytes that are not HTTP are refused by the parser (HttpConnection answers 400 and hangs up).
// A finding is a crash, a sanitizer report, a 500 (Router::handle turns an exception other than
// ApiError into "internal"; 503, 504 or 507 are the node's honest answers), a reply given
// twice, a JSON reply whose body is not JSON (or, for an error, has no "error" code), or a 405
// without its Allow header. (HttpConnection drops the body of a reply to HEAD.)
//
// Replies normally come back within the input (a write is committed by the log's thread); one
// that waits on purpose (?min_revision=R&wait_ms=W) is checked whenever it arrives. The node is
// replaced by a fresh one every few thousand inputs, once no reply is outstanding, so that its
// store stays small.

#include <atomic>
#include <chrono>
#include <condition_variable>
#include <cstdint>
#include <cstdlib>
#include <filesystem>
#include <memory>
#include <mutex>
#include <string>
#include <string_view>

#include <boost/asio/buffer.hpp>
#include <boost/beast/http.hpp>

#include "api/JsonCodec.h"
#include "api/Router.h"
#include "coordinator/Node.h"
#include "tests/fuzz/FuzzCheck.h"

namespace {

using namespace warden;
namespace http = boost::beast::http;
using json = nlohmann::ordered_json;
using tests::fuzz::printable;

constexpr std::uint32_t kHeaderLimit = 64 * 1024;  // as api/HttpConnection.cpp
constexpr int kMaxRequests = 4;
constexpr auto kReplyWait = std::chrono::milliseconds(250);
constexpr int kInputsPerNode = 5000;

std::atomic<int> outstanding{0};
std::string serverDir;  // the current node's; removed at exit, though the node is not (see server)

std::string scratchRoot() {
  const char* env = std::getenv("WARDEN_FUZZ_SCRATCH");
  return env ? env : std::filesystem::temp_directory_path().string();
}

// One node and its router in a directory of their own, removed when they go.
class Server {
 public:
  Server() : dir_(makeDir()), node_(options(dir_)), router_(node_) { serverDir = dir_; }
  ~Server() {
    node_.stop();
    std::error_code ignored;
    std::filesystem::remove_all(dir_, ignored);
  }
  api::Router& router() { return router_; }

 private:
  static std::string makeDir() {
    std::string pattern = scratchRoot() + "/warden-router-fuzz-XXXXXX";
    if (::mkdtemp(pattern.data()) == nullptr) std::abort();
    return pattern;
  }
  static coordinator::NodeOptions options(const std::string& dir) {
    coordinator::NodeOptions o;
    o.id = 1;
    o.dataDir = dir;
    o.fsync = false;
    o.mapSize = std::size_t{1} << 30;
    o.cluster = {{1, "127.0.0.1:1"}};
    return o;
  }

  std::string dir_;
  coordinator::Node node_;
  api::Router router_;
};

Server* server = nullptr;  // never destroyed at exit: replies still waiting may reach it
int inputsOnServer = 0;

const bool verbose = std::getenv("WARDEN_FUZZ_VERBOSE") != nullptr;  // print every exchange (to replay one)

void checkReply(const api::Request& request, const api::Reply& reply) {
  const std::string what = request.method + " " + printable(request.target) + " body " + printable(request.body);
  if (verbose) std::fprintf(stderr, "%s -> %u %s\n", what.c_str(), reply.status, printable(reply.body).c_str());
  FUZZ_CHECK(reply.status != 500, "internal error (" + printable(reply.body) + ") on " + what);
  FUZZ_CHECK(reply.status >= 200 && reply.status <= 599, "status " + std::to_string(reply.status) + " on " + what);
  if (reply.status == 405) {
    bool allow = false;
    for (const auto& [name, value] : reply.headers) allow = allow || (name == "Allow" && !value.empty());
    FUZZ_CHECK(allow, "405 without an Allow header on " + what);
  }
  if (reply.contentType != "application/json" || reply.body.empty()) return;
  const json body = json::parse(reply.body, nullptr, false);
  FUZZ_CHECK(!body.is_discarded(), "a JSON reply that is not JSON on " + what);
  if (reply.status >= 400) {
    FUZZ_CHECK(body.is_object() && body.contains("error") && body["error"].is_string(),
               "an error reply without an error code on " + what);
  }
}

struct Exchange {
  std::mutex mutex;
  std::condition_variable done;
  int replies = 0;
};

void handle(api::Request request) {
  auto exchange = std::make_shared<Exchange>();
  outstanding.fetch_add(1);
  server->router().handle(request, [exchange, request](api::Reply reply) {
    // Built here, as the connection would when sending it (Reply::later).
    checkReply(request, api::settleReply(std::move(reply), std::nullopt));
    {
      std::lock_guard lock(exchange->mutex);
      FUZZ_CHECK(++exchange->replies == 1, "a second reply to " + request.method + " " + printable(request.target));
    }
    exchange->done.notify_all();
    outstanding.fetch_sub(1);
  });
  std::unique_lock lock(exchange->mutex);
  exchange->done.wait_for(lock, kReplyWait, [&] { return exchange->replies > 0; });
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  if (server == nullptr) {
    std::atexit([] {
      std::error_code ignored;
      std::filesystem::remove_all(serverDir, ignored);  // LMDB's mapping outlives the unlink
    });
  }
  if (server == nullptr || (++inputsOnServer >= kInputsPerNode && outstanding.load() == 0)) {
    delete server;
    server = new Server();
    inputsOnServer = 0;
  }
  std::string_view input(reinterpret_cast<const char*>(data), size);
  for (int i = 0; i < kMaxRequests && !input.empty(); ++i) {
    http::request_parser<http::string_body> parser;
    parser.header_limit(kHeaderLimit);
    parser.body_limit(api::kMaxBodyBytes);
    parser.eager(true);
    boost::beast::error_code ec;
    std::size_t used = 0;
    while (!parser.is_done() && used < input.size()) {
      const std::size_t n = parser.put(boost::asio::buffer(input.data() + used, input.size() - used), ec);
      used += n;
      if (ec == http::error::need_more) ec = {};
      if (ec || n == 0) break;
    }
    if (!ec && !parser.is_done()) parser.put_eof(ec);  // what the client sent is all there is
    if (ec || !parser.is_done()) break;  // HttpConnection answers 400 or 413, or waits for more
    input.remove_prefix(used);
    auto& req = parser.get();
    api::Request request;  // as HttpConnection::onRead makes it
    request.method = std::string(req.method_string());
    request.target = std::string(req.target());
    request.body = std::move(req.body());
    if (auto key = req.find("Idempotency-Key"); key != req.end()) request.idempotencyKey = std::string(key->value());
    handle(std::move(request));
    if (!req.keep_alive()) break;
  }
  return 0;
}
