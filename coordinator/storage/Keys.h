#pragma once
// LMDB keys are at most 511 bytes, but paths and names may be longer. A long key is shortened
// to a prefix, a NUL (which never occurs in a path) and a SHA-256 of the whole, so it stays
// unique and keeps roughly its place in byte order.

#include <string>
#include <string_view>

namespace warden::coordinator::storage {

inline constexpr std::size_t kMaxPlainKey = 400;  // longer keys are shortened
inline constexpr std::size_t kMaxLmdbKey = 511;   // mdb_env_get_maxkeysize of Debian's liblmdb

std::string sha256(std::string_view bytes);
std::string shortKey(std::string_view key);

// The key for `key` as a view: `key` itself when short enough, as nearly every path is (no
// copy: a copy per lookup was two allocations of every write's apply), else its shortKey.
// Tables whose rows were once stored as they are up to a longer length pass that length.
class KeyView {
 public:
  explicit KeyView(std::string_view key, std::size_t maxPlain = kMaxPlainKey) : view_(key) {
    if (key.size() > maxPlain) {
      shortened_ = shortKey(key);
      view_ = shortened_;
    }
  }
  KeyView(const KeyView&) = delete;  // view_ may point into shortened_
  KeyView& operator=(const KeyView&) = delete;
  operator std::string_view() const { return view_; }

 private:
  std::string shortened_;
  std::string_view view_;
};

}  // namespace warden::coordinator::storage
