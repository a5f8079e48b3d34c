#include <catch2/catch.hpp>

#include <variant>

#include "api/JsonCodec.h"
#include "coordinator/Command.h"
#include "coordinator/StateMachine.h"

using namespace warden::api;
using json = nlohmann::ordered_json;

namespace {
// The status and error code that parsing `body` as a create request raises.
std::pair<unsigned, std::string> createError(const json& body) {
  try {
    parseCreate("/a", body);
  } catch (const ApiError& e) {
    return {e.status(), e.code()};
  }
  return {0, ""};
}
}  // namespace

TEST_CASE("create bodies are parsed strictly") {
  auto op = parseCreate("/a", json{{"data", "x"}, {"sequential", true}, {"make_parents", true}});
  CHECK(op.data == "x");
  CHECK(op.sequential);
  CHECK(op.makeParents);
  CHECK(parseCreate("/a", json{{"data_b64", "AAE="}}).data == std::string("\0\1", 2));

  using E = std::pair<unsigned, std::string>;
  CHECK(createError(json{{"colour", "red"}}) == E{400, "invalid_argument"});
  CHECK(createError(json{{"data", 5}}) == E{400, "invalid_argument"});
  CHECK(createError(json{{"data", "a"}, {"data_b64", "YQ=="}}) == E{400, "invalid_argument"});
  CHECK(createError(json{{"data_b64", "not base64!"}}) == E{400, "invalid_argument"});
  CHECK(createError(json{{"sequential", "yes"}}) == E{400, "invalid_argument"});
  CHECK(createError(json{{"ephemeral", true}}) == E{400, "invalid_argument"});
  CHECK(createError(json{{"ephemeral", true}, {"session", "xyz"}}) == E{400, "invalid_argument"});
  CHECK(createError(json{{"data", std::string((1 << 20) + 1, 'x')}}) == E{413, "too_large"});
}

TEST_CASE("versions must be non-negative integers") {
  CHECK(parseSet("/a", json{{"version", 3}}).version == 3);
  for (const json& bad : {json(-1), json(1.5), json("3"), json(true)}) {
    INFO(bad.dump());
    CHECK_THROWS_AS(parseSet("/a", json{{"version", bad}}), ApiError);
  }
}

TEST_CASE("an empty request body is an empty object and anything but an object is refused") {
  CHECK(parseBody("").empty());
  CHECK(parseBody("  \n").empty());
  CHECK_THROWS_AS(parseBody("{"), ApiError);
  CHECK_THROWS_AS(parseBody("[1]"), ApiError);
  CHECK_THROWS_AS(parseBody("\"text\""), ApiError);
}

TEST_CASE("txn ops name their kind and path and writes to /_warden are forbidden") {
  auto op = parseTxnOp(json{{"op", "delete"}, {"path", "/a"}, {"version", 2}, {"recursive", true}});
  CHECK(op.type == warden::coordinator::OpType::Delete);
  CHECK(op.recursive);
  CHECK_THROWS_AS(parseTxnOp(json{{"op", "rename"}, {"path", "/a"}}), ApiError);
  CHECK_THROWS_AS(parseTxnOp(json{{"path", "/a"}}), ApiError);
  CHECK_THROWS_AS(parseTxnOp(json{{"op", "check"}, {"path", "a"}}), ApiError);
  try {
    parseTxnOp(json{{"op", "set"}, {"path", "/_warden/x"}});
    FAIL("expected forbidden");
  } catch (const ApiError& e) {
    CHECK(e.status() == 403);
  }
  CHECK_NOTHROW(parseTxnOp(json{{"op", "check"}, {"path", "/_warden"}}));
}

TEST_CASE("data that is not UTF-8 is returned as data_b64") {
  json text, binary;
  putData(text, "héllo");
  putData(binary, std::string("\xff\x00", 2));
  CHECK(text["data"] == "héllo");
  CHECK(binary["data_b64"] == "/wA=");
  CHECK_FALSE(binary.contains("data"));
}

TEST_CASE("the hand-written node replies are byte for byte what the JSON library writes") {
  warden::coordinator::Stat stat;
  stat.version = 3;
  stat.cversion = -1;
  stat.created = 12;
  stat.modified = 40;
  stat.ctime = 1764400000000;
  stat.mtime = 1764400000123;
  stat.numChildren = 7;
  stat.dataLength = 5;
  std::string controls;
  for (int c = 0; c < 0x20; ++c) controls += static_cast<char>(c);
  const std::vector<std::string> texts = {"", "plain", "quote \" backslash \\ slash /", controls, "h\xc3\xa9llo \xe2\x82\xac \x7f",
                                          std::string("\xff\x00bin", 5), "\xc3",
                                          "\xed\xa0\x80", "\xc0\xaf", "\xf4\x90\x80\x80", "\xf0\x9f\x98\x80"};
  for (const std::uint64_t owner : {std::uint64_t{0}, std::uint64_t{0x1234abcd}}) {
    stat.ephemeralOwner = owner;
    for (const auto& path : texts) {
      for (const auto& data : texts) {
        json node = {{"path", path}};
        putData(node, data);
        node["stat"] = statJson(stat);
        INFO("path " << json(path).dump(-1, ' ', true, json::error_handler_t::replace) << " data "
                     << json(data).dump(-1, ' ', true, json::error_handler_t::replace));
        CHECK(nodeJsonText(path, data, stat) == dumpJson(node));
      }
      CHECK(pathStatJsonText(path, stat) == dumpJson(json{{"path", path}, {"stat", statJson(stat)}}));
    }
  }
}

namespace {

// What the JSON parser makes of a body the fast path accepted must be {"data": text}.
void readAlike(const std::string& body) {
  const auto text = plainDataBody(body);
  if (!text) return;
  INFO("body: " << json(body).dump(-1, ' ', true));
  const json parsed = json::parse(body, nullptr, false);
  REQUIRE_FALSE(parsed.is_discarded());
  CHECK(parsed == json{{"data", std::string(*text)}});
}

}  // namespace

TEST_CASE("the plain data body is read without the JSON parser only where the parser reads it alike") {
  CHECK(plainDataBody(R"({"data":"x"})") == "x");
  CHECK(plainDataBody(" {\n\t\"data\" :  \"caf\xc3\xa9 \x7f\" }\r\n") == "caf\xc3\xa9 \x7f");
  CHECK(plainDataBody(R"({"data":""})") == "");
  CHECK(parseBody(R"({"data":"x"})") == json{{"data", "x"}});
  for (const std::string body : {R"({"data":"a\"b"})", R"({"data":"a\\b"})", "{\"data\":\"a\tb\"}",
                                 "{\"data\":\"\xed\xa0\x80\"}", "{\"data\":\"\xc3\"}", R"({"data":1})",
                                 R"({"data":"x","version":1})", R"({"data":"x"}x)", R"({"data":"x")", R"({"dat":"x"})",
                                 R"(["data","x"])", "\xef\xbb\xbf{\"data\":\"x\"}", R"({"data":"x"}})"}) {
    INFO(body);
    CHECK_FALSE(plainDataBody(body));
    readAlike(body);
  }
  // Escapes and invalid text still get the parser's answer.
  CHECK(parseBody(R"({"data":"a\"b"})") == json{{"data", "a\"b"}});
  CHECK_THROWS_AS(parseBody("{\"data\":\"\xc3\"}"), ApiError);
  // Random bodies built from the pieces that matter: every one the fast path takes, the parser
  // reads alike.
  const std::vector<std::string> pieces{"{", "}", "\"", "\\", ":", " ", "\t", "\n", "data", "\"data\"", "x", "\x01",
                                        "\xc3\xa9", "\xc3", "\xed\xa0\x80", "\xf4\x90\x80\x80", "\x7f", ","};
  std::uint64_t state = 42;
  auto next = [&state] {
    state = state * 6364136223846793005ull + 1442695040888963407ull;
    return state >> 33;
  };
  std::size_t accepted = 0;
  for (int i = 0; i < 20000; ++i) {
    std::string body = next() % 2 ? "{\"data\":\"" : "";
    const std::size_t n = next() % 8;
    for (std::size_t k = 0; k < n; ++k) body += pieces[next() % pieces.size()];
    if (next() % 2) body += "\"}";
    if (plainDataBody(body)) accepted++;
    readAlike(body);
  }
  CHECK(accepted > 100);  // the generator does reach the fast path
}

namespace {

// The op a body makes through the JSON tree, or the error it raises there.
template <typename Parse>
std::variant<warden::coordinator::Op, std::pair<unsigned, std::string>> outcome(Parse parse) {
  try {
    return parse();
  } catch (const ApiError& e) {
    return std::pair<unsigned, std::string>{e.status(), e.code()};
  }
}

}  // namespace

TEST_CASE("a create's or set's raw body makes the op the JSON tree makes, plain or not") {
  const std::string big(warden::coordinator::kMaxDataBytes + 1, 'x');
  const std::string limit(warden::coordinator::kMaxDataBytes, 'x');
  for (const std::string& body :
       {std::string(R"({"data":"x"})"), std::string(" { \"data\" : \"caf\xc3\xa9\" } "), std::string(R"({"data":""})"),
        std::string(""), std::string("{}"), std::string(R"({"data":"a\"b"})"), std::string(R"({"data":"x","version":3})"),
        std::string(R"({"data":"x","create":true})"), std::string(R"({"data":"x","ephemeral":true})"),
        std::string(R"({"data_b64":"eA=="})"), std::string(R"({"data":1})"), std::string(R"({"data":"x"}x)"),
        std::string(R"({"dat":"x"})"), std::string("{\"data\":\"\xc3\"}"), "{\"data\":\"" + big + "\"}",
        "{\"data\":\"" + limit + "\"}"}) {
    INFO("body: " << body.substr(0, 60));
    CHECK(outcome([&] { return parseSetBody("/a", body); }) ==
          outcome([&] { return parseSet("/a", parseBody(body)); }));
    CHECK(outcome([&] { return parseCreateBody("/a", body); }) ==
          outcome([&] { return parseCreate("/a", parseBody(body)); }));
  }
  // The fast path is taken, and gives what a set of that text is.
  const auto set = parseSetBody("/a", R"({"data":"x"})");
  CHECK(set.type == warden::coordinator::OpType::Set);
  CHECK(set.data == "x");
  CHECK(set.path == "/a");
  const auto tooLarge = outcome([&] { return parseSetBody("/a", "{\"data\":\"" + big + "\"}"); });
  REQUIRE(std::holds_alternative<std::pair<unsigned, std::string>>(tooLarge));
  CHECK(std::get<std::pair<unsigned, std::string>>(tooLarge) == std::pair<unsigned, std::string>{413, "too_large"});
}
