#pragma once
// Command-line flags: "--name value", "--name=value" and bare "--flag"; the rest are positionals.

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
  // Flags named in `booleans` never take a value; every other flag takes exactly one.
  // Single-letter aliases map to long names ("o" -> "output").
  Args(const std::vector<std::string>& argv, std::set<std::string> booleans,
       std::map<std::string, std::string> aliases = {});

  bool has(const std::string& name) const { return values_.count(name) > 0; }
  std::optional<std::string> get(const std::string& name) const;
  std::string get(const std::string& name, const std::string& fallback) const;
  long long number(const std::string& name, long long fallback, long long min, long long max) const;
  const std::vector<std::string>& positionals() const { return positionals_; }
  // Throws UsageError naming any flag outside `known`.
  void allow(const std::set<std::string>& known) const;

 private:
  std::map<std::string, std::string> values_;
  std::vector<std::string> positionals_;
};

}  // namespace warden::api
