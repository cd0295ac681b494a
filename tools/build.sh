#!/usr/bin/env bash
# Configure and build into build/ (Ninja, Release) as CI does: warnings are errors, and a class defined twice
# differently (an ODR violation) fails the link. Extra arguments go to cmake's configure step.
set -euo pipefail
cd "$(dirname "$0")/.."
cmake -S . -B build -G Ninja -DCMAKE_BUILD_TYPE=Release -DQSFT_WERROR=ON -DQSFT_ODR_CHECK=ON "$@" >/dev/null
cmake --build build -j"$(nproc)"
