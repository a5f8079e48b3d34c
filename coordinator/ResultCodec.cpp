#include "coordinator/ResultCodec.h"

#include "coordinator/Bytes.h"

namespace warden::coordinator {

namespace {
constexpr std::uint8_t kResultFormat = 1;
}

std::string encodeResult(const CommandResult& result) {
  Encoder out;
  out.u8(kResultFormat);
  out.u8(static_cast<std::uint8_t>(result.status));
  out.bytes(result.message);
  out.varint(result.failedOp ? *result.failedOp + 1 : 0);
  out.varint(result.revision);
  out.varint(result.results.size());
  for (const OpResult& r : result.results) {
    out.u8(static_cast<std::uint8_t>(r.type));
    out.bytes(r.path);
    out.u8(r.stat ? 1 : 0);
    if (!r.stat) continue;
    encodeStatFields(out, *r.stat);
    out.varint(r.stat->dataLength);
  }
  return out.take();
}

CommandResult decodeResult(std::string_view bytes) {
  Decoder in(bytes);
  if (in.u8() != kResultFormat) throw DecodeError("unknown result format");
  CommandResult result;
  const std::uint8_t status = in.u8();
  if (status > static_cast<std::uint8_t>(Status::NotLeader)) throw DecodeError("unknown status");
  result.status = static_cast<Status>(status);
  result.message = std::string(in.bytes());
  if (const std::uint64_t failed = in.varint(); failed != 0) result.failedOp = failed - 1;
  result.revision = in.varint();
  const std::uint64_t n = in.varint();
  if (n > 1'000'000) throw DecodeError("too many op results");
  for (std::uint64_t i = 0; i < n; ++i) {
    OpResult r;
    const std::uint8_t type = in.u8();
    if (type < 1 || type > 4) throw DecodeError("unknown op type");
    r.type = static_cast<OpType>(type);
    r.path = std::string(in.bytes());
    if (in.u8() != 0) {
      Stat s;
      decodeStatFields(in, s);
      s.dataLength = in.varint();
      r.stat = s;
    }
    result.results.push_back(std::move(r));
  }
  in.expectDone();
  return result;
}

}  // namespace warden::coordinator
