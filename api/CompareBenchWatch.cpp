#include "api/CompareBenchWatch.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <cctype>
#include <charconv>
#include <memory>
#include <mutex>
#include <stdexcept>
#include <thread>
#include <unordered_map>

#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/post.hpp>
#include <boost/asio/write.hpp>

#include "api/LockBenchClient.h"

namespace warden::api::comparebench {

namespace net = boost::asio;
using tcp = net::ip::tcp;
using Clock = load::Clock;

namespace {

struct Sample {
  std::uint64_t revision;
  Clock::time_point at;  // when the read that completed its line returned
};

// One streaming HTTP/1.1 answer over a raw socket: sends the request, checks the head (200),
// takes off the chunked framing (or none), and hands the body to the decoder line by line as
// bytes arrive. Its handlers run on one thread, one at a time; the atomics may be read from
// others while it runs, the rest only after its io_context stopped.
class StreamReader : public std::enable_shared_from_this<StreamReader> {
 public:
  StreamReader(net::io_context& ioc, tcp::endpoint endpoint, std::string request, std::unique_ptr<StreamDecoder> decoder)
      : socket_(ioc), endpoint_(endpoint), request_(std::move(request)), decoder_(std::move(decoder)) {}

  void start() {
    socket_.async_connect(endpoint_, [self = shared_from_this()](boost::system::error_code ec) {
      if (ec) {
        self->fail("connect: " + ec.message());
        return;
      }
      net::async_write(self->socket_, net::buffer(self->request_), [self](boost::system::error_code ec2, std::size_t) {
        if (ec2) {
          self->fail("send: " + ec2.message());
          return;
        }
        self->read();
      });
    });
  }

  // Closes the stream; on the reader's thread (post it).
  void stop() {
    stopping_ = true;
    boost::system::error_code ignored;
    socket_.close(ignored);
  }

  std::atomic<bool> established{false}, ended{false};
  std::atomic<std::uint64_t> lastRevision{0};
  std::vector<Sample> samples;
  std::string error;

 private:
  static constexpr std::size_t kMaxHead = 64 * 1024;

  void read() {
    socket_.async_read_some(net::buffer(buffer_), [self = shared_from_this()](boost::system::error_code ec, std::size_t n) {
      self->onRead(ec, n);
    });
  }

  void onRead(boost::system::error_code ec, std::size_t n) {
    if (ec) {
      if (!stopping_) fail("the stream broke: " + ec.message());
      return;
    }
    const auto now = Clock::now();
    pending_.append(buffer_.data(), n);
    if (inHead_ && !head()) return;
    if (chunked_) {
      if (unchunk()) return;
    } else {
      body_.append(pending_);
      pending_.clear();
    }
    std::size_t from = 0;
    for (std::size_t nl; (nl = body_.find('\n', from)) != std::string::npos; from = nl + 1) {
      revisions_.clear();
      decoder_->line(std::string_view(body_).substr(from, nl - from), revisions_);
      for (std::uint64_t revision : revisions_) {
        samples.push_back(Sample{revision, now});
        lastRevision = std::max<std::uint64_t>(lastRevision, revision);
      }
    }
    body_.erase(0, from);
    if (!decoder_->error().empty() && error.empty()) error = decoder_->error();
    if (decoder_->established()) established = true;
    read();
  }

  // Takes the head once it is complete; false when the stream is over or more bytes are needed
  // (then it reads on).
  bool head() {
    const auto end = pending_.find("\r\n\r\n");
    if (end == std::string::npos) {
      if (pending_.size() > kMaxHead) {
        fail("an answer head over 64 KiB");
      } else {
        read();
      }
      return false;
    }
    if (!pending_.starts_with("HTTP/1.1 200")) {
      fail(pending_.substr(0, pending_.find("\r\n")) + " " + pending_.substr(end + 4, 200));
      return false;
    }
    std::string lower = pending_.substr(0, end);
    std::transform(lower.begin(), lower.end(), lower.begin(), [](unsigned char ch) { return std::tolower(ch); });
    chunked_ = lower.find("\r\ntransfer-encoding: chunked") != std::string::npos;
    pending_.erase(0, end + 4);
    inHead_ = false;
    return true;
  }

  // Moves the chunks' data from pending_ to body_: "<hex size>[;ext]\r\n<data>\r\n" ...; true
  // when the stream ended or broke.
  bool unchunk() {
    while (!pending_.empty()) {
      if (dataLeft_ > 0) {
        const std::size_t take = std::min(dataLeft_, pending_.size());
        body_.append(pending_, 0, take);
        pending_.erase(0, take);
        dataLeft_ -= take;
        crlfLeft_ = dataLeft_ == 0;
        continue;
      }
      if (crlfLeft_) {
        if (pending_.size() < 2) break;
        if (!pending_.starts_with("\r\n")) return fail("no CRLF after a chunk");
        pending_.erase(0, 2);
        crlfLeft_ = false;
        continue;
      }
      const auto eol = pending_.find("\r\n");
      if (eol == std::string::npos) {
        if (pending_.size() > 64) return fail("a chunk size line over 64 bytes");
        break;
      }
      const std::size_t digits = std::min(pending_.find(';'), eol);
      std::size_t size = 0;
      const auto [end, err] = std::from_chars(pending_.data(), pending_.data() + digits, size, 16);
      if (err != std::errc{} || end != pending_.data() + digits) return fail("a malformed chunk size");
      if (size == 0) return fail("the service ended the stream");
      pending_.erase(0, eol + 2);
      dataLeft_ = size;
    }
    return false;
  }

  // Ends the stream; returns true, for unchunk().
  bool fail(const std::string& what) {
    if (error.empty()) error = what;
    ended = true;
    boost::system::error_code ignored;
    socket_.close(ignored);
    return true;
  }

  tcp::socket socket_;
  tcp::endpoint endpoint_;
  std::string request_;
  std::unique_ptr<StreamDecoder> decoder_;
  std::array<char, 8192> buffer_;
  bool stopping_ = false, inHead_ = true, chunked_ = false, crlfLeft_ = false;
  std::size_t dataLeft_ = 0;
  std::string pending_, body_;
  std::vector<std::uint64_t> revisions_;
};

std::uint32_t micros(Clock::duration d) {
  const auto us = std::chrono::duration_cast<std::chrono::microseconds>(d).count();
  return static_cast<std::uint32_t>(std::clamp<long long>(us, 0, 0xffffffffLL));
}

}  // namespace

WatchRun runWatch(const Target& target, const std::string& leader, const WatchConfig& config) {
  net::io_context ioc;
  const tcp::endpoint endpoint = lockbench::resolveEndpoint(ioc, leader);
  const std::string hostPort = endpoint.address().to_string() + ":" + std::to_string(endpoint.port());
  auto reader = std::make_shared<StreamReader>(ioc, endpoint, target.watchRequest(hostPort), target.decoder());
  reader->start();
  std::thread thread([&ioc] { ioc.run(); });
  auto finish = [&] {
    net::post(ioc, [reader] { reader->stop(); });
    thread.join();
  };
  const auto openDeadline = Clock::now() + std::chrono::seconds(10);
  while (!reader->established && !reader->ended && Clock::now() < openDeadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  if (!reader->established) {
    finish();
    throw std::runtime_error(std::string("opening a watch stream at ") + leader + " failed: " +
                             (reader->error.empty() ? "not confirmed within 10 s" : reader->error));
  }

  std::mutex mutex;
  struct Ack {
    Clock::time_point sent, answered;
  };
  std::unordered_map<std::uint64_t, Ack> acks;  // by revision
  std::uint64_t lastAck = 0;
  load::LoadConfig load;
  load.endpoint = leader;
  load.connections = config.connections;
  load.threads = config.threads;
  load.warmupSeconds = config.warmupSeconds;
  load.seconds = config.seconds;
  load.rate = config.rate;
  load.make = target.watchedPuts();
  load.serverPids = config.serverPids;
  load.onAnswer = [&](std::size_t, const load::Answer& answer, Clock::time_point sent, Clock::time_point answered) {
    if (auto revision = target.writeRevision(answer)) {
      std::lock_guard lock(mutex);
      acks.emplace(*revision, Ack{sent, answered});
      lastAck = std::max(lastAck, *revision);
    }
  };
  WatchRun run;
  run.writes = load::runLoad(load);
  const auto drainDeadline = Clock::now() + std::chrono::seconds(3);
  while (reader->lastRevision < lastAck && !reader->ended && Clock::now() < drainDeadline) {
    std::this_thread::sleep_for(std::chrono::milliseconds(5));
  }
  finish();

  run.acked = acks.size();
  run.error = reader->error;
  for (const Sample& s : reader->samples) {
    const auto it = acks.find(s.revision);
    if (it == acks.end()) continue;  // a warm-up write's
    run.received++;
    if (s.at < it->second.answered) run.early++;
    run.delayMicros.push_back(micros(s.at - it->second.answered));
    run.fromSendMicros.push_back(micros(s.at - it->second.sent));
    acks.erase(it);  // a second event of one revision is not a second receipt
  }
  return run;
}

}  // namespace warden::api::comparebench
