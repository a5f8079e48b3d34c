#include <catch2/catch.hpp>

#include "api/Base64.h"

using namespace warden::api;

TEST_CASE("base64 round-trips all byte values") {
  std::string bytes;
  for (int i = 0; i < 256; ++i) bytes.push_back(static_cast<char>(i));
  for (std::size_t n = 0; n < 10; ++n) CHECK(base64Decode(base64Encode(bytes.substr(0, n))) == bytes.substr(0, n));
  CHECK(base64Decode(base64Encode(bytes)) == bytes);
  CHECK(base64Encode("hello") == "aGVsbG8=");
}

TEST_CASE("malformed base64 is refused") {
  for (const char* bad : {"a", "abc", "ab=c", "a===", "####", "aGVsbG8", "aGVs bG8="}) {
    INFO(bad);
    CHECK_FALSE(base64Decode(bad).has_value());
  }
  CHECK(base64Decode("") == std::string());
}
