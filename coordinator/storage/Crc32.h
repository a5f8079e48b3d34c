#pragma once
// CRC-32 (the zlib/Ethernet one: reflected polynomial 0xEDB88320, initial and final value all
// ones), as boost::crc_32_type computes it byte by byte, but eight bytes a step: the write-ahead
// log checksums every batch on the driver's thread, and the byte-wise table walk was a twentieth
// of a follower's driver under load. The value is the same, so logs written before still check.

#include <cstdint>
#include <string_view>

namespace warden::coordinator::storage {

class Crc32 {
 public:
  void update(std::string_view bytes);
  std::uint32_t value() const { return ~state_; }

 private:
  std::uint32_t state_ = 0xFFFFFFFFu;
};

inline std::uint32_t crc32(std::string_view a, std::string_view b = {}) {
  Crc32 crc;
  crc.update(a);
  crc.update(b);
  return crc.value();
}

}  // namespace warden::coordinator::storage
