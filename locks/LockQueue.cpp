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
std::string electionPath(std::string_view name) { return std::string(kElectionsRoot) + "/" + std::string(name); }

namespace {
bool directlyUnder(std::string_view root, std::string_view path) {
  return path.size() > root.size() + 1 && path.starts_with(root) && path[root.size()] == '/' &&
         path.find('/', root.size() + 1) == std::string_view::npos;
}
}  // namespace

bool isQueue(std::string_view path) { return directlyUnder(kLocksRoot, path) || directlyUnder(kElectionsRoot, path); }
bool isElection(std::string_view queue) { return directlyUnder(kElectionsRoot, queue); }

std::string encodeAvailableAt(std::uint64_t atMs) { return atMs == 0 ? std::string() : json{{"available_at", atMs}}.dump(); }

std::uint64_t decodeAvailableAt(std::string_view bytes) {
  if (bytes.empty()) return 0;
  const json j = json::parse(bytes, nullptr, false);
  if (!j.is_object() || !j.contains("available_at") || !j["available_at"].is_number_unsigned()) return 0;
  return j["available_at"].get<std::uint64_t>();
}

std::size_t holders(const std::vector<Request>& queue) {
  if (queue.empty()) return 0;
  if (!queue.front().shared) return 1;
  std::size_t n = 0;
  while (n < queue.size() && queue[n].shared) ++n;
  return n;
}

}  // namespace warden::locks
