#pragma once
// What the namespace stores for one node: its Stat, its sequence counter and its data.

#include <cstdint>
#include <string>
#include <string_view>

#include "coordinator/Bytes.h"

namespace warden::coordinator {

struct Stat {
  std::int64_t version = 0;          // data changes
  std::int64_t cversion = 0;         // child set changes
  std::uint64_t created = 0;         // revision that created the node
  std::uint64_t modified = 0;        // revision of the last data change
  std::uint64_t ctime = 0;           // leader-stamped ms since the epoch
  std::uint64_t mtime = 0;
  std::uint64_t ephemeralOwner = 0;  // session id; 0 means none
  std::uint64_t numChildren = 0;
  std::uint64_t dataLength = 0;

  bool operator==(const Stat&) const = default;
};

struct NodeRecord {
  Stat stat;
  std::uint64_t nextSequence = 0;  // the next suffix a sequential child of this node gets
  std::string data;

  bool operator==(const NodeRecord&) const = default;
};

// A Stat's fields but dataLength, in the order every stored form (node records, remembered
// command results) keeps them.
void encodeStatFields(Encoder& out, const Stat& s);
void decodeStatFields(Decoder& in, Stat& s);  // throws DecodeError

std::string encodeNodeRecord(const NodeRecord& record);
void encodeNodeRecordInto(Encoder& out, const NodeRecord& record);  // appended to `out`
NodeRecord decodeNodeRecord(std::string_view bytes);  // throws DecodeError

}  // namespace warden::coordinator
