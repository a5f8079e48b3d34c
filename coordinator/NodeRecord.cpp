#include "coordinator/NodeRecord.h"

#include "coordinator/Bytes.h"

namespace warden::coordinator {

namespace {
constexpr std::uint8_t kRecordFormat = 1;
}

void encodeStatFields(Encoder& out, const Stat& s) {
  out.varint(static_cast<std::uint64_t>(s.version));
  out.varint(static_cast<std::uint64_t>(s.cversion));
  out.varint(s.created);
  out.varint(s.modified);
  out.varint(s.ctime);
  out.varint(s.mtime);
  out.varint(s.ephemeralOwner);
  out.varint(s.numChildren);
}

void decodeStatFields(Decoder& in, Stat& s) {
  s.version = static_cast<std::int64_t>(in.varint());
  s.cversion = static_cast<std::int64_t>(in.varint());
  s.created = in.varint();
  s.modified = in.varint();
  s.ctime = in.varint();
  s.mtime = in.varint();
  s.ephemeralOwner = in.varint();
  s.numChildren = in.varint();
}

void encodeNodeRecordInto(Encoder& out, const NodeRecord& record) {
  out.reserve(out.data().size() + 128 + record.data.size());  // the stat's varints and the data's length fit in 128
  out.u8(kRecordFormat);
  encodeStatFields(out, record.stat);
  out.varint(record.nextSequence);
  out.bytes(record.data);
}

std::string encodeNodeRecord(const NodeRecord& record) {
  Encoder out;
  encodeNodeRecordInto(out, record);
  return out.take();
}

NodeRecord decodeNodeRecord(std::string_view bytes) {
  Decoder in(bytes);
  if (in.u8() != kRecordFormat) throw DecodeError("unknown node record format");
  NodeRecord record;
  decodeStatFields(in, record.stat);
  record.nextSequence = in.varint();
  record.data = std::string(in.bytes());
  record.stat.dataLength = record.data.size();
  in.expectDone();
  return record;
}

}  // namespace warden::coordinator
