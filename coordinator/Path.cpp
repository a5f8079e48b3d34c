#include "coordinator/Path.h"

#include "coordinator/Utf8.h"

namespace warden::coordinator {

std::optional<PathProblem> checkPath(std::string_view path) {
  if (path.size() > kMaxPathBytes) {
    return PathProblem{true, "path is longer than " + std::to_string(kMaxPathBytes) + " bytes"};
  }
  if (path.empty() || path.front() != '/') return PathProblem{false, "path must start with '/'"};
  if (path == "/") return std::nullopt;
  if (path.back() == '/') return PathProblem{false, "path must not end with '/'"};
  for (char c : path) {
    auto u = static_cast<unsigned char>(c);
    if (u == 0) return PathProblem{false, "path must not contain NUL"};
    if (u < 0x20 || u == 0x7f) return PathProblem{false, "path must not contain control characters"};
  }
  if (!isValidUtf8(path)) return PathProblem{false, "path must be valid UTF-8"};
  std::size_t start = 1;
  while (start <= path.size()) {
    std::size_t end = path.find('/', start);
    if (end == std::string_view::npos) end = path.size();
    std::string_view component = path.substr(start, end - start);
    if (component.empty()) return PathProblem{false, "path must not contain an empty component ('//')"};
    if (component == "." || component == "..") {
      return PathProblem{false, "path must not contain '.' or '..' components"};
    }
    start = end + 1;
  }
  return std::nullopt;
}

bool isRoot(std::string_view path) { return path == "/"; }

std::string_view parentOf(std::string_view path) {
  std::size_t slash = path.rfind('/');
  if (slash == 0 || slash == std::string_view::npos) return "/";
  return path.substr(0, slash);
}

std::string_view nameOf(std::string_view path) {
  if (isRoot(path)) return {};
  return path.substr(path.rfind('/') + 1);
}

std::string childOf(std::string_view parent, std::string_view name) {
  std::string out(parent);
  if (!isRoot(parent)) out.push_back('/');
  out.append(name);
  return out;
}

bool isReserved(std::string_view path) {
  return path.starts_with(kReservedPrefix) &&
         (path.size() == kReservedPrefix.size() || path[kReservedPrefix.size()] == '/');
}

}  // namespace warden::coordinator
