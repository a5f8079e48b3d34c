#include <catch2/catch.hpp>

#include <boost/crc.hpp>
#include <random>
#include <string>

#include "coordinator/storage/Crc32.h"

using warden::coordinator::storage::Crc32;
using warden::coordinator::storage::crc32;

namespace {

std::uint32_t reference(std::string_view a, std::string_view b) {
  boost::crc_32_type crc;
  crc.process_bytes(a.data(), a.size());
  crc.process_bytes(b.data(), b.size());
  return crc.checksum();
}

}  // namespace

TEST_CASE("the write-ahead log's CRC-32 is boost's byte-wise one, for every length and split") {
  CHECK(crc32("123456789") == 0xCBF43926u);  // the standard check value
  CHECK(crc32("") == 0u);
  std::mt19937_64 random(14);
  for (std::size_t length = 0; length < 300; ++length) {
    std::string bytes(length, '\0');
    for (char& c : bytes) c = static_cast<char>(random());
    const std::size_t split = length == 0 ? 0 : random() % (length + 1);
    const std::string_view all(bytes);
    INFO("length " << length << ", split at " << split);
    CHECK(crc32(all.substr(0, split), all.substr(split)) == reference(all.substr(0, split), all.substr(split)));
    // Fed a byte at a time, as a stream that never reaches the eight-byte steps.
    Crc32 bytewise;
    for (char c : bytes) bytewise.update(std::string_view(&c, 1));
    CHECK(bytewise.value() == reference(all, {}));
  }
}
