// The command registry and the flag parser the commands share (tools/cli.h).
#include "tools/cli.h"

#include <algorithm>

namespace qsft::cli {

static std::map<std::string, Command>& registry() {
  static std::map<std::string, Command> r;
  return r;
}

bool register_command(const Command& c) {
  registry()[c.name] = c;
  return true;
}

const std::map<std::string, Command>& commands() { return registry(); }

bool Flags::has(const std::string& name) const {
  return std::any_of(options.begin(), options.end(), [&](auto& o) { return o.first == name; });
}
std::string Flags::get(const std::string& name, const std::string& fallback) const {
  for (auto it = options.rbegin(); it != options.rend(); ++it)
    if (it->first == name) return it->second;
  return fallback;
}
std::vector<std::string> Flags::all(const std::string& name) const {
  std::vector<std::string> v;
  for (auto& o : options)
    if (o.first == name) v.push_back(o.second);
  return v;
}

Flags parse_flags(const Args& args, const std::vector<std::string>& valued, const std::vector<std::string>& allowed) {
  Flags f;
  auto in = [](const std::vector<std::string>& v, const std::string& s) {
    return std::find(v.begin(), v.end(), s) != v.end();
  };
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& a = args[i];
    if (a.rfind("--", 0) != 0 || a == "--") {
      f.positional.push_back(a);
      continue;
    }
    std::string name = a.substr(2), value;
    bool has_eq = false;
    if (auto eq = name.find('='); eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_eq = true;
    }
    if (!in(allowed, name) && !in(valued, name)) throw UsageError("unknown option --" + name);
    if (in(valued, name) && !has_eq) {
      if (i + 1 >= args.size()) throw UsageError("option --" + name + " needs a value");
      value = args[++i];
    }
    f.options.emplace_back(name, value);
  }
  return f;
}

}  // namespace qsft::cli
