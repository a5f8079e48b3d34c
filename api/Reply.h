#pragma once
// What the HTTP edge hands back: a status, a body and the revision the answer reflects.
// Handlers build Replies; only HttpConnection knows about Beast.

#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <stdexcept>
#include <string>
#include <utility>
#include <vector>

#include <nlohmann/json.hpp>

namespace warden::api {

class Hangup;  // api/Hangup.h

struct Request {
  std::string method;  // "GET", "POST", ...
  std::string target;  // "/v1/nodes/a?children"
  std::string body;
  std::optional<std::string> idempotencyKey;  // the Idempotency-Key header, when given
  std::optional<std::string> lastEventId;     // the Last-Event-ID header (an EventSource resuming)
  std::shared_ptr<Hangup> hangup;             // the client hanging up before its reply (may be null)
};

// A body that goes on (Server-Sent Events): after the headers, the connection asks for each
// next piece and writes it as it comes.
class ReplyStream {
 public:
  using Give = std::function<void(std::optional<std::string> piece)>;  // nullopt: the end
  virtual ~ReplyStream() = default;
  // Calls `give` once, from any thread, when there is a piece (or the end).
  virtual void next(Give give) = 0;
  // The client is gone, or the server stops: nothing more will be asked.
  virtual void cancel() = 0;
};

struct Reply {
  unsigned status = 200;
  std::string body;
  std::string contentType = "application/json";
  std::optional<std::uint64_t> revision;  // becomes X-Warden-Revision
  std::vector<std::pair<std::string, std::string>> headers;
  std::shared_ptr<ReplyStream> stream;  // set: `body` is ignored, the stream is the body
  // Set: the reply is this function's result, built where it is sent (the connection's own
  // thread), not where it was decided: a write's or a linearizable read's reply is decided on
  // the replicated log's driver thread, which must not spend its time on JSON.
  std::function<Reply()> later;
};

// A reply built by `build` when it is sent (Reply::later).
Reply deferredReply(std::function<Reply()> build);

// Called exactly once per request, from any thread.
using Respond = std::function<void(Reply)>;

// A request the edge refuses: its status and API error code, plus optional extra body fields.
class ApiError : public std::runtime_error {
 public:
  ApiError(unsigned status, std::string code, const std::string& message, nlohmann::ordered_json extra = nullptr)
      : std::runtime_error(message), status_(status), code_(std::move(code)), extra_(std::move(extra)) {}
  unsigned status() const { return status_; }
  const std::string& code() const { return code_; }
  const nlohmann::ordered_json& extra() const { return extra_; }

 private:
  unsigned status_;
  std::string code_;
  nlohmann::ordered_json extra_;
};

// Never throws: bytes that are not UTF-8 are replaced, not rejected.
std::string dumpJson(const nlohmann::ordered_json& value);
Reply jsonReply(unsigned status, const nlohmann::ordered_json& body, std::optional<std::uint64_t> revision);
// A reply whose body is JSON text already.
Reply textReply(unsigned status, std::string json, std::optional<std::uint64_t> revision);
Reply errorReply(unsigned status, const std::string& code, const std::string& message,
                 std::optional<std::uint64_t> revision, const nlohmann::ordered_json& extra = nullptr);
Reply errorReply(const ApiError& error, std::optional<std::uint64_t> revision);
// The reply itself, with Reply::later called if set; what it throws becomes an error reply.
Reply settleReply(Reply reply, std::optional<std::uint64_t> revision);
// 405 method_not_allowed, with the Allow header listing the methods `where` takes.
Reply methodNotAllowed(const std::string& method, const std::string& where, const char* allow,
                       std::optional<std::uint64_t> revision);

}  // namespace warden::api
