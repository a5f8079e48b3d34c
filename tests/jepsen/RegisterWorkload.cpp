#include "tests/jepsen/RegisterWorkload.h"

#include <thread>

#include <nlohmann/json.hpp>

#include "api/HttpClient.h"

namespace warden::tests::jepsen {

using json = nlohmann::ordered_json;
using sim::Operation;

namespace {

const char* const kKeys[] = {"/jepsen/r0", "/jepsen/r1", "/jepsen/r2"};

// Longer than a write's give-up time (10 s, then 504): an attempt that times out here is unknown.
constexpr std::chrono::milliseconds kTimeout{12'000};

}  // namespace

void RegisterWorkload::runClients(std::atomic<bool>& stop) {
  // The registers' parent, once (through any node that answers).
  for (std::uint64_t node = 1; node <= cluster_.size(); ++node) {
    if (cluster_.request(node, "PUT", "/v1/nodes/jepsen", R"({"create": true})").status == 200) break;
  }
  std::vector<std::thread> clients;
  std::size_t index = 0;
  for (std::uint64_t node = 1; node <= cluster_.size(); ++node) {
    // Two that write and read, and one that only reads: a write to a cut-off node waits up to 5 s
    // for its 503, and reads must go on meanwhile.
    for (int i = 0; i < 3; ++i, ++index) {
      clients.emplace_back([this, index, node, reader = i == 2, &stop] { client(index, node, reader, stop); });
    }
  }
  for (auto& t : clients) t.join();
}

void RegisterWorkload::client(std::size_t index, std::uint64_t node, bool reader, std::atomic<bool>& stop) {
  api::HttpClient http({"http://127.0.0.1:" + std::to_string(cluster_.httpPort(node))}, kTimeout);
  std::map<std::string, std::pair<std::string, std::uint64_t>> seen;  // key -> (value, version) last read
  std::uint64_t written = 0, lastStaleRevision = 0, staleGeneration = 0;
  while (!stop) {
    const std::string key = kKeys[choices_.range(0, 2)];
    const std::uint64_t roll = reader ? choices_.range(0, 44) : choices_.range(0, 99);
    Operation op;
    op.client = index;
    op.key = key;
    const std::string target = "/v1/nodes" + key;
    if (roll < 10) {
      // A stale read: judged for its revision only, not as a register read.
      std::uint64_t generation = 0;
      {
        std::lock_guard lock(mutex_);
        generation = wipedGeneration_[node];
      }
      try {
        auto r = http.request("GET", target + "?consistency=stale");
        if ((r.status == 200 || r.status == 404) && r.revision) {
          std::lock_guard lock(mutex_);
          staleReads_++;
          if (generation != staleGeneration) lastStaleRevision = 0;
          staleGeneration = generation;
          if (*r.revision < lastStaleRevision && staleViolation_.empty() && wipedGeneration_[node] == generation) {
            staleViolation_ = "node " + std::to_string(node) + " answered a stale read at revision " +
                              std::to_string(*r.revision) + " after one at " + std::to_string(lastStaleRevision);
          }
          lastStaleRevision = std::max(lastStaleRevision, *r.revision);
        }
      } catch (const api::HttpClientError&) {
      }
      continue;
    }
    op.invokedAt = clock_.nowUs();
    try {
      if (roll < 45) {
        op.kind = Operation::Kind::Read;
        auto r = http.request("GET", target);
        op.returnedAt = clock_.nowUs();
        if (r.status == 200) {
          const json body = r.json();
          op.observed = body["data"].get<std::string>();
          seen[key] = {*op.observed, body["stat"]["version"].get<std::uint64_t>()};
        } else if (r.status == 404) {
          op.observed.reset();
        } else {
          op.outcome = Operation::Outcome::Failed;  // refused (503, 429): no answer to judge
          if (r.status != 503 && r.status != 429) unexpected(r.status, r.body);
        }
      } else {
        const std::string value = "c" + std::to_string(index) + "-" + std::to_string(++written);
        op.value = value;
        json body = {{"data", value}};
        const bool cas = roll < 70 && seen.count(key);
        if (cas) {
          op.kind = Operation::Kind::Cas;
          op.expected = seen[key].first;
          body["version"] = seen[key].second;
        } else {
          op.kind = Operation::Kind::Write;
          body["create"] = true;
        }
        auto r = http.request("PUT", target, body.dump());
        op.returnedAt = clock_.nowUs();
        if (r.status == 200) {
          op.casSucceeded = cas;
        } else if (cas && (r.status == 409 || r.status == 404)) {
          op.casSucceeded = false;  // it held some other value
        } else if (r.status == 503 || r.status == 429) {
          op.outcome = Operation::Outcome::Failed;  // never applied (API.md: 503 no_quorum)
        } else if (r.status >= 400 && r.status < 500) {
          op.outcome = Operation::Outcome::Failed;  // refused, but it should not have been
          unexpected(r.status, r.body);
        } else {
          op.outcome = Operation::Outcome::Unknown;  // 504, 500: it may yet be applied
        }
      }
    } catch (const api::HttpClientError&) {
      // No answer (a reset, a refused connection, a timeout): it may or may not have happened.
      op.outcome = op.kind == Operation::Kind::Read ? Operation::Outcome::Failed : Operation::Outcome::Unknown;
      op.returnedAt = clock_.nowUs();
      std::this_thread::sleep_for(std::chrono::milliseconds(100));
    }
    const bool failed = op.outcome == Operation::Outcome::Failed;
    {
      std::lock_guard lock(mutex_);
      history_.push_back(op);
    }
    // A node that refuses (no quorum, paused peers) is asked again after a moment, not hammered.
    if (failed) std::this_thread::sleep_for(std::chrono::milliseconds(choices_.range(20, 60)));
  }
}

void RegisterWorkload::unexpected(unsigned status, const std::string& body) {
  std::lock_guard lock(mutex_);
  if (unexpected_.empty()) unexpected_ = std::to_string(status) + " " + body;
  unexpectedCount_++;
}

RegisterResult RegisterWorkload::check() {
  RegisterResult out;
  {
    std::lock_guard lock(mutex_);
    out.unexpected = unexpected_;
    out.unexpectedCount = unexpectedCount_;
    out.history = history_;
    out.staleReads = staleReads_;
    out.staleViolation = staleViolation_;
  }
  for (const auto& op : out.history) {
    if (op.outcome == Operation::Outcome::Ok) out.ok++;
    else if (op.outcome == Operation::Outcome::Failed) out.failed++;
    else out.unknown++;
    const bool wrote = op.kind == Operation::Kind::Write || (op.kind == Operation::Kind::Cas && op.casSucceeded);
    if (op.outcome == Operation::Outcome::Ok && wrote) out.writesOk++;
  }
  const auto start = Clock::now();
  out.verdict = sim::checkLinearizable(out.history);
  out.checkSeconds = std::chrono::duration<double>(Clock::now() - start).count();
  return out;
}

}  // namespace warden::tests::jepsen
