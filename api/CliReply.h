#pragma once
// Checked reading of the server's JSON replies for the CLI: a missing or mistyped field, or a
// body that is not JSON, is a BadReply (one error line and exit 3), never a crash.

#include <nlohmann/json.hpp>
#include <string>

#include "api/HttpClient.h"

namespace warden::api::clireply {

using json = nlohmann::ordered_json;

// A reply whose shape breaks the API contract (missing or mistyped field, not JSON).
struct BadReply {
  std::string what;
};

const json& member(const json& object, const char* key);
std::string text(const json& object, const char* key);
const json& array(const json& object, const char* key);
// A scalar as text: strings without their quotes, anything else as JSON.
std::string scalar(const json& object, const char* key);
std::string stringItem(const json& item);
json parseObject(const HttpResponse& response);
// The node data of a GET reply, as bytes.
std::string dataOf(const json& body);

// One line of text: control characters (newlines included) become spaces, at most 1000 bytes.
std::string oneLine(std::string text);
// An error answer as "code: message" (or "HTTP N from ENDPOINT" without an error body); a 5xx
// adds every endpoint tried.
std::string describeError(const HttpResponse& response);

}  // namespace warden::api::clireply
