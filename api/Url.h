#pragma once
// Request targets: "/route?key=value&flag". No Boost.URL in Boost 1.74, so this is ours.

#include <map>
#include <optional>
#include <string>
#include <string_view>

namespace warden::api {

// %XX decoding; empty when an escape is malformed. '+' stays '+' (this is a path, not a form).
std::optional<std::string> percentDecode(std::string_view text);

std::string percentEncodePath(std::string_view path);  // keeps '/' and unreserved characters

struct Target {
  std::string path;  // still percent-encoded
  std::map<std::string, std::string> query;  // decoded; a bare key maps to ""
};

// Empty on a malformed query (bad escape or a key given twice); `problem` says why.
std::optional<Target> parseTarget(std::string_view target, std::string& problem);

}  // namespace warden::api
