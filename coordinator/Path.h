#pragma once
// Namespace paths: "/" is the root; otherwise "/"-separated components, none empty, "." or "..",
// no trailing "/", no NUL or other control character, valid UTF-8, at most 1024 bytes.

#include <cstddef>
#include <optional>
#include <string>
#include <string_view>

namespace warden::coordinator {

inline constexpr std::size_t kMaxPathBytes = 1024;
inline constexpr std::string_view kReservedPrefix = "/_warden";

struct PathProblem {
  bool tooLong;  // the path exceeds kMaxPathBytes (413 rather than 400)
  std::string message;
};

// Empty when the path is well formed.
std::optional<PathProblem> checkPath(std::string_view path);

// Preconditions for the helpers below: the path passed checkPath.
bool isRoot(std::string_view path);
std::string_view parentOf(std::string_view path);  // parentOf("/a") == "/"; root has none: "/"
std::string_view nameOf(std::string_view path);    // nameOf("/a/b") == "b"; "" for the root
std::string childOf(std::string_view parent, std::string_view name);
bool isReserved(std::string_view path);  // "/_warden" or below it

}  // namespace warden::coordinator
