#pragma once
// LMDB keys are at most 511 bytes, but paths and names may be longer. A long key is shortened
// to a prefix, a NUL (which never occurs in a path) and a SHA-256 of the whole, so it stays
// unique and keeps roughly its place in byte order.

#include <string>
#include <string_view>

namespace warden::coordinator::storage {

inline constexpr std::size_t kMaxPlainKey = 400;  // longer keys are shortened

std::string sha256(std::string_view bytes);
std::string shortKey(std::string_view key);

}  // namespace warden::coordinator::storage
