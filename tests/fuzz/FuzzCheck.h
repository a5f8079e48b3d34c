#pragma once
// What every fuzz target in tests/fuzz shares: a property that fails is a finding, reported
// with what was expected and then abort(), so libFuzzer saves the input as a crash.
//
// The targets catch only the documented rejections of the code under test (DecodeError, an
// ApiError with a 4xx status); any other exception escapes LLVMFuzzerTestOneInput, which
// libFuzzer also reports as a crash.

#include <cstdio>
#include <cstdlib>
#include <string>
#include <string_view>

#define FUZZ_CHECK(condition, what)                                                             \
  do {                                                                                          \
    if (!(condition)) ::warden::tests::fuzz::fail(__FILE__, __LINE__, #condition, (what));     \
  } while (false)

namespace warden::tests::fuzz {

[[noreturn]] inline void fail(const char* file, int line, const char* condition, std::string_view what) {
  std::fprintf(stderr, "\n==fuzz finding== %s:%d: %s\n  failed: %s\n", file, line, std::string(what).c_str(),
               condition);
  std::abort();
}

// Bytes shown with escapes, for messages about an input.
inline std::string printable(std::string_view bytes, std::size_t limit = 200) {
  std::string out;
  for (std::size_t i = 0; i < bytes.size() && i < limit; ++i) {
    auto c = static_cast<unsigned char>(bytes[i]);
    if (c >= 0x20 && c < 0x7f && c != '\\') {
      out.push_back(static_cast<char>(c));
    } else {
      char hex[5];
      std::snprintf(hex, sizeof hex, "\\x%02x", c);
      out += hex;
    }
  }
  if (bytes.size() > limit) out += "...";
  return out;
}

}  // namespace warden::tests::fuzz
