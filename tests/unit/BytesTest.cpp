#include <catch2/catch.hpp>

#include "coordinator/Bytes.h"

using namespace warden::coordinator;

TEST_CASE("varints and bytes and fixed64 round-trip") {
  Encoder out;
  const std::uint64_t values[] = {0, 1, 127, 128, 300, 1ull << 32, UINT64_MAX};
  for (auto v : values) out.varint(v);
  out.bytes("hello");
  out.bytes(std::string(1000, '\0'));
  out.fixed64(0x0102030405060708ull);
  out.boolean(true);

  Decoder in(out.data());
  for (auto v : values) CHECK(in.varint() == v);
  CHECK(in.bytes() == "hello");
  CHECK(in.bytes() == std::string(1000, '\0'));
  CHECK(in.fixed64() == 0x0102030405060708ull);
  CHECK(in.boolean());
  CHECK(in.done());
}

TEST_CASE("decoding truncated or malformed input throws instead of reading past it") {
  Encoder out;
  out.bytes("a string that will be cut");
  std::string bytes = out.data();
  for (std::size_t cut = 0; cut < bytes.size(); ++cut) {
    Decoder in(std::string_view(bytes).substr(0, cut));
    CHECK_THROWS_AS(in.bytes(), DecodeError);
  }
  const std::string ones(11, '\xff'), seven(1, '\x07');
  Decoder tooLong(ones);
  CHECK_THROWS_AS(tooLong.varint(), DecodeError);
  Decoder badBool(seven);
  CHECK_THROWS_AS(badBool.boolean(), DecodeError);
}
