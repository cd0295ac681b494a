// qwen-sft subcommands register themselves here (one cmd_NAME.cpp per command); main.cpp dispatches.
#pragma once
#include <string>
#include <vector>

namespace qsft::cli {

using Args = std::vector<std::string>;  // the arguments after the command name

struct Command {
  const char* name;
  const char* usage;  // one line: arguments and what it does
  int (*run)(const Args& args);
};

// Static registration: `static const bool reg = register_command({...});` in the command's file.
bool register_command(const Command& c);

// Small argument helpers shared by the commands. Unknown or malformed flags throw InputError.
struct Flags {
  std::vector<std::string> positional;
  std::vector<std::pair<std::string, std::string>> options;  // --name value / --name=value / --flag ("")
  bool has(const std::string& name) const;
  std::string get(const std::string& name, const std::string& fallback = "") const;
  std::vector<std::string> all(const std::string& name) const;  // every value of a repeatable option
};
// `valued` lists the options that take a value; any other --name is a boolean flag; `allowed` = valued + flags.
Flags parse_flags(const Args& args, const std::vector<std::string>& valued, const std::vector<std::string>& allowed);

}  // namespace qsft::cli
