#include "coordinator/Bytes.h"

namespace warden::coordinator {

void Encoder::varint(std::uint64_t value) {
  while (value >= 0x80) {
    out_.push_back(static_cast<char>((value & 0x7f) | 0x80));
    value >>= 7;
  }
  out_.push_back(static_cast<char>(value));
}

void Encoder::bytes(std::string_view value) {
  varint(value.size());
  out_.append(value);
}

void Encoder::fixed64(std::uint64_t value) {
  for (int i = 0; i < 8; ++i) {
    out_.push_back(static_cast<char>(value & 0xff));
    value >>= 8;
  }
}

void Decoder::need(std::size_t n) const {
  if (in_.size() - pos_ < n) throw DecodeError("truncated input");
}

std::uint8_t Decoder::u8() {
  need(1);
  return static_cast<std::uint8_t>(in_[pos_++]);
}

std::uint64_t Decoder::varint() {
  std::uint64_t value = 0;
  for (int shift = 0; shift < 64; shift += 7) {
    std::uint8_t byte = u8();
    if (shift == 63 && byte > 1) throw DecodeError("varint overflows 64 bits");
    value |= static_cast<std::uint64_t>(byte & 0x7f) << shift;
    if ((byte & 0x80) == 0) return value;
  }
  throw DecodeError("varint too long");
}

bool Decoder::boolean() {
  std::uint8_t b = u8();
  if (b > 1) throw DecodeError("bad boolean");
  return b == 1;
}

std::string_view Decoder::bytes() {
  std::uint64_t n = varint();
  need(n);
  std::string_view out = in_.substr(pos_, n);
  pos_ += n;
  return out;
}

std::uint64_t Decoder::fixed64() {
  need(8);
  std::uint64_t value = 0;
  for (int i = 7; i >= 0; --i) value = (value << 8) | static_cast<unsigned char>(in_[pos_ + i]);
  pos_ += 8;
  return value;
}

void Decoder::expectDone() const {
  if (!done()) throw DecodeError("trailing bytes");
}

}  // namespace warden::coordinator
