#include "api/LoadDriver.h"

#include <algorithm>
#include <array>
#include <atomic>
#include <charconv>
#include <cstring>
#include <map>
#include <memory>
#include <stdexcept>
#include <thread>

#include <boost/asio/connect.hpp>
#include <boost/asio/io_context.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/asio/write.hpp>
#include <boost/beast/core/buffers_suffix.hpp>
#include <boost/beast/core/error.hpp>
#include <boost/beast/core/flat_buffer.hpp>
#include <boost/beast/http.hpp>

#include "api/ProcStats.h"

namespace warden::api::load {

namespace beast = boost::beast;
namespace http = beast::http;
namespace net = boost::asio;
using tcp = net::ip::tcp;

namespace {

constexpr auto kTimeout = std::chrono::seconds(30);  // connect, or request sent -> answer complete
constexpr std::size_t kReadBuffer = 16 * 1024;        // each connection's, grown for a larger answer
constexpr std::size_t kHeadLimit = 8 * 1024;          // Beast's default for a response's head
constexpr std::size_t kBodyLimit = 8 * 1024 * 1024;   // and for its body: a larger one is Beast's to refuse

char lower(char c) { return c >= 'A' && c <= 'Z' ? static_cast<char>(c - 'A' + 'a') : c; }

bool equalsIgnoringCase(std::string_view a, std::string_view b) {
  if (a.size() != b.size()) return false;
  for (std::size_t i = 0; i < a.size(); ++i) {
    if (lower(a[i]) != lower(b[i])) return false;
  }
  return true;
}

std::string_view trimmed(std::string_view s) {
  while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  while (!s.empty() && (s.back() == ' ' || s.back() == '\t')) s.remove_suffix(1);
  return s;
}

// How an answer's head frames its body: a length the driver reads itself, or not (chunked, to
// the end of the connection, anything unusual), left to Beast's parser.
struct Framing {
  bool byBeast = false;
  unsigned status = 0;
  std::size_t contentLength = 0;
};

// `head`: from the status line to the blank line, inclusive.
Framing frame(std::string_view head) {
  Framing f;
  f.byBeast = true;
  // "HTTP/1.x NNN ..."
  if (head.size() < 12 || !head.starts_with("HTTP/1.") || head[8] != ' ') return f;
  for (int i = 9; i < 12; ++i) {
    if (head[i] < '0' || head[i] > '9') return f;
    f.status = f.status * 10 + static_cast<unsigned>(head[i] - '0');
  }
  if (f.status < 200) return f;  // 1xx: as Beast reads them
  std::size_t eol = head.find("\r\n");
  std::string_view rest = head.substr(eol + 2);
  bool hasLength = false;
  while (true) {
    eol = rest.find("\r\n");
    if (eol == std::string_view::npos) return f;
    const std::string_view line = rest.substr(0, eol);
    rest.remove_prefix(eol + 2);
    if (line.empty()) break;  // the blank line
    if (line.front() == ' ' || line.front() == '\t') return f;  // obsolete folding
    const std::size_t colon = line.find(':');
    if (colon == std::string_view::npos) return f;
    const std::string_view name = line.substr(0, colon);
    if (equalsIgnoringCase(name, "transfer-encoding")) return f;
    if (equalsIgnoringCase(name, "content-length")) {
      const std::string_view value = trimmed(line.substr(colon + 1));
      std::size_t n = 0;
      const auto [end, err] = std::from_chars(value.data(), value.data() + value.size(), n);
      if (hasLength || value.empty() || err != std::errc{} || end != value.data() + value.size() || n > kBodyLimit) {
        return f;
      }
      hasLength = true;
      f.contentLength = n;
    }
  }
  if (f.status == 204 || f.status == 304) {
    f.contentLength = 0;
  } else if (!hasLength) {
    return f;  // to the end of the connection
  }
  f.byBeast = false;
  return f;
}

// What every connection of one run reads; `next` is the only part written, atomically.
struct Schedule {
  const LoadConfig& config;
  std::string host;  // the Host header
  Clock::time_point start, measureStart, end;
  std::atomic<std::uint64_t> next{0};  // paced: the next slot to take
};

class Connection;

// One io thread's: its io_context and connections, the latencies they measured, and a watchdog
// that closes a connection whose connect or answer is overdue.
struct Shard {
  explicit Shard(std::size_t kinds) : micros(kinds) {}

  void arm();
  void finished() {
    if (--active == 0) watchdog.cancel();
  }

  net::io_context ioc{1};
  net::steady_timer watchdog{ioc};
  std::vector<Connection*> connections;
  std::vector<std::vector<std::uint32_t>> micros;
  std::size_t active = 0;
};

// One keep-alive connection sending requests one at a time until the schedule's end; stops at
// its first failed exchange. Runs on its shard's thread only; the caller reads its figures after
// the thread ended.
class Connection {
 public:
  Connection(Shard& shard, Schedule& schedule, unsigned seed)
      : shard_(shard), schedule_(schedule), socket_(shard.ioc), timer_(shard.ioc), rng_(seed),
        writer_(schedule.host), in_(kReadBuffer) {}

  void start(const tcp::resolver::results_type& addresses) {
    busy_ = true;
    busySince_ = Clock::now();
    net::async_connect(socket_, addresses, [this](const beast::error_code& ec, const tcp::endpoint&) {
      if (ec) return fail("connect", ec);
      beast::error_code ignored;
      socket_.set_option(tcp::no_delay(true), ignored);
      socket_.non_blocking(true, ignored);
      busy_ = false;
      take();
    });
  }

  // The watchdog's: closes the connection when its connect or answer is overdue; the operation
  // then ends with an error.
  void closeIfOverdue(Clock::time_point now) {
    if (done_ || !busy_ || now - busySince_ < kTimeout) return;
    timedOut_ = true;
    beast::error_code ignored;
    socket_.close(ignored);
  }

  std::size_t errors = 0;
  std::string firstError;

 private:
  void take() {
    const LoadConfig& c = schedule_.config;
    const auto now = Clock::now();
    auto due = now;
    if (c.rate > 0) {
      const std::uint64_t k = schedule_.next++;
      due = schedule_.start + std::chrono::duration_cast<Clock::duration>(
                                  std::chrono::duration<double>(static_cast<double>(k) / c.rate));
    }
    if (due >= schedule_.end) {
      beast::error_code ignored;
      socket_.shutdown(tcp::socket::shutdown_both, ignored);
      socket_.close(ignored);
      return finish();
    }
    if (due <= now) return send();
    timer_.expires_at(due);
    timer_.async_wait([this](const beast::error_code& ec) {
      if (ec) return fail("timer", ec);
      send();
    });
  }

  // Writes the request with one non-blocking send (the rest, if the socket took only part of
  // it, asynchronously), then waits for the answer.
  void send() {
    kind_ = schedule_.config.make(rng_, writer_);
    const std::array<net::const_buffer, 2> request{net::buffer(writer_.head()), net::buffer(writer_.body())};
    const std::size_t size = writer_.head().size() + writer_.body().size();
    sent_ = Clock::now();
    busySince_ = sent_;
    busy_ = true;
    beast::error_code ec;
    std::size_t n = socket_.write_some(request, ec);
    if (ec == net::error::would_block || ec == net::error::try_again) {
      n = 0;
      ec = {};
    }
    if (ec) return fail("write", ec);
    if (n == size) return used_ > 0 ? read() : awaitAnswer();
    rest_.emplace(request);
    rest_->consume(n);
    net::async_write(socket_, *rest_, [this](const beast::error_code& ec2, std::size_t) {
      if (ec2) return fail("write", ec2);
      used_ > 0 ? read() : awaitAnswer();
    });
  }

  // Reads the answer into the read buffer. An asynchronous read, not a wait for readability
  // and a read: Asio re-arms epoll (epoll_ctl) for every wait, while a read it found exhausting
  // the socket waits for the next edge without a system call.
  void awaitAnswer() {
    if (used_ == in_.size()) in_.resize(in_.size() * 2);
    socket_.async_read_some(net::buffer(in_.data() + used_, in_.size() - used_),
                            [this](const beast::error_code& ec, std::size_t n) {
                              if (ec == net::error::eof) {
                                return fail(used_ == 0 ? http::error::end_of_stream : http::error::partial_message);
                              }
                              if (ec) return fail("read", ec);
                              used_ += n;
                              read();
                            });
  }

  // Completes the answer once its head and Content-Length bytes of body are in, or hands it to
  // Beast when its head does not give a length; reads on otherwise.
  void read() {
    if (headSize_ == 0) {
      const std::string_view in(in_.data(), used_);
      const std::size_t blank = in.find("\r\n\r\n", scanned_);
      if (blank == std::string_view::npos) {
        if (used_ >= kHeadLimit) return readByBeast();
        scanned_ = used_ >= 3 ? used_ - 3 : 0;
        return awaitAnswer();
      }
      headSize_ = blank + 4;
      framing_ = frame(in.substr(0, headSize_));
      if (framing_.byBeast) return readByBeast();
      if (headSize_ + framing_.contentLength > in_.size()) in_.resize(headSize_ + framing_.contentLength);
    }
    const std::size_t size = headSize_ + framing_.contentLength;
    if (used_ < size) return awaitAnswer();
    const std::string_view in(in_.data(), used_);
    answered(framing_.status, in.substr(0, headSize_), in.substr(headSize_, framing_.contentLength), size);
  }

  // The answer whose head does not give its body's length, read by Beast from the start of its
  // head (the bytes already read passed on); what Beast read beyond it comes back.
  void readByBeast() {
    if (!beast_) beast_ = std::make_unique<BeastRead>();
    BeastRead& b = *beast_;
    b.buffer.consume(b.buffer.size());
    const auto space = b.buffer.prepare(used_);
    std::memcpy(space.data(), in_.data(), used_);
    b.buffer.commit(used_);
    used_ = 0;
    headSize_ = 0;
    scanned_ = 0;
    b.parser.emplace();
    http::async_read(socket_, b.buffer, *b.parser, [this](const beast::error_code& ec, std::size_t) {
      if (ec) return fail("read", ec);
      BeastRead& r = *beast_;
      r.answer = r.parser->release();
      r.head = "HTTP/1.1 " + std::to_string(r.answer.result_int()) + " ";
      r.head.append(r.answer.reason().data(), r.answer.reason().size()).append("\r\n");
      for (const auto& field : r.answer) {
        r.head.append(field.name_string().data(), field.name_string().size()).append(": ");
        r.head.append(field.value().data(), field.value().size()).append("\r\n");
      }
      r.head += "\r\n";
      const std::size_t left = r.buffer.size();
      if (left > in_.size()) in_.resize(left);
      std::memcpy(in_.data(), r.buffer.data().data(), left);
      r.buffer.consume(left);
      used_ = left;
      answered(r.answer.result_int(), r.head, r.answer.body(), 0);
    });
  }

  // The answer is complete: its latency, the hook, its status; then the next request. `consumed`:
  // its bytes at the start of the read buffer.
  void answered(unsigned status, std::string_view head, std::string_view body, std::size_t consumed) {
    const auto at = Clock::now();
    busy_ = false;
    if (sent_ >= schedule_.measureStart) {
      const auto us = std::chrono::duration_cast<std::chrono::microseconds>(at - sent_).count();
      shard_.micros.at(kind_).push_back(static_cast<std::uint32_t>(std::min<long long>(us, 0xffffffffLL)));
      if (schedule_.config.onAnswer) schedule_.config.onAnswer(kind_, Answer{status, head, body}, sent_, at);
    }
    if (status >= 300 && errors++ == 0) firstError = std::to_string(status) + " " + std::string(body.substr(0, 200));
    if (consumed > 0) {
      std::memmove(in_.data(), in_.data() + consumed, used_ - consumed);
      used_ -= consumed;
    }
    headSize_ = 0;
    scanned_ = 0;
    take();
  }

  void fail(const char* what, const beast::error_code& ec) {
    fail(std::string(what) + ": " + (timedOut_ ? beast::error_code(beast::error::timeout).message() : ec.message()));
  }
  void fail(http::error e) { fail("read", beast::error_code(e)); }
  void fail(const std::string& what) {
    if (done_) return;
    if (errors++ == 0) firstError = what;
    beast::error_code ignored;
    socket_.close(ignored);
    timer_.cancel();
    finish();
  }

  void finish() {
    if (done_) return;
    done_ = true;
    busy_ = false;
    shard_.finished();
  }

  struct BeastRead {
    beast::flat_buffer buffer;
    std::optional<http::response_parser<http::string_body>> parser;
    http::response<http::string_body> answer;
    std::string head;
  };

  Shard& shard_;
  Schedule& schedule_;
  tcp::socket socket_;
  net::steady_timer timer_;  // paced: the next request's slot
  std::mt19937_64 rng_;
  RequestWriter writer_;
  std::optional<beast::buffers_suffix<std::array<net::const_buffer, 2>>> rest_;  // of a request sent in parts
  std::vector<char> in_;  // the read buffer: the answer being read from its start, `used_` bytes
  std::size_t used_ = 0;
  std::size_t scanned_ = 0;   // where the search for the blank line resumes
  std::size_t headSize_ = 0;  // 0: the head is not complete yet
  Framing framing_;
  std::unique_ptr<BeastRead> beast_;
  std::size_t kind_ = 0;
  Clock::time_point sent_, busySince_;
  bool busy_ = false;  // connecting, or a request is out
  bool timedOut_ = false;
  bool done_ = false;
};

void Shard::arm() {
  watchdog.expires_after(std::chrono::seconds(1));
  watchdog.async_wait([this](const beast::error_code& ec) {
    if (ec || active == 0) return;
    const auto now = Clock::now();
    for (Connection* c : connections) c->closeIfOverdue(now);
    arm();
  });
}

}  // namespace

RequestWriter::RequestWriter(std::string_view host) : hostLine_(" HTTP/1.1\r\nHost: ") {
  hostLine_.append(host).append("\r\n");
}

void RequestWriter::set(std::string_view method, std::string_view target, std::string_view targetSuffix,
                        std::string_view body) {
  head_.clear();
  head_.append(method).append(" ").append(target).append(targetSuffix).append(hostLine_);
  if (!body.empty() || method == "PUT" || method == "POST") {
    if (!body.empty()) head_.append("Content-Type: application/json\r\n");
    char digits[24];
    const auto end = std::to_chars(digits, digits + sizeof digits, body.size()).ptr;
    head_.append("Content-Length: ").append(digits, end).append("\r\n");
  }
  head_.append("\r\n");
  body_ = body;
}

std::optional<std::string_view> Answer::header(std::string_view name) const {
  std::string_view rest = head;
  std::size_t eol = rest.find("\r\n");  // past the status line
  while (eol != std::string_view::npos) {
    rest.remove_prefix(eol + 2);
    eol = rest.find("\r\n");
    const std::string_view line = rest.substr(0, eol);
    const std::size_t colon = line.find(':');
    if (colon != std::string_view::npos && equalsIgnoringCase(line.substr(0, colon), name)) {
      return trimmed(line.substr(colon + 1));
    }
  }
  return {};
}

std::size_t LoadResult::requests() const {
  std::size_t n = 0;
  for (const auto& kind : micros) n += kind.size();
  return n;
}

double cpuSecondsOf(const std::vector<long>& pids) {
  double sum = 0;
  for (long pid : pids) sum += cpuSeconds(pid);
  return sum;
}

LoadResult runLoad(const LoadConfig& config) {
  const std::string& url = config.endpoint;
  std::string hostPort = url.starts_with("http://") ? url.substr(7) : url;
  while (!hostPort.empty() && hostPort.back() == '/') hostPort.pop_back();
  const std::size_t colon = hostPort.rfind(':');
  if (colon == std::string::npos || colon == 0) throw std::runtime_error("'" + url + "' is not http://host:port");
  tcp::resolver::results_type addresses;
  {
    net::io_context ioc;
    beast::error_code ec;
    addresses = tcp::resolver(ioc).resolve(hostPort.substr(0, colon), hostPort.substr(colon + 1), ec);
    if (ec || addresses.empty()) throw std::runtime_error("cannot resolve " + url + ": " + ec.message());
  }

  Schedule schedule{config, hostPort, {}, {}, {}};
  auto seconds = [](double s) { return std::chrono::duration_cast<Clock::duration>(std::chrono::duration<double>(s)); };
  schedule.start = Clock::now();
  schedule.measureStart = schedule.start + seconds(config.warmupSeconds);
  schedule.end = schedule.measureStart + seconds(config.seconds);

  // Each thread its own io_context and every n-th connection.
  const std::size_t n = std::max<std::size_t>(1, std::min<std::size_t>(std::max(1u, config.threads), config.connections));
  std::vector<std::unique_ptr<Shard>> shards;
  for (std::size_t i = 0; i < n; ++i) shards.push_back(std::make_unique<Shard>(config.kinds));
  std::vector<std::unique_ptr<Connection>> connections;
  for (std::size_t i = 0; i < config.connections; ++i) {
    Shard& shard = *shards[i % n];
    connections.push_back(std::make_unique<Connection>(shard, schedule, static_cast<unsigned>(i + 1)));
    shard.connections.push_back(connections.back().get());
  }
  // Room for the samples of a fast run, so that the vectors seldom grow while it runs.
  const double expected = (config.rate > 0 ? config.rate * 1.1 : 100'000.0) * config.seconds / static_cast<double>(n);
  for (auto& shard : shards) {
    for (auto& kind : shard->micros) kind.reserve(static_cast<std::size_t>(std::min(expected, 4.0 * 1024 * 1024)));
    shard->active = shard->connections.size();
    for (Connection* c : shard->connections) c->start(addresses);
    if (shard->active > 0) shard->arm();
  }
  std::vector<std::thread> pool;
  for (auto& shard : shards) pool.emplace_back([&ioc = shard->ioc] { ioc.run(); });
  std::this_thread::sleep_until(schedule.measureStart);
  const double cpuBefore = cpuSecondsOf(config.serverPids);
  std::map<long, std::map<long, ThreadUsage>> threadsBefore;
  for (long pid : config.serverPids) threadsBefore[pid] = threadUsage(pid);
  for (auto& t : pool) t.join();

  LoadResult result;
  result.seconds = std::chrono::duration<double>(Clock::now() - schedule.measureStart).count();
  if (!config.serverPids.empty()) result.serverCpu = cpuSecondsOf(config.serverPids) - cpuBefore;
  for (long pid : config.serverPids) {
    std::map<std::string, LoadResult::ThreadCost> byName;
    const auto& before = threadsBefore[pid];
    for (const auto& [tid, after] : threadUsage(pid)) {
      const auto was = before.find(tid);  // a thread begun within the window counts from zero
      auto& cost = byName[after.name];
      cost.pid = pid;
      cost.name = after.name;
      cost.threads += 1;
      cost.cpuSeconds += after.cpuSeconds - (was != before.end() ? was->second.cpuSeconds : 0);
      cost.wakeups += after.voluntarySwitches - (was != before.end() ? was->second.voluntarySwitches : 0);
    }
    for (auto& [name, cost] : byName) result.serverThreads.push_back(std::move(cost));
  }
  result.micros.resize(config.kinds);
  for (const auto& shard : shards) {
    for (std::size_t kind = 0; kind < config.kinds; ++kind) {
      result.micros[kind].insert(result.micros[kind].end(), shard->micros[kind].begin(), shard->micros[kind].end());
    }
  }
  for (const auto& c : connections) {
    if (result.errors == 0 && c->errors > 0) result.firstError = c->firstError;
    result.errors += c->errors;
  }
  return result;
}

}  // namespace warden::api::load
