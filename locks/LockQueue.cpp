#include "locks/LockQueue.h"

#include <nlohmann/json.hpp>

#include "session/SessionTable.h"

namespace warden::locks {

using json = nlohmann::ordered_json;

std::string encodeRequest(const Request& r) {
  return json{{"session", session::formatSessionId(r.session)},
              {"mode", r.shared ? "shared" : "exclusive"},
              {"owner", r.owner},
              {"token", r.token},
              {"since", r.sinceMs}}
      .dump();
}

std::optional<Request> decodeRequest(std::string_view bytes) {
  const json j = json::parse(bytes, nullptr, false);
  if (!j.is_object() || !j.contains("session") || !j["session"].is_string() || !j.contains("mode") ||
      !j.contains("token") || !j["token"].is_number_unsigned()) {
    return std::nullopt;
  }
  auto session = session::parseSessionId(j["session"].get<std::string>());
  if (!session) return std::nullopt;
  Request r;
  r.session = *session;
  r.shared = j["mode"] == "shared";
  if (j.contains("owner") && j["owner"].is_string()) r.owner = j["owner"].get<std::string>();
  r.token = j["token"].get<std::uint64_t>();
  if (j.contains("since") && j["since"].is_number_unsigned()) r.sinceMs = j["since"].get<std::uint64_t>();
  return r;
}

std::optional<std::string> lockNameProblem(std::string_view name) {
  if (name.empty() || name.size() > 256) return "a lock name has 1 to 256 bytes";
  if (name == "." || name == "..") return "a lock name cannot be . or ..";
  for (unsigned char c : name) {
    if (c == '/') return "a lock name is one path component: no '/'";
    if (c < 0x20 || c == 0x7f) return "a lock name has no control characters";
  }
  return std::nullopt;
}

std::string lockPath(std::string_view name) { return std::string(kLocksRoot) + "/" + std::string(name); }

std::size_t holders(const std::vector<Request>& queue) {
  if (queue.empty()) return 0;
  if (!queue.front().shared) return 1;
  std::size_t n = 0;
  while (n < queue.size() && queue[n].shared) ++n;
  return n;
}

}  // namespace warden::locks
