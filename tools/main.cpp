// qwen-sft: one binary; the commands register themselves (tools/cmd_*.cpp). This file dispatches to them and
// answers `qwen-sft --help`, `qwen-sft --version` and `qwen-sft COMMAND --help`.
#include <algorithm>
#include <cstdio>
#include <exception>
#include <string>

#include "engine/base/error.h"
#include "qsft_version.h"  // generated at build time: QSFT_VERSION, QSFT_GIT_COMMIT
#include "tools/cli.h"

namespace {

using qsft::cli::Args;
using qsft::cli::Command;

void print_overview(FILE* out) {
  std::fprintf(out,
               "usage: qwen-sft COMMAND [ARGS]   (qwen-sft COMMAND --help: the command's usage and options)\n"
               "       qwen-sft --version\n\ncommands:\n");
  for (const auto& [name, c] : qsft::cli::commands()) std::fprintf(out, "  %-11s %s\n", name.c_str(), c.summary);
}

void print_usage(FILE* out, const Command& c) { std::fprintf(out, "usage: qwen-sft %s %s\n", c.name, c.args); }

void print_help(const Command& c) {
  print_usage(stdout, c);
  std::printf("\n%s\n", c.summary);
  if (c.details) std::printf("\noptions:\n%s", c.details);
}

bool asks_help(const Args& args) {
  return std::any_of(args.begin(), args.end(), [](const std::string& a) { return a == "--help" || a == "-h"; });
}

}  // namespace

int main(int argc, char** argv) {
  const std::string first = argc > 1 ? argv[1] : "";
  if (first == "--help" || first == "-h") {
    print_overview(stdout);
    return 0;
  }
  if (first == "--version") {
    std::printf("qwen-sft %s (git %s)\n", QSFT_VERSION, QSFT_GIT_COMMIT);
    return 0;
  }
  const auto it = qsft::cli::commands().find(first);
  if (it == qsft::cli::commands().end()) {
    if (!first.empty()) std::fprintf(stderr, "qwen-sft: unknown command '%s'\n", first.c_str());
    print_overview(stderr);
    return 2;
  }
  const Command& c = it->second;
  const Args args(argv + 2, argv + argc);
  if (asks_help(args)) {
    print_help(c);
    return 0;
  }
  try {
    return c.run(args);
  } catch (const qsft::cli::UsageError& e) {
    std::fprintf(stderr, "qwen-sft %s: error: %s\n", c.name, e.what());
    print_usage(stderr, c);
    return 2;
  } catch (const qsft::InputError& e) {
    std::fprintf(stderr, "qwen-sft %s: error: %s\n", c.name, e.what());
    return 2;
  } catch (const std::exception& e) {
    std::fprintf(stderr, "qwen-sft %s: internal error: %s\n", c.name, e.what());
    return 1;
  }
}
