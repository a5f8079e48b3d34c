#pragma once
// The warden binary the tests start: the one built beside them (WARDEN_BINARY, defined per
// target), or WARDEN_TEST_BINARY's. scripts/test runs the HTTP and cluster suites of the normal
// build against the sanitizer builds' binaries: the sanitizers watch the servers, and the suites,
// which only drive them, are not built again.

#include <cstdlib>
#include <string>

namespace warden::tests {

inline std::string wardenBinary() {
  const char* other = std::getenv("WARDEN_TEST_BINARY");
  return other != nullptr && *other != '\0' ? std::string(other) : std::string(WARDEN_BINARY);
}

}  // namespace warden::tests
