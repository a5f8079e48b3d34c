#pragma once
// What the node core needs from the world, as interfaces: production binds them to the Asio
// peer transport and the system clocks (coordinator/ReplicatedLog), the simulator to a
// simulated network and clocks (tests/sim). The core never touches a socket or a clock itself.

#include <cstdint>
#include <functional>
#include <string>

namespace warden::coordinator::node {

// Frames to peers. Sends never block and may be lost; the protocols above retransmit.
class Outbox {
 public:
  virtual ~Outbox() = default;
  virtual void send(std::uint64_t to, std::string frame) = 0;
  // The frames sent since the last flush may leave now, each peer's together (production
  // gathers them into one write; the core flushes after each persist round and at the end of
  // a turn). Frames may also leave earlier.
  virtual void flush() {}
  // Whether a link to the peer is up right now (for the health shown in /v1/status).
  virtual bool connected(std::uint64_t peer) const = 0;
};

// Time as this node sees it. nowUs is monotonic; wallMs is the calendar time a leader stamps
// on commands. Thread-safe: the HTTP threads read it too.
class Clock {
 public:
  virtual ~Clock() = default;
  virtual std::uint64_t nowUs() const = 0;
  virtual std::uint64_t wallMs() const = 0;
};

// Work too long for a turn of the driver (cutting a snapshot's chunks). run() does `job`
// elsewhere (production: a worker thread), then has the driver call resume() with what it
// returned, between turns like any input. Jobs must touch nothing the driver uses meanwhile.
class Worker {
 public:
  using Continuation = std::function<void()>;
  using Job = std::function<Continuation()>;
  virtual ~Worker() = default;
  virtual void run(Job job) = 0;
};

// Where the core's one-line notes go (stderr in production; the trace, or nowhere, in the
// simulator). Called on the driver thread.
using Log = std::function<void(const std::string& line)>;

}  // namespace warden::coordinator::node
