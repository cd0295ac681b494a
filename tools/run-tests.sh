#!/usr/bin/env bash
# Build everything and run every test: the C++ suites (ctest) and the Python parity/interop tests under tests/,
# the latter with the project's virtual environment that tools/install-deps.sh --test makes (.venv or $QSFT_VENV).
set -euo pipefail
cd "$(dirname "$0")/.."
tools/install-deps.sh --test
tools/build.sh -DPython3_EXECUTABLE="${QSFT_VENV:-$PWD/.venv}/bin/python3" "$@"
ctest --test-dir build --output-on-failure -j"$(nproc)"
