#pragma once
// Command-line flags: "--name value", "--name=value", bare "--flag" and "--flag=true|false|1|0";
// "--" ends the flags (everything after it is positional); the rest are positionals.

#include <map>
#include <optional>
#include <set>
#include <stdexcept>
#include <string>
#include <vector>

namespace warden::api {

class UsageError : public std::runtime_error {
 public:
  using std::runtime_error::runtime_error;
};

class Args {
 public:
  // Flags named in `booleans` take no separate value: "--flag" is on, "--flag=true" or "=1" on,
  // "--flag=false" or "=0" off, any other "=value" a UsageError. Every other flag takes exactly
  // one value. Single-letter aliases map to long names ("o" -> "output"); "-x" for a letter
  // without an alias is a UsageError, while "-" and "-5" are positionals. A flag given twice is
  // a UsageError.
  Args(const std::vector<std::string>& argv, std::set<std::string> booleans,
       std::map<std::string, std::string> aliases = {});

  // A valued flag was given, or a boolean flag is on ("--dev=false" is not `has("dev")`).
  bool has(const std::string& name) const { return values_.count(name) > 0; }
  std::optional<std::string> get(const std::string& name) const;
  std::string get(const std::string& name, const std::string& fallback) const;
  long long number(const std::string& name, long long fallback, long long min, long long max) const;
  const std::vector<std::string>& positionals() const { return positionals_; }
  // Where the words after "--" begin in positionals(), when "--" was given.
  std::optional<std::size_t> afterDashes() const { return afterDashes_; }
  // Throws UsageError naming any flag outside `known` (boolean flags turned off included).
  void allow(const std::set<std::string>& known) const;

 private:
  std::map<std::string, std::string> values_;  // valued flags, and boolean flags that are on
  std::set<std::string> given_;                // every flag given, on or off
  std::vector<std::string> positionals_;
  std::optional<std::size_t> afterDashes_;
};

// A flag holding whole numbers from 1 to `max` separated by commas ("1,16,64"); `fallback` when
// it is not given. A UsageError names the flag otherwise.
std::vector<std::size_t> parseCounts(const Args& args, const char* flag, std::vector<std::size_t> fallback, std::size_t max);
// A flag holding process ids the same way ("4242,4243"); none when it is not given.
std::vector<long> parsePids(const Args& args, const char* flag);

// "--help" or "-h" among the flags (before any "--"): the command prints its usage and exits 0.
bool asksForHelp(const std::vector<std::string>& argv);

}  // namespace warden::api
