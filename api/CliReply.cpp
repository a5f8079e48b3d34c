#include "api/CliReply.h"

#include "api/Base64.h"

namespace warden::api::clireply {

// Checked access to reply fields: a missing or mistyped field is a BadReply, never a crash.
const json& member(const json& object, const char* key) {
  if (!object.is_object()) throw BadReply{"expected a JSON object"};
  auto it = object.find(key);
  if (it == object.end()) throw BadReply{std::string("no \"") + key + "\" field"};
  return *it;
}

std::string text(const json& object, const char* key) {
  const json& value = member(object, key);
  if (!value.is_string()) throw BadReply{std::string("\"") + key + "\" is not a string"};
  return value.get<std::string>();
}

const json& array(const json& object, const char* key) {
  const json& value = member(object, key);
  if (!value.is_array()) throw BadReply{std::string("\"") + key + "\" is not an array"};
  return value;
}

std::string scalar(const json& object, const char* key) {
  const json& value = member(object, key);
  return value.is_string() ? value.get<std::string>() : value.dump();
}

std::string stringItem(const json& item) {
  if (!item.is_string()) throw BadReply{"a list item is not a string"};
  return item.get<std::string>();
}

json parseObject(const HttpResponse& response) {
  json body = response.json();
  if (!body.is_object()) throw BadReply{"the body is not a JSON object"};
  return body;
}

std::string dataOf(const json& body) {
  if (body.contains("data")) return text(body, "data");
  if (body.contains("data_b64")) {
    auto bytes = base64Decode(text(body, "data_b64"));
    if (!bytes) throw BadReply{"\"data_b64\" is not base64"};
    return *bytes;
  }
  return {};
}

std::string oneLine(std::string text) {
  constexpr std::size_t kMax = 1000;
  if (text.size() > kMax) {
    text.resize(kMax);
    text += "...";
  }
  for (char& c : text) {
    if (static_cast<unsigned char>(c) < 0x20 || c == 0x7f) c = ' ';
  }
  return text;
}

std::string describeError(const HttpResponse& response) {
  json error = response.json();
  std::string text;
  if (error.is_object() && error.contains("error") && error["error"].is_string()) {
    text = error["error"].get<std::string>();
    if (error.contains("message")) {
      text += ": " + (error["message"].is_string() ? error["message"].get<std::string>() : error["message"].dump());
    }
  } else {
    text = "HTTP " + std::to_string(response.status) + " from " + response.endpoint;
  }
  if (response.status >= 500) text += " (tried " + response.tried + ")";
  return text;
}

}  // namespace warden::api::clireply
