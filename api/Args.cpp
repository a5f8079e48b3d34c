#include "api/Args.h"

#include <cctype>

namespace warden::api {

namespace {

bool isShortFlag(const std::string& arg) {
  return arg.size() == 2 && arg[0] == '-' && std::isalpha(static_cast<unsigned char>(arg[1]));
}

}  // namespace

Args::Args(const std::vector<std::string>& argv, std::set<std::string> booleans,
           std::map<std::string, std::string> aliases) {
  bool flagsEnded = false;
  for (std::size_t i = 0; i < argv.size(); ++i) {
    const std::string& arg = argv[i];
    std::string name;
    if (flagsEnded) {
      positionals_.push_back(arg);
      continue;
    }
    if (arg == "--") {
      flagsEnded = true;
      afterDashes_ = positionals_.size();
      continue;
    }
    if (arg.starts_with("--")) {
      name = arg.substr(2);
    } else if (isShortFlag(arg)) {
      auto alias = aliases.find(arg.substr(1));
      if (alias == aliases.end()) throw UsageError("unknown flag " + arg);
      name = alias->second;
    } else {
      positionals_.push_back(arg);
      continue;
    }
    std::optional<std::string> value;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    }
    if (name.empty()) throw UsageError("malformed flag '" + arg + "'");
    if (!given_.insert(name).second) throw UsageError("--" + name + " given twice");
    if (booleans.count(name)) {
      if (!value || *value == "true" || *value == "1") {
        values_[name] = "true";
      } else if (*value != "false" && *value != "0") {
        throw UsageError("--" + name + " takes true, false, 1 or 0, not '" + *value + "'");
      }
      continue;
    }
    if (!value) {
      if (i + 1 >= argv.size()) throw UsageError("--" + name + " needs a value");
      value = argv[++i];
    }
    values_[name] = *value;
  }
}

std::optional<std::string> Args::get(const std::string& name) const {
  auto it = values_.find(name);
  if (it == values_.end()) return std::nullopt;
  return it->second;
}

std::string Args::get(const std::string& name, const std::string& fallback) const {
  return get(name).value_or(fallback);
}

long long Args::number(const std::string& name, long long fallback, long long min, long long max) const {
  auto text = get(name);
  if (!text) return fallback;
  std::size_t used = 0;
  long long value = 0;
  try {
    value = std::stoll(*text, &used);
  } catch (const std::exception&) {
    used = 0;
  }
  if (used != text->size() || text->empty() || value < min || value > max) {
    throw UsageError("--" + name + " must be a whole number from " + std::to_string(min) + " to " +
                     std::to_string(max));
  }
  return value;
}

bool asksForHelp(const std::vector<std::string>& argv) {
  for (const auto& arg : argv) {
    if (arg == "--") return false;
    if (arg == "--help" || arg == "-h") return true;
  }
  return false;
}

void Args::allow(const std::set<std::string>& known) const {
  for (const auto& name : given_) {
    if (!known.count(name)) throw UsageError("unknown flag --" + name);
  }
}

std::vector<std::size_t> parseCounts(const Args& args, const char* flag, std::vector<std::size_t> fallback, std::size_t max) {
  const auto list = args.get(flag);
  if (!list) return fallback;
  std::vector<std::size_t> counts;
  std::size_t start = 0;
  while (start <= list->size()) {
    std::size_t comma = list->find(',', start);
    if (comma == std::string::npos) comma = list->size();
    const std::string item = list->substr(start, comma - start);
    if (item.empty() || item.size() > 7 || item.find_first_not_of("0123456789") != std::string::npos ||
        std::stoul(item) == 0 || std::stoul(item) > max) {
      throw UsageError(std::string("--") + flag + " is a list of numbers from 1 to " + std::to_string(max) + ", such as 1,16,64");
    }
    counts.push_back(std::stoul(item));
    start = comma + 1;
  }
  return counts;
}

std::vector<long> parsePids(const Args& args, const char* flag) {
  std::vector<long> pids;
  for (std::size_t n : parseCounts(args, flag, {}, 1 << 30)) pids.push_back(static_cast<long>(n));
  return pids;
}

}  // namespace warden::api
