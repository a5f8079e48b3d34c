#pragma once
// The watchers of `warden bench-watch` (api/WatchBench.cpp): SSE streams over raw TCP, each
// decoding its chunked body and event stream as bytes arrive, and the fleet of them.

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <charconv>
#include <chrono>
#include <cstring>
#include <memory>
#include <string>
#include <string_view>
#include <vector>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core.hpp>

namespace warden::api::watchbench {

namespace beast = boost::beast;
namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = std::chrono::steady_clock;

struct Sample {
  std::uint64_t revision;
  Clock::time_point at;  // when the read that completed the message returned
};

class Watcher;

// Every watcher, and what the main thread may read while they run.
struct Fleet {
  std::vector<std::shared_ptr<Watcher>> watchers;
  std::atomic<std::size_t> nextToOpen{0};
  std::atomic<std::size_t> opened{0}, refused{0}, lost{0};
  std::atomic<std::uint64_t> messages{0};  // event messages received, all watchers
  std::atomic<bool> stopping{false};
  void openNext();
};

// One SSE stream over a raw TCP connection: sends the request, reads the answer's head, then
// decodes the chunked body and the event stream in it as bytes arrive (a chunk or a read may
// end anywhere, mid-line included). Its handlers never run concurrently (one operation at a
// time); the main thread reads its figures only after the io_context stopped, except `open`.
class Watcher : public std::enable_shared_from_this<Watcher> {
 public:
  Watcher(net::io_context& ioc, tcp::endpoint endpoint, std::string request, Fleet& fleet)
      : socket_(ioc), endpoint_(endpoint), request_(std::move(request)), fleet_(fleet) {}

  void start() {
    socket_.async_connect(endpoint_, [self = shared_from_this()](beast::error_code ec) {
      if (ec) return self->refuse("connect: " + ec.message());
      net::async_write(self->socket_, net::buffer(self->request_), [self](beast::error_code ec2, std::size_t) {
        if (ec2) return self->refuse("send: " + ec2.message());
        self->read();
      });
    });
  }

  std::atomic<bool> open{false};  // the 200 arrived and the stream has not ended
  std::vector<Sample> samples;
  std::string error;  // the first thing that went wrong, empty if none
  std::size_t progress = 0, compacted = 0, malformed = 0, outOfOrder = 0;

 private:
  enum class Body { Head, ChunkSize, ChunkData, ChunkEnd, Ended };
  static constexpr std::size_t kMaxHead = 64 * 1024;
  static constexpr std::size_t kMaxLine = 16 << 20;

  void read() {
    socket_.async_read_some(net::buffer(buffer_), [self = shared_from_this()](beast::error_code ec, std::size_t n) {
      self->onRead(ec, n);
    });
  }

  void onRead(beast::error_code ec, std::size_t n) {
    if (ec) {
      if (state_ == Body::Head) return refuse("read: " + ec.message());
      return drop("the stream broke: " + ec.message());
    }
    const auto now = Clock::now();
    const char* p = buffer_.data();
    if (state_ == Body::Head) {
      const std::size_t used = head(p, n);
      if (state_ == Body::Head || !socket_.is_open()) {
        if (socket_.is_open()) read();
        return;
      }
      p += used;
      n -= used;
    }
    chunks(p, n, now);
    if (socket_.is_open()) read();
  }

  // Takes the answer's head; returns how many of the n bytes it used.
  std::size_t head(const char* p, std::size_t n) {
    const std::size_t before = head_.size();
    head_.append(p, n);
    const auto end = head_.find("\r\n\r\n", before >= 3 ? before - 3 : 0);
    if (end == std::string::npos) {
      if (head_.size() > kMaxHead) refuse("an answer head over 64 KiB");
      return n;
    }
    const std::size_t used = end + 4 - before;
    std::string lower = head_.substr(0, end);
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char ch) { return std::tolower(ch); });
    if (!head_.starts_with("HTTP/1.1 200")) {
      refuse(head_.substr(0, head_.find("\r\n")) + " " + head_.substr(end + 4, 200));
    } else if (lower.find("\r\ntransfer-encoding: chunked") == std::string::npos ||
               lower.find("\r\ncontent-type: text/event-stream") == std::string::npos) {
      refuse("a 200 that is not a chunked text/event-stream");
    } else {
      state_ = Body::ChunkSize;
      open = true;
      fleet_.opened++;
      fleet_.openNext();
    }
    head_.clear();
    head_.shrink_to_fit();
    return used;
  }

  // The chunked framing: "<hex size>[;ext]\r\n<size bytes>\r\n" ... "0\r\n\r\n".
  void chunks(const char* p, std::size_t n, Clock::time_point now) {
    while (n > 0 && socket_.is_open()) {
      switch (state_) {
        case Body::ChunkSize: {
          const char ch = *p++;
          --n;
          if (ch != '\n') {
            sizeLine_.push_back(ch);
            if (sizeLine_.size() > 64) return drop("a chunk size line over 64 bytes");
            break;
          }
          const std::size_t digits = std::min(sizeLine_.find_first_of(";\r"), sizeLine_.size());
          std::size_t size = 0;
          const auto [end, err] = std::from_chars(sizeLine_.data(), sizeLine_.data() + digits, size, 16);
          if (err != std::errc{} || end != sizeLine_.data() + digits) return drop("a malformed chunk size");
          sizeLine_.clear();
          chunkLeft_ = size;
          state_ = size == 0 ? Body::Ended : Body::ChunkData;
          if (size == 0) return drop("the server ended the stream");
          break;
        }
        case Body::ChunkData: {
          const std::size_t take = std::min(n, chunkLeft_);
          events(p, take, now);
          p += take;
          n -= take;
          chunkLeft_ -= take;
          if (chunkLeft_ == 0) state_ = Body::ChunkEnd;
          break;
        }
        case Body::ChunkEnd: {
          const char ch = *p++;
          --n;
          if (ch == '\n') {
            state_ = Body::ChunkSize;
          } else if (ch != '\r') {
            return drop("no CRLF after a chunk");
          }
          break;
        }
        case Body::Head:
        case Body::Ended:
          return;
      }
    }
  }

  // The event stream (WHATWG "server-sent events"): lines end in LF or CRLF (a lone CR, which
  // the server never sends, is not taken as an end); a blank line dispatches.
  void events(const char* p, std::size_t n, Clock::time_point now) {
    while (n > 0) {
      const char* nl = static_cast<const char*>(std::memchr(p, '\n', n));
      if (!nl) {
        line_.append(p, n);
        if (line_.size() > kMaxLine) drop("an event line over 16 MiB");
        return;
      }
      line_.append(p, static_cast<std::size_t>(nl - p));
      if (!line_.empty() && line_.back() == '\r') line_.pop_back();
      onLine(now);
      line_.clear();
      n -= static_cast<std::size_t>(nl - p) + 1;
      p = nl + 1;
    }
  }

  void onLine(Clock::time_point now) {
    if (line_.empty()) return dispatch(now);
    if (line_[0] == ':') return;  // a comment
    const auto colon = line_.find(':');
    const std::string_view field = std::string_view(line_).substr(0, colon);
    std::string_view value;
    if (colon != std::string::npos) {
      value = std::string_view(line_).substr(colon + 1);
      if (value.starts_with(' ')) value.remove_prefix(1);
    }
    if (field == "id") {
      lastId_ = value;
    } else if (field == "event") {
      event_ = value;
    } else if (field == "data") {
      data_.append(value);
      data_.push_back('\n');
    }
  }

  void dispatch(Clock::time_point now) {
    if (data_.empty()) {
      event_.clear();
      return;
    }
    if (event_.empty() || event_ == "message") {
      // The revision is the id; the data must say the same (it is not parsed further: the
      // bench should cost less than the server it measures).
      std::uint64_t revision = 0;
      const auto [end, err] = std::from_chars(lastId_.data(), lastId_.data() + lastId_.size(), revision);
      const std::string expect = "{\"revision\":" + lastId_;
      if (err != std::errc{} || end != lastId_.data() + lastId_.size() || !data_.starts_with(expect) ||
          (data_.size() > expect.size() && data_[expect.size()] != ',')) {
        if (malformed++ == 0 && error.empty()) error = "a malformed message: id " + lastId_ + ", " + data_.substr(0, 100);
      } else {
        if (!samples.empty() && revision <= samples.back().revision) outOfOrder++;
        samples.push_back(Sample{revision, now});
        fleet_.messages.fetch_add(1, std::memory_order_relaxed);
      }
    } else if (event_ == "progress") {
      progress++;
    } else if (event_ == "compacted") {
      compacted++;
      if (error.empty()) error = "compacted: " + data_.substr(0, 200);
    } else if (malformed++ == 0 && error.empty()) {
      error = "an unknown event '" + event_ + "'";
    }
    data_.clear();
    event_.clear();
  }

  // Before the 200: the watch was not opened.
  void refuse(const std::string& what) {
    if (error.empty()) error = what;
    close();
    fleet_.refused++;
    fleet_.openNext();
  }

  // After the 200: the stream is gone.
  void drop(const std::string& what) {
    if (fleet_.stopping) return close();
    if (error.empty()) error = what;
    if (open.exchange(false)) fleet_.lost++;
    close();
  }

  void close() {
    beast::error_code ignored;
    socket_.close(ignored);
  }

  tcp::socket socket_;
  tcp::endpoint endpoint_;
  std::string request_;
  Fleet& fleet_;
  std::array<char, 4096> buffer_;
  Body state_ = Body::Head;
  std::string head_, sizeLine_, line_, lastId_, event_, data_;
  std::size_t chunkLeft_ = 0;
};

inline void Fleet::openNext() {
  const std::size_t i = nextToOpen++;
  if (i < watchers.size()) watchers[i]->start();
}

}  // namespace warden::api::watchbench
