#!/usr/bin/env bash
# clang-tidy with the repo's .clang-tidy over our C++ sources in build/compile_commands.json (configure or build
# first: tools/build.sh). Prints each finding once, then the count per check; exits 1 when there are findings.
#   tools/lint.sh [REGEX]   only the sources whose path matches REGEX (default: every .cpp of ours)
set -euo pipefail
cd "$(dirname "$0")/.."
[ -f build/compile_commands.json ] || { echo "lint: no build/compile_commands.json (run tools/build.sh)" >&2; exit 2; }
command -v run-clang-tidy >/dev/null || {
  [ "$(id -u)" = 0 ] || { echo "lint: clang-tidy is missing; run as root (apt-get)" >&2; exit 2; }
  apt-get install -y -qq --no-install-recommends clang-tidy >/dev/null
}
sources="${1:-^$PWD/(engine|kernels|tokenizer|data|tools|bench|tests)/.*\.cpp$}"
log=build/lint.log
# The compile commands are g++'s: clang ignores its LTO flags, and -Werror there must not stop clang-tidy.
run-clang-tidy -p build -quiet -j "$(nproc)" -extra-arg=-Wno-error -extra-arg=-Wno-unknown-warning-option \
  -extra-arg=-Wno-ignored-optimization-argument "$sources" >"$log" 2>&1 || true
if grep -q "Error parsing\|error: unable to handle compilation" "$log"; then
  grep -m5 "Error parsing\|error: unable" "$log" >&2
  echo "lint: clang-tidy could not run (full output: $log)" >&2
  exit 2
fi
# A header's findings come once per file that includes it: each is printed once.
findings=$(sed 's/\x1b\[[0-9;]*m//g' "$log" | grep -E '^/.*: (warning|error): .*\[[a-z0-9,.-]+\]$' | sort -u || true)
[ -n "$findings" ] || { echo "lint: no findings"; exit 0; }
echo "$findings"
echo
echo "lint: $(echo "$findings" | wc -l) findings (full output: $log); per check:"
echo "$findings" | grep -oE '\[[a-z0-9,.-]+\]$' | sort | uniq -c | sort -rn
exit 1
