#include "coordinator/EncodingVersion.h"

#include <charconv>
#include <stdexcept>

namespace warden::coordinator {

namespace {
// A table of its own, in no snapshot: it says what this directory's binaries were, not what the
// replicated state is.
constexpr const char* kTable = "encoding";
constexpr std::string_view kKey = "version";

std::uint32_t parse(std::string_view text) {
  std::uint32_t v = 0;
  const auto [end, error] = std::from_chars(text.data(), text.data() + text.size(), v);
  if (error != std::errc{} || end != text.data() + text.size()) {
    throw std::runtime_error("unreadable encoding version");
  }
  return v;
}
}  // namespace

void checkEncodingVersion(storage::Txn& txn, const std::string& directory) {
  const MDB_dbi table = txn.openDb(kTable);
  // None recorded: a directory new, or opened only by binaries from before the record (version
  // 1 or this one), which this binary reads.
  const auto stored = txn.get(table, kKey);
  const std::uint32_t was = stored ? parse(*stored) : 0;
  if (was > kEncodingVersion) {
    throw std::runtime_error("the data directory " + directory + " was opened by a Warden of encoding version " +
                             std::to_string(was) + ", and this binary speaks version " +
                             std::to_string(kEncodingVersion) +
                             ": its log may hold entries this binary cannot decode. Run a binary of version " +
                             std::to_string(was) + " or later");
  }
  if (was != kEncodingVersion) txn.put(table, kKey, std::to_string(kEncodingVersion));
}

}  // namespace warden::coordinator
