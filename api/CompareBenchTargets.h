#pragma once
// The two services `warden bench-compare` (api/CompareBench.cpp) sets side by side, each as the
// same load generator (api/LoadDriver.h) sees it: how to find its leader, prepare and delete
// the run's keys, make its puts and gets, read a write's revision, open a watch stream and read
// it, and take its locks (api/LockBenchClient.h). Warden speaks its v1 API; etcd its v3 JSON
// gateway (keys and values in base64, 64-bit numbers as decimal strings).

#include <cstddef>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <string_view>
#include <vector>

#include "api/LoadDriver.h"
#include "api/LockBenchClient.h"

namespace warden::api::comparebench {

// What every run of one comparison writes: its own keys, under a name no one else uses.
struct Workload {
  std::string run;  // "<prefix>-<16 random hex digits>": Warden's root node /<run>, etcd's keys <run>/...
  std::size_t keys = 1000;
  std::size_t valueSize = 100;
};

// Reads one watch stream's body, line by line (the HTTP framing already taken off), in order.
// Not thread-safe: one stream's reader calls it.
class StreamDecoder {
 public:
  virtual ~StreamDecoder() = default;
  // One line, without its line end; appends the revision of each event the line completed.
  virtual void line(std::string_view text, std::vector<std::uint64_t>& revisions) = 0;
  // The service confirmed the watch: the events of later writes will come.
  virtual bool established() const = 0;
  // The first thing in the stream that was not what the bench expects; empty if none.
  virtual const std::string& error() const = 0;
};

class Target {
 public:
  virtual ~Target() = default;
  virtual const char* name() const = 0;  // "warden", "etcd"
  // The leader's URL, asked of `url` (any member), waiting up to 10 s for one to be known.
  // Throws std::runtime_error.
  virtual std::string findLeader(const std::string& url) const = 0;
  virtual std::string version(const std::string& leader) const = 0;  // "etcd 3.4.23"; throws
  // Writes the run's keys (each workload.valueSize bytes), so that gets find them; throws.
  virtual void prepare(const std::string& leader) const = 0;
  // Deletes everything the run wrote under its name; throws.
  virtual void cleanup(const std::string& leader) const = 0;

  // Requests of the load generator, kind 0: a put of a random key of the run's, a get
  // (linearizable, or stale: any member may answer from its own state), a put of the one
  // watched key. The maker refers to this target, which must outlive the load.
  virtual load::RequestMaker puts() const = 0;
  virtual load::RequestMaker gets(bool stale) const = 0;
  virtual load::RequestMaker watchedPuts() const = 0;
  // The revision a successful write was given; nothing for any other answer.
  virtual std::optional<std::uint64_t> writeRevision(const load::Answer& answer) const = 0;

  // The whole HTTP/1.1 request that opens a stream of the watched key's events from now on.
  virtual std::string watchRequest(const std::string& hostPort) const = 0;
  virtual std::unique_ptr<StreamDecoder> decoder() const = 0;

  virtual std::unique_ptr<lockbench::LockService> locks() const = 0;
};

std::unique_ptr<Target> wardenTarget(const Workload& workload);
std::unique_ptr<Target> etcdTarget(const Workload& workload);

}  // namespace warden::api::comparebench
