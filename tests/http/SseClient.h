#pragma once
// A Server-Sent Events client written from the WHATWG rules (html.spec.whatwg.org, "Server-sent
// events", parsing an event stream), independent of the server's code: it decodes the chunked
// body itself, splits lines on CRLF, LF or CR, ignores comments, strips one space after the
// colon, keeps the last event ID buffer across messages, and dispatches on a blank line. Used
// by the watch tests to read streams the way a browser's EventSource would.

#include <optional>
#include <string>

namespace warden::tests {

class SseClient {
 public:
  struct Message {
    std::string id;     // the last event ID buffer when it was dispatched
    std::string event;  // "message" when the stream named none
    std::string data;   // data lines joined with '\n'
  };

  // GET target on 127.0.0.1:port, with Last-Event-ID when given (as EventSource does on a
  // reconnect). status() tells how the server answered.
  SseClient(int port, const std::string& target, const std::string& lastEventId = {});
  ~SseClient();
  SseClient(const SseClient&) = delete;
  SseClient& operator=(const SseClient&) = delete;

  int status() const { return status_; }
  const std::string& contentType() const { return contentType_; }
  // The next message, waiting up to timeoutMs; nullopt on timeout or once the stream ended.
  std::optional<Message> next(int timeoutMs);
  bool ended() const { return ended_; }
  const std::string& lastEventId() const { return lastEventId_; }

 private:
  bool fill(int timeoutMs);  // reads more bytes; false on timeout or close
  void dechunk();
  std::optional<Message> parseLine(std::string line);

  int fd_ = -1;
  int status_ = 0;
  std::string contentType_;
  std::string raw_;   // body bytes still chunk-encoded
  std::string text_;  // decoded, not yet split into lines
  bool ended_ = false;
  bool lastWasCr_ = false;  // a CR ended the previous line: a following LF belongs to it
  std::string lastEventId_;
  std::string eventType_;
  std::string data_;
};

}  // namespace warden::tests
