// Fuzzes the request-target decoder (api/Url) and the namespace path rules (coordinator/Path,
// coordinator/Utf8) with arbitrary bytes. Nothing here may throw; and:
//   - percentDecode(percentEncodePath(x)) == x for every x;
//   - a target that parses re-parses to the same query when its query is written back out;
//   - checkPath agrees with the documented rules, isValidUtf8 with a plain reference decoder,
//     and parentOf/nameOf/childOf put every valid path back together.

#include <cstdint>
#include <string>
#include <string_view>

#include "api/Url.h"
#include "coordinator/Path.h"
#include "coordinator/Utf8.h"
#include "tests/fuzz/FuzzCheck.h"

namespace {

using namespace warden;
using tests::fuzz::printable;

// Strict UTF-8 the long way: decode each code point, then refuse overlong forms, surrogates and
// anything above U+10FFFF.
bool referenceUtf8(std::string_view s) {
  std::size_t i = 0;
  while (i < s.size()) {
    const auto c = static_cast<unsigned char>(s[i]);
    std::size_t len;
    std::uint32_t cp;
    if (c < 0x80) {
      ++i;
      continue;
    } else if ((c & 0xe0) == 0xc0) {
      len = 2, cp = c & 0x1f;
    } else if ((c & 0xf0) == 0xe0) {
      len = 3, cp = c & 0x0f;
    } else if ((c & 0xf8) == 0xf0) {
      len = 4, cp = c & 0x07;
    } else {
      return false;
    }
    if (s.size() - i < len) return false;
    for (std::size_t k = 1; k < len; ++k) {
      const auto b = static_cast<unsigned char>(s[i + k]);
      if ((b & 0xc0) != 0x80) return false;
      cp = (cp << 6) | (b & 0x3f);
    }
    const std::uint32_t least = len == 2 ? 0x80 : len == 3 ? 0x800 : 0x10000;
    if (cp < least || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return false;
    i += len;
  }
  return true;
}

void checkPercent(std::string_view input) {
  const std::string encoded = api::percentEncodePath(input);
  for (char c : encoded) {
    const bool plain = (c >= 'A' && c <= 'Z') || (c >= 'a' && c <= 'z') || (c >= '0' && c <= '9') ||
                       std::string_view("-_.~/%").find(c) != std::string_view::npos;
    FUZZ_CHECK(plain, "percentEncodePath left a reserved byte in " + printable(encoded));
  }
  const auto decoded = api::percentDecode(encoded);
  FUZZ_CHECK(decoded && *decoded == input, "percentDecode(percentEncodePath(x)) != x for " + printable(input));
}

void checkTarget(std::string_view input) {
  std::string problem;
  const auto target = api::parseTarget(input, problem);
  if (!target) {
    FUZZ_CHECK(!problem.empty(), "parseTarget refused " + printable(input) + " without saying why");
    return;
  }
  FUZZ_CHECK(target->path == input.substr(0, input.find('?')), "the path of " + printable(input));
  std::string again = target->path + "?";
  for (const auto& [key, value] : target->query) {
    again += api::percentEncodePath(key) + "=" + api::percentEncodePath(value) + "&";
  }
  std::string reproblem;
  const auto reparsed = api::parseTarget(again, reproblem);
  FUZZ_CHECK(reparsed && reparsed->query == target->query,
             "the query of " + printable(input) + " does not survive being written back as " + printable(again));
}

void checkPath(std::string_view input) {
  const bool utf8 = coordinator::isValidUtf8(input);
  FUZZ_CHECK(utf8 == referenceUtf8(input), "isValidUtf8 disagrees with the reference on " + printable(input));

  const auto problem = coordinator::checkPath(input);
  if (problem) {
    FUZZ_CHECK(!problem->message.empty(), "checkPath refused " + printable(input) + " without saying why");
    FUZZ_CHECK(problem->tooLong == (input.size() > coordinator::kMaxPathBytes), "tooLong for " + printable(input));
    return;
  }
  FUZZ_CHECK(input.size() <= coordinator::kMaxPathBytes && !input.empty() && input.front() == '/' && utf8,
             "checkPath accepted " + printable(input));
  if (coordinator::isRoot(input)) return;
  FUZZ_CHECK(input.back() != '/' && input.find("//") == std::string_view::npos &&
                 input.find('\0') == std::string_view::npos,
             "checkPath accepted " + printable(input));
  const std::string_view parent = coordinator::parentOf(input);
  const std::string_view name = coordinator::nameOf(input);
  FUZZ_CHECK(!coordinator::checkPath(parent), "the parent of " + printable(input) + " is not a valid path");
  FUZZ_CHECK(!name.empty() && name != "." && name != ".." && name.find('/') == std::string_view::npos,
             "the name of " + printable(input));
  FUZZ_CHECK(coordinator::childOf(parent, name) == input, "childOf(parentOf(p), nameOf(p)) != p for " + printable(input));
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const std::uint8_t* data, std::size_t size) {
  const std::string_view input(reinterpret_cast<const char*>(data), size);
  checkPercent(input);
  checkTarget(input);
  checkPath(input);
  // The router decodes the route before checking it as a path: do the same.
  if (const auto decoded = api::percentDecode(input)) checkPath(*decoded);
  return 0;
}
