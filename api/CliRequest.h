#pragma once
// What the CLI's commands (api/Cli.cpp; api/CliLock.cpp and its threads) put into requests.

#include <string>

namespace warden::api::clirequest {

// An argument that goes into a JSON string: it must be UTF-8 text (a UsageError naming `what`
// otherwise).
const std::string& textArgument(const char* what, const std::string& value);
// A session's resource, /v1/sessions/<id>, the id percent-encoded.
std::string sessionTarget(const std::string& id);

}  // namespace warden::api::clirequest
