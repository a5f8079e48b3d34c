#include "tests/http/FakeServer.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <algorithm>
#include <cctype>
#include <chrono>
#include <stdexcept>

namespace warden::tests {

namespace {

constexpr int kPollMs = 50;                  // how often the serving thread looks at stop_
constexpr std::size_t kMaxRequestBytes = 8 << 20;  // a bound on what one request may send

std::string lower(std::string text) {
  std::transform(text.begin(), text.end(), text.begin(), [](unsigned char c) { return std::tolower(c); });
  return text;
}

}  // namespace

std::string FakeServer::Request::header(const std::string& lowerName) const {
  auto it = headers.find(lowerName);
  return it == headers.end() ? std::string() : it->second;
}

FakeServer::FakeServer(Script script) : script_(std::move(script)) {
  listenFd_ = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = 0;
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  socklen_t length = sizeof addr;
  if (listenFd_ < 0 || ::bind(listenFd_, reinterpret_cast<sockaddr*>(&addr), sizeof addr) != 0 ||
      ::listen(listenFd_, 16) != 0 || ::getsockname(listenFd_, reinterpret_cast<sockaddr*>(&addr), &length) != 0) {
    if (listenFd_ >= 0) ::close(listenFd_);
    throw std::runtime_error("FakeServer: cannot listen on loopback");
  }
  port_ = ntohs(addr.sin_port);
  thread_ = std::thread([this] { serve(); });
}

FakeServer::~FakeServer() {
  stop_ = true;
  thread_.join();
  ::close(listenFd_);
}

std::vector<FakeServer::Request> FakeServer::requests() const {
  std::lock_guard lock(mutex_);
  return requests_;
}

std::string FakeServer::reply(unsigned status, const std::string& body, const std::string& revision) {
  std::string out =
      "HTTP/1.1 " + std::to_string(status) + " Fake\r\nContent-Type: application/json\r\nConnection: close\r\n";
  if (!revision.empty()) out += "X-Warden-Revision: " + revision + "\r\n";
  return out + "Content-Length: " + std::to_string(body.size()) + "\r\n\r\n" + body;
}

void FakeServer::serve() {
  while (!stop_) {
    pollfd p{listenFd_, POLLIN, 0};
    if (::poll(&p, 1, kPollMs) <= 0) continue;
    int fd = ::accept4(listenFd_, nullptr, nullptr, SOCK_CLOEXEC);
    if (fd < 0) continue;
    serveConnection(fd);
    ::close(fd);
  }
}

void FakeServer::serveConnection(int fd) {
  std::string buffer;
  char chunk[65536];
  // Reads until `buffer` holds `want` bytes; false when the peer hung up or we are stopping.
  auto fill = [&](std::size_t want) {
    while (buffer.size() < want && buffer.size() < kMaxRequestBytes) {
      if (stop_) return false;
      pollfd p{fd, POLLIN, 0};
      if (::poll(&p, 1, kPollMs) <= 0) continue;
      ssize_t n = ::recv(fd, chunk, sizeof chunk, 0);
      if (n <= 0) return false;
      buffer.append(chunk, static_cast<std::size_t>(n));
    }
    return buffer.size() >= want;
  };
  std::size_t end;  // of the head
  while ((end = buffer.find("\r\n\r\n")) == std::string::npos) {
    if (!fill(buffer.size() + 1)) return;
  }
  Request request;
  std::string head = buffer.substr(0, end);
  std::size_t lineEnd = head.find("\r\n");
  std::string requestLine = head.substr(0, lineEnd);
  std::size_t space1 = requestLine.find(' '), space2 = requestLine.rfind(' ');
  request.method = requestLine.substr(0, space1);
  request.target = requestLine.substr(space1 + 1, space2 - space1 - 1);
  while (lineEnd != std::string::npos) {
    std::size_t next = head.find("\r\n", lineEnd + 2);
    std::string line = head.substr(lineEnd + 2, next == std::string::npos ? std::string::npos : next - lineEnd - 2);
    std::size_t colon = line.find(':');
    if (colon != std::string::npos) {
      std::size_t valueStart = line.find_first_not_of(' ', colon + 1);
      request.headers[lower(line.substr(0, colon))] = valueStart == std::string::npos ? "" : line.substr(valueStart);
    }
    lineEnd = next;
  }
  std::size_t length = 0;
  if (auto it = request.headers.find("content-length"); it != request.headers.end()) length = std::stoul(it->second);
  if (!fill(end + 4 + length)) return;
  request.body = buffer.substr(end + 4, length);
  {
    std::lock_guard lock(mutex_);
    requests_.push_back(request);
  }
  const std::string answer = script_(request);
  std::size_t sent = 0;
  while (sent < answer.size()) {
    ssize_t n = ::send(fd, answer.data() + sent, answer.size() - sent, MSG_NOSIGNAL);
    if (n <= 0) return;
    sent += static_cast<std::size_t>(n);
  }
  // One request per connection (reply() says "Connection: close"): the caller closes it.
}

}  // namespace warden::tests
