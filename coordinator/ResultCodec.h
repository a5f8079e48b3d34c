#pragma once
// A command's result as bytes: what the idempotency table keeps, so that a retried write is
// answered exactly as its first application was.

#include <string>
#include <string_view>

#include "coordinator/Status.h"

namespace warden::coordinator {

std::string encodeResult(const CommandResult& result);
CommandResult decodeResult(std::string_view bytes);  // throws DecodeError

}  // namespace warden::coordinator
