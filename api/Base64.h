#pragma once
#include <optional>
#include <string>
#include <string_view>

namespace warden::api {

std::string base64Encode(std::string_view bytes);
// Standard alphabet with padding; empty when the input is not valid base64.
std::optional<std::string> base64Decode(std::string_view text);

}  // namespace warden::api
