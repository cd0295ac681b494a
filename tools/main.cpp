// qwen-sft: one binary, subcommands registered by tools/cmd_*.cpp.
#include <algorithm>
#include <cstdio>
#include <exception>
#include <map>
#include <string>

#include "engine/base/error.h"
#include "tools/cli.h"

namespace qsft::cli {

static std::map<std::string, Command>& registry() {
  static std::map<std::string, Command> r;
  return r;
}

bool register_command(const Command& c) {
  registry()[c.name] = c;
  return true;
}

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
    if (!in(allowed, name) && !in(valued, name)) throw InputError("unknown option --" + name);
    if (in(valued, name) && !has_eq) {
      if (i + 1 >= args.size()) throw InputError("option --" + name + " needs a value");
      value = args[++i];
    }
    f.options.emplace_back(name, value);
  }
  return f;
}

}  // namespace qsft::cli

static void usage() {
  std::fprintf(stderr, "usage: qwen-sft COMMAND [ARGS]\n\ncommands:\n");
  for (auto& [name, c] : qsft::cli::registry()) std::fprintf(stderr, "  %-12s %s\n", name.c_str(), c.usage);
}

int main(int argc, char** argv) {
  if (argc < 2 || std::string(argv[1]) == "--help" || std::string(argv[1]) == "-h") {
    usage();
    return argc < 2 ? 2 : 0;
  }
  auto& reg = qsft::cli::registry();
  auto it = reg.find(argv[1]);
  if (it == reg.end()) {
    std::fprintf(stderr, "qwen-sft: unknown command '%s'\n", argv[1]);
    usage();
    return 2;
  }
  try {
    return it->second.run(qsft::cli::Args(argv + 2, argv + argc));
  } catch (const qsft::InputError& e) {
    std::fprintf(stderr, "qwen-sft %s: error: %s\n", argv[1], e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qwen-sft %s: internal error: %s\n", argv[1], e.what());
    return 1;
  }
}
