#!/usr/bin/env python3
"""The command line's own help: `qwen-sft --help` lists every command, `qwen-sft COMMAND --help` exits 0 with a
usage line naming every option the command accepts (read from its parse_flags call in tools/cmd_*.cpp), and
nothing else runs (tokenize would wait on stdin); `qwen-sft --version` prints the CMake version and git commit;
wrong arguments print the error and the usage line on stderr and exit 2."""
import os
import re

from e2e_common import REPO, expect, parse_args, run


def listed_commands(bin_path):
    """The command names of the `commands:` section of `qwen-sft --help`."""
    out = run(bin_path, "--help").stdout
    expect("commands:" in out, "qwen-sft --help has no commands section:\n" + out)
    return [line.split()[0] for line in out.split("commands:", 1)[1].splitlines() if line.strip()]


def accepted_options(command):
    """Every option name in the parse_flags(args, {valued...}, {flags...}) call of tools/cmd_COMMAND.cpp."""
    with open(os.path.join(REPO, "tools", "cmd_" + command.replace("-", "_") + ".cpp")) as f:
        src = f.read()
    call = re.search(r"parse_flags\(args,\s*(\{[^}]*\}),\s*(\{[^}]*\})\)", src)
    expect(call is not None, f"no parse_flags call in tools/cmd_{command}.cpp")
    return set(re.findall(r'"([a-z0-9-]+)"', call.group(1) + call.group(2)))


def check_command_help(bin_path, command):
    p = run(bin_path, command, "--help", stdin=open(os.devnull))
    usage = p.stdout.splitlines()[0] if p.stdout else ""
    expect(usage.startswith(f"usage: qwen-sft {command} "), f"{command} --help: no usage line:\n{p.stdout}")
    shown = set(re.findall(r"--([a-z0-9-]+)", usage))
    missing = accepted_options(command) - shown
    expect(not missing, f"{command} --help: the usage line lacks --{', --'.join(sorted(missing))}: {usage}")
    unknown = shown - accepted_options(command)
    expect(not unknown, f"{command} --help: the usage line names unknown --{', --'.join(sorted(unknown))}")
    expect(run(bin_path, command, "-h").stdout == p.stdout, f"{command} -h differs from --help")


def main():
    a = parse_args()
    commands = listed_commands(a.bin)
    expected = {"train", "export", "data", "plan", "init-model", "tokenize", "logits"}
    expect(expected <= set(commands), f"qwen-sft --help lists {commands}, not all of {sorted(expected)}")
    for command in commands:
        check_command_help(a.bin, command)

    version = run(a.bin, "--version").stdout.strip()
    expect(re.fullmatch(r"qwen-sft \d+\.\d+\.\d+ \(git ([0-9a-f]{7,}(-dirty)?|unknown)\)", version) is not None,
           "qwen-sft --version: " + version)

    p = run(a.bin, "init-model", "--preset", "tiny", check=False)  # --out is missing
    expect(p.returncode == 2 and "error: --preset and --out are required" in p.stderr
           and "usage: qwen-sft init-model --preset" in p.stderr, f"init-model without --out: {p.returncode} {p.stderr}")
    p = run(a.bin, "train", "--bogus", check=False)
    expect(p.returncode == 2 and "unknown option --bogus" in p.stderr and "usage: qwen-sft train " in p.stderr,
           f"train --bogus: {p.returncode} {p.stderr}")
    p = run(a.bin, check=False)
    expect(p.returncode == 2 and "usage: qwen-sft COMMAND" in p.stderr, "qwen-sft without a command")
    print(f"ok: --help of {len(commands)} commands, --version ({version}), usage errors")


if __name__ == "__main__":
    main()
