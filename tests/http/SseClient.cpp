#include "tests/http/SseClient.h"

#include <poll.h>
#include <unistd.h>

#include <chrono>

#include "tests/http/TestServer.h"

namespace warden::tests {

SseClient::SseClient(int port, const std::string& target, const std::string& lastEventId) {
  fd_ = connectLoopback(port);
  if (fd_ < 0) {
    ended_ = true;
    return;
  }
  std::string request = "GET " + target + " HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n";
  if (!lastEventId.empty()) request += "Last-Event-ID: " + lastEventId + "\r\n";
  request += "\r\n";
  if (::write(fd_, request.data(), request.size()) != static_cast<ssize_t>(request.size())) ended_ = true;
  // The head, up to the blank line.
  std::size_t end;
  while ((end = raw_.find("\r\n\r\n")) == std::string::npos) {
    if (!fill(5000)) {
      ended_ = true;
      return;
    }
  }
  const std::string head = raw_.substr(0, end);
  raw_.erase(0, end + 4);
  status_ = std::stoi(head.substr(9, 3));
  for (std::size_t at = head.find("\r\n"); at != std::string::npos; at = head.find("\r\n", at + 2)) {
    const std::size_t lineEnd = head.find("\r\n", at + 2);
    const std::string line = head.substr(at + 2, lineEnd == std::string::npos ? std::string::npos : lineEnd - at - 2);
    if (line.rfind("Content-Type: ", 0) == 0) contentType_ = line.substr(14);
  }
  if (status_ != 200) ended_ = true;
}

SseClient::~SseClient() {
  if (fd_ >= 0) ::close(fd_);
}

bool SseClient::fill(int timeoutMs) {
  pollfd p{fd_, POLLIN, 0};
  if (::poll(&p, 1, timeoutMs) <= 0) return false;
  char buffer[65536];
  const ssize_t n = ::read(fd_, buffer, sizeof buffer);
  if (n <= 0) return false;
  raw_.append(buffer, static_cast<std::size_t>(n));
  return true;
}

void SseClient::dechunk() {
  for (;;) {
    const std::size_t lineEnd = raw_.find("\r\n");
    if (lineEnd == std::string::npos) return;
    const std::size_t size = std::stoul(raw_.substr(0, lineEnd), nullptr, 16);
    if (size == 0) {
      ended_ = true;  // the last chunk
      raw_.clear();
      return;
    }
    if (raw_.size() < lineEnd + 2 + size + 2) return;
    text_ += raw_.substr(lineEnd + 2, size);
    raw_.erase(0, lineEnd + 2 + size + 2);
  }
}

std::optional<SseClient::Message> SseClient::parseLine(std::string line) {
  if (line.empty()) {
    // Dispatch: the last event ID is taken even when there is no data.
    if (data_.empty()) {
      eventType_.clear();
      return std::nullopt;
    }
    if (data_.back() == '\n') data_.pop_back();
    Message m{lastEventId_, eventType_.empty() ? "message" : eventType_, data_};
    data_.clear();
    eventType_.clear();
    return m;
  }
  if (line[0] == ':') return std::nullopt;  // a comment
  std::string field = line, value;
  if (const auto colon = line.find(':'); colon != std::string::npos) {
    field = line.substr(0, colon);
    value = line.substr(colon + 1);
    if (!value.empty() && value[0] == ' ') value.erase(0, 1);
  }
  if (field == "event") {
    eventType_ = value;
  } else if (field == "data") {
    data_ += value + "\n";
  } else if (field == "id") {
    if (value.find('\0') == std::string::npos) lastEventId_ = value;
  }  // "retry" and anything else: ignored here
  return std::nullopt;
}

std::optional<SseClient::Message> SseClient::next(int timeoutMs) {
  const auto deadline = std::chrono::steady_clock::now() + std::chrono::milliseconds(timeoutMs);
  for (;;) {
    dechunk();
    // Lines end at CRLF, LF or CR.
    std::size_t at = 0;
    while (at < text_.size()) {
      if (lastWasCr_ && text_[at] == '\n') {
        lastWasCr_ = false;
        text_.erase(0, 1);
        continue;
      }
      const std::size_t end = text_.find_first_of("\r\n", at);
      if (end == std::string::npos) break;
      lastWasCr_ = text_[end] == '\r';
      std::string line = text_.substr(0, end);
      text_.erase(0, end + 1);
      if (auto m = parseLine(std::move(line))) return m;
    }
    if (ended_ || fd_ < 0) return std::nullopt;
    const auto left = std::chrono::duration_cast<std::chrono::milliseconds>(deadline - std::chrono::steady_clock::now()).count();
    if (left <= 0) return std::nullopt;
    if (!fill(static_cast<int>(left))) {
      if (std::chrono::steady_clock::now() < deadline) ended_ = true;  // closed, not a timeout
      return std::nullopt;
    }
  }
}

}  // namespace warden::tests
