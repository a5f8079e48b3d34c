#include "api/Base64.h"

#include <boost/beast/core/detail/base64.hpp>

namespace warden::api {

namespace b64 = boost::beast::detail::base64;

std::string base64Encode(std::string_view bytes) {
  std::string out(b64::encoded_size(bytes.size()), '\0');
  out.resize(b64::encode(out.data(), bytes.data(), bytes.size()));
  return out;
}

std::optional<std::string> base64Decode(std::string_view text) {
  // Beast's decoder stops at the first character outside the alphabet, so the input is checked
  // here: whole quartets, padding only at the end.
  if (text.size() % 4 != 0) return std::nullopt;
  std::size_t padding = 0;
  while (padding < 2 && padding < text.size() && text[text.size() - 1 - padding] == '=') ++padding;
  for (std::size_t i = 0; i < text.size() - padding; ++i) {
    char c = text[i];
    bool ok = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') || c == '+' || c == '/';
    if (!ok) return std::nullopt;
  }
  std::string out(b64::decoded_size(text.size()), '\0');
  auto [written, read] = b64::decode(out.data(), text.data(), text.size());
  if (read != text.size() - padding) return std::nullopt;
  out.resize(written);
  return out;
}

}  // namespace warden::api
