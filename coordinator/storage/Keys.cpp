#include "coordinator/storage/Keys.h"

#include <openssl/sha.h>

namespace warden::coordinator::storage {

namespace {
constexpr std::size_t kKeptPrefix = 360;
}

std::string sha256(std::string_view bytes) {
  unsigned char out[SHA256_DIGEST_LENGTH];
  SHA256(reinterpret_cast<const unsigned char*>(bytes.data()), bytes.size(), out);
  return std::string(reinterpret_cast<char*>(out), sizeof out);
}

std::string shortKey(std::string_view key) {
  if (key.size() <= kMaxPlainKey) return std::string(key);
  std::string out(key.substr(0, kKeptPrefix));
  out.push_back('\0');
  out += sha256(key);
  return out;
}

}  // namespace warden::coordinator::storage
