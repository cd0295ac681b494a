// qwen-sft subcommands register themselves here (one cmd_NAME.cpp per command); main.cpp dispatches and answers
// `qwen-sft --help`, `qwen-sft --version` and `qwen-sft COMMAND --help` from the registered texts.
#pragma once
#include <map>
#include <string>
#include <vector>

#include "engine/base/error.h"

namespace qsft::cli {

using Args = std::vector<std::string>;  // the arguments after the command name

struct Command {
  const char* name;
  const char* args;     // the usage line after "qwen-sft NAME": every argument and option
  const char* summary;  // what the command does, one line
  int (*run)(const Args& args);
  const char* details = nullptr;  // optional: what the options mean, one "  --option  meaning" per line
};

// Static registration: `const bool registered = register_command({...});` in the command's file.
bool register_command(const Command& c);
const std::map<std::string, Command>& commands();  // by name

// Wrong arguments: main prints the message and then the command's usage line; exits 2 like any InputError.
struct UsageError : InputError {
  using InputError::InputError;
};

// Small argument helpers shared by the commands. Unknown or malformed flags throw UsageError.
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
