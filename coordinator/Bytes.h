#pragma once
// A compact binary encoding for log entries, stored records and (later) peer frames:
// varint integers and length-prefixed byte strings. Decoding never reads past its input; a
// malformed input raises DecodeError, which callers turn into "corrupt storage" (abort loudly)
// or "bad frame from a peer" (drop it) as fits.

#include <cstdint>
#include <stdexcept>
#include <string>
#include <string_view>

namespace warden::coordinator {

class DecodeError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Encoder {
 public:
  void u8(std::uint8_t value) { out_.push_back(static_cast<char>(value)); }
  void varint(std::uint64_t value);
  void boolean(bool value) { u8(value ? 1 : 0); }
  void bytes(std::string_view value);  // length-prefixed
  void fixed64(std::uint64_t value);   // 8 bytes, little-endian

  void reserve(std::size_t bytes) { out_.reserve(bytes); }
  void clear() { out_.clear(); }
  const std::string& data() const { return out_; }
  std::string take() { return std::move(out_); }

 private:
  std::string out_;
};

class Decoder {
 public:
  explicit Decoder(std::string_view in) : in_(in) {}

  std::uint8_t u8();
  std::uint64_t varint();
  bool boolean();
  std::string_view bytes();  // a view into the input
  std::uint64_t fixed64();

  bool done() const { return pos_ == in_.size(); }
  // Bytes not yet read: a count read from the input can be checked against it before anything
  // is reserved for that many elements (each takes at least one byte).
  std::size_t remaining() const { return in_.size() - pos_; }
  void expectDone() const;

 private:
  void need(std::size_t n) const;
  std::string_view in_;
  std::size_t pos_ = 0;
};

}  // namespace warden::coordinator
