#include "api/CliRequest.h"

#include "api/Args.h"
#include "api/Url.h"
#include "coordinator/Utf8.h"

namespace warden::api::clirequest {

const std::string& textArgument(const char* what, const std::string& value) {
  if (!coordinator::isValidUtf8(value)) throw UsageError(std::string(what) + " must be UTF-8 text");
  return value;
}

std::string sessionTarget(const std::string& id) { return "/v1/sessions/" + percentEncodePath(id); }

}  // namespace warden::api::clirequest
