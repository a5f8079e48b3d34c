#include <catch2/catch.hpp>

#include "coordinator/Bytes.h"
#include "coordinator/storage/Keys.h"
#include "coordinator/storage/Lmdb.h"

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

TEST_CASE("keys packed on the stack are the bytes of the encoded keys side by side, as stored before") {
  using warden::coordinator::storage::encodeU64Key;
  using warden::coordinator::storage::packU64Keys;
  const std::uint64_t a = 0x0102030405060708ull, b = 0, c = ~0ull;
  CHECK(std::string_view(packU64Keys(a)) == encodeU64Key(a));
  CHECK(std::string_view(packU64Keys(a, b, c)) == encodeU64Key(a) + encodeU64Key(b) + encodeU64Key(c));
  CHECK(std::string_view(packU64Keys(7, 300, 1ull << 40, 9)) ==
        encodeU64Key(7) + encodeU64Key(300) + encodeU64Key(1ull << 40) + encodeU64Key(9));
}

TEST_CASE("a key is viewed as it is when short, and shortened as before when long") {
  using warden::coordinator::storage::KeyView;
  using warden::coordinator::storage::kMaxPlainKey;
  using warden::coordinator::storage::shortKey;
  const std::string shortPath = "/config/db/primary";
  CHECK(std::string_view(KeyView(shortPath)).data() == shortPath.data());  // no copy
  const std::string edge(kMaxPlainKey, 'e'), longPath(kMaxPlainKey + 1, 'l');
  CHECK(std::string_view(KeyView(edge)) == shortKey(edge));
  CHECK(std::string_view(KeyView(longPath)) == shortKey(longPath));
  CHECK(std::string_view(KeyView(longPath)).size() < longPath.size());
}
