#!/usr/bin/env bash
# Build everything and run every test: the C++ suites (ctest) and the Python parity/interop tests under tests/.
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh --test
tools/build.sh "$@"
ctest --test-dir build --output-on-failure -j"$(nproc)"
