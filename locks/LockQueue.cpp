#include "locks/LockQueue.h"

#include <nlohmann/json.hpp>

#include "coordinator/Utf8.h"
#include "session/SessionTable.h"

namespace warden::locks {

using json = nlohmann::ordered_json;

std::string encodeRequest(const Request& r, bool election) {
  if (election) {
    return json{{"session", session::formatSessionId(r.session)}, {"value", r.owner}, {"term", r.token}, {"since", r.sinceMs}}
        .dump();
  }
  json out = {{"session", session::formatSessionId(r.session)},
              {"mode", r.shared ? "shared" : "exclusive"},
              {"owner", r.owner},
              {"token", r.token},
              {"since", r.sinceMs}};
  if (r.delayMs != 0) out["lock_delay_ms"] = r.delayMs;
  return out.dump();
}

std::optional<Request> decodeRequest(std::string_view bytes) {
  const json j = json::parse(bytes, nullptr, false);
  if (!j.is_object() || !j.contains("session") || !j["session"].is_string()) return std::nullopt;
  const bool election = j.contains("term");
  const char* tokenField = election ? "term" : "token";
  const char* textField = election ? "value" : "owner";
  if (!j.contains(tokenField) || !j[tokenField].is_number_unsigned()) return std::nullopt;
  auto session = session::parseSessionId(j["session"].get<std::string>());
  if (!session) return std::nullopt;
  Request r;
  r.session = *session;
  r.shared = j.contains("mode") && j["mode"] == "shared";
  if (j.contains(textField) && j[textField].is_string()) r.owner = j[textField].get<std::string>();
  r.token = j[tokenField].get<std::uint64_t>();
  if (j.contains("since") && j["since"].is_number_unsigned()) r.sinceMs = j["since"].get<std::uint64_t>();
  if (j.contains("lock_delay_ms") && j["lock_delay_ms"].is_number_unsigned()) r.delayMs = j["lock_delay_ms"].get<std::uint64_t>();
  return r;
}

std::optional<std::string> lockNameProblem(std::string_view name) {
  if (name.empty() || name.size() > 256) return "a lock name has 1 to 256 bytes";
  if (name == "." || name == "..") return "a lock name cannot be . or ..";
  for (unsigned char c : name) {
    if (c == '/') return "a lock name is one path component: no '/'";
    if (c < 0x20 || c == 0x7f) return "a lock name has no control characters";
  }
  if (!coordinator::isValidUtf8(name)) return "a lock name is UTF-8";
  return std::nullopt;
}

std::string lockPath(std::string_view name) { return std::string(kLocksRoot) + "/" + std::string(name); }

std::uint64_t queuedRevision(std::string_view requestPath) {
  const std::string_view name = requestPath.substr(requestPath.rfind('/') + 1);
  if (name.size() != 22 || !name.starts_with("r-")) return 0;
  std::uint64_t revision = 0;
  for (char c : name.substr(2)) {
    if (c < '0' || c > '9') return 0;
    revision = revision * 10 + static_cast<std::uint64_t>(c - '0');
  }
  return revision;
}
std::string electionPath(std::string_view name) { return std::string(kElectionsRoot) + "/" + std::string(name); }

namespace {
bool directlyUnder(std::string_view root, std::string_view path) {
  return path.size() > root.size() + 1 && path.starts_with(root) && path[root.size()] == '/' &&
         path.find('/', root.size() + 1) == std::string_view::npos;
}
}  // namespace

bool isQueue(std::string_view path) { return directlyUnder(kLocksRoot, path) || directlyUnder(kElectionsRoot, path); }
bool isElection(std::string_view queue) { return directlyUnder(kElectionsRoot, queue); }

std::string encodeDelay(const Delay& delay) {
  return json{{"available_at", delay.availableAtMs}, {"delay_ms", delay.delayMs}}.dump();
}

std::optional<Delay> decodeDelay(std::string_view bytes) {
  if (bytes.empty()) return std::nullopt;
  const json j = json::parse(bytes, nullptr, false);
  if (!j.is_object() || !j.contains("available_at") || !j["available_at"].is_number_unsigned()) return std::nullopt;
  Delay delay;
  delay.availableAtMs = j["available_at"].get<std::uint64_t>();
  if (j.contains("delay_ms") && j["delay_ms"].is_number_unsigned()) delay.delayMs = j["delay_ms"].get<std::uint64_t>();
  return delay;
}

std::size_t holders(const std::vector<Request>& queue) {
  if (queue.empty()) return 0;
  if (!queue.front().shared) return 1;
  std::size_t n = 0;
  while (n < queue.size() && queue[n].shared) ++n;
  return n;
}

}  // namespace warden::locks
