#include "coordinator/Entry.h"

namespace warden::coordinator {

namespace {
constexpr std::uint8_t kEntryFormat = 1;
}

std::string encodeEntry(const Entry& entry) {
  Encoder out;
  out.u8(kEntryFormat);
  out.varint(entry.index);
  out.varint(entry.timestampMs);
  out.varint(entry.commands.size());
  for (const Command& command : entry.commands) encodeCommand(out, command);
  return out.take();
}

Entry decodeEntry(std::string_view bytes) {
  Decoder in(bytes);
  if (in.u8() != kEntryFormat) throw DecodeError("unknown entry format");
  Entry entry;
  entry.index = in.varint();
  entry.timestampMs = in.varint();
  std::uint64_t n = in.varint();
  if (n > 1'000'000 || n > in.remaining()) throw DecodeError("too many commands");
  entry.commands.reserve(n);
  for (std::uint64_t i = 0; i < n; ++i) entry.commands.push_back(decodeCommand(in));
  in.expectDone();
  return entry;
}

}  // namespace warden::coordinator
