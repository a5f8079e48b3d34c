#include <catch2/catch.hpp>

#include "api/Args.h"
#include "api/Cli.h"

using namespace warden::api;

namespace {
Args parse(std::vector<std::string> argv) { return Args(argv, {"recursive", "dev"}, {{"o", "output"}, {"r", "recursive"}}); }
}  // namespace

TEST_CASE("a boolean flag is on bare or with =true or =1 and off with =false or =0") {
  CHECK(parse({"--recursive"}).has("recursive"));
  CHECK(parse({"--recursive=true"}).has("recursive"));
  CHECK(parse({"--recursive=1"}).has("recursive"));
  CHECK(parse({"-r"}).has("recursive"));
  CHECK_FALSE(parse({"--recursive=false"}).has("recursive"));
  CHECK_FALSE(parse({"--recursive=0"}).has("recursive"));
  CHECK_FALSE(parse({}).has("recursive"));
  // A boolean never takes the next word as its value.
  auto args = parse({"--dev", "false"});
  CHECK(args.has("dev"));
  CHECK(args.positionals() == std::vector<std::string>{"false"});
}

TEST_CASE("a boolean flag refuses any value but true false 1 and 0") {
  for (const char* bad : {"--recursive=yes", "--recursive=", "--recursive=TRUE", "--dev=2"}) {
    INFO(bad);
    CHECK_THROWS_AS(parse({bad}), UsageError);
  }
}

TEST_CASE("a boolean flag turned off is still a flag the command must know") {
  CHECK_THROWS_AS(parse({"--recursive=false"}).allow({"dev"}), UsageError);
  CHECK_NOTHROW(parse({"--recursive=false"}).allow({"recursive"}));
}

TEST_CASE("a double dash ends the flags and later words are positionals even when they look like flags") {
  auto args = parse({"/x", "--output", "json", "--", "--recursive", "-o", "--"});
  CHECK(args.get("output") == "json");
  CHECK_FALSE(args.has("recursive"));
  CHECK(args.positionals() == std::vector<std::string>{"/x", "--recursive", "-o", "--"});
  CHECK(args.afterDashes() == 1u);  // where the words after the first "--" begin
  CHECK_FALSE(parse({"/x", "-r"}).afterDashes());
  CHECK(parse({"--", "cmd"}).afterDashes() == 0u);
  // A valued flag's value is never the double dash that ends the flags.
  auto owned = parse({"--owner", "--", "--", "cmd"});
  CHECK(owned.get("owner") == "--");
  CHECK(owned.afterDashes() == 0u);
}

TEST_CASE("valued flags take the next word or =value") {
  CHECK(parse({"--endpoints", "http://a"}).get("endpoints") == "http://a");
  CHECK(parse({"--endpoints=http://a=b"}).get("endpoints") == "http://a=b");
  CHECK(parse({"-o", "json"}).get("output") == "json");
  CHECK_THROWS_AS(parse({"--endpoints"}), UsageError);
}

TEST_CASE("a flag given twice or an unknown single-letter flag is refused") {
  CHECK_THROWS_AS(parse({"--output", "json", "-o", "text"}), UsageError);
  CHECK_THROWS_AS(parse({"--dev", "--dev=false"}), UsageError);
  CHECK_THROWS_AS(parse({"-x"}), UsageError);
  // "-" (stdin) and negative-looking words stay positionals.
  CHECK(parse({"-", "-5"}).positionals() == std::vector<std::string>{"-", "-5"});
}

TEST_CASE("the exit code of a server's answer: 404 is not found, other 4xx refused, 5xx unavailable") {
  CHECK(exitCodeForStatus(200) == ExitCode::Ok);
  CHECK(exitCodeForStatus(204) == ExitCode::Ok);
  CHECK(exitCodeForStatus(404) == ExitCode::NotFound);
  CHECK(exitCodeForStatus(409) == ExitCode::Refused);
  CHECK(exitCodeForStatus(400) == ExitCode::Refused);
  CHECK(exitCodeForStatus(429) == ExitCode::Refused);
  CHECK(exitCodeForStatus(503) == ExitCode::Unavailable);
  CHECK(exitCodeForStatus(500) == ExitCode::Unavailable);
  CHECK(static_cast<int>(ExitCode::Usage) == 2);
}
